"""minift.course.checks (chapters 00-02 and the framework): references pass, stubs are "not implemented", each typical mistake is named, and no
exception ever escapes a checker."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.course import checks
from minift.config import ModelConfig
from minift.heads import SequenceClassificationHead, make_target_model
from minift.model import Attention, Block, FeedForward

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)


def stub(*args, **kwargs):
    raise NotImplementedError("write your code here")


def crashes(*args, **kwargs):
    return {}["missing key"]


def verdict_of(check, fn):
    return check(fn, quiet=True)


def assert_mistake(verdict, *fragments):
    assert verdict.status == "mistake", str(verdict)
    for fragment in fragments:
        assert fragment in verdict.message, str(verdict)


# --- the references agree with the real modules ------------------------------------------------------

@pytest.mark.parametrize("d_model, d_ff", [(16, 64), (24, 40)])
def test_reference_counts_match_minift_modules(d_model, d_ff):
    config = ModelConfig(vocab_size=10, d_model=d_model, n_heads=4, d_ff=d_ff)
    count = lambda module: sum(p.numel() for p in module.parameters())   # noqa: E731
    assert checks.attention_params(d_model) == count(Attention(config))
    assert checks.ffn_params(d_model, d_ff) == count(FeedForward(config))
    assert checks.block_params(d_model, d_ff) == count(Block(config))


# --- Verdict and the safety net ----------------------------------------------------------------------

def test_verdict_text():
    assert str(checks.Verdict("passed", "ok")) == "✅ passed: ok"
    assert str(checks.Verdict("not implemented", "f")) == "⏳ not implemented yet: f"
    assert str(checks.Verdict("mistake", "forgot x", "add x")) == "❌ forgot x. Hint: add x"
    with pytest.raises(ValueError):
        checks.Verdict("maybe", "?")


def test_checker_prints_its_verdict_once(capsys):
    verdict = checks.check_lora_param_count(stub)
    assert capsys.readouterr().out.strip() == str(verdict)
    verdict._ipython_display_()                 # a notebook showing the return value adds nothing
    assert capsys.readouterr().out == ""


def test_checker_rejects_a_non_function():
    assert_mistake(verdict_of(checks.check_lora_param_count, None), "expected your function")
    assert_mistake(verdict_of(checks.check_lora_param_count, 42), "expected your function")


def test_checker_bug_is_reported_not_raised():
    @checks.checker
    def broken_checker(fn):
        raise RuntimeError("bug in the checker")

    verdict = broken_checker(lambda: 1, quiet=True)
    assert_mistake(verdict, "RuntimeError", "bug in the checker")


def test_checkers_leave_the_thread_count_to_setup():
    """The thread rule lives in minift.course.setup: a checker runs the student's code with the threads
    the notebook chose and changes nothing (it used to force 1 thread around every check)."""
    seen = []

    def count(d):
        seen.append(torch.get_num_threads())
        return 4 * d * d + 4 * d

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert checks.check_count_attention_params(count, quiet=True).passed
        assert seen and set(seen) == {2} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


ALL_CHECKERS = [checks.check_count_attention_params, checks.check_count_ffn_params,
                checks.check_count_block_params, checks.check_lora_param_count,
                checks.check_prefix_param_count, checks.check_target_model, checks.check_training_step]


@pytest.mark.parametrize("check", ALL_CHECKERS, ids=lambda c: c.__name__)
def test_stub_is_not_implemented(check):
    verdict = verdict_of(check, stub)
    assert verdict.status == "not implemented" and "not implemented yet" in str(verdict)


@pytest.mark.parametrize("check", ALL_CHECKERS, ids=lambda c: c.__name__)
def test_arbitrary_exception_is_reported(check):
    verdict = verdict_of(check, crashes)
    assert_mistake(verdict, "your code raised KeyError", "missing key")
    assert "crashes" in verdict.message          # where it happened


@pytest.mark.parametrize("check", ALL_CHECKERS, ids=lambda c: c.__name__)
def test_returning_a_string_is_a_mistake_not_a_crash(check):
    assert verdict_of(check, lambda *args: "seven").status == "mistake"


# --- counting checkers -------------------------------------------------------------------------------

COUNT_CASES = {
    "attention": (checks.check_count_attention_params, lambda d: 4 * d * d + 4 * d, [
        (lambda d: 4 * d * d, "forgot the biases"),
        (lambda d: 3 * d * d + 3 * d, "only 3 matrices"),
        (lambda d: 16 * d * d + 16 * d, "used d_ff"),
        (lambda d: 4 * d * d + d, "one bias"),
        (lambda d: 5 * d * d, "returned"),                         # unknown mistake: generic message
    ]),
    "ffn": (checks.check_count_ffn_params, lambda d, f: 2 * d * f + f + d, [
        (lambda d, f: 2 * d * f, "forgot the biases"),
        (lambda d, f: d * f + f, "only one matrix"),
        (lambda d, f: 2 * d * d + 2 * d, "assumed d_ff = d_model"),
        (lambda d, f: 8 * d * d + 5 * d, "assumed d_ff = 4 * d_model"),
        (lambda d, f: 2 * d * f + 2 * f, "w2's bias"),
    ]),
    "block": (checks.check_count_block_params,
              lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d, [
        (lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d, "forgot the layer norms"),
        (lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * d, "only 2*d_model"),
        (lambda d, f: 4 * d * d + 2 * d * f, "forgot all biases"),
    ]),
    "lora": (checks.check_lora_param_count, lambda i, o, r: r * (i + o), [
        (lambda i, o, r: r * i * o, "r * d_in * d_out"),
        (lambda i, o, r: r * i, "only A"),
        (lambda i, o, r: r * o, "only B"),
        (lambda i, o, r: i * o, "full d_out x d_in"),
        (lambda i, o, r: 2 * r * i, "assumed d_out = d_in"),
    ]),
    "prefix": (checks.check_prefix_param_count, lambda n, p, d: n * 2 * p * d, [
        (lambda n, p, d: n * p * d, "forgot the 2"),
        (lambda n, p, d: 2 * p * d, "forgot the layers"),
        (lambda n, p, d: p * d, "one set of prompt vectors"),
    ]),
}


@pytest.mark.parametrize("name", COUNT_CASES)
def test_counting_reference_passes(name):
    check, right, _ = COUNT_CASES[name]
    verdict = verdict_of(check, right)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize("name, index", [(n, i) for n, (_, _, wrong) in COUNT_CASES.items()
                                         for i in range(len(wrong))])
def test_counting_mistake_is_named(name, index):
    check, _, wrong = COUNT_CASES[name]
    fn, fragment = wrong[index]
    assert_mistake(verdict_of(check, fn), fragment)


def test_count_must_be_a_whole_number():
    assert_mistake(verdict_of(checks.check_lora_param_count, lambda i, o, r: r * (i + o) / 3), "whole number")
    assert_mistake(verdict_of(checks.check_lora_param_count, lambda i, o, r: None), "expected a whole number")
    assert verdict_of(checks.check_lora_param_count, lambda i, o, r: float(r * (i + o))).passed
    assert verdict_of(checks.check_lora_param_count, lambda i, o, r: torch.tensor(r * (i + o))).passed


# --- check_target_model ------------------------------------------------------------------------------

def reference_target(source, num_classes):
    return make_target_model(source, task="sequence", num_classes=num_classes)


def returns_source(source, num_classes):
    source.head = SequenceClassificationHead(source.config.d_model, num_classes)
    source.lm_head = None
    return source


def shallow_copy(source, num_classes):
    target = copy.copy(source)                      # a new object, but the same parameter tensors
    target.__dict__ = dict(source.__dict__)
    target._modules = dict(source._modules)
    target.lm_head = None
    target.head = SequenceClassificationHead(source.config.d_model, num_classes)
    return target


def keeps_lm_head(source, num_classes):
    return copy.deepcopy(source)


def head_beside_lm_head(source, num_classes):
    target = copy.deepcopy(source)
    target.head = SequenceClassificationHead(source.config.d_model, num_classes)
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


def test_target_model_reference_passes():
    verdict = verdict_of(checks.check_target_model, reference_target)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize("fn, fragment", [
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
    (lambda source, n: None, "expected a minift Transformer"),
])
def test_target_model_mistake_is_named(fn, fragment):
    assert_mistake(verdict_of(checks.check_target_model, fn), fragment)


def test_target_model_checker_keeps_the_global_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_target_model(stub, quiet=True)
    assert torch.equal(torch.rand(3), expected)


# --- check_training_step -----------------------------------------------------------------------------

def forward_loss(model, batch):
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits, batch["labels"], ignore_index=-100)


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


def returns_tensor(model, batch, optimizer):
    optimizer.zero_grad()
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def own_optimizer(model, batch, optimizer):
    return checks.reference_training_step(model, batch, torch.optim.SGD(model.parameters(), lr=0.5))


def returns_nothing(model, batch, optimizer):
    no_zero_grad(model, batch, optimizer)


def test_training_step_reference_passes():
    verdict = verdict_of(checks.check_training_step, checks.reference_training_step)
    assert verdict.passed and "note" not in verdict.message


def test_training_step_zero_grad_at_the_end_also_passes():
    def zero_grad_last(model, batch, optimizer):
        loss = forward_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    assert verdict_of(checks.check_training_step, zero_grad_last).passed


def test_returning_a_tensor_passes_with_a_note():
    verdict = verdict_of(checks.check_training_step, returns_tensor)
    assert verdict.passed and "loss.item()" in verdict.message


@pytest.mark.parametrize("fn, fragment", [
    (no_zero_grad, "forgot optimizer.zero_grad()"),
    (no_step, "forgot optimizer.step()"),
    (no_backward, "forgot loss.backward()"),
    (step_before_backward, "optimizer.step() before loss.backward()"),
    (summed_loss, "summed"),
    (mse_loss, "wrong loss"),
    (returns_nothing, "returned None"),
    (own_optimizer, "not through the optimizer you were given"),
])
def test_training_step_mistake_is_named(fn, fragment):
    assert_mistake(verdict_of(checks.check_training_step, fn), fragment)
