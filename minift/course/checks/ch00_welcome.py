"""Checkers for chapter 00 (welcome): an accuracy that ignores the positions labelled -100.

    from minift.course.checks import ch00_welcome as checks
    checks.check_accuracy(accuracy)
    ✅ passed: accuracy matches the reference on a sequence task and on a token task with -100 labels

The checker runs your function on a sequence task (logits N x C) and a token task (logits N x T x C
with -100 at [CLS] and padding), and names the usual mistakes: a percentage instead of a fraction,
positions labelled -100 counted.
"""

from __future__ import annotations

import math
import numbers
import reprlib

import torch

from .framework import Verdict, call, checker, mistake, name_of, passed


# --- chapter 00: accuracy that ignores -100 ----------------------------------------------------------

def reference_accuracy(logits, labels) -> float:
    """Fraction of labelled positions (label != -100) where the highest logit is the label."""
    counted = labels != -100
    return float(((logits.argmax(dim=-1) == labels) & counted).sum()) / max(1, int(counted.sum()))


def _accuracy_cases():
    generator = torch.Generator().manual_seed(0)
    sequence_logits = torch.randn(12, 3, generator=generator)
    sequence_labels = torch.randint(0, 3, (12,), generator=generator)
    token_logits = torch.randn(4, 7, 5, generator=generator)
    token_labels = torch.randint(0, 5, (4, 7), generator=generator)
    token_labels[:, 0] = -100                     # [CLS]
    token_labels[1:, 5:] = -100                   # padding
    token_labels[0, 1] = token_logits[0, 1].argmax()   # at least one right answer
    return [(sequence_logits, sequence_labels), (token_logits, token_labels)]


@checker
def check_accuracy(fn) -> Verdict:
    """fn(logits, labels) -> float in [0, 1]; logits (..., C), labels (...), -100 = not counted."""
    name = name_of(fn)
    for logits, labels in _accuracy_cases():
        answer = call(fn, logits.clone(), labels.clone())
        if isinstance(answer, torch.Tensor) and answer.numel() == 1:
            answer = answer.item()
        if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
            return mistake(f"{name} returned {reprlib.repr(answer)}; expected a number between 0 and 1",
                           "return the fraction, e.g. `return correct / counted`")
        expected = reference_accuracy(logits, labels)
        if math.isclose(answer, expected, abs_tol=1e-6):
            continue
        counted_all = float((logits.argmax(-1) == labels).float().mean())
        if math.isclose(answer, 100 * expected, abs_tol=1e-4):
            return mistake(f"{name} returned {answer:.2f}: a percentage", "return a fraction between 0 and 1")
        if math.isclose(answer, counted_all, abs_tol=1e-6):
            return mistake(f"{name} counted the positions labelled -100 too (got {answer:.3f}, expected "
                           f"{expected:.3f})", "keep only positions where labels != -100, in the numerator "
                           "and in the denominator")
        return mistake(f"{name} returned {answer:.4f} on logits of shape {tuple(logits.shape)}, expected "
                       f"{expected:.4f}", "the prediction is logits.argmax(dim=-1); compare it with the "
                       "labels where labels != -100 and divide by the number of such positions")
    return passed(f"{name} matches the reference on a sequence task and on a token task with -100 labels")


__all__ = ["check_accuracy", "reference_accuracy"]
