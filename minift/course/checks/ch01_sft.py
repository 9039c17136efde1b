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

from .framework import Verdict, call, checker, mistake, name_of, passed


# --- SFT: build the target model ---------------------------------------------------------------------

def _tiny_source_model(seed: int = 0):
    """A small pre-trained-looking causal model, built without touching the global random state."""
    from minift.config import ModelConfig
    from minift.model import Transformer

    config = ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(config)
        with torch.no_grad():     # make the LayerNorms and biases non-trivial so "changed" is visible
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _state_copy(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
    before = _state_copy(source)
    source_ptrs = {p.data_ptr() for p in source.state_dict().values()}
    tokens = torch.randint(0, source.config.vocab_size, (4, 6), generator=torch.Generator().manual_seed(1))

    for num_classes in (3, 5):
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
            logits = call(target, tokens, what="the target model's forward").logits
        if tuple(logits.shape) != (4, num_classes):
            return mistake(f"the target model gives logits of shape {tuple(logits.shape)}, expected (4, {num_classes})",
                           "a sequence head pools the hidden states to one vector per sentence")

        with torch.no_grad():            # last check: a change to the target must not reach the source
            for parameter in target.parameters():
                parameter.add_(1.0)
        if any(not torch.equal(before[k], v) for k, v in source.state_dict().items()):
            return mistake("shares tensors with the source",
                           "changing the target changed the source; use copy.deepcopy(source_model)")
    return passed(f"{name} copies the body, drops the LM head and adds a new random head "
                  "(tried 3 and 5 classes); the source model is untouched")


# --- one training step -------------------------------------------------------------------------------

def _training_setup():
    """A tiny classifier, and two batches whose labels include -100 (an unlabelled example)."""
    from minift.heads import make_target_model

    model = make_target_model(_tiny_source_model(), task="sequence", num_classes=3, seed=0)
    generator = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(2):
        input_ids = torch.randint(0, model.config.vocab_size, (4, 6), generator=generator)
        attention_mask = torch.ones(4, 6, dtype=torch.long)
        attention_mask[1, 4:] = 0
        labels = torch.randint(0, 3, (4,), generator=generator)
        labels[2] = -100
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return model, batches


def reference_training_step(model, batch, optimizer) -> float:
    """The reference: zero_grad, forward, cross-entropy ignoring -100, backward, step."""
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


LEARNING_RATE = 0.5      # plain SGD with a large step: every mistake changes the weights visibly


def _run_steps(model, batches, step) -> tuple[list, list]:
    """Run ``step`` on each batch with a fresh SGD optimizer; the losses and the state after each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses, states = [], []
    for batch in batches:
        losses.append(step(model, batch, optimizer))
        states.append(_state_copy(model))
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


class _WatchedSGD(torch.optim.SGD):
    """SGD that remembers, for each step() call, whether any gradient was there to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps_with_gradients = []

    def step(self, closure=None):
        has_gradient = any(p.grad is not None and bool(p.grad.any())
                           for group in self.param_groups for p in group["params"])
        self.steps_with_gradients.append(has_gradient)
        return super().step(closure)


def _as_loss(value, name: str, notes: list):
    """The returned loss as a float, or a mistake Verdict."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return mistake(f"{name} returned a tensor of shape {tuple(value.shape)}",
                           "return the mean loss as a single number: loss.item()")
        notes.append("you returned a tensor; return loss.item() instead, so only the number is kept "
                     "(a tensor keeps the whole computation graph alive)")
        value = value.item()
    if value is None:
        return mistake(f"{name} returned None", "return the loss as a float: return loss.item()")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return mistake(f"{name} returned {type(value).__name__}, expected a float",
                       "return the loss as a float: return loss.item()")
    return float(value)


@checker
def check_training_step(fn) -> Verdict:
    """fn(model, batch, optimizer) -> float loss, after one step: zero_grad, forward, cross-entropy
    (labels -100 ignored), backward, optimizer.step(). Two calls in a row must equal two reference steps."""
    name = name_of(fn)
    model, batches = _training_setup()
    start = _state_copy(model)
    student_model = copy.deepcopy(model).train()
    optimizer = _WatchedSGD(student_model.parameters(), lr=LEARNING_RATE)
    notes, losses, states = [], [], []
    for batch in batches:
        loss = _as_loss(call(fn, student_model, batch, optimizer), name, notes)
        if isinstance(loss, Verdict):
            return loss
        losses.append(loss)
        states.append(_state_copy(student_model))

    ref_losses, ref_states = _run_steps(copy.deepcopy(model), batches, reference_training_step)
    order_hint = "order: optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step()"
    if not optimizer.steps_with_gradients:
        if not _same_state(states[-1], start):
            return mistake("the parameters changed, but not through the optimizer you were given",
                           "use the `optimizer` argument (optimizer.step()); do not create a new one")
        return mistake("forgot optimizer.step(): the parameters did not change",
                       "after loss.backward(), call optimizer.step() to apply the update")
    if not any(optimizer.steps_with_gradients):
        if all(p.grad is None for p in student_model.parameters()):
            return mistake("forgot loss.backward(): no gradients were computed, so optimizer.step() "
                           "had nothing to apply", order_hint)
        return mistake("called optimizer.step() before loss.backward(): each step applied no gradient "
                       "(or the previous batch's)", order_hint)

    expected = ref_losses[0]
    if abs(losses[0] - expected) > 1e-4 * max(1.0, abs(expected)):
        counted = int((batches[0]["labels"] != -100).sum())
        if abs(losses[0] - expected * counted) < 1e-4 * max(1.0, abs(expected * counted)):
            return mistake("wrong loss: you summed the per-example losses instead of averaging them",
                           "F.cross_entropy averages by default (reduction='mean'); keep the default")
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
    message = f"{name} does one correct optimisation step and returns the loss"
    if notes:
        message += " (note: " + notes[0] + ")"
    return passed(message)


__all__ = ["check_target_model", "check_training_step", "reference_training_step", "LEARNING_RATE"]
