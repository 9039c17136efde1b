"""Chapter 07's checkers: the references pass, blanks are "not implemented", correct alternatives pass,
and wrong implementations a student would really write each fail with their mistake named."""

import random

import numpy as np
import pytest
import torch

from minift.course.checks import ch07_freeze_layers as checks
from minift.analysis import probing
from minift.methods import freeze
from verdict_asserts import quiet, assert_mistake


# ======================================================================== exercise 1: linear CKA

def cka_gram_numpy(X, Y):
    """Correct, via centred Gram matrices (n x n), in NumPy, returning a NumPy scalar."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return (K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum())


def cka_loops(X, Y):
    """Correct, with explicit loops over features, returning a 0-d tensor in float32 arithmetic."""
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    cross = sum(float(X[:, i] @ Y[:, j]) ** 2 for i in range(X.shape[1]) for j in range(Y.shape[1]))
    xx = sum(float(X[:, i] @ X[:, j]) ** 2 for i in range(X.shape[1]) for j in range(X.shape[1]))
    yy = sum(float(Y[:, i] @ Y[:, j]) ** 2 for i in range(Y.shape[1]) for j in range(Y.shape[1]))
    return torch.tensor(cross / (xx * yy) ** 0.5, dtype=torch.float64)


@pytest.mark.parametrize("fn", [checks.reference_linear_cka, probing.linear_cka, cka_gram_numpy, cka_loops])
def test_correct_cka_passes(fn):
    verdict = quiet(checks.check_linear_cka, fn)
    assert verdict.passed, str(verdict)


def test_blank_cka_is_not_implemented():
    def linear_cka(X, Y):
        raise NotImplementedError("write your code here")
    verdict = quiet(checks.check_linear_cka, linear_cka)
    assert verdict.status == "not implemented" and "linear_cka" in verdict.message


def fro(M):
    return torch.linalg.matrix_norm(M)


def cka_uncentred(X, Y):
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_rows_centred(X, Y):
    X, Y = X - X.mean(1, keepdim=True), Y - Y.mean(1, keepdim=True)
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_transposed(X, Y):
    X, Y = X.T, Y.T                 # "features x examples", as if the rows were features
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_unnormalised(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return (fro(Y.T @ X) ** 2).item()


def cka_not_squared(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return fro(Y.T @ X) / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_in_place(X, Y):
    X -= X.mean(0)                  # modifies the caller's tensors
    Y -= Y.mean(0)
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_distance(X, Y):
    return 1 - probing.linear_cka(X, Y)


def cka_no_return(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_vector(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return (Y.T @ X).pow(2).sum(0)


def cka_global_mean(X, Y):
    X, Y = X - X.mean(), Y - Y.mean()            # one mean for the whole matrix
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_only_x_centred(X, Y):
    X = X - X.mean(0)
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_only_y_centred(X, Y):
    Y = Y - Y.mean(0)
    return fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))


def cka_square_root(X, Y):
    return float(probing.linear_cka(X, Y)) ** 0.5


def cka_divided_by_squared_norms(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return fro(Y.T @ X) ** 2 / (fro(X) ** 2 * fro(Y) ** 2)


def cka_float32(X, Y):
    """Correct, in float32 (the checker's tolerance allows its rounding)."""
    X, Y = X.float(), Y.float()
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return (fro(Y.T @ X) ** 2 / (fro(X.T @ X) * fro(Y.T @ Y))).item()


def test_float32_cka_passes():
    verdict = quiet(checks.check_linear_cka, cka_float32)
    assert verdict.passed, str(verdict)


@pytest.mark.parametrize("fn, words", [
    (cka_global_mean, ["one mean for the whole matrix"]),
    (cka_only_x_centred, ["only x was centred"]),
    (cka_only_y_centred, ["only y was centred"]),
    (cka_square_root, ["square root"]),
    (cka_divided_by_squared_norms, ["wrong normalisation"]),
    (cka_uncentred, ["centring forgotten"]),
    (cka_rows_centred, ["wrong axis"]),
    (cka_transposed, ["features transposed"]),
    (cka_unnormalised, ["normalisation missing"]),
    (cka_not_squared, ["not squared"]),
    (cka_in_place, ["modified its inputs in place"]),
    (cka_distance, ["1 - cka"]),
    (cka_no_return, ["returned none"]),
    (cka_vector, ["tensor of shape"]),
])
def test_wrong_cka_is_named(fn, words):
    assert_mistake(quiet(checks.check_linear_cka, fn), *words)


def test_cka_checker_accepts_number_types():
    for convert in (float, lambda v: np.float32(v), lambda v: torch.tensor(v), lambda v: np.array([v])):
        verdict = quiet(checks.check_linear_cka, lambda X, Y, c=convert: c(checks.reference_linear_cka(X, Y)))
        assert verdict.passed, str(verdict)
    assert_mistake(quiet(checks.check_linear_cka, lambda X, Y: "0.5"), "expected a number")


def test_cka_checker_leaves_global_random_state_alone():
    torch.manual_seed(123)
    random.seed(5)
    expected_torch, expected_python = torch.rand(1), random.random()
    torch.manual_seed(123)
    random.seed(5)
    quiet(checks.check_linear_cka, checks.reference_linear_cka)
    quiet(checks.check_freeze_select, checks.reference_freeze_select)
    assert torch.equal(torch.rand(1), expected_torch) and random.random() == expected_python


# ==================================================================== exercise 2: Freeze selector

def select_by_names(model, layers, modules):
    """Correct, with parameter names instead of modules."""
    n = len(model.blocks)
    parts = {"attn": ("attn",), "ffn": ("ffn",), "norm": ("ln1", "ln2")}
    chosen = {f"blocks.{i}.{p}." for i in range(n - layers, n) if layers > 0 for m in modules for p in parts[m]}
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head.") or any(name.startswith(c) for c in chosen))


def select_with_library(model, layers, modules):
    """Correct: the library does it."""
    freeze.apply(model, layers=layers, modules=tuple(modules))
    return model


@pytest.mark.parametrize("fn", [checks.reference_freeze_select, select_by_names, select_with_library])
def test_correct_freeze_select_passes(fn):
    verdict = quiet(checks.check_freeze_select, fn)
    assert verdict.passed, str(verdict)


def test_reference_matches_freeze_apply():
    for n_layers, layers, modules, _ in checks._freeze_cases():
        a, b = checks._target_model(n_layers, 0), checks._target_model(n_layers, 0)
        checks.reference_freeze_select(a, layers, modules)
        freeze.apply(b, layers=layers, modules=modules)
        assert checks._trainable(a) == checks._trainable(b)


def test_blank_freeze_select_is_not_implemented():
    def freeze_select(model, layers, modules):
        raise NotImplementedError("write your code here")
    assert quiet(checks.check_freeze_select, freeze_select).status == "not implemented"


def _parts(block, modules):
    table = {"attn": [block.attn], "ffn": [block.ffn], "norm": [block.ln1, block.ln2]}
    return [part for m in modules for part in table[m]]


def select_first_n(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[:layers]:
        for part in _parts(block, modules):
            part.requires_grad_(True)
    model.head.requires_grad_(True)


def select_head_frozen(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[len(model.blocks) - layers:] if layers else []:
        for part in _parts(block, modules):
            part.requires_grad_(True)


def select_whole_blocks(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[len(model.blocks) - layers:] if layers else []:
        block.requires_grad_(True)                     # norms and attention too
    model.head.requires_grad_(True)


def select_with_norms(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[len(model.blocks) - layers:] if layers else []:
        for part in _parts(block, modules) + [block.ln1, block.ln2]:
            part.requires_grad_(True)
    model.head.requires_grad_(True)


def select_negative_slice(model, layers, modules):
    model.requires_grad_(False)
    for block in model.blocks[-layers:]:               # layers = 0 selects every block
        for part in _parts(block, modules):
            part.requires_grad_(True)
    model.head.requires_grad_(True)


def select_off_by_one(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[len(model.blocks) - layers + 1:]:
        for part in _parts(block, modules):
            part.requires_grad_(True)
    model.head.requires_grad_(True)


def select_always_ffn(model, layers, modules):
    model.requires_grad_(False)
    for block in list(model.blocks)[len(model.blocks) - layers:] if layers else []:
        block.ffn.requires_grad_(True)
    model.head.requires_grad_(True)


def select_forgot_to_freeze(model, layers, modules):
    for block in list(model.blocks)[len(model.blocks) - layers:] if layers else []:
        for part in _parts(block, modules):
            part.requires_grad_(True)
    model.head.requires_grad_(True)                    # embeddings and other blocks stay as they were


def select_only_freezes(model, layers, modules):
    chosen = {id(p) for block in (list(model.blocks)[len(model.blocks) - layers:] if layers else [])
              for part in _parts(block, modules) for p in part.parameters()}
    for p in model.parameters():
        if id(p) not in chosen and not any(p is q for q in model.head.parameters()):
            p.requires_grad_(False)                    # never switches anything on


def select_reinitialises(model, layers, modules):
    checks.reference_freeze_select(model, layers, modules)
    torch.nn.init.zeros_(model.head.classifier.bias)
    with torch.no_grad():
        model.head.classifier.weight.add_(1.0)


def select_then_train_mode(model, layers, modules):
    checks.reference_freeze_select(model, layers, modules)
    model.train()                   # "so that it trains": not this function's business


def select_final_norm_with_norms(model, layers, modules):
    checks.reference_freeze_select(model, layers, modules)
    if "norm" in modules:
        model.ln_f.requires_grad_(True)


@pytest.mark.parametrize("fn, words", [
    (select_then_train_mode, ["train/eval mode"]),
    (select_final_norm_with_norms, ["final layernorm ln_f"]),
    (select_first_n, ["first"]),
    (select_head_frozen, ["head is frozen"]),
    (select_whole_blocks, ["whole blocks"]),
    (select_with_norms, ["layernorms"]),
    (select_negative_slice, ["layers=0", "whole list"]),
    (select_off_by_one, ["off by one"]),
    (select_always_ffn, ["ignored the modules argument"]),
    (select_forgot_to_freeze, ["outside the chosen ones", "tok_emb"]),
    (select_only_freezes, ["never switched on"]),
    (select_reinitialises, ["weights changed"]),
])
def test_wrong_freeze_select_is_named(fn, words):
    assert_mistake(quiet(checks.check_freeze_select, fn), *words)


def test_checkers_never_raise_on_garbage():
    for check in (checks.check_linear_cka, checks.check_freeze_select):
        assert quiet(check, None).status == "mistake"
        assert quiet(check, lambda *a: 1 / 0).status == "mistake"
