"""Chapter 00's exercise checker (accuracy ignoring -100): right answers of every style and number type
pass, and each wrong implementation a student really writes gets a failing verdict naming its mistake.

WRONG and RIGHT are module-level so the same implementations can be run against other checker
versions (they were run against the checkers of HEAD~6 to show which wrong answers those accepted)."""

import numpy as np
import pytest
import torch

from minift.course.checks import ch00_welcome as checks

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)


# --- right answers, several styles -----------------------------------------------------------------

def vectorised(logits, labels):
    scored = labels != -100
    return ((logits.argmax(-1) == labels) & scored).sum().item() / scored.sum().item()


def loop(logits, labels):
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    right = counted = 0
    for scores, label in zip(flat_logits, flat_labels):
        if int(label) == -100:
            continue
        counted += 1
        right += int(int(scores.argmax()) == int(label))
    return right / counted


def boolean_index(logits, labels):
    keep = labels != -100
    return (logits.argmax(dim=-1)[keep] == labels[keep]).float().mean()      # a 0-d tensor


def numpy_scalar(logits, labels):
    predictions, gold = logits.argmax(-1).numpy(), labels.numpy()
    keep = gold != -100
    return np.mean(predictions[keep] == gold[keep])                           # numpy.float64


def float32_numpy(logits, labels):
    return np.float32(vectorised(logits, labels))


RIGHT = {"check_accuracy": [vectorised, loop, boolean_index, numpy_scalar, float32_numpy]}


# --- wrong answers a student would write --------------------------------------------------------------

def as_percentage(logits, labels):
    return 100 * vectorised(logits, labels)


def counts_ignored_positions(logits, labels):
    return (logits.argmax(-1) == labels).float().mean().item()


def divides_by_all_positions(logits, labels):
    scored = labels != -100
    return ((logits.argmax(-1) == labels) & scored).sum().item() / labels.numel()


def returns_the_count(logits, labels):
    scored = labels != -100
    return ((logits.argmax(-1) == labels) & scored).sum().item()


def integer_division(logits, labels):
    scored = labels != -100
    return ((logits.argmax(-1) == labels) & scored).sum() // scored.sum()


def error_rate(logits, labels):
    return 1 - vectorised(logits, labels)


def per_sentence_mean(logits, labels):
    if labels.dim() == 1:
        return vectorised(logits, labels)
    rows = [vectorised(logits[b], labels[b]) for b in range(labels.shape[0])]
    return sum(rows) / len(rows)


def top_score_not_index(logits, labels):
    scored = labels != -100
    return ((logits.max(-1).values.long() == labels) & scored).sum().item() / scored.sum().item()


def argmax_over_dim_1(logits, labels):
    scored = labels != -100
    return ((logits.argmax(dim=1) == labels) & scored).sum().item() / scored.sum().item()


def replaces_ignored_labels_in_place(logits, labels):
    labels[labels == -100] = 0                  # "fixes" the labels of the caller's batch
    return (logits.argmax(-1) == labels).float().mean().item()


def replaces_ignored_labels_on_a_copy(logits, labels):
    labels = torch.where(labels == -100, torch.zeros_like(labels), labels)
    return (logits.argmax(-1) == labels).float().mean().item()


def forgets_return(logits, labels):
    scored = labels != -100
    accuracy = ((logits.argmax(-1) == labels) & scored).sum().item() / scored.sum().item()   # noqa: F841


def returns_a_string(logits, labels):
    return f"{vectorised(logits, labels):.2f}"


WRONG = {"check_accuracy": [
    (as_percentage, "a percentage"),
    (counts_ignored_positions, "counted the positions labelled -100"),
    (divides_by_all_positions, "divided by all positions"),
    (returns_the_count, "number of right predictions"),
    (integer_division, "integer division"),
    (error_rate, "error rate"),
    (per_sentence_mean, "per-sentence"),
    (top_score_not_index, "highest SCORE"),
    (argmax_over_dim_1, "LAST dimension"),
    (replaces_ignored_labels_in_place, "changed its input labels in place"),
    (replaces_ignored_labels_on_a_copy, "as class 0"),
    (forgets_return, "returned None"),
    (returns_a_string, "expected a number between 0 and 1"),
]}


def verdict(fn):
    return checks.check_accuracy(fn, quiet=True)


@pytest.mark.parametrize("fn", RIGHT["check_accuracy"], ids=lambda f: f.__name__)
def test_right_answers_of_any_style_and_number_type_pass(fn):
    result = verdict(fn)
    assert result.passed, str(result)


@pytest.mark.parametrize("fn, fragment", WRONG["check_accuracy"], ids=lambda x: getattr(x, "__name__", ""))
def test_wrong_answer_is_named(fn, fragment):
    result = verdict(fn)
    assert result.status == "mistake", f"{fn.__name__}: {result}"
    assert fragment in result.message, f"{fn.__name__}: {result}"
    assert result.hint


def test_cases_have_different_answers_and_shapes():
    cases = checks._accuracy_cases()
    answers = [checks.reference_accuracy(logits, labels) for logits, labels in cases]
    assert len(set(round(a, 6) for a in answers)) == len(answers) >= 4
    assert all(0 < a < 1 and abs(a - 1 / logits.shape[-1]) > 0.01 for a, (logits, _) in zip(answers, cases))
    assert {logits.dim() for logits, _ in cases} == {2, 3}
    assert len({tuple(logits.shape) for logits, _ in cases}) == len(cases)


def test_reference():
    assert checks.reference_accuracy(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([1, -100])) == 1.0


def test_stub_and_crash_never_escape():
    def stub(logits, labels):
        raise NotImplementedError("write your code here")

    def raises(logits, labels):
        return logits[99]

    assert verdict(stub).status == "not implemented"
    crashed = verdict(raises)
    assert crashed.status == "mistake" and "IndexError" in crashed.message
