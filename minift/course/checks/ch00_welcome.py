"""Checkers for chapter 00 (welcome): an accuracy that ignores the positions labelled -100.

    from minift.course.checks import ch00_welcome as checks
    checks.check_accuracy(accuracy)
    ✅ passed: accuracy matches the reference on 5 cases (2 sequence tasks, 3 token tasks with -100 labels)

The checker runs your function on sequence tasks (logits N x C) and token tasks (logits B x T x C with
-100 at [CLS] and padding), whose right answers all differ, and names the usual mistakes: a
percentage instead of a fraction, positions labelled -100 counted, a count instead of a fraction,
integer division, per-sentence averages, the wrong argmax dimension, the error rate, and labels
changed in place. Any number type is accepted (float, 0-d tensor, numpy scalar).
"""

from __future__ import annotations

import reprlib

import torch

from .framework import Verdict, _StudentRaised, as_number, call_keeping_inputs, checker, mistake, name_of, passed, same_number


# --- chapter 00: accuracy that ignores -100 ----------------------------------------------------------

def reference_accuracy(logits, labels) -> float:
    """Fraction of labelled positions (label != -100) where the highest logit is the label."""
    counted = labels != -100
    return float(((logits.argmax(dim=-1) == labels) & counted).sum()) / max(1, int(counted.sum()))


def _with_answers(logits, labels, right, generator):
    """Make the prediction right exactly at the positions where ``right`` is True (labels kept)."""
    logits = logits.clone()
    C = logits.shape[-1]
    for index in torch.nonzero(labels != -100).tolist():
        index = tuple(index)
        label = int(labels[index])
        wrong = (label + 1 + int(torch.randint(0, C - 1, (1,), generator=generator))) % C
        target = label if right[index] else wrong
        logits[index] = torch.randn(C, generator=generator) * 0.5
        logits[index + (target,)] = 2.0 + 3 * float(torch.rand(1, generator=generator))
    return logits


def _accuracy_cases():
    """Five cases, each with its own answer (none is 1/C, none is 0 or 1), in several shapes. In the
    token cases every sentence has a different number of labelled positions and the unlabelled
    positions are often "right", so each usual mistake gives a visibly different number."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    # sequence tasks: (N, C)
    for N, C, n_right in ((12, 3, 7), (10, 4, 3)):
        labels = torch.randint(0, C, (N,), generator=generator)
        right = torch.zeros(N, dtype=torch.bool)
        right[torch.randperm(N, generator=generator)[:n_right]] = True
        cases.append((_with_answers(torch.randn(N, C, generator=generator), labels, right, generator), labels))
    # token tasks: (B, T, C), [CLS] at position 0 and padding at the end labelled -100
    for B, T, C, lengths in ((4, 7, 5, (7, 5, 3, 6)), (3, 6, 6, (6, 2, 4)), (2, 9, 3, (9, 4))):
        labels = torch.randint(0, C, (B, T), generator=generator)
        labels[:, 0] = -100
        for b, length in enumerate(lengths):
            labels[b, length:] = -100
        right = torch.rand(B, T, generator=generator) < 0.55
        right[0, 1], right[-1, 1] = True, False
        logits = _with_answers(torch.randn(B, T, C, generator=generator), labels, right, generator)
        # the ignored positions: predicted class 0, and their (meaningless) label slot says 0 too, so
        # code that counts them, or replaces -100 by 0, gets them "right"
        ignored = labels == -100
        logits[ignored] = torch.tensor([4.0] + [0.0] * (C - 1))
        cases.append((logits, labels))
    answers = [reference_accuracy(*case) for case in cases]
    assert len({round(a, 6) for a in answers}) == len(answers) and all(0 < a < 1 for a in answers)
    return cases


def _known_mistakes(logits, labels, expected):
    """(value, message, hint) of the usual wrong answers on this case."""
    counted = labels != -100
    predictions = logits.argmax(dim=-1)
    correct = int(((predictions == labels) & counted).sum())
    n_counted, n_all = int(counted.sum()), labels.numel()
    zero_filled = torch.where(counted, labels, torch.zeros_like(labels))
    mistakes = [
        (100 * expected, "returned a percentage", "return a fraction between 0 and 1 (no factor 100)"),
        (float((predictions == zero_filled).float().mean()),
         "counted the positions labelled -100 (as class 0)",
         "do not replace -100 by a class: leave those positions out of the numerator and the denominator"),
        (correct / n_all, "counted the positions labelled -100 too: divided by all positions, including the "
                          "ones labelled -100", "keep only positions where labels != -100, in the numerator and "
                          "in the denominator: divide by (labels != -100).sum()"),
        (float(correct), "returned the number of right predictions, not the fraction",
         "divide by the number of labelled positions"),
        (float(correct // n_counted), "used integer division (//), which rounds the fraction down to 0",
         "use / (true division): correct / counted"),
        (1 - expected, "returned the error rate (the fraction of WRONG predictions)",
         "count the positions where the prediction equals the label"),
        (float(((logits.max(dim=-1).values.long() == labels) & counted).sum()) / n_counted,
         "compared the highest SCORE with the label, not the position of the highest score",
         "the prediction is the index of the largest logit: logits.argmax(dim=-1)"),
    ]
    if labels.dim() == 2:       # token tasks: per-sentence averages weigh short sentences too much
        per_row = [float(((predictions[b] == labels[b]) & counted[b]).sum()) / int(counted[b].sum())
                   for b in range(labels.shape[0]) if counted[b].any()]
        mistakes.append((sum(per_row) / len(per_row), "averaged the accuracy of each sentence (a mean of "
                         "per-sentence means), so a short sentence weighs as much as a long one",
                         "count every labelled position once: sum of right positions / number of labelled positions"))
        if logits.shape[1] == logits.shape[2]:
            wrong_dim = logits.argmax(dim=1)                 # (B, C): the right size only when T == C
            mistakes.append((float(((wrong_dim == labels) & counted).sum()) / n_counted,
                             "took the argmax over dimension 1 (the positions), not over the classes",
                             "the classes are on the LAST dimension: logits.argmax(dim=-1)"))
    return mistakes


@checker
def check_accuracy(fn) -> Verdict:
    """fn(logits, labels) -> a number in [0, 1]; logits (..., C), labels (...), -100 = not counted."""
    name = name_of(fn)
    cases = _accuracy_cases()
    results = []          # (number, expected, logits, labels) of every case
    for logits, labels in cases:
        try:
            answer = call_keeping_inputs(fn, logits.clone(), labels.clone(), names=["logits", "labels"])
        except _StudentRaised as raised:
            if results and logits.dim() == 3 and all(r[2].dim() == 2 for r in results):
                return mistake(f"{name} works on sequence logits (N, C) but raised {type(raised.error).__name__} "
                               f"on token logits of shape {tuple(logits.shape)} ({raised.error}): the classes are "
                               "on the LAST dimension whatever the shape",
                               "use logits.argmax(dim=-1), and compare with labels of the same shape")
            raise
        number = as_number(answer)
        if number is None:
            if answer is None:
                return mistake(f"{name} returned None", "end your function with `return correct / counted`")
            return mistake(f"{name} returned {reprlib.repr(answer)}; expected a number between 0 and 1",
                           "return the fraction, e.g. `return correct / counted`")
        results.append((number, reference_accuracy(logits, labels), logits, labels))
    wrong = [r for r in results if not same_number(r[0], r[1])]
    if not wrong:
        return passed(f"{name} matches the reference on {len(cases)} cases (2 sequence tasks, "
                      f"{len(cases) - 2} token tasks with -100 labels), and leaves its inputs unchanged")
    # name the mistake that explains the answer on every wrong case (else the first that explains one)
    explained = {}
    for number, expected, logits, labels in wrong:
        for value, message, hint in _known_mistakes(logits, labels, expected):
            if value is not None and same_number(number, value):
                explained.setdefault((message, hint), []).append(tuple(logits.shape))
    number, expected, logits, _ = wrong[0]
    if explained:
        (message, hint), _shapes = max(explained.items(), key=lambda item: len(item[1]))
        return mistake(f"{name} {message} (got {number:.4g} on logits of shape {tuple(logits.shape)}, "
                       f"expected {expected:.4f})", hint)
    return mistake(f"{name} returned {number:.4f} on logits of shape {tuple(logits.shape)}, expected "
                   f"{expected:.4f}", "the prediction is logits.argmax(dim=-1); compare it with the "
                   "labels where labels != -100 and divide by the number of such positions")


__all__ = ["check_accuracy", "reference_accuracy"]
