"""Chapter 01's exercises (build the target model, one training step): the solution notebook's
functions and other right styles pass; each wrong implementation a student really writes gets a
failing verdict naming its mistake.

WRONG and RIGHT are module-level so the same implementations can be run against other checker
versions (they were run against the checkers of HEAD~6 to show which wrong answers those accepted)."""

import copy
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.course.checks import ch01_sft as checks
from minift.heads import SequenceClassificationHead, make_target_model, real_token_index

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)

ROOT = Path(__file__).resolve().parents[2]


def solution_functions():
    """Execute the solution notebook's function cells (not the set-up or demo cells)."""
    notebook = nbformat.read(str(ROOT / "solutions" / "01_sft.ipynb"), as_version=4)
    namespace = {"copy": copy, "torch": torch, "nn": nn, "F": F,
                 "SequenceClassificationHead": SequenceClassificationHead}
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("def "):
            exec(cell.source, namespace)
    return namespace


def test_solutions_pass_their_checkers():
    functions = solution_functions()
    assert checks.check_target_model(functions["build_target_model"], quiet=True).passed
    assert checks.check_training_step(functions["training_step"], quiet=True).passed


# --- build_target_model: right styles ---------------------------------------------------------------

def with_library(source, num_classes):
    return make_target_model(source, task="sequence", num_classes=num_classes)


def by_hand(source, num_classes):
    target = copy.deepcopy(source)
    target.lm_head = None
    target.head = SequenceClassificationHead(source.config.d_model, num_classes, pool="last")
    return target


class LoopLastTokenHead(nn.Module):
    """A head of one's own: finds each sentence's last real token with a loop."""

    def __init__(self, d_model, num_classes):
        super().__init__()
        self.out = nn.Linear(d_model, num_classes)

    def forward(self, hidden, attention_mask=None):
        rows = []
        for b in range(hidden.shape[0]):
            real = range(hidden.shape[1]) if attention_mask is None else \
                [t for t in range(hidden.shape[1]) if attention_mask[b, t]]
            rows.append(hidden[b, max(real)])
        return self.out(torch.stack(rows))


def own_head_with_a_loop(source, num_classes):
    target = copy.deepcopy(source)
    target.lm_head = None
    target.head = LoopLastTokenHead(source.config.d_model, num_classes)
    return target


# --- build_target_model: wrong answers ----------------------------------------------------------------

def returns_source(source, num_classes):
    source.head = SequenceClassificationHead(source.config.d_model, num_classes, pool="last")
    source.lm_head = None
    return source


def shallow_copy(source, num_classes):
    target = copy.copy(source)                      # a new object, but the same parameter tensors
    target.__dict__ = dict(source.__dict__)
    target._modules = dict(source._modules)
    target.lm_head = None
    target.head = SequenceClassificationHead(source.config.d_model, num_classes, pool="last")
    return target


def keeps_lm_head(source, num_classes):
    return copy.deepcopy(source)


def head_beside_lm_head(source, num_classes):
    target = copy.deepcopy(source)
    target.head = SequenceClassificationHead(source.config.d_model, num_classes, pool="last")
    return target


def fixed_classes(source, num_classes):
    return make_target_model(source, task="sequence", num_classes=3)


def reinitialises(source, num_classes):
    target = make_target_model(source, task="sequence", num_classes=num_classes)
    nn.init.normal_(target.blocks[0].attn.q.weight)
    return target


def lm_head_moved(source, num_classes):
    target = copy.deepcopy(source)
    target.head, target.lm_head = target.lm_head, None
    return target


def head_copied_from_lm_head(source, num_classes):
    target = make_target_model(source, task="sequence", num_classes=num_classes)
    with torch.no_grad():
        target.head.classifier.weight.copy_(source.lm_head.weight[:num_classes])
    return target


def changes_source(source, num_classes):
    target = make_target_model(source, task="sequence", num_classes=num_classes)
    with torch.no_grad():
        source.ln_f.weight.zero_()
    return target


def bare_linear_head(source, num_classes):
    target = copy.deepcopy(source)
    target.lm_head, target.head = None, nn.Linear(source.config.d_model, num_classes)
    return target


def cls_pooling(source, num_classes):
    """BERT's habit: SequenceClassificationHead's default pools the first token."""
    target = copy.deepcopy(source)
    target.lm_head = None
    target.head = SequenceClassificationHead(source.config.d_model, num_classes)
    return target


def mean_pooling(source, num_classes):
    return make_target_model(source, task="sequence", num_classes=num_classes, pool="mean")


class LastPositionHead(nn.Module):
    def __init__(self, d_model, num_classes):
        super().__init__()
        self.out = nn.Linear(d_model, num_classes)

    def forward(self, hidden, attention_mask=None):
        return self.out(hidden[:, -1])                     # ignores the mask: padding on the right


def ignores_the_mask(source, num_classes):
    target = copy.deepcopy(source)
    target.lm_head = None
    target.head = LastPositionHead(source.config.d_model, num_classes)
    return target


class CountsRealTokensHead(nn.Module):
    """mask.sum() - 1 as the last index: right only for right padding."""

    def __init__(self, d_model, num_classes):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, num_classes))

    def forward(self, hidden, attention_mask):
        index = attention_mask.sum(dim=1) - 1
        return self.out(hidden[torch.arange(hidden.shape[0]), index])


def counts_real_tokens(source, num_classes):
    target = copy.deepcopy(source)
    target.lm_head = None
    target.head = CountsRealTokensHead(source.config.d_model, num_classes)
    return target


# --- training_step: right styles --------------------------------------------------------------------

def forward_loss(model, batch):
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits, batch["labels"], ignore_index=-100)


def zero_grad_last(model, batch, optimizer):
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def loop_over_examples(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses = [F.cross_entropy(row.unsqueeze(0), label.unsqueeze(0))
              for row, label in zip(logits, batch["labels"]) if int(label) != -100]
    loss = torch.stack(losses).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def returns_tensor(model, batch, optimizer):
    optimizer.zero_grad()
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss


# --- training_step: wrong answers -----------------------------------------------------------------------

def no_zero_grad(model, batch, optimizer):
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_step(model, batch, optimizer):
    optimizer.zero_grad()
    loss = forward_loss(model, batch)
    loss.backward()
    return loss.item()


def no_backward(model, batch, optimizer):
    optimizer.zero_grad()
    loss = forward_loss(model, batch)
    optimizer.step()
    return loss.item()


def step_before_backward(model, batch, optimizer):
    optimizer.zero_grad()
    loss = forward_loss(model, batch)
    optimizer.step()
    loss.backward()
    return loss.item()


def zero_grad_between_backward_and_step(model, batch, optimizer):
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def summed_loss(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100, reduction="sum")
    loss.backward()
    optimizer.step()
    return loss.item()


def mse_loss(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = logits.pow(2).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def own_optimizer(model, batch, optimizer):
    return checks.reference_training_step(model, batch, torch.optim.SGD(model.parameters(), lr=0.5))


def returns_nothing(model, batch, optimizer):
    no_zero_grad(model, batch, optimizer)


def eval_mode_inside(model, batch, optimizer):
    model.eval()                                   # "to get deterministic logits"
    return checks.reference_training_step(model, batch, optimizer)


def under_no_grad(model, batch, optimizer):
    optimizer.zero_grad()
    with torch.no_grad():
        loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def labels_fixed_in_place(model, batch, optimizer):
    batch["labels"][batch["labels"] == -100] = 0   # changes the caller's batch
    return checks.reference_training_step(model, batch, optimizer)


def unlabelled_as_class_0(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"].clamp(min=0))
    loss.backward()
    optimizer.step()
    return loss.item()


def loss_after_the_update(model, batch, optimizer):
    checks.reference_training_step(model, batch, optimizer)
    return forward_loss(model, batch).item()


RIGHT = {
    "check_target_model": [with_library, by_hand, own_head_with_a_loop],
    "check_training_step": [checks.reference_training_step, zero_grad_last, loop_over_examples, returns_tensor],
}

WRONG = {
    "check_target_model": [
        (returns_source, "returned the source model itself (not a copy)"),
        (shallow_copy, "shares tensors with the source"),
        (keeps_lm_head, "kept the LM head as output layer"),
        (head_beside_lm_head, "kept the LM head as output layer"),
        (lm_head_moved, "kept the LM head as output layer"),
        (fixed_classes, "head has wrong number of classes"),
        (reinitialises, "copied weights changed"),
        (head_copied_from_lm_head, "copy of rows of the LM head"),
        (changes_source, "changed the source model"),
        (bare_linear_head, "bare nn.Linear"),
        (cls_pooling, "pools the FIRST token"),
        (mean_pooling, "mean pooling"),
        (ignores_the_mask, "attention mask is ignored"),
        (counts_real_tokens, "mask.sum() - 1"),
        (lambda source, n: None, "expected a minift Transformer"),
    ],
    "check_training_step": [
        (no_zero_grad, "forgot optimizer.zero_grad()"),
        (no_step, "forgot optimizer.step()"),
        (no_backward, "forgot loss.backward()"),
        (step_before_backward, "optimizer.step() before loss.backward()"),
        (zero_grad_between_backward_and_step, "zero_grad() between loss.backward() and optimizer.step()"),
        (summed_loss, "summed"),
        (mse_loss, "wrong loss"),
        (returns_nothing, "returned None"),
        (own_optimizer, "not through the optimizer you were given"),
        (eval_mode_inside, "eval mode"),
        (under_no_grad, "torch.no_grad()"),
        (labels_fixed_in_place, "changed its input batch['labels'] in place"),
        (unlabelled_as_class_0, "labelled -100 was counted"),
        (loss_after_the_update, "loss AFTER the update"),
    ],
}

CHECKERS = {"check_target_model": checks.check_target_model, "check_training_step": checks.check_training_step}


@pytest.mark.parametrize("check, fn", [(c, f) for c, fns in RIGHT.items() for f in fns],
                         ids=lambda x: getattr(x, "__name__", x))
def test_right_answers_pass(check, fn):
    verdict = CHECKERS[check](fn, quiet=True)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize("check, fn, fragment", [(c, f, m) for c, pairs in WRONG.items() for f, m in pairs],
                         ids=lambda x: getattr(x, "__name__", None) if callable(x) else None)
def test_wrong_answer_is_named(check, fn, fragment):
    verdict = CHECKERS[check](fn, quiet=True)
    assert verdict.status == "mistake", f"{getattr(fn, '__name__', fn)}: {verdict}"
    assert fragment in verdict.message, f"{getattr(fn, '__name__', fn)}: {verdict}"
    assert verdict.hint


def test_a_returned_tensor_passes_with_a_note():
    verdict = checks.check_training_step(returns_tensor, quiet=True)
    assert verdict.passed and "loss.item()" in verdict.message
    assert "note" not in checks.check_training_step(checks.reference_training_step, quiet=True).message


def test_padded_batch_has_left_and_right_padding():
    tokens, mask = checks._padded_batch(40)
    last = real_token_index(mask, "last")
    assert (last < mask.shape[1] - 1).any()                     # right padding
    assert (mask[:, 0] == 0).any()                              # left padding
    assert not torch.equal(mask.sum(1) - 1, last)               # counting real tokens is wrong here
