"""Checkers for chapter 07 (Freeze, and what layers learn): write linear CKA and a Freeze selector.

    from minift.course.checks import ch07_freeze_layers as checks
    checks.check_linear_cka(linear_cka)
    checks.check_freeze_select(freeze_select)

The functions under test follow the interfaces the exercise describes::

    def linear_cka(X, Y) -> float:
        # X (n, p), Y (n, q): two representations of the same n examples (rows); p and q may differ.
        # CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), Xc and Yc with every column centred.

    def freeze_select(model, layers: int, modules) -> None:
        # train only ``modules`` ("attn", "ffn", "norm") of the LAST ``layers`` blocks, plus the task
        # head; freeze everything else (embeddings, other blocks, the other parts, the final LayerNorm).

The CKA checker runs three cases whose answers differ (features of equal and of different widths,
a rotated and rescaled copy), and names: centring forgotten, along the wrong axis, with one global mean or
of one input only, features transposed (rows taken as features), normalisation missing or by the squared
norms, numerator not squared, a square root or 1 - CKA returned, inputs modified in place. Any number type is accepted (float, 0-d tensor, NumPy scalar).

The Freeze checker runs several (layers, modules) cases on 3- and 4-layer models, starting once from an
all-trainable model and once from an all-frozen one, and names: first N layers instead of the last N,
one layer too many or too few, the task head left frozen, LayerNorms (or the whole block) trainable when
only some modules were asked for, the modules argument ignored, parameters outside the chosen ones left
trainable (the final LayerNorm named), the chosen modules never switched on, weights or train/eval mode
changed (one case hands over a frozen model in eval mode).
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch

from .framework import Rejected, Verdict, call, checker, mistake, name_of, passed
from .helpers import same_state, state_copy

REL_TOL = 1e-6
SELECTABLE = ("attn", "ffn", "norm")


# ============================================================================ exercise 1: linear CKA
def reference_linear_cka(X, Y) -> float:
    """The reference solution (what the checker compares with)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    Y = torch.as_tensor(Y, dtype=torch.float64)
    Xc, Yc = X - X.mean(dim=0), Y - Y.mean(dim=0)
    return float(torch.linalg.matrix_norm(Yc.T @ Xc) ** 2
                 / (torch.linalg.matrix_norm(Xc.T @ Xc) * torch.linalg.matrix_norm(Yc.T @ Yc)))


def _cka_variant(X, Y, centre="columns", squared=True, normalised=True) -> float:
    """The usual wrong versions, to recognise them. centre: "columns" (right), "rows", "global" (one mean
    for the whole matrix), "x only" (Y left uncentred) or None; normalised: True, False, or "norms" (divided
    by ||Xc||_F^2 ||Yc||_F^2 instead of ||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    if centre == "columns":
        X, Y = X - X.mean(dim=0), Y - Y.mean(dim=0)
    elif centre == "rows":
        X, Y = X - X.mean(dim=1, keepdim=True), Y - Y.mean(dim=1, keepdim=True)
    elif centre == "global":
        X, Y = X - X.mean(), Y - Y.mean()
    elif centre == "x only":
        X = X - X.mean(dim=0)
    cross = torch.linalg.matrix_norm(Y.T @ X)
    cross = cross ** 2 if squared else cross
    if not normalised:
        return float(cross)
    if normalised == "norms":
        return float(cross / (torch.linalg.matrix_norm(X) ** 2 * torch.linalg.matrix_norm(Y) ** 2))
    return float(cross / (torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y)))


def _cka_cases():
    """(name, X, Y): float64 tensors with non-zero column means, so that centring matters."""
    generator = torch.Generator().manual_seed(7)
    randn = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    X1 = randn(40, 6) + torch.linspace(-2, 3, 6, dtype=torch.float64)
    Y1 = X1[:, :3] @ randn(3, 6) + 0.8 * randn(40, 6) + 1.5
    X2 = randn(30, 5) * torch.tensor([3.0, 1, 0.5, 2, 1], dtype=torch.float64) + 2.0
    Y2 = torch.cat([X2[:, :2] ** 2, randn(30, 7)], dim=1) - 0.7
    Q, _ = torch.linalg.qr(randn(4, 4))
    X3 = randn(25, 4) + 4.0
    Y3 = 2.5 * (X3 @ Q) - 1.0
    return [("X (40 x 6), Y (40 x 6)", X1, Y1), ("X (30 x 5), Y (30 x 9)", X2, Y2),
            ("X (25 x 4) and Y = 2.5 X Q - 1 with Q orthogonal (answer 1)", X3, Y3)]


def as_number(value, what: str = "your function") -> float:
    """A Python float from any real number type: int, float, NumPy scalar, 0-d / 1-element tensor or
    array. Anything else raises Rejected with a clear verdict."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Rejected(mistake(f"{what} returned a tensor of shape {tuple(value.shape)}, expected one number",
                                   "return a single number: e.g. float(result) or result.item()"))
        value = value.detach().cpu().item()
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            raise Rejected(mistake(f"{what} returned an array of shape {value.shape}, expected one number",
                                   "return a single number: e.g. float(result)"))
        value = value.item()
    if value is None:
        raise Rejected(mistake(f"{what} returned None", "did you forget the return statement?"))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Rejected(mistake(f"{what} returned {type(value).__name__} {value!r}, expected a number",
                               "return the CKA value as a number"))
    return float(value)


def _close(a: float, b: float) -> bool:
    return math.isfinite(a) and abs(a - b) <= REL_TOL * max(1.0, abs(b))


def _name_cka_mistake(got: float, X, Y) -> Verdict | None:
    known = [
        (_cka_variant(X, Y, centre=None), "centring forgotten: you computed CKA on X and Y as given, so the "
         "column means count as shared structure", "subtract each column's mean first: Xc = X - X.mean(dim=0)"),
        (_cka_variant(X, Y, centre="rows"), "centred along the wrong axis: you subtracted each ROW's mean "
         "(mean over features) instead of each column's", "centre every feature (column) over the examples: "
         "X - X.mean(dim=0, keepdim=True)"),
        (_cka_variant(X.T, Y.T), "features transposed: you treated the rows as features and the columns as "
         "examples", "rows are examples: the cross term is Yc^T Xc (q x p); use X.T @ X, not X @ X.T with "
         "row-centring"),
        (_cka_variant(X, Y, normalised=False), "normalisation missing: you returned ||Yc^T Xc||_F^2 "
         "(an unnormalised HSIC), which grows with the scale of X and Y", "divide by ||Xc^T Xc||_F "
         "||Yc^T Yc||_F so that CKA(X, X) = 1"),
        (_cka_variant(X, Y, centre=None, normalised=False), "centring and normalisation both missing: you "
         "returned ||Y^T X||_F^2", "centre the columns, then divide by ||Xc^T Xc||_F ||Yc^T Yc||_F"),
        (_cka_variant(X, Y, squared=False), "the numerator is not squared: ||Yc^T Xc||_F instead of "
         "||Yc^T Xc||_F^2", "CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)"),
        (1 - reference_linear_cka(X, Y), "you returned 1 - CKA (a distance) instead of CKA",
         "CKA is a similarity: 1 for identical representations"),
        (_cka_variant(X, Y, centre="global"), "centred with one mean for the whole matrix (X - X.mean()) "
         "instead of each column's own mean", "X - X.mean(dim=0): every feature (column) gets its own mean"),
        (_cka_variant(X, Y, centre="x only"), "only X was centred: Y keeps its column means",
         "centre both: Yc = Y - Y.mean(dim=0) as well"),
        (_cka_variant(Y, X, centre="x only"),
         "only Y was centred: X keeps its column means", "centre both: Xc = X - X.mean(dim=0) as well"),
        (math.sqrt(reference_linear_cka(X, Y)), "you returned the square root of CKA",
         "CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), no square root"),
        (_cka_variant(X, Y, normalised="norms"), "wrong normalisation: you divided by ||Xc||_F^2 ||Yc||_F^2 "
         "instead of ||Xc^T Xc||_F ||Yc^T Yc||_F", "the denominator has the Gram-like matrices Xc^T Xc and "
         "Yc^T Yc, so that CKA(X, X) = 1"),
    ]
    for value, message, hint in known:
        if _close(got, value):
            return mistake(message, hint)
    return None


@checker
def check_linear_cka(fn) -> Verdict:
    """fn(X, Y) -> CKA, on three cases with different answers and shapes."""
    name = name_of(fn)
    for label, X, Y in _cka_cases():
        X_arg, Y_arg = X.clone(), Y.clone()              # what the student gets
        X_before, Y_before = X_arg.clone(), Y_arg.clone()
        got = as_number(call(fn, X_arg, Y_arg, what=name), name)
        if not (torch.equal(X_arg, X_before) and torch.equal(Y_arg, Y_before)):
            return mistake(f"{name} modified its inputs in place (case {label}): after the call X or Y "
                           "holds different numbers", "do not write X -= X.mean(0); make new tensors: "
                           "Xc = X - X.mean(dim=0)")
        expected = reference_linear_cka(X, Y)
        if not _close(got, expected):
            named = _name_cka_mistake(got, X, Y)
            if named is not None:
                named.message = f"{named.message} (case {label}: got {got:.6g}, expected {expected:.6g})"
                return named
            return mistake(f"case {label}: got {got:.6g}, expected {expected:.6g}",
                           "CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with every column centred")
    # the properties that make CKA useful, on the student's own function
    X = _cka_cases()[0][1]
    if not _close(as_number(call(fn, X.clone(), X.clone(), what=name), name), 1.0):
        return mistake("CKA(X, X) is not 1", "with the normalisation, a representation compared with itself gives 1")
    return passed(f"{name} matches linear CKA on 3 cases (equal and different widths, a rotated and "
                  "rescaled copy gives 1), leaves its inputs unchanged")


# ======================================================================= exercise 2: Freeze selector
def _layers_of(model) -> int:
    return len(model.blocks)


def reference_freeze_select(model, layers: int, modules) -> None:
    """The reference solution: train ``modules`` of the last ``layers`` blocks and the task head."""
    modules = (modules,) if isinstance(modules, str) else tuple(modules)
    model.requires_grad_(False)
    n = len(model.blocks)
    for block in list(model.blocks)[n - layers:] if layers > 0 else []:
        parts = {"attn": [block.attn], "ffn": [block.ffn], "norm": [block.ln1, block.ln2]}
        for module in modules:
            for part in parts[module]:
                part.requires_grad_(True)
    if model.head is not None:
        model.head.requires_grad_(True)


def _target_model(n_layers: int, seed: int):
    """A small target model (sequence head) built without touching the global random state."""
    import minift

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = minift.ModelConfig(vocab_size=24, d_model=8, n_layers=n_layers, n_heads=2, max_len=8)
        source = minift.Transformer(config)
        return minift.make_target_model(source, task="sequence", num_classes=3, seed=seed)


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _expected(model, layers, modules) -> set[str]:
    reference = copy.deepcopy(model)
    reference_freeze_select(reference, layers, modules)
    return _trainable(reference)


def _freeze_cases():
    """(n_layers, layers, modules, start): start "trainable" (after make_target_model) or "frozen"."""
    return [(4, 2, ("ffn",), "trainable"), (3, 1, ("ffn",), "trainable"), (4, 1, ("attn",), "trainable"),
            (4, 3, ("ffn", "norm"), "frozen"), (3, 2, ("attn", "ffn"), "trainable"), (4, 0, ("ffn",), "trainable"),
            (3, 3, ("ffn",), "frozen")]


def _describe(layers, modules, n_layers) -> str:
    return f"freeze_select(model, layers={layers}, modules={modules}) on a {n_layers}-layer model"


def _groups(names: set[str]) -> list[str]:
    """Readable names: "blocks.2.ffn", "head", "tok_emb" ... for a set of parameter names."""
    out = set()
    for name in names:
        parts = name.split(".")
        out.add(".".join(parts[:3]) if parts[0] == "blocks" else parts[0])
    return sorted(out)


def _name_freeze_mistake(model, layers, modules, got: set[str], want: set[str], case: str) -> Verdict:
    n = _layers_of(model)
    extra, missing = got - want, want - got
    head = {name for name, _ in model.named_parameters() if name.startswith("head.")}

    def same_as(other_layers=None, other_modules=None, first=False, whole_blocks=False, head_on=True):
        probe = copy.deepcopy(model)
        probe.requires_grad_(False)
        chosen = range(0, other_layers) if first else range(n - other_layers, n) if other_layers > 0 else []
        for i in chosen:
            block = probe.blocks[i]
            if whole_blocks:
                block.requires_grad_(True)
                continue
            parts = {"attn": [block.attn], "ffn": [block.ffn], "norm": [block.ln1, block.ln2]}
            for module in other_modules:
                for part in parts[module]:
                    part.requires_grad_(True)
        if head_on and probe.head is not None:
            probe.head.requires_grad_(True)
        return _trainable(probe) == got

    if layers > 0 and not got - head:
        return mistake(f"{case}: {'only the head is' if got else 'nothing is'} trainable; the chosen modules "
                       "were never switched on", "after freezing everything, set requires_grad_(True) on the "
                       "chosen modules of the chosen blocks (the model may arrive frozen)")
    if missing and missing <= head and not extra:
        return mistake(f"{case}: the task head is frozen", "the new head did not exist in the source model, so "
                       "it must train under every method: model.head.requires_grad_(True)")
    if layers > 0 and layers < n and same_as(layers, modules, first=True):
        return mistake(f"{case}: you selected the FIRST {layers} layer(s) instead of the last {layers}",
                       "Freeze trains the top of the network: blocks n_layers - N ... n_layers - 1, "
                       "i.e. model.blocks[len(model.blocks) - N:]")
    if layers == 0 and same_as(n, modules):
        return mistake(f"{case}: with layers=0 you trained every block: model.blocks[-0:] is the WHOLE list, "
                       "not an empty one", "use model.blocks[len(model.blocks) - N:], or handle N = 0 "
                       "(only the head trains) separately")
    for other in (layers - 1, layers + 1):
        if 0 <= other <= n and other != layers and same_as(other, modules):
            return mistake(f"{case}: you trained the last {other} layer(s) instead of the last {layers} "
                           "(off by one)", "the last N blocks are model.blocks[n_layers - N:]; with N = 0 "
                           "only the head trains")
    if "norm" not in modules and same_as(layers, tuple(modules) + ("norm",)):
        return mistake(f"{case}: the LayerNorms (ln1, ln2) of the chosen blocks are trainable although "
                       f"modules={modules} does not ask for them", "switch on only the parts you were asked "
                       "for: block.ffn, block.attn, and (only with 'norm') block.ln1 and block.ln2")
    if same_as(layers, modules, whole_blocks=True):
        return mistake(f"{case}: you made the whole blocks trainable (attention, FFN and LayerNorms) instead "
                       f"of only {modules}", "look at modules: 'ffn' means block.ffn only")
    if not same_as(layers, modules) and any(same_as(layers, (m,)) for m in SELECTABLE):
        return mistake(f"{case}: you ignored the modules argument: a different part of the blocks trains "
                       f"than the asked {modules}", "map each name to its part: 'attn' -> block.attn, "
                       "'ffn' -> block.ffn, 'norm' -> block.ln1 and block.ln2")
    if extra and all(name.startswith("ln_f.") for name in extra):
        return mistake(f"{case}: the final LayerNorm ln_f is trainable", "ln_f belongs to no block: it stays "
                       "frozen; 'norm' means the chosen blocks' ln1 and ln2 only")
    if extra:
        return mistake(f"{case}: parameters outside the chosen ones are still trainable: "
                       f"{', '.join(_groups(extra))}", "freeze everything first (model.requires_grad_(False)), "
                       "then switch on the chosen parts and the head")
    return mistake(f"{case}: these should train but are frozen: {', '.join(_groups(missing))}",
                   "switch on the chosen modules of the last N blocks and the head")


@checker
def check_freeze_select(fn) -> Verdict:
    """fn(model, layers, modules): trains only ``modules`` of the last ``layers`` blocks and the head."""
    name = name_of(fn)
    for seed, (n_layers, layers, modules, start) in enumerate(_freeze_cases()):
        model = _target_model(n_layers, seed)
        if start == "frozen":
            model.requires_grad_(False)
            model.eval()                      # and in eval mode: a selector that calls model.train() is caught
        weights = state_copy(model)
        modes = [m.training for m in model.modules()]
        names_before = [n for n, _ in model.named_parameters()]
        want = _expected(model, layers, modules)
        case = _describe(layers, modules, n_layers) + (" (the model arrived frozen)" if start == "frozen" else "")
        call(fn, model, layers, modules, what=name)
        if [n for n, _ in model.named_parameters()] != names_before:
            return mistake(f"{case}: the model's parameters changed (some were added, removed or replaced)",
                           "only switch requires_grad on and off; do not replace modules")
        if not same_state(weights, model):
            return mistake(f"{case}: the weights changed", "selecting what trains must not change any value")
        if [m.training for m in model.modules()] != modes:
            return mistake(f"{case}: the model's train/eval mode changed (model.train() or model.eval() was called)",
                           "choosing what trains is requires_grad only; train/eval mode switches dropout, which "
                           "the training loop sets itself")
        got = _trainable(model)
        if got != want:
            return _name_freeze_mistake(model, layers, modules, got, want, case)
    return passed(f"{name} trains exactly the chosen modules of the last N layers plus the head, on "
                  f"{len(_freeze_cases())} cases (N = 0 to all layers, ffn / attn / norm, from a trainable "
                  "and from a frozen model)")


__all__ = ["check_linear_cka", "check_freeze_select", "reference_linear_cka", "reference_freeze_select"]
