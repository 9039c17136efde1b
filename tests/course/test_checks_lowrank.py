"""The chapter-03 checkers: right answers of several styles pass, blanks say "not implemented yet",
and each wrong implementation a student really writes is reported with its specific mistake.

WRONG and RIGHT are module-level so the same implementations can be run against other checker
versions (they were run against the checkers of HEAD~6 to show which wrong answers those accepted)."""

import numpy as np
import pytest
import torch

from minift.course.checks import ch03_lowrank as checks

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)


# --- exercise 1: rank-r approximation ----------------------------------------------------------------

def good_approx(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:r]


def blank_approx(W, r):
    raise NotImplementedError("write your code here")


def smallest(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return (U[:, -r:] * S[-r:]) @ Vh[-r:]


def no_s(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return U[:, :r] @ Vh[:r]


def transposed(W, r):
    return good_approx(W, r).T


def factors_only(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return U[:, :r] * S[:r]


def off_by_one(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return (U[:, :r + 1] * S[:r + 1]) @ Vh[:r + 1]


def vh_columns(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return (U[:, :r] * S[:r]) @ Vh[:, :r].T


def returns_tuple(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return U[:, :r], S[:r], Vh[:r]


def crashes(W, r):
    return W @ W          # shapes do not match for a non-square W


def loop_approx(W, r):
    """A sum of r rank-one terms sigma_i u_i v_i^T."""
    U, S, Vh = torch.linalg.svd(W)                  # full matrices: only the first r columns are used
    approx = torch.zeros_like(W)
    for i in range(r):
        approx += S[i] * torch.outer(U[:, i], Vh[i])
    return approx


def diag_approx_numpy(W, r):
    U, S, Vh = np.linalg.svd(W.numpy(), full_matrices=False)
    return U[:, :r] @ np.diag(S[:r]) @ Vh[:r]       # a numpy array


def in_place_approx(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    W.copy_((U[:, :r] * S[:r]) @ Vh[:r])            # overwrites the caller's matrix
    return W


def torch_svd_v_rows(W, r):
    U, S, V = torch.svd(W)                           # the old API returns V, not V^T
    return (U[:, :r] * S[:r]) @ V[:r]


def squared_s(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return (U[:, :r] * S[:r] ** 2) @ Vh[:r]


def forgets_return(W, r):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    approx = (U[:, :r] * S[:r]) @ Vh[:r]            # noqa: F841


def test_reference_and_blank_approx():
    assert checks.check_rank_r_approximation(good_approx, quiet=True).passed
    assert checks.check_rank_r_approximation(checks.reference_rank_r_approximation, quiet=True).passed
    assert checks.check_rank_r_approximation(blank_approx, quiet=True).status == "not implemented"


@pytest.mark.parametrize("right", [good_approx, loop_approx, diag_approx_numpy], ids=lambda f: f.__name__)
def test_right_approximations_of_any_style_pass(right):
    verdict = checks.check_rank_r_approximation(right, quiet=True)
    assert verdict.passed, str(verdict)


WRONG_APPROX = [
    (smallest, "SMALLEST singular values"),
    (no_s, "forgot to multiply by the singular values"),
    (transposed, "the transpose"),
    (factors_only, "one factor"),
    (off_by_one, "r + 1"),
    (vh_columns, "COLUMNS of Vh"),
    (torch_svd_v_rows, "COLUMNS of Vh"),
    (squared_s, "S twice"),
    (in_place_approx, "changed its input W in place"),
    (returns_tuple, "tuple"),
    (forgets_return, "returned None"),
    (crashes, "your code raised"),
]


@pytest.mark.parametrize("wrong, words", WRONG_APPROX, ids=lambda x: getattr(x, "__name__", None))
def test_wrong_approximations_are_named(wrong, words):
    verdict = checks.check_rank_r_approximation(wrong, quiet=True)
    assert verdict.status == "mistake"
    assert words in verdict.message, verdict.message


# --- exercise 2: subspace similarity -----------------------------------------------------------------

def right_vectors(A):
    return torch.linalg.svd(A, full_matrices=False)[2].T


def good_phi(A1, A2, i, j):
    U1, U2 = right_vectors(A1), right_vectors(A2)
    return float(torch.linalg.matrix_norm(U1[:, :i].T @ U2[:, :j]) ** 2 / min(i, j))


def blank_phi(A1, A2, i, j):
    raise NotImplementedError("write your code here")


def left_vectors_phi(A1, A2, i, j):
    U1 = torch.linalg.svd(A1, full_matrices=False)[0]
    U2 = torch.linalg.svd(A2, full_matrices=False)[0]
    return float(torch.linalg.matrix_norm(U1[:, :i].T @ U2[:, :j]) ** 2 / min(i, j))


def no_division_phi(A1, A2, i, j):
    U1, U2 = right_vectors(A1), right_vectors(A2)
    return float(torch.linalg.matrix_norm(U1[:, :i].T @ U2[:, :j]) ** 2)


def max_phi(A1, A2, i, j):
    U1, U2 = right_vectors(A1), right_vectors(A2)
    return float(torch.linalg.matrix_norm(U1[:, :i].T @ U2[:, :j]) ** 2 / max(i, j))


def unsquared_phi(A1, A2, i, j):
    U1, U2 = right_vectors(A1), right_vectors(A2)
    return float(torch.linalg.matrix_norm(U1[:, :i].T @ U2[:, :j]) / min(i, j))


def vh_columns_phi(A1, A2, i, j):
    V1 = torch.linalg.svd(A1, full_matrices=False)[2]
    V2 = torch.linalg.svd(A2, full_matrices=False)[2]
    return float(torch.linalg.matrix_norm(V1[:, :i].T @ V2[:, :j]) ** 2 / min(i, j))


def tensor_phi(A1, A2, i, j):
    U1, U2 = right_vectors(A1), right_vectors(A2)
    return (U1[:, :i].T @ U2[:, :j]) ** 2 / min(i, j)


def loop_phi(A1, A2, i, j):
    V1, V2 = right_vectors(A1), right_vectors(A2)
    total = 0.0
    for a in range(i):
        for b in range(j):
            total += float(V1[:, a] @ V2[:, b]) ** 2
    return total / min(i, j)


def tensor_scalar_phi(A1, A2, i, j):
    V1, V2 = right_vectors(A1), right_vectors(A2)
    return ((V1[:, :i].T @ V2[:, :j]) ** 2).sum() / min(i, j)         # a 0-d tensor


def numpy_phi(A1, A2, i, j):
    V1 = np.linalg.svd(A1.numpy())[2].T
    V2 = np.linalg.svd(A2.numpy())[2].T
    return np.linalg.norm(V1[:, :i].T @ V2[:, :j]) ** 2 / min(i, j)    # numpy.float64


def divides_by_i_phi(A1, A2, i, j):
    return good_phi(A1, A2, i, j) * min(i, j) / i


def normalises_in_place_phi(A1, A2, i, j):
    A1 /= A1.norm()                                  # "normalise first": changes the caller's A1
    A2 /= A2.norm()
    return good_phi(A1, A2, i, j)


def raw_rows_phi(A1, A2, i, j):
    return float(torch.linalg.matrix_norm(A1[:i] @ A2[:j].T) ** 2 / min(i, j))


def smallest_phi(A1, A2, i, j):
    V1, V2 = right_vectors(A1).flip(1), right_vectors(A2).flip(1)
    return float(torch.linalg.matrix_norm(V1[:, :i].T @ V2[:, :j]) ** 2 / min(i, j))


def test_reference_and_blank_phi():
    assert checks.check_subspace_similarity(good_phi, quiet=True).passed
    assert checks.check_subspace_similarity(checks.reference_subspace_similarity, quiet=True).passed
    assert checks.check_subspace_similarity(blank_phi, quiet=True).status == "not implemented"


@pytest.mark.parametrize("right", [good_phi, loop_phi, tensor_scalar_phi, numpy_phi], ids=lambda f: f.__name__)
def test_right_similarities_of_any_style_and_type_pass(right):
    verdict = checks.check_subspace_similarity(right, quiet=True)
    assert verdict.passed, str(verdict)


WRONG_PHI = [
    (left_vectors_phi, "LEFT singular vectors"),
    (no_division_phi, "forgot to divide by min(i, j)"),
    (max_phi, "max(i, j)"),
    (unsquared_phi, "forgot to square"),
    (vh_columns_phi, "COLUMNS of Vh"),
    (divides_by_i_phi, "divided by i instead"),
    (normalises_in_place_phi, "changed its input A1 in place"),
    (raw_rows_phi, "rows of A directly"),
    (smallest_phi, "LAST singular vectors"),
    (tensor_phi, "returned a tensor of shape"),
]

RIGHT = {"check_rank_r_approximation": [good_approx, loop_approx, diag_approx_numpy],
         "check_subspace_similarity": [good_phi, loop_phi, tensor_scalar_phi, numpy_phi]}
WRONG = {"check_rank_r_approximation": WRONG_APPROX, "check_subspace_similarity": WRONG_PHI}


@pytest.mark.parametrize("wrong, words", WRONG_PHI, ids=lambda x: getattr(x, "__name__", None))
def test_wrong_similarities_are_named(wrong, words):
    verdict = checks.check_subspace_similarity(wrong, quiet=True)
    assert verdict.status == "mistake"
    assert words in verdict.message, verdict.message


def test_checkers_never_raise_on_nonsense():
    assert checks.check_rank_r_approximation(None, quiet=True).status == "mistake"
    assert checks.check_subspace_similarity(lambda *a: "0.5", quiet=True).status == "mistake"
    assert checks.check_rank_r_approximation(lambda W, r: None, quiet=True).status == "mistake"
