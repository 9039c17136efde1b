"""Checkers for chapter 01 (SFT): build a target model from a source model, and one training step.

    from minift.course.checks import ch01_sft as checks
    checks.check_target_model(build_target_model)
    checks.check_training_step(training_step)

check_target_model runs your function on a tiny causal model and checks that the body is copied (not
shared, not changed), the LM head is dropped and a new random classification head sits in model.head.
check_training_step runs two of your steps and compares them with two reference SGD steps, naming a
forgotten zero_grad(), backward() or step(), a wrong order, or a summed instead of averaged loss.
"""

from __future__ import annotations

import copy
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from .framework import Rejected, Verdict, _StudentRaised, as_number, call, call_keeping_inputs, checker, \
    mistake, name_of, passed
from .helpers import seeded, state_copy


# --- SFT: build the target model ---------------------------------------------------------------------

def _tiny_source_model(seed: int = 0, dropout: float = 0.0):
    """A small pre-trained-looking causal model, built without touching the global random state."""
    from minift.config import ModelConfig
    from minift.model import Transformer

    config = ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16, dropout=dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(config)
        with torch.no_grad():     # make the LayerNorms and biases non-trivial so "changed" is visible
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _head_linear(head):
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if isinstance(head, nn.Module) else []
    return linears[-1] if linears else None


@checker
def check_target_model(fn) -> Verdict:
    """fn(source_model, num_classes) -> an SFT target model: a copy of the source without its LM head,
    with a new randomly initialised classification head in ``model.head``."""
    from minift.model import Transformer

    name = name_of(fn)
    source = _tiny_source_model()
    before = state_copy(source)
    source_ptrs = {p.data_ptr() for p in source.state_dict().values()}
    tokens = torch.randint(0, source.config.vocab_size, (4, 6), generator=torch.Generator().manual_seed(1))

    for num_classes in (3, 2, 5):
        target = call(fn, source, num_classes)
        if target is source:
            return mistake("returned the source model itself (not a copy)",
                           "copy it first, e.g. target = copy.deepcopy(source_model), then change the copy")
        if not isinstance(target, Transformer):
            return mistake(f"{name} returned {type(target).__name__}, expected a minift Transformer",
                           "return the target model you built")
        after = source.state_dict()
        if set(after) != set(before) or any(not torch.equal(before[k], after[k]) for k in before) \
                or source.lm_head is None or source.head is not None:
            return mistake("changed the source model", "work on a copy; the source model must stay as it was "
                                                        "(you may want to fine-tune it again for another task)")
        shared = [k for k, v in target.state_dict().items() if v.data_ptr() in source_ptrs]
        if shared:
            return mistake(f"shares tensors with the source ({', '.join(shared[:3])})",
                           "training the target would change the source too; use copy.deepcopy(source_model)")

        if target.lm_head is not None:
            out = getattr(target.lm_head, "out_features", None)
            if target.head is None and out == num_classes:
                return mistake("put the new layer in model.lm_head",
                               "set target.lm_head = None and put the classifier in target.head")
            return mistake("kept the LM head as output layer",
                           "the source output layer predicts words, not your classes: set target.lm_head = None")
        if target.head is None:
            return mistake("the target model has no head", "add a classification head: target.head = ...")
        linear = _head_linear(target.head)
        if linear is not None and linear.out_features == source.config.vocab_size:
            return mistake("kept the LM head as output layer (it now sits in model.head)",
                           "the source output layer predicts words, not your classes: build a new head")
        if isinstance(target.head, nn.Linear):
            return mistake("model.head is a bare nn.Linear",
                           "the model calls head(hidden_states, attention_mask) and the head must pick one "
                           "position per sentence: use minift.heads.SequenceClassificationHead(d_model, num_classes)")
        linear = _head_linear(target.head)
        if linear is None:
            return mistake("model.head has no nn.Linear output layer",
                           "use e.g. minift.heads.SequenceClassificationHead(d_model, num_classes)")
        if linear.out_features != num_classes:
            return mistake(f"head has wrong number of classes: {linear.out_features} outputs for "
                           f"num_classes={num_classes}", "size the new output layer with num_classes")
        lm_weight = source.lm_head.weight.detach()
        if linear.weight.shape[1] == lm_weight.shape[1] and any(
                torch.equal(linear.weight.detach(), lm_weight[i:i + num_classes])
                for i in range(lm_weight.shape[0] - num_classes + 1)):
            return mistake("the head is a copy of rows of the LM head",
                           "the new output layer must be randomly initialised, not copied from the LM head")

        target_state = target.state_dict()
        body = [k for k in before if not k.startswith(("lm_head.", "head."))]
        missing = [k for k in body if k not in target_state]
        if missing:
            return mistake(f"the target model lacks source parameters ({', '.join(missing[:3])})",
                           "copy every layer except the output layer")
        changed = [k for k in body if not torch.equal(target_state[k].cpu(), before[k])]
        if changed:
            return mistake(f"copied weights changed ({', '.join(changed[:3])})",
                           "every layer except the output layer keeps the source values; did you re-initialise it?")

        target.eval()
        with torch.no_grad():
            logits = call(target, tokens, attention_mask=torch.ones_like(tokens),
                          what="the target model's forward").logits
        if tuple(logits.shape) != (4, num_classes):
            return mistake(f"the target model gives logits of shape {tuple(logits.shape)}, expected (4, {num_classes})",
                           "a sequence head pools the hidden states to one vector per sentence")

        pooling = _check_pooling(target, num_classes)
        if pooling is not None:
            return pooling

        with torch.no_grad():            # last check: a change to the target must not reach the source
            for parameter in target.parameters():
                parameter.add_(1.0)
        if any(not torch.equal(before[k], v) for k, v in source.state_dict().items()):
            return mistake("shares tensors with the source",
                           "changing the target changed the source; use copy.deepcopy(source_model)")
    return passed(f"{name} copies the body, drops the LM head and adds a new random head that pools the "
                  "last real token (tried 3, 2 and 5 classes, right- and left-padded sentences); the source "
                  "model is untouched")


def _padded_batch(vocab_size: int):
    """Sentences of different lengths, right- and left-padded, with random token ids at the padding."""
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randint(1, vocab_size, (4, 7), generator=generator)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[1, 4:] = 0          # right padding: 4 real tokens
    mask[2, :3] = 0          # left padding: 4 real tokens at the end
    mask[3, 2:] = 0          # right padding: 2 real tokens
    return tokens, mask


def _check_pooling(target, num_classes: int):
    """None if the target model's head reads the LAST REAL token of each sentence (the only position
    of a causal model that has seen the whole sentence), else a Verdict naming what it reads instead."""
    from minift.heads import real_token_index

    tokens, mask = _padded_batch(target.config.vocab_size)
    hint = ("use minift.heads.SequenceClassificationHead(d_model, num_classes, pool=\"last\"): in a causal "
            "model only the last real token has seen the whole sentence, and the attention mask tells "
            "where it is (padding can be on either side)")
    was_training = target.training
    target.eval()
    try:
        with torch.no_grad():
            out = call(target, tokens, attention_mask=mask, output_hidden_states=True,
                       what="the target model's forward")
            logits = out.logits
            linear = _head_linear(target.head)
            if out.hidden_states is not None and linear is not None:
                final = target.ln_f(out.hidden_states[-1])
                rows = torch.arange(final.shape[0])
                real = mask.unsqueeze(-1).to(final.dtype)
                candidates = {
                    "last real": final[rows, real_token_index(mask, "last")],
                    "first real": final[rows, real_token_index(mask, "first")],
                    "first position": final[:, 0],
                    "last position": final[:, -1],
                    "mean": (final * real).sum(1) / real.sum(1),
                }
                matches = [kind for kind, pooled in candidates.items()
                           if torch.allclose(linear(pooled), logits, atol=1e-5, rtol=1e-4)]
                if "last real" in matches:
                    return None
                messages = {
                    "first real": "the head pools the FIRST token ([CLS], BERT's choice); in a causal model "
                                  "that position has seen only itself, so the prediction ignores the sentence",
                    "first position": "the head pools the first position; in a causal model it has seen only "
                                      "itself (and with left padding it is padding)",
                    "last position": "the head pools the last POSITION even where it is padding: the attention "
                                     "mask is ignored",
                    "mean": "the head averages all tokens (mean pooling); this course's causal target model "
                            "pools the last real token, the one that has seen the whole sentence",
                }
                for kind in matches:
                    return mistake(messages[kind], hint)
            # a head of its own design: test what it looks at by changing tokens
            changed_pad = tokens.clone()
            changed_pad[mask == 0] = (changed_pad[mask == 0] % (target.config.vocab_size - 1)) + 1
            if not torch.allclose(call(target, changed_pad, attention_mask=mask).logits, logits, atol=1e-5):
                return mistake("the prediction changes when only padding tokens change: the head reads "
                               "padding positions", hint)
            last = real_token_index(mask, "last")
            changed_last = tokens.clone()
            rows = torch.arange(tokens.shape[0])
            changed_last[rows, last] = (changed_last[rows, last] % (target.config.vocab_size - 1)) + 1
            moved = (call(target, changed_last, attention_mask=mask).logits - logits).abs().amax(dim=-1)
            if bool((moved < 1e-6).any()):
                return mistake("the prediction does not change when the last real token of a sentence "
                               "changes: the head does not read it (note: mask.sum() - 1 is the last real position only when "
                               "the padding is on the right)", hint)
    finally:
        target.train(was_training)
    return None


# --- one training step -------------------------------------------------------------------------------

DROPOUT = 0.1     # the model has dropout, so a step that switches it to eval() mode changes the numbers


def _training_setup():
    """A tiny classifier with dropout, and two batches whose labels include -100 (an unlabelled example)."""
    from minift.heads import make_target_model

    model = make_target_model(_tiny_source_model(dropout=DROPOUT), task="sequence", num_classes=3, seed=0)
    generator = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(2):
        input_ids = torch.randint(0, model.config.vocab_size, (4, 6), generator=generator)
        attention_mask = torch.ones(4, 6, dtype=torch.long)
        attention_mask[1, 4:] = 0
        labels = torch.randint(0, 3, (4,), generator=generator)
        labels[2] = -100
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return model.train(), batches


def reference_training_step(model, batch, optimizer) -> float:
    """The reference: zero_grad, forward, cross-entropy ignoring -100, backward, step."""
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


LEARNING_RATE = 0.5      # plain SGD with a large step: every mistake changes the weights visibly
STEP_SEEDS = (11, 12)    # dropout draws the same masks for your step and the reference's


def _run_steps(model, batches, step) -> tuple[list, list]:
    """Run ``step`` on each batch with one SGD optimizer; the losses and the state after each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses, states = [], []
    for seed, batch in zip(STEP_SEEDS, batches):
        losses.append(seeded(seed, step, model, batch, optimizer))
        states.append(state_copy(model))
    return losses, states


def _same_state(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5) for k in a)


def _accumulating_step(model, batch, optimizer) -> float:
    """The reference without zero_grad(): what "forgot zero_grad" looks like."""
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


def _loss_of(model, batch, labels=None) -> float:
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"] if labels is None else labels
    return F.cross_entropy(logits, labels, ignore_index=-100).item()


class _WatchedSGD(torch.optim.SGD):
    """SGD that remembers, for each step() call, whether any gradient was there to apply, and every
    zero_grad() call that wiped gradients."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps_with_gradients = []
        self.events = []

    def _has_gradients(self) -> bool:
        return any(p.grad is not None and bool(p.grad.any())
                   for group in self.param_groups for p in group["params"])

    def step(self, closure=None):
        has_gradient = self._has_gradients()
        self.steps_with_gradients.append(has_gradient)
        self.events.append(("step", has_gradient))
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True):
        self.events.append(("zero_grad", self._has_gradients()))
        return super().zero_grad(set_to_none=set_to_none)


def _as_loss(value, name: str, notes: list):
    """The returned loss as a float, or a mistake Verdict."""
    if value is None:
        return mistake(f"{name} returned None", "return the loss as a float: return loss.item()")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return mistake(f"{name} returned a tensor of shape {tuple(value.shape)}",
                           "return the mean loss as a single number: loss.item()")
        notes.append("you returned a tensor; return loss.item() instead, so only the number is kept "
                     "(a tensor keeps the whole computation graph alive)")
    number = as_number(value)
    if number is None:
        return mistake(f"{name} returned {type(value).__name__}, expected a float",
                       "return the loss as a float: return loss.item()")
    return number


@checker
def check_training_step(fn) -> Verdict:
    """fn(model, batch, optimizer) -> float loss, after one step: zero_grad, forward, cross-entropy
    (labels -100 ignored), backward, optimizer.step(). Two calls in a row must equal two reference steps
    (the model has dropout: the step must leave it in train mode)."""
    name = name_of(fn)
    model, batches = _training_setup()
    start = state_copy(model)
    student_model = copy.deepcopy(model).train()
    optimizer = _WatchedSGD(student_model.parameters(), lr=LEARNING_RATE)
    notes, losses, states = [], [], []
    order_hint = "order: optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step()"
    for seed, batch in zip(STEP_SEEDS, batches):
        try:
            returned = seeded(seed, call_keeping_inputs, fn, student_model, batch, optimizer,
                              names=["model", "batch", "optimizer"], what=name)
        except _StudentRaised as raised:
            if "does not require grad" in str(raised.error):
                return mistake("loss.backward() failed because the loss has no gradient: it was computed under "
                               "torch.no_grad() (or detached, or rebuilt from loss.item())",
                               "compute the forward pass and the loss normally; only the returned number uses .item()")
            raise
        loss = _as_loss(returned, name, notes)
        if isinstance(loss, Verdict):
            return loss
        if not student_model.training:
            return mistake("the step switched the model to eval mode (model.eval()): dropout is off while it trains",
                           "leave the mode to the caller: a training step runs in train mode (call model.train() "
                           "before the loop, not model.eval() inside the step)")
        losses.append(loss)
        states.append(state_copy(student_model))

    ref_losses, ref_states = _run_steps(copy.deepcopy(model), batches, reference_training_step)
    if not optimizer.steps_with_gradients:
        if not _same_state(states[-1], start):
            return mistake("the parameters changed, but not through the optimizer you were given",
                           "use the `optimizer` argument (optimizer.step()); do not create a new one")
        return mistake("forgot optimizer.step(): the parameters did not change",
                       "after loss.backward(), call optimizer.step() to apply the update")
    if not any(optimizer.steps_with_gradients):
        if any(p.grad is not None and bool(p.grad.any()) for p in student_model.parameters()):
            return mistake("called optimizer.step() before loss.backward(): each step applied no gradient "
                           "(or the previous batch's)", order_hint)
        events = optimizer.events
        if any(kind == "zero_grad" and had and later == ("step", False)
               for (kind, had), later in zip(events, events[1:])):
            return mistake("called optimizer.zero_grad() between loss.backward() and optimizer.step(): it wiped "
                           "the gradients just before the update, so nothing was learnt", order_hint)
        return mistake("forgot loss.backward(): no gradients were computed, so optimizer.step() "
                       "had nothing to apply", order_hint)

    expected = ref_losses[0]
    if abs(losses[0] - expected) > 1e-4 * max(1.0, abs(expected)):
        counted = int((batches[0]["labels"] != -100).sum())
        if abs(losses[0] - expected * counted) < 1e-4 * max(1.0, abs(expected * counted)):
            return mistake("wrong loss: you summed the per-example losses instead of averaging them",
                           "F.cross_entropy averages by default (reduction='mean'); keep the default")
        fresh = copy.deepcopy(model)
        zero_filled = batches[0]["labels"].clamp(min=0)
        with torch.no_grad():
            as_class_0 = seeded(STEP_SEEDS[0], _loss_of, fresh, batches[0], zero_filled)
            evaluated = _loss_of(copy.deepcopy(model).eval(), batches[0])
        if abs(losses[0] - as_class_0) < 1e-4:
            return mistake("wrong loss: the example labelled -100 was counted (as class 0)",
                           "leave the labels as they are: F.cross_entropy(logits, labels, ignore_index=-100) "
                           "skips the -100 ones")
        after_update = seeded(STEP_SEEDS[0], _step_then_loss, copy.deepcopy(model), batches[0])
        if abs(losses[0] - after_update) < 1e-4:
            return mistake("returned the loss AFTER the update (computed again after optimizer.step())",
                           "return the loss of the forward pass you called backward() on")
        if abs(losses[0] - evaluated) < 1e-4:
            return mistake("the loss was computed without dropout (in eval mode or under a switched-off "
                           "dropout), although the model is training", "keep the model in train mode during the step")
        return mistake(f"wrong loss: {name} returned {losses[0]:.4f} on the first batch, expected "
                       f"{expected:.4f} (mean cross-entropy over labels that are not -100, before the update)",
                       "F.cross_entropy(logits, labels, ignore_index=-100) on the model's logits, "
                       "before optimizer.step()")
    if not _same_state(states[0], ref_states[0]):
        if _same_state(states[0], start):
            return mistake("called optimizer.step() before loss.backward(): the first step changed nothing",
                           order_hint)
        return mistake("the first update differs from one SGD step on the loss you returned",
                       "call loss.backward() once, on exactly the loss you return, then optimizer.step()")
    if not _same_state(states[1], ref_states[1]):
        _, accumulated = _run_steps(copy.deepcopy(model), batches, _accumulating_step)
        if _same_state(states[1], accumulated[1]):
            return mistake("forgot optimizer.zero_grad(): the gradients of the previous step were added "
                           "to this step's", "call optimizer.zero_grad() at the start of every step")
        return mistake("the second step does not match the reference (the first one did)",
                       "each call must do exactly one update from a fresh gradient: " + order_hint[7:])
    message = f"{name} does one correct optimisation step (2 batches, labels -100 ignored, train mode kept) and returns the loss"
    if notes:
        message += " (note: " + notes[0] + ")"
    return passed(message)


def _step_then_loss(model, batch) -> float:
    """One reference step, then the loss computed again: what returning the post-update loss gives."""
    reference_training_step(model, batch, torch.optim.SGD(model.parameters(), lr=LEARNING_RATE))
    with torch.no_grad():
        return _loss_of(model, batch)


__all__ = ["check_target_model", "check_training_step", "reference_training_step", "LEARNING_RATE"]
