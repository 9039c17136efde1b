"""minift.course.checks: the framework (verdicts, blame, number types, inputs changed in place, the
random state) for every checker of chapters 00-04, and chapter 02's counting checkers: right formulas of
every style pass, each typical wrong formula is named.

WRONG and RIGHT are module-level so the same implementations can be run against other checker
versions (they were run against the checkers of HEAD~6 to show which wrong answers those accepted)."""

import random

import numpy as np
import pytest
import torch

from minift.course import checks
from minift.config import ModelConfig
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
                checks.check_prefix_param_count, checks.check_target_model, checks.check_training_step,
                checks.check_accuracy, checks.check_rank_r_approximation, checks.check_subspace_similarity]


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


# --- counting checkers (chapter 02) --------------------------------------------------------------------

def attention_loop(d):
    total = 0
    for _projection in ("q", "k", "v", "o"):
        total += d * d + d
    return total


def ffn_loop(d, f):
    return sum(n_in * n_out + n_out for n_in, n_out in ((d, f), (f, d)))


def block_loop(d, f):
    return attention_loop(d) + ffn_loop(d, f) + sum(2 * d for _norm in ("ln1", "ln2"))


def lora_loop(i, o, r):
    return sum(rows * cols for rows, cols in ((r, i), (o, r)))


def prefix_loop(n, p, d):
    return sum(p * d for _layer in range(n) for _kv in ("key", "value"))


RIGHT = {
    "check_count_attention_params": [lambda d: 4 * d * d + 4 * d, attention_loop,
                                     lambda d: float(4 * (d * d + d)), lambda d: np.int64(4 * d * (d + 1)),
                                     lambda d: torch.tensor(4 * d * (d + 1))],
    "check_count_ffn_params": [lambda d, f: 2 * d * f + f + d, ffn_loop],
    "check_count_block_params": [lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d, block_loop,
                                 lambda d, f: torch.tensor(float(block_loop(d, f)))],   # a float32 tensor
    "check_lora_param_count": [lambda i, o, r: r * (i + o), lora_loop, lambda i, o, r: np.float64(r * (i + o))],
    "check_prefix_param_count": [lambda n, p, d: n * 2 * p * d, prefix_loop],
}

WRONG = {
    "check_count_attention_params": [
        (lambda d: 4 * d * d, "forgot the biases"),
        (lambda d: 3 * d * d + 3 * d, "only 3 matrices"),
        (lambda d: 16 * d * d + 16 * d, "used d_ff"),
        (lambda d: 4 * d * d + d, "one bias"),
        (lambda d: 3 * d * d, "forgot the biases"),
        (lambda d: 4 * d * d + 3 * d, "o without its bias"),
        (lambda d: 5 * d * d, "returned"),                         # unknown mistake: generic message
        (lambda d: print(4 * d * d + 4 * d), "returned None"),
    ],
    "check_count_ffn_params": [
        (lambda d, f: 2 * d * f, "forgot the biases"),
        (lambda d, f: d * f + f, "only one matrix"),
        (lambda d, f: 2 * d * d + 2 * d, "assumed d_ff = d_model"),
        (lambda d, f: 8 * d * d + 5 * d, "assumed d_ff = 4 * d_model"),
        (lambda d, f: 2 * d * f + 2 * f, "w2's bias"),
        (lambda d, f: 2 * d * f + 2 * d, "w1's bias"),
    ],
    "check_count_block_params": [
        (lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d, "forgot the layer norms"),
        (lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * d, "only 2*d_model"),
        (lambda d, f: 4 * d * d + 2 * d * f, "forgot all biases"),
        (lambda d, f: 4 * d * d + 2 * d * f + 4 * d, "forgot the biases of the linear layers"),
        (lambda d, f: 3 * d * d + 3 * d + 2 * d * f + f + d + 4 * d, "only 3 attention matrices"),
        (lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 6 * d, "three layer norms"),
        (lambda d, f: 4 * d * d + 4 * d + 8 * d * d + 5 * d + 4 * d, "assumed d_ff = 4 * d_model"),
    ],
    "check_lora_param_count": [
        (lambda i, o, r: r * i * o, "r * d_in * d_out"),
        (lambda i, o, r: r * i, "only A"),
        (lambda i, o, r: r * o, "only B"),
        (lambda i, o, r: i * o, "full d_out x d_in"),
        (lambda i, o, r: 2 * r * i, "assumed d_out = d_in"),
        (lambda i, o, r: i * o + r * (i + o), "frozen base weight as well"),
        (lambda i, o, r: r + i + o, "added r, d_in and d_out"),
        (lambda i, o, r: r * (i + o) / 7, "not a whole number"),
    ],
    "check_prefix_param_count": [
        (lambda n, p, d: n * p * d, "forgot the 2"),
        (lambda n, p, d: 2 * p * d, "forgot the layers"),
        (lambda n, p, d: p * d, "one set of prompt vectors"),
        (lambda n, p, d: n * 3 * p * d, "queries too"),
        (lambda n, p, d: n * 2 * p * d * d, "d_model twice"),
        (lambda n, p, d: (n + 1) * 2 * p * d, "one layer too many"),
        (lambda n, p, d: n * 2 * d, "forgot the prefix length"),
    ],
}


@pytest.mark.parametrize("check, index", [(c, i) for c, fns in RIGHT.items() for i in range(len(fns))])
def test_counting_right_answers_of_any_style_and_type_pass(check, index):
    verdict = verdict_of(getattr(checks, check), RIGHT[check][index])
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize("check, index", [(c, i) for c, pairs in WRONG.items() for i in range(len(pairs))])
def test_counting_mistake_is_named(check, index):
    fn, fragment = WRONG[check][index]
    verdict = verdict_of(getattr(checks, check), fn)
    assert_mistake(verdict, fragment)
    assert verdict.hint


def test_reference_counts():
    assert checks.attention_params(768) == 4 * 768 * 768 + 4 * 768
    assert checks.lora_params(768, 768, 4) == 6144 and checks.prefix_params(12, 10, 768) == 184320


# --- blame the right function --------------------------------------------------------------------------

def count_attention_params(d_model):          # a blank helper, as in the exercise notebook
    raise NotImplementedError("write your code here")


def count_ffn_params(d_model, d_ff):
    return 2 * d_model * d_ff + d_ff + d_model


def count_block_params(d_model, d_ff):        # right, but calls the blank helper
    return count_attention_params(d_model) + count_ffn_params(d_model, d_ff) + 4 * d_model


def test_a_blank_helper_is_named_not_the_function_that_calls_it():
    verdict = verdict_of(checks.check_count_block_params, count_block_params)
    assert verdict.status == "not implemented"
    assert verdict.message.startswith("count_attention_params still raises NotImplementedError")
    assert "count_block_params calls it" in verdict.message


def test_a_blank_method_of_the_checked_class_is_named():
    from minift.course.checks.ch04_lora import ReferenceLoRALinear

    class MyLoRALinear(ReferenceLoRALinear):
        def merge(self):
            raise NotImplementedError

    verdict = checks.check_lora_linear(MyLoRALinear, quiet=True)
    assert verdict.status == "not implemented" and "MyLoRALinear.merge still raises" in verdict.message


def test_a_library_not_implemented_error_is_an_error_not_a_blank():
    """NotImplementedError raised inside a library (not by a blank exercise) is reported as an error."""
    verdict = verdict_of(checks.check_count_attention_params, _library_blank_caller)
    assert verdict.status == "mistake" and "NotImplementedError" in verdict.message


def _library_blank():
    import numbers
    numbers.Complex.real.fget(1j)     # an abstract property of the standard library: NotImplementedError


def _library_blank_caller(d_model):
    return _library_blank()


# --- the random state is the student's ------------------------------------------------------------------

def _random_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_checkers_never_reset_the_global_random_state():
    from minift.course.checks.ch04_lora import ReferenceLoRALinear
    from tests.course.test_checks_lowrank import good_approx, good_phi
    from tests.course.test_welcome_exercise import vectorised

    draws = lambda fn: (lambda *a, **k: (torch.rand(1), np.random.rand(), random.random(), fn(*a, **k))[-1])  # noqa: E731
    cases = [(checks.check_accuracy, vectorised), (checks.check_count_attention_params, lambda d: 4 * d * d + 4 * d),
             (checks.check_target_model, lambda s, n: __import__("minift").make_target_model(s, "sequence", n)),
             (checks.check_training_step, checks.reference_training_step),
             (checks.check_rank_r_approximation, good_approx), (checks.check_subspace_similarity, good_phi),
             (checks.check_lora_linear, ReferenceLoRALinear)]
    for check, fn in cases:
        for student in (fn, draws(fn)):
            torch.manual_seed(1234)
            np.random.seed(1234)
            random.seed(1234)
            before = _random_states()
            check(student, quiet=True)
            after = _random_states()
            assert torch.equal(before[0], after[0]), check.__name__
            assert np.array_equal(before[1], after[1]) and before[2] == after[2], check.__name__


def test_as_number_accepts_every_number_type_and_rejects_the_rest():
    for value in (0.5, np.float32(0.5), np.float64(0.5), torch.tensor(0.5), torch.tensor([0.5]), np.array(0.5)):
        assert checks.as_number(value) == 0.5
    for value in (None, True, "0.5", torch.tensor([0.5, 0.5]), torch.tensor(True), [0.5]):
        assert checks.as_number(value) is None


def test_changes_to_the_inputs_are_seen_against_the_objects_given():
    def scales_in_place(x):
        x.mul_(2)
        return x.sum()

    @checks.checker
    def check_sum(fn):
        x = torch.ones(3)
        result = checks.call_keeping_inputs(fn, x.clone(), names=["x"])
        return checks.passed("ok") if float(result) == 3 else checks.mistake("wrong sum")

    assert check_sum(lambda x: x.sum(), quiet=True).passed
    verdict = check_sum(scales_in_place, quiet=True)
    assert_mistake(verdict, "changed its input x in place")
