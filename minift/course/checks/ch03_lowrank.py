"""Exercise checkers for chapter 03 (the low-rank maths behind LoRA).

    from minift.course.checks import ch03_lowrank as checks
    checks.check_rank_r_approximation(rank_r_approximation)
    checks.check_subspace_similarity(subspace_similarity)

Each checker runs your function on small matrices whose answers are known, compares with the
reference in minift.analysis.lowrank, and names the usual mistakes (smallest singular values kept,
S forgotten, left instead of right singular vectors, no division by min(i, j), ...).
"""

from __future__ import annotations

import torch

from minift.analysis import lowrank

from .framework import Verdict, _StudentRaised, as_number, call_keeping_inputs, checker, mistake, name_of, passed

TOLERANCE = 1e-6


def _as_tensor(value, what: str):
    """The student's result as a float64 tensor, or a mistake Verdict."""
    if isinstance(value, tuple):
        return mistake(f"{what} returned a tuple of {len(value)} things",
                       "return ONE matrix, the product U_r diag(S_r) V_r^T, not the factors")
    try:
        tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    except Exception:   # noqa: BLE001
        return mistake(f"{what} returned {type(value).__name__}, expected a matrix (a torch tensor)",
                       "return the matrix, e.g. `return (U[:, :r] * S[:r]) @ Vh[:r]`")
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return mistake(f"{what} returned {tensor!r}, expected a matrix of floats", "return a torch tensor")
    return tensor.to(torch.float64)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=tol))


# --- exercise 1: truncated SVD -----------------------------------------------------------------------

def _matrices():
    """Small test matrices with distinct singular values: tall, wide, and one of known rank 2."""
    generator = torch.Generator().manual_seed(3)
    tall = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    wide = torch.randn(4, 9, generator=generator, dtype=torch.float64)
    rank2 = (torch.randn(6, 2, generator=generator, dtype=torch.float64)
             @ torch.randn(2, 8, generator=generator, dtype=torch.float64))
    square = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    return [(tall, 2), (wide, 3), (rank2, 2), (tall, 1), (square, 4), (wide, 4)]   # the last: full rank


def _svd(W):
    return torch.linalg.svd(W, full_matrices=False)


def _kept_smallest(W, r):
    U, S, Vh = _svd(W)
    return (U[:, -r:] * S[-r:]) @ Vh[-r:]


def _forgot_s(W, r):
    U, S, Vh = _svd(W)
    return U[:, :r] @ Vh[:r]


def _columns_of_vh(W, r):
    U, S, Vh = _svd(W)
    return (U[:, :r] * S[:r]) @ Vh[:, :r].T        # columns of Vh, transposed: not the singular vectors


def _r_plus_one(W, r):
    return lowrank.truncated_svd(W, min(r + 1, min(W.shape)))


def _r_minus_one(W, r):
    return lowrank.truncated_svd(W, r - 1)


def _squared_s(W, r):
    U, S, Vh = _svd(W)
    return (U[:, :r] * S[:r] ** 2) @ Vh[:r]


@checker
def check_rank_r_approximation(fn) -> Verdict:
    """fn(W, r) -> the best rank-r approximation of W (same shape as W): U_r diag(S_r) V_r^T."""
    name = name_of(fn)
    known = [
        (_kept_smallest, "you kept the SMALLEST singular values (the last r) instead of the largest",
         "torch.linalg.svd returns S in decreasing order: the first r are the largest, use [:r]"),
        (_forgot_s, "you forgot to multiply by the singular values S: U_r V_r^T has the right directions "
                    "but every direction gets weight 1",
         "scale the columns of U_r by S_r: (U[:, :r] * S[:r]) @ Vh[:r]"),
        (_columns_of_vh, "you took the first r COLUMNS of Vh; torch returns V^T, whose ROWS are the "
                         "right-singular vectors", "use Vh[:r] (the first r rows), not Vh[:, :r]"),
        (_squared_s, "you multiplied by S twice (S^2)", "each kept direction is weighted by sigma_i once"),
        (_r_plus_one, "you kept r + 1 singular values (an off-by-one in the slice)",
         "Python slices exclude their end: [:r] keeps exactly r entries"),
        (_r_minus_one, "you kept r - 1 singular values (an off-by-one in the slice)",
         "Python slices exclude their end: [:r] keeps exactly r entries"),
    ]
    for W, r in _matrices():
        result = call_keeping_inputs(fn, W.clone(), r, names=["W", "r"])
        if result is None:
            return mistake(f"{name}(W, r={r}) returned None", "end the function with `return ...`")
        result = _as_tensor(result, f"{name}(W, r={r})")
        if isinstance(result, Verdict):
            return result
        expected = lowrank.truncated_svd(W, r)
        if result.shape != W.shape:
            if result.shape == W.T.shape:
                return mistake(f"{name} returned shape {tuple(result.shape)} for W of shape {tuple(W.shape)}: "
                               "the transpose", "W = U diag(S) V^T: multiply U_r (m x r), diag(S_r), then "
                                                "Vh[:r] (r x n); do not transpose Vh again")
            if r in result.shape and result.numel() < W.numel():
                return mistake(f"{name} returned shape {tuple(result.shape)}: one factor, not the approximation",
                               f"return the product U_r diag(S_r) V_r^T, of W's shape {tuple(W.shape)}")
            return mistake(f"{name} returned shape {tuple(result.shape)}, expected W's shape {tuple(W.shape)}",
                           "the approximation U_r diag(S_r) V_r^T has the same shape as W")
        if _close(result, expected):
            continue
        for wrong, message, hint in known:
            try:
                candidate = wrong(W, r)
            except Exception:   # noqa: BLE001 - a variant that does not apply to this shape
                continue
            if candidate.shape == W.shape and _close(result, candidate):
                return mistake(message, hint)
        if torch.linalg.matrix_rank(result) > r:
            return mistake(f"{name}(W, r={r}) has rank {int(torch.linalg.matrix_rank(result))} > {r}",
                           "keep only r singular values and their vectors")
        if _close(result, W):
            return mistake(f"{name} returned W itself for r={r}", "throw away all but the r largest singular values")
        error = float(torch.linalg.matrix_norm(result - W) / torch.linalg.matrix_norm(W))
        best = lowrank.reconstruction_error(W, r)
        return mistake(f"{name}(W, r={r}) is not the best rank-{r} approximation: relative error {error:.4f}, "
                       f"the best possible is {best:.4f}",
                       "U, S, Vh = torch.linalg.svd(W, full_matrices=False); (U[:, :r] * S[:r]) @ Vh[:r]")
    return passed(f"{name} gives the best rank-r approximation (Eckart-Young) on {len(_matrices())} cases "
                  "(tall, wide, square, exactly rank 2, full rank) and leaves W unchanged")


# --- exercise 2: subspace similarity -----------------------------------------------------------------

def _factors():
    """LoRA-like A factors (r x d) with a shared top direction, so phi is neither 0 nor 1."""
    generator = torch.Generator().manual_seed(5)
    d = 12
    shared = torch.randn(1, d, generator=generator, dtype=torch.float64)
    A_same_1 = torch.randn(3, d, generator=generator, dtype=torch.float64) + 3 * shared
    A_same_2 = torch.randn(3, d, generator=generator, dtype=torch.float64) + 3 * shared
    A_small = torch.randn(2, d, generator=generator, dtype=torch.float64) + 3 * shared
    A_big = torch.randn(6, d, generator=generator, dtype=torch.float64) + 3 * shared
    # equal ranks first: there a left-singular-vector version runs and can be recognised
    return [(A_same_1, A_same_2, 2, 3), (A_same_1, A_same_2, 1, 1), (A_small, A_big, 2, 4),
            (A_big, A_small, 3, 1), (A_small, A_big, 1, 6)]


def _phi_with(basis, normaliser, square=True):
    def phi(A1, A2, i, j):
        U1, U2 = basis(A1), basis(A2)
        overlap = U1[:, :i].T @ U2[:, :j]
        value = (overlap ** 2).sum() if square else torch.linalg.matrix_norm(overlap)
        return float(value / normaliser(i, j))
    return phi


def _right(A):
    return torch.linalg.svd(A, full_matrices=False)[2].T


def _left(A):
    return torch.linalg.svd(A, full_matrices=False)[0]


def _rows_of_vh_as_columns(A):
    return torch.linalg.svd(A, full_matrices=False)[2]       # Vh itself: rows are the vectors


def _smallest_first(A):
    return torch.flip(_right(A), dims=[1])


def _raw_rows(A):
    return A.T          # the rows of A as columns, unnormalised


_MIN = lambda i, j: min(i, j)          # noqa: E731


@checker
def check_subspace_similarity(fn) -> Verdict:
    """fn(A1, A2, i, j) -> ||U1[:, :i]^T U2[:, :j]||_F^2 / min(i, j), U = right-singular vectors of A."""
    name = name_of(fn)
    known = [
        (_phi_with(_left, _MIN), "you used the LEFT singular vectors U of A (r x r) instead of the right ones",
         "A is r x d and reads d-dimensional inputs; its row space is spanned by the right-singular vectors: "
         "U, S, Vh = torch.linalg.svd(A); use Vh.T (columns)"),
        (_phi_with(_right, lambda i, j: 1), "you forgot to divide by min(i, j)",
         "phi is normalised so that it lies in [0, 1]: divide the squared norm by min(i, j)"),
        (_phi_with(_right, lambda i, j: max(i, j)), "you divided by max(i, j) instead of min(i, j)",
         "the overlap of an i-dim and a j-dim subspace is at most min(i, j)"),
        (_phi_with(_right, lambda i, j: i * j), "you divided by i * j instead of min(i, j)",
         "the squared Frobenius norm of U1_i^T U2_j is at most min(i, j), not i * j"),
        (_phi_with(_right, _MIN, square=False), "you forgot to square the Frobenius norm",
         "phi = ||U1_i^T U2_j||_F^2 / min(i, j): square the norm (or sum the squared entries)"),
        (_phi_with(_rows_of_vh_as_columns, _MIN),
         "you took COLUMNS of Vh as singular vectors; torch returns V^T, whose ROWS are the right-singular vectors",
         "use V = Vh.T (or Vh.mH), then V[:, :i]"),
        (_phi_with(_smallest_first, _MIN), "you took the LAST singular vectors (smallest singular values)",
         "the top-i directions are the first i columns of V: V[:, :i]"),
        (_phi_with(_right, lambda i, j: i), "you divided by i instead of min(i, j)",
         "the normaliser is the smaller of the two dimensions: min(i, j)"),
        (_phi_with(_right, lambda i, j: j), "you divided by j instead of min(i, j)",
         "the normaliser is the smaller of the two dimensions: min(i, j)"),
        (_phi_with(_raw_rows, _MIN), "you used the rows of A directly (not orthonormal, not ordered by importance)",
         "take the SVD first: the right-singular vectors Vh.T are an ordered orthonormal basis of A's row space"),
    ]
    results = []
    for A1, A2, i, j in _factors():
        try:
            result = call_keeping_inputs(fn, A1.clone(), A2.clone(), i, j, names=["A1", "A2", "i", "j"])
        except _StudentRaised:
            if any(abs(r[0] - r[1]) > TOLERANCE for r in results):
                break          # already wrong on an earlier case (e.g. left vectors: sizes differ later)
            raise
        if isinstance(result, torch.Tensor) and result.numel() != 1:
            return mistake(f"{name} returned a tensor of shape {tuple(result.shape)}",
                           "return one number: the squared norm divided by min(i, j), e.g. float(...)")
        number = as_number(result)
        if number is None:
            if result is None:
                return mistake(f"{name} returned None", "end the function with `return ...`")
            return mistake(f"{name} returned {type(result).__name__}, expected a number",
                           "return the similarity as a float")
        results.append((number, lowrank.subspace_similarity(A1, A2, i, j), (A1, A2, i, j)))
    wrong = [r for r in results if abs(r[0] - r[1]) > TOLERANCE]
    if wrong:
        def value(formula, case):
            try:
                return formula(*case)
            except Exception:   # noqa: BLE001 - e.g. left vectors of different sizes cannot be multiplied
                return None

        def explains(formula, result, case):
            candidate = value(formula, case)
            return candidate is not None and abs(result - candidate) <= TOLERANCE
        # the mistake that explains the answer on every case first, then one that explains the first wrong case
        for everywhere in (True, False):
            for formula, message, hint in known:
                cases = results if everywhere else wrong[:1]
                if all(explains(formula, result, case) for result, _, case in cases):
                    return mistake(message, hint)
        result, expected, (A1, A2, i, j) = wrong[0]
        if not 0 <= result <= 1 + 1e-9:
            return mistake(f"{name}(A1, A2, i={i}, j={j}) = {result:.4f} lies outside [0, 1]",
                           "phi is a normalised overlap: ||U1_i^T U2_j||_F^2 / min(i, j)")
        return mistake(f"{name}(A1 {tuple(A1.shape)}, A2 {tuple(A2.shape)}, i={i}, j={j}) returned "
                       f"{result:.4f}, expected {expected:.4f}",
                       "U = right-singular vectors of A (Vh.T), keep the first i and j columns, "
                       "||U1_i^T U2_j||_F^2 / min(i, j)")
    return passed(f"{name} matches phi(A1, A2, i, j) of the LoRA paper on {len(_factors())} cases "
                  "(equal and different ranks)")


# --- references, for the notebook --------------------------------------------------------------------

def reference_rank_r_approximation(W, r):
    return lowrank.truncated_svd(W, r)


def reference_subspace_similarity(A1, A2, i, j):
    return lowrank.subspace_similarity(A1, A2, i, j)


__all__ = ["check_rank_r_approximation", "check_subspace_similarity",
           "reference_rank_r_approximation", "reference_subspace_similarity"]
