"""The chapter-03 checkers: the reference passes, blanks say "not implemented yet", and each
deliberately wrong implementation is reported with its specific mistake."""

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


def test_reference_and_blank_approx():
    assert checks.check_rank_r_approximation(good_approx, quiet=True).passed
    assert checks.check_rank_r_approximation(checks.reference_rank_r_approximation, quiet=True).passed
    assert checks.check_rank_r_approximation(blank_approx, quiet=True).status == "not implemented"


@pytest.mark.parametrize("wrong, words", [
    (smallest, "SMALLEST singular values"),
    (no_s, "forgot to multiply by the singular values"),
    (transposed, "the transpose"),
    (factors_only, "one factor"),
    (off_by_one, "r + 1"),
    (vh_columns, "COLUMNS of Vh"),
    (returns_tuple, "tuple"),
    (crashes, "your code raised"),
])
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


def test_reference_and_blank_phi():
    assert checks.check_subspace_similarity(good_phi, quiet=True).passed
    assert checks.check_subspace_similarity(checks.reference_subspace_similarity, quiet=True).passed
    assert checks.check_subspace_similarity(blank_phi, quiet=True).status == "not implemented"


@pytest.mark.parametrize("wrong, words", [
    (left_vectors_phi, "LEFT singular vectors"),
    (no_division_phi, "forgot to divide by min(i, j)"),
    (max_phi, "max(i, j)"),
    (unsquared_phi, "forgot to square"),
    (vh_columns_phi, "COLUMNS of Vh"),
    (tensor_phi, "returned a tensor of shape"),
])
def test_wrong_similarities_are_named(wrong, words):
    verdict = checks.check_subspace_similarity(wrong, quiet=True)
    assert verdict.status == "mistake"
    assert words in verdict.message, verdict.message


def test_checkers_never_raise_on_nonsense():
    assert checks.check_rank_r_approximation(None, quiet=True).status == "mistake"
    assert checks.check_subspace_similarity(lambda *a: "0.5", quiet=True).status == "mistake"
    assert checks.check_rank_r_approximation(lambda W, r: None, quiet=True).status == "mistake"
