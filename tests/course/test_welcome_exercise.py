"""Chapter 00's exercise checker: the reference passes, each typical mistake is named."""

import pytest
import torch

from minift.course.checks import ch00_welcome as checks

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)


def right(logits, labels):
    scored = labels != -100
    return ((logits.argmax(-1) == labels) & scored).sum().item() / scored.sum().item()


def as_percentage(logits, labels):
    return 100 * right(logits, labels)


def counts_ignored_positions(logits, labels):
    return (logits.argmax(-1) == labels).float().mean().item()


def uses_the_top_score_not_its_index(logits, labels):
    scored = labels != -100
    return ((logits.max(-1).values.long() == labels) & scored).sum().item() / scored.sum().item()


def returns_a_string(logits, labels):
    return f"{right(logits, labels):.2f}"


def raises(logits, labels):
    return logits[99]


def stub(logits, labels):
    raise NotImplementedError("write your code here")


def verdict(fn):
    return checks.check_accuracy(fn, quiet=True)


def test_reference_and_tensor_result_pass():
    assert verdict(right).status == "passed"
    assert verdict(lambda lo, la: torch.tensor(right(lo, la))).status == "passed"
    assert checks.reference_accuracy(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([1, -100])) == 1.0


def test_mistakes_are_named():
    assert "a percentage" in verdict(as_percentage).message
    assert "counted the positions labelled -100" in verdict(counts_ignored_positions).message
    assert "argmax" in str(verdict(uses_the_top_score_not_its_index))
    assert "expected a number between 0 and 1" in verdict(returns_a_string).message


def test_stub_and_crash_never_escape():
    assert verdict(stub).status == "not implemented"
    crashed = verdict(raises)
    assert crashed.status == "mistake" and "IndexError" in crashed.message
