"""Chapter 08's checkers: the references pass, blanks are "not implemented", correct alternatives pass,
and wrong implementations a student would really write each fail with their mistake named."""

import math
import statistics

import numpy as np
import pytest
import torch

from minift.course.checks import ch08_shootout as checks
from verdict_asserts import quiet, assert_mistake

T = checks.T975


# ======================================================================= exercise 1: Pareto front

def front_sweep(params, scores):
    """Correct, the sweep: sort by (params, -score), keep each new best score; identical points kept."""
    order = sorted(range(len(params)), key=lambda i: (float(params[i]), -float(scores[i]), i))
    front, best, last = [], -math.inf, None
    for i in order:
        point = (float(params[i]), float(scores[i]))
        if float(scores[i]) > best or point == last:
            front.append(i)
            best, last = float(scores[i]), point
    return sorted(front, key=lambda i: (float(params[i]), i))


def front_numpy(params, scores):
    """Correct, vectorised with NumPy broadcasting; returns a NumPy array of indices."""
    p, s = np.asarray(params, dtype=float), np.asarray(scores, dtype=float)
    no_worse = (p[None, :] <= p[:, None]) & (s[None, :] >= s[:, None])
    better = (p[None, :] < p[:, None]) | (s[None, :] > s[:, None])
    keep = np.flatnonzero(~(no_worse & better).any(axis=1))
    return keep[np.lexsort((keep, p[keep]))]


@pytest.mark.parametrize("fn", [checks.reference_pareto_front, front_sweep, front_numpy])
def test_correct_fronts_pass(fn):
    verdict = quiet(checks.check_pareto_front, fn)
    assert verdict.passed, str(verdict)


def test_blank_front_is_not_implemented():
    def pareto_front(params, scores):
        raise NotImplementedError
    assert quiet(checks.check_pareto_front, pareto_front).status == "not implemented"


def front_reversed(params, scores):
    """More parameters taken as better."""
    n = len(params)
    keep = [i for i in range(n) if not any(params[j] >= params[i] and scores[j] >= scores[i]
                                           and (params[j] > params[i] or scores[j] > scores[i]) for j in range(n))]
    return sorted(keep, key=lambda i: (params[i], i))


def front_best_only(params, scores):
    top = max(scores)
    return [i for i in range(len(scores)) if scores[i] == top]


def front_input_order(params, scores):
    """The sweep without the sort."""
    keep, best = [], -math.inf
    for i, s in enumerate(scores):
        if s > best:
            keep.append(i)
            best = s
    return keep


def front_strict(params, scores):
    n = len(params)
    keep = [i for i in range(n) if not any(params[j] < params[i] and scores[j] > scores[i] for j in range(n))]
    return sorted(keep, key=lambda i: (params[i], i))


def front_dedup(params, scores):
    front, seen = [], set()
    for i in checks.reference_pareto_front(params, scores):
        if (float(params[i]), float(scores[i])) not in seen:
            front.append(i)
            seen.add((float(params[i]), float(scores[i])))
    return front


def front_values(params, scores):
    return [params[i] for i in checks.reference_pareto_front(params, scores)]


def front_pairs(params, scores):
    return [(params[i], scores[i]) for i in checks.reference_pareto_front(params, scores)]


def front_unsorted(params, scores):
    return sorted(checks.reference_pareto_front(params, scores), key=lambda i: (-float(params[i]), i))


def front_in_place(params, scores):
    answer = checks.reference_pareto_front(params, scores)
    if isinstance(params, list):
        params.sort()
    else:
        params = list(params)
    return answer


@pytest.mark.parametrize("fn, words", [
    (front_reversed, ["reversed"]),
    (front_best_only, ["best-scoring"]),
    (front_input_order, ["sorted by parameter count first"]),
    (front_strict, ["same parameter count", "strict"]),
    (front_dedup, ["identical"]),
    (front_values, ["indices"]),
    (front_pairs, ["indices"]),
    (front_unsorted, ["sorted by parameter count"]),
    (front_in_place, ["changed its inputs"]),
])
def test_wrong_fronts_are_named(fn, words):
    assert_mistake(quiet(checks.check_pareto_front, fn), *words)


def test_front_reference_on_a_known_case():
    # 120/0.55 beats 120/0.50 (same size); the two 800/0.70 stay; 5000/0.80 and 20000/0.82 stay
    assert checks.reference_pareto_front([5000, 120, 800, 120, 20000, 800],
                                         [0.80, 0.55, 0.70, 0.50, 0.82, 0.70]) == [1, 2, 5, 0, 4]


# =================================================================== exercise 2: paired interval

def interval_statistics(a, b):
    """Correct, with the statistics module; returns Python floats."""
    d = [float(x) - float(y) for x, y in zip(a, b)]
    mean, half = statistics.mean(d), T[len(d) - 1] * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def interval_torch(a, b):
    """Correct, with torch (unbiased std by default); returns 0-d tensors, in a list."""
    d = torch.as_tensor(np.asarray(a, dtype=float)) - torch.as_tensor(np.asarray(b, dtype=float))
    half = T[len(d) - 1] * d.std() / len(d) ** 0.5
    return [d.mean(), d.mean() - half, d.mean() + half]


@pytest.mark.parametrize("fn", [checks.reference_paired_interval, interval_statistics, interval_torch])
def test_correct_intervals_pass(fn):
    verdict = quiet(checks.check_paired_interval, fn)
    assert verdict.passed, str(verdict)


def test_blank_interval_is_not_implemented():
    def paired_interval(a, b):
        raise NotImplementedError
    assert quiet(checks.check_paired_interval, paired_interval).status == "not implemented"


def _t_interval(d, t, ddof=1, root=True):
    d = np.asarray(d, dtype=float)
    half = t * d.std(ddof=ddof) / (np.sqrt(len(d)) if root else 1)
    return d.mean(), d.mean() - half, d.mean() + half


def interval_unpaired(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    half = T[2 * n - 2] * np.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    m = a.mean() - b.mean()
    return m, m - half, m + half


def interval_flipped(a, b):
    return _t_interval(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), T[len(a) - 1])


def interval_z(a, b):
    return _t_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), 1.96)


def interval_population_sd(a, b):
    return _t_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), T[len(a) - 1], ddof=0)


def interval_no_sqrt_n(a, b):
    return _t_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), T[len(a) - 1], root=False)


def interval_df_n(a, b):
    return _t_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), T[len(a)])


def interval_sorted(a, b):
    return _t_interval(np.sort(np.asarray(a, dtype=float)) - np.sort(np.asarray(b, dtype=float)), T[len(a) - 1])


def interval_low_first(a, b):
    mean, low, high = checks.reference_paired_interval(a, b)
    return low, mean, high


def interval_in_place(a, b):
    answer = checks.reference_paired_interval(a, b)
    if isinstance(a, np.ndarray):
        a.sort()
    elif isinstance(a, list):
        a.sort()
    return answer


def interval_two_values(a, b):
    return checks.reference_paired_interval(a, b)[1:]


@pytest.mark.parametrize("fn, words", [
    (interval_unpaired, ["unrelated"]),
    (interval_flipped, ["sign"]),
    (interval_z, ["1.96"]),
    (interval_population_sd, ["population"]),
    (interval_no_sqrt_n, ["standard error"]),
    (interval_df_n, ["n degrees of freedom"]),
    (interval_sorted, ["sorted a and b separately"]),
    (interval_low_first, ["(low, mean, high)"]),
    (interval_in_place, ["changed its inputs"]),
    (interval_two_values, ["3"]),
])
def test_wrong_intervals_are_named(fn, words):
    assert_mistake(quiet(checks.check_paired_interval, fn), *words)


def test_verdict_of():
    assert checks.verdict_of(0.01, 0.05) == "A better"
    assert checks.verdict_of(-0.05, -0.01) == "B better"
    assert checks.verdict_of(-0.01, 0.02) == "inconclusive"


def test_reference_interval_refuses_unpaired_lengths():
    with pytest.raises(ValueError, match="same seeds"):
        checks.reference_paired_interval([1, 2, 3], [1, 2])
