"""Checkers for chapter 08 (the shoot-out): read a Pareto front and a paired 95% interval.

    from minift.course.checks import ch08_shootout as checks
    checks.check_pareto_front(pareto_front)
    checks.check_paired_interval(paired_interval)

The functions under test follow the interfaces the exercise describes::

    def pareto_front(params, scores) -> list[int]:
        # params[i]: trainable parameters of method i (fewer is better); scores[i]: its score (higher
        # is better). Return the indices of the methods that no other method dominates, sorted by
        # parameter count (ties by index). j dominates i when params[j] <= params[i] and
        # scores[j] >= scores[i] and at least one of the two is strict (identical points both stay).

    def paired_interval(a, b) -> tuple[float, float, float]:
        # a[i], b[i]: the scores of methods A and B with seed i (the same seed: same head, same batches).
        # d = a - b per seed; return (mean, low, high): mean(d) -/+ t * s / sqrt(n), s the sample standard
        # deviation of d (n - 1 in the denominator), t = T975[n - 1] (Student's t, 97.5% quantile).

The Pareto checker runs cases whose answers differ (unsorted input, equal parameter counts, identical
points, a best score that is not the largest model, one point) and names: the direction reversed
(more parameters taken as better), only the best score returned, points kept in input order without
sorting, a point dominated by an equal-size one kept (both comparisons strict), identical points
dropped, values returned instead of indices, the front returned unsorted, inputs sorted in place.

The interval checker runs three cases (n = 5, 8, 3; lists, tuples and NumPy arrays) and names: the sign
flipped (b - a), the unpaired interval (the two methods' spreads added as if the seeds were unrelated),
z = 1.96 instead of Student's t, the population standard deviation (n in the denominator), the standard
deviation instead of the standard error (no sqrt(n)), t with n degrees of freedom, the pairs broken
(a and b sorted separately), the answer in the order (low, mean, high), inputs modified in place. Any
number type is accepted (float, 0-d tensor, NumPy scalar).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .framework import Rejected, Verdict, as_number, call, checker, mistake, name_of, passed

# Student's t, 97.5% quantile, by degrees of freedom: the 95% two-sided interval of a mean.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
        19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
        28: 2.048, 29: 2.045, 30: 2.042}
REL_TOL = 2e-3          # the table has 3 decimals: an exact t (e.g. from scipy) differs by < 1e-3


# ============================================================================ exercise 1: Pareto front
def reference_pareto_front(params, scores) -> list:
    """The reference solution: an O(n^2) dominance test, then sorted by (params, index)."""
    p, s = [float(x) for x in params], [float(x) for x in scores]
    if len(p) != len(s):
        raise ValueError(f"params has {len(p)} entries but scores has {len(s)}")
    front = []
    for i in range(len(p)):
        dominated = any(p[j] <= p[i] and s[j] >= s[i] and (p[j] < p[i] or s[j] > s[i]) for j in range(len(p)))
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (p[i], i))


def _pareto_variants(params, scores) -> dict:
    """What the usual wrong answers return on this case (name -> (list, message, hint))."""
    p, s = [float(x) for x in params], [float(x) for x in scores]
    n, order = len(p), sorted(range(len(p)), key=lambda i: (p[i], i))
    reversed_front = [i for i in range(n) if not any(p[j] >= p[i] and s[j] >= s[i] and (p[j] > p[i] or s[j] > s[i])
                                                      for j in range(n))]
    strict = [i for i in order if not any(p[j] < p[i] and s[j] > s[i] for j in range(n))]
    running, best = [], -math.inf
    for i in range(n):                                 # input order, no sort
        if s[i] > best:
            running.append(i)
            best = s[i]
    reference = reference_pareto_front(p, s)
    no_duplicates, seen = [], set()
    for i in reference:
        if (p[i], s[i]) not in seen:
            no_duplicates.append(i)
            seen.add((p[i], s[i]))
    top = max(s)
    return {
        "reversed": (sorted(reversed_front, key=lambda i: (p[i], i)),
                     "you kept the methods that no LARGER method beats: the direction of the parameter axis is "
                     "reversed", "fewer trainable parameters is better: j dominates i when params[j] <= params[i] "
                     "and scores[j] >= scores[i]"),
        "best only": ([i for i in order if s[i] == top],
                      "you returned only the best-scoring method(s); the front also holds every cheaper method "
                      "that no even cheaper one beats", "test every point against every other for dominance"),
        "input order": (running,
                        "you kept each method that beats every method BEFORE it in the input order: the points "
                        "must be sorted by parameter count first (the input is not sorted)",
                        "sort by params (then walk keeping each new best score), or test all pairs"),
        "strict": (strict, "you kept a method that another with the SAME parameter count (or the same score) "
                           "beats: both of your comparisons are strict",
                   "j dominates i when params[j] <= params[i] and scores[j] >= scores[i] and one is strict"),
        "duplicates": (no_duplicates, "you dropped one of two identical points: neither dominates the other "
                                      "(neither is strictly better), so both are on the front",
                       "do not deduplicate; compare with <= / >= and require one strict inequality"),
    }


def _pareto_cases():
    # (label, params, scores); several shapes, unsorted input, ties, duplicates
    return [
        ("six methods, unsorted, with ties", [5000, 120, 800, 120, 20000, 800],
         [0.80, 0.55, 0.70, 0.50, 0.82, 0.70]),
        ("best score not on the largest model", (100, 1000, 50000), (0.60, 0.90, 0.85)),
        ("NumPy arrays, equal scores", np.array([300.0, 40.0, 40.0, 9000.0, 700.0]),
         np.array([0.66, 0.61, 0.66, 0.72, 0.66])),
        ("one method", [1234], [0.5]),
    ]


def _as_indices(result, n: int, name: str):
    if isinstance(result, np.ndarray):
        result = result.tolist()
    if hasattr(result, "tolist") and hasattr(result, "dim"):
        result = result.tolist()
    if not isinstance(result, (list, tuple)):
        raise Rejected(mistake(f"{name} returned {type(result).__name__}; expected a list of indices",
                             "return e.g. [1, 2, 0]: the positions of the front's methods in the input"))
    out = []
    for value in result:
        number = as_number(value)
        if isinstance(value, (tuple, list)) or number is None or number != int(number) or not 0 <= number < n:
            raise Rejected(mistake(f"{name} returned {result!r}: expected indices 0..{n - 1} of the methods, "
                                 "not their parameter counts, scores or (params, score) pairs",
                                 "collect i (the position in the input), not params[i] or scores[i]"))
        out.append(int(number))
    return out


@checker
def check_pareto_front(fn) -> Verdict:
    """fn(params, scores) -> the indices of the Pareto front, sorted by parameters."""
    name = name_of(fn)
    cases, answers = _pareto_cases(), []
    for label, params, scores in cases:
        p_arg, s_arg = copy.deepcopy(params), copy.deepcopy(scores)
        got = call(fn, p_arg, s_arg, what=name)
        if not (np.array_equal(np.asarray(p_arg), np.asarray(params))
                and np.array_equal(np.asarray(s_arg), np.asarray(scores))):
            return mistake(f"{name} changed its inputs (case {label}): params or scores hold other values or "
                           "another order after the call (sorted in place?)",
                           "sort a list of indices instead: order = sorted(range(n), key=...)")
        answers.append(_as_indices(got, len(params), name))
    wrong = [(case, got) for case, got in zip(cases, answers) if got != reference_pareto_front(*case[1:])]
    if not wrong:
        return passed(f"{name} finds the Pareto front on {len(cases)} cases (unsorted input, ties, "
                      "identical points, one method)")
    (label, params, scores), got = wrong[0]
    want = reference_pareto_front(params, scores)
    if sorted(got) == sorted(want):
        return mistake(f"case {label}: the right methods ({sorted(got)}) but in the order {got}; the front "
                       f"must be sorted by parameter count, ties by index: {want}",
                       "sort the indices with key=lambda i: (params[i], i)")
    # name the mistake that explains the answers on EVERY case (two mistakes may agree on one case)
    variants = [_pareto_variants(p, s) for _, p, s in cases]
    for key, (_, message, hint) in variants[0].items():
        if all(sorted(a) == sorted(v[key][0]) for a, v in zip(answers, variants)):
            return mistake(f"{message} (case {label}: got {got}, expected {want})", hint)
    for variant, message, hint in _pareto_variants(params, scores).values():
        if sorted(got) == sorted(variant):
            return mistake(f"{message} (case {label}: got {got}, expected {want})", hint)
    return mistake(f"case {label}: got {got}, expected {want}",
                   "i is on the front when no j has params[j] <= params[i] and scores[j] >= scores[i] with "
                   "one of them strict")


# ======================================================================= exercise 2: paired interval
def _floats(values) -> list:
    return [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


def _interval(d, t: float, ddof: int = 1, sqrt_n: bool = True) -> tuple:
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - ddof))
    half = t * sd / (math.sqrt(n) if sqrt_n else 1.0)
    return mean, mean - half, mean + half


def reference_paired_interval(a, b) -> tuple:
    """The reference: mean of d = a - b and its 95% t interval (n - 1 degrees of freedom)."""
    a, b = _floats(a), _floats(b)
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} seeds but b has {len(b)}: paired differences need the same seeds")
    if len(a) < 2:
        raise ValueError("an interval needs at least 2 seeds")
    return _interval([x - y for x, y in zip(a, b)], T975[len(a) - 1])


def _interval_variants(a, b) -> list:
    a, b = _floats(a), _floats(b)
    n = len(a)
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / n

    def spread(v):
        m = sum(v) / n
        return sum((x - m) ** 2 for x in v) / (n - 1)

    variants = []
    for df in (n - 1, 2 * n - 2):
        half = T975[df] * math.sqrt(spread(a) / n + spread(b) / n)
        variants.append(((mean, mean - half, mean + half),
                         "your interval treats A and B as unrelated samples (their spreads added): with the same "
                         "seed both methods share the head and the batches, so take d = a - b per seed and the "
                         "interval of mean(d)", "d = [x - y for x, y in zip(a, b)], then the t interval of d"))
    variants += [
        (_interval([y - x for x, y in zip(a, b)], T975[n - 1]),
         "the sign is flipped: you computed b - a", "d = a - b: positive means A is better"),
        (_interval(d, 1.96), "you used z = 1.96: with a handful of seeds the 95% quantile is Student's t with "
                             "n - 1 degrees of freedom (2.776 for 5 seeds), not the normal one",
         "t = T975[n - 1]"),
        (_interval(d, T975[n - 1], ddof=0), "you used the population standard deviation (divided by n): the "
                                            "sample standard deviation divides by n - 1",
         "np.std(d, ddof=1) or statistics.stdev(d)"),
        (_interval(d, T975[n - 1], sqrt_n=False), "your half-width is t * s: the interval of a MEAN uses the "
                                                  "standard error s / sqrt(n)", "half = t * s / sqrt(n)"),
        (_interval(d, T975[n]), "you used t with n degrees of freedom; a mean of n differences has n - 1",
         "t = T975[n - 1]"),
        (_interval([x - y for x, y in zip(sorted(a), sorted(b))], T975[n - 1]),
         "you sorted a and b separately: that breaks the pairs (seed i of A must meet seed i of B)",
         "keep the seed order of both lists"),
    ]
    return variants


def _interval_cases():
    return [
        ("5 seeds (lists)", [0.71, 0.68, 0.74, 0.70, 0.69], [0.66, 0.67, 0.70, 0.64, 0.69]),
        ("8 seeds (tuples)", (0.52, 0.61, 0.58, 0.49, 0.66, 0.57, 0.60, 0.55),
         (0.55, 0.57, 0.60, 0.47, 0.59, 0.58, 0.52, 0.56)),
        ("3 seeds (NumPy)", np.array([0.812, 0.790, 0.845]), np.array([0.801, 0.806, 0.820])),
    ]


def _same(x: tuple, y: tuple) -> bool:
    return all(math.isclose(u, v, rel_tol=REL_TOL, abs_tol=1e-6) for u, v in zip(x, y))


def _as_triple(result, name: str) -> tuple:
    if isinstance(result, dict) or not hasattr(result, "__len__") or isinstance(result, str):
        raise Rejected(mistake(f"{name} returned {type(result).__name__}; expected (mean, low, high)",
                             "return a tuple of three numbers"))
    if len(result) != 3:
        raise Rejected(mistake(f"{name} returned {len(result)} values; expected 3: (mean, low, high)",
                             "return mean, mean - half, mean + half"))
    numbers = [as_number(v) for v in result]
    if any(v is None for v in numbers):
        raise Rejected(mistake(f"{name} returned {result!r}: each of the three must be one number",
                             "float(...) each value"))
    return tuple(numbers)


@checker
def check_paired_interval(fn) -> Verdict:
    """fn(a, b) -> (mean, low, high) of the per-seed differences a - b, 95% t interval."""
    name = name_of(fn)
    for label, a, b in _interval_cases():
        a_arg, b_arg = copy.deepcopy(a), copy.deepcopy(b)
        got = _as_triple(call(fn, a_arg, b_arg, what=name), name)
        if not (np.array_equal(np.asarray(a_arg), np.asarray(a)) and np.array_equal(np.asarray(b_arg), np.asarray(b))):
            return mistake(f"{name} changed its inputs (case {label}): a or b hold other values or another "
                           "order after the call", "work on new lists (d = [x - y ...]); never sort a or b in place")
        want = reference_paired_interval(a, b)
        if _same(got, want):
            continue
        text = f"(case {label}: got {_fmt(got)}, expected {_fmt(want)})"
        if _same((got[1], got[0], got[2]), want):
            return mistake(f"the values are in the order (low, mean, high) {text}", "return (mean, low, high)")
        for variant, message, hint in _interval_variants(a, b):
            if _same(got, variant):
                return mistake(f"{message} {text}", hint)
        return mistake(f"case {label}: got {_fmt(got)}, expected {_fmt(want)}",
                       "mean(d) -/+ T975[n - 1] * stdev(d) / sqrt(n), d = a - b")
    return passed(f"{name} gives the paired 95% interval on {len(_interval_cases())} cases (5, 8 and 3 seeds)")


def _fmt(triple) -> str:
    return "(" + ", ".join(f"{v:.5f}" for v in triple) + ")"


def verdict_of(low: float, high: float) -> str:
    """'A better', 'B better' or 'inconclusive' from a 95% interval of A - B (zero inside: inconclusive)."""
    if low > 0:
        return "A better"
    if high < 0:
        return "B better"
    return "inconclusive"


__all__ = ["T975", "check_pareto_front", "check_paired_interval", "reference_pareto_front",
           "reference_paired_interval", "verdict_of"]
