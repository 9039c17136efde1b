"""Checkers for chapter 04 (LoRA in practice): write a LoRA linear layer yourself.

    from minift.course.checks import ch04_lora as checks
    checks.check_lora_linear(MyLoRALinear)
    ✅ passed: MyLoRALinear starts at the base layer, scales by alpha / r, merges and unmerges exactly

The class under test follows the interface the exercise describes::

    class MyLoRALinear(nn.Module):
        def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0): ...
            # self.base (frozen), self.lora_A (r x in), self.lora_B (out x r), nn.Parameters
        def forward(self, x): ...       # base(x) + (alpha / r) * B A dropout(x)   (unless merged)
        def merge(self): ...            # base.weight += dW, once; a second merge changes nothing
        def unmerge(self): ...          # base.weight -= dW, back to W0

The checker builds the layer on a small nn.Linear (in 12, out 7) and names the usual mistakes: B not zero
at initialisation, A zero, A and B shapes swapped, scaling missing or alpha used instead of alpha / r,
base layer still trainable, dropout on the frozen path, merge applied twice, forward adding the branch on
top of a merged weight, unmerge that does not restore W0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .framework import Rejected, Verdict, _StudentRaised, call, checker, mistake, passed, snapshot, changed
from .helpers import seeded

# (in_features, out_features, r, alpha): several shapes, and alpha / r never a whole number (8 / 3,
# 6 / 4), so alpha // r, alpha, r, 1 and r / alpha all give other numbers than alpha / r
CONFIGS = ((12, 7, 3, 8), (6, 10, 4, 6.0), (9, 9, 2, 16))
IN_FEATURES, OUT_FEATURES, RANK, ALPHA = CONFIGS[0]
ATOL = 1e-5
DROPOUT = 0.5


def _base_linear(seed: int = 0, in_features: int = IN_FEATURES, out_features: int = OUT_FEATURES) -> nn.Linear:
    """A fixed "pre-trained" linear layer, built without touching the global random state."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        linear = nn.Linear(in_features, out_features)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(out_features, in_features, generator=generator) * 0.3)
        linear.bias.copy_(torch.randn(out_features, generator=generator) * 0.1)
    return linear


def _inputs(seed: int = 1, in_features: int = IN_FEATURES) -> torch.Tensor:
    return torch.randn(5, 4, in_features, generator=torch.Generator().manual_seed(seed))


class ReferenceLoRALinear(nn.Module):
    """The reference solution: what the checker compares with (and what the tests start from)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        return self.scaling * self.lora_B @ self.lora_A

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)

    @torch.no_grad()
    def merge(self):
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


def _tensor(layer, attribute: str):
    value = getattr(layer, attribute, None)
    if isinstance(value, nn.Parameter):
        return value
    if isinstance(value, torch.Tensor):
        raise Rejected(mistake(f"self.{attribute} is a plain tensor, not an nn.Parameter",
                               f"wrap it: self.{attribute} = nn.Parameter(...), so the optimizer sees it"))
    raise Rejected(mistake(f"the layer has no attribute {attribute} (an nn.Parameter)",
                           "store the factors as self.lora_A (r x in_features) and self.lora_B (out_features x r)"))


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def _forward(layer, x, what):
    """layer(x), rejected when it is not a tensor or when forward changed x in place."""
    before = snapshot(x)
    out = call(layer, x, what=what)
    if changed(before, x):
        raise Rejected(mistake("forward changed its input x in place (an in-place dropout, or x *= ...)",
                               "the caller still needs x, and the frozen path must see it unchanged: use "
                               "nn.Dropout(p) (not inplace=True) and out-of-place operations"))
    if not isinstance(out, torch.Tensor):
        raise Rejected(mistake(f"forward returned {type(out).__name__}, expected a tensor",
                               "return base(x) + scaling * (x A^T) B^T as a tensor"))
    return out


_Wrong = Rejected      # the old name


def _build(cls, base, r, alpha, dropout=0.0):
    label = getattr(cls, "__name__", cls)
    layer = call(cls, base, r, alpha, dropout=dropout, what=f"{label}(base, r, alpha)")
    if not isinstance(layer, nn.Module):
        raise Rejected(mistake(f"{label}(...) is not an nn.Module",
                               "write `class MyLoRALinear(nn.Module)` and call super().__init__() first"))
    if not isinstance(getattr(layer, "base", None), nn.Linear):
        raise Rejected(mistake("the layer has no self.base (the frozen nn.Linear it wraps)",
                               "keep the linear you are given: self.base = base"))
    return layer


@checker
def check_lora_linear(cls) -> Verdict:
    """cls(base, r, alpha, dropout=0.0): a LoRA layer around ``base`` with lora_A, lora_B, forward,
    merge() and unmerge(). Runs every property on three shapes and (r, alpha) pairs: 12 -> 7 with
    r = 3, alpha = 8; 6 -> 10 with r = 4, alpha = 6.0; 9 -> 9 with r = 2, alpha = 16."""
    name = getattr(cls, "__name__", type(cls).__name__)
    for config in CONFIGS:
        verdict = _check(cls, name, *config)
        if verdict is not None:
            return verdict
    return passed(f"{name} starts at the base layer (A random, B zero), keeps the base frozen (before and after "
                  "merge), scales by alpha / r, applies dropout to the LoRA branch's input in train mode only, "
                  "and merges / unmerges exactly (twice is a no-op); tried (r, alpha) = (3, 8), (4, 6.0), (2, 16) "
                  "on three shapes")


def _check(cls, name, in_features, out_features, r, alpha) -> Verdict | None:
    """None if the layer behaves right for this shape and (r, alpha), else the first mistake found."""
    scaling = alpha / r
    where = f" (in_features={in_features}, out_features={out_features}, r={r}, alpha={alpha})"
    base = _base_linear(0, in_features, out_features)
    W0, b0 = base.weight.detach().clone(), base.bias.detach().clone()
    layer = _build(cls, base, r, alpha)
    x = _inputs(1, in_features)
    A, B = _tensor(layer, "lora_A"), _tensor(layer, "lora_B")
    if not (torch.equal(layer.base.weight.detach(), W0) and torch.equal(layer.base.bias.detach(), b0)):
        return mistake("building the layer changed the pre-trained weights of base",
                       "leave base.weight and base.bias as they are; only create A and B")

    # shapes: A is r x in, B is out x r (PyTorch's (out, in) convention, as for base.weight)
    want_A, want_B = (r, in_features), (out_features, r)
    got_A, got_B = tuple(A.shape), tuple(B.shape)
    if (got_A, got_B) != (want_A, want_B):
        if (got_A, got_B) == ((in_features, r), (r, out_features)):
            return mistake(f"A and B shapes are transposed: A is {got_A} and B is {got_B}, expected A {want_A} "
                           f"and B {want_B}{where}", "follow nn.Linear's (out, in) convention: A = r x in_features, "
                           "B = out_features x r, so dW = B @ A has base.weight's shape")
        if (got_A, got_B) == ((out_features, r), (r, in_features)):
            return mistake(f"A and B shapes are swapped: A is {got_A} and B is {got_B}, expected A {want_A} "
                           f"and B {want_B}{where}", "A reads the input (r x in_features); B writes the output "
                           "(out_features x r)")
        return mistake(f"wrong shapes: A is {got_A} and B is {got_B}, expected A {want_A} and B {want_B}{where}",
                       "A = r x in_features, B = out_features x r")

    # the frozen layer must stay frozen
    trainable_base = [n for n, p in layer.base.named_parameters() if p.requires_grad]
    if trainable_base:
        return mistake(f"the base layer is trainable (base.{', base.'.join(trainable_base)} has requires_grad=True)",
                       "freeze the pre-trained layer: for p in self.base.parameters(): p.requires_grad_(False)")
    if not (A.requires_grad and B.requires_grad):
        return mistake("lora_A or lora_B is not trainable (requires_grad=False)",
                       "A and B are the only parameters LoRA trains")

    # initialisation: A random, B zero
    if not A.detach().any():
        return mistake("A is zero at initialisation: with A = 0 and B = 0 neither gets a gradient "
                       "(no learning signal), so the adapter never learns",
                       "initialise A randomly (e.g. torch.randn(r, in) / sqrt(in), or kaiming-uniform) "
                       "and only B with zeros")
    if B.detach().any():
        return mistake("B is not zero at initialisation, so dW = BA != 0 and the adapted layer does not start "
                       "at the pre-trained one", "initialise B with zeros: nn.Parameter(torch.zeros(out, r))")

    layer.train()
    with torch.no_grad():
        expected0 = F.linear(x, W0, b0)
        out0 = _forward(layer, x, f"{name}.forward")
    if tuple(out0.shape) != (5, 4, out_features):
        return mistake(f"forward returned shape {tuple(out0.shape)} for an input of shape {tuple(x.shape)}, "
                       f"expected (5, 4, {out_features})", "compute x A^T first (r features), then B: "
                       "F.linear(F.linear(x, A), B)")
    if not _close(out0, expected0):
        return mistake("at initialisation the output differs from the base layer's although B = 0",
                       "forward must be base(x) + scaling * B A x; with B = 0 that is exactly base(x)")

    # dropout belongs to the LoRA branch only: with B = 0 and dropout on, train-mode output = base(x)
    dropout_layer = _build(cls, _base_linear(0, in_features, out_features), r, alpha, dropout=DROPOUT)
    dropout_layer.train()
    with torch.no_grad():
        out_dropout = _forward(dropout_layer, x, f"{name}.forward (dropout={DROPOUT}, train mode)")
    if not _close(out_dropout, expected0):
        return mistake(f"dropout is applied to the base path: in train mode with dropout={DROPOUT} and B = 0 the "
                       "output is not base(x)", "apply dropout only to the input of the LoRA branch: "
                       "base(x) + scaling * B A dropout(x); the frozen path must stay untouched")

    # scaling: give B values, compare with base(x) + (alpha / r) B A x
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        B.copy_(torch.randn(B.shape, generator=generator) * 0.5)
    A_now, B_now = A.detach().clone(), B.detach().clone()
    branch = F.linear(F.linear(x, A_now), B_now)
    with torch.no_grad():
        out = _forward(layer, x, f"{name}.forward")
    if not _close(out, expected0 + scaling * branch):
        for factor, message, hint in (
                (alpha // r, f"used integer division: alpha // r = {alpha // r} instead of alpha / r = {scaling:.4g}",
                 "write alpha / r (true division); // rounds down"),
                (1.0, "the scaling is missing: forward adds B A x without the factor alpha / r",
                 "multiply the LoRA branch by self.scaling = alpha / r"),
                (alpha, "used alpha instead of alpha / r as the scaling",
                 "the factor is alpha / r, so that changing r does not change the size of the update as much"),
                (r / alpha, "the scaling is inverted: r / alpha instead of alpha / r", "scaling = alpha / r"),
                (float(r), "used r instead of alpha / r as the scaling", "scaling = alpha / r"),
                (alpha / r ** 0.5, "used alpha / sqrt(r) (rsLoRA) instead of alpha / r",
                 "this exercise follows the LoRA paper: scaling = alpha / r")):
            if factor != scaling and _close(out, expected0 + factor * branch):
                return mistake(message + where, hint)
        if in_features == out_features and _close(out, expected0 + scaling * F.linear(F.linear(x, B_now.T), A_now.T)):
            return mistake("forward multiplies in the wrong order (x B^T A^T)",
                           "first A, then B: F.linear(F.linear(x, A), B)")
        return mistake(f"with non-zero B the output is not base(x) + (alpha / r) B A x{where}",
                       "forward = self.base(x) + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)")

    # dropout: only in train mode, only on the branch's input
    with torch.no_grad():
        dropout_layer.lora_A.copy_(A_now) if dropout_layer.lora_A.shape == A_now.shape else None
        dropout_layer.lora_B.copy_(B_now) if dropout_layer.lora_B.shape == B_now.shape else None
        no_dropout = expected0 + scaling * F.linear(F.linear(x, dropout_layer.lora_A), dropout_layer.lora_B)
        dropout_layer.eval()
        out_eval = _forward(dropout_layer, x, f"{name}.forward (dropout={DROPOUT}, eval mode)")
        if not _close(out_eval, no_dropout):
            return mistake(f"in eval mode (dropout={DROPOUT}) the output is not base(x) + (alpha / r) B A x: dropout "
                           "is still active after model.eval()", "use nn.Dropout(p) (it switches itself off in "
                           "eval mode) or F.dropout(x, p, training=self.training)")
        dropout_layer.train()
        out_train = seeded(5, _forward, dropout_layer, x, f"{name}.forward (dropout={DROPOUT}, train mode)")
        if _close(out_train, no_dropout):
            return mistake(f"dropout is never applied: in train mode with dropout={DROPOUT} the LoRA branch sees the "
                           "whole input", "store nn.Dropout(dropout) in __init__ and use it on x in the branch: "
                           "B A dropout(x)")
        on_output = seeded(5, lambda: expected0 + F.dropout(scaling * F.linear(F.linear(x, dropout_layer.lora_A),
                                                                               dropout_layer.lora_B), DROPOUT))
        on_input = seeded(5, lambda: expected0 + scaling * F.linear(F.linear(F.dropout(x, DROPOUT),
                                                                             dropout_layer.lora_A), dropout_layer.lora_B))
        if _close(out_train, on_output) and not _close(out_train, on_input):
            return mistake("dropout is applied to the LoRA branch's output (after B), not to its input",
                           "LoRA drops input features of the branch: B A dropout(x)")

    # merge: W0 + dW in base.weight, same outputs, and merging twice changes nothing
    delta = scaling * B_now @ A_now
    try:
        call(layer.merge, what=f"{name}.merge")
    except _StudentRaised as raised:
        if "leaf" in str(raised.error):
            return mistake(f"merge() failed ({raised.error}): it ran under autograd, without torch.no_grad()",
                           "wrap the update in `with torch.no_grad():` (or decorate merge with @torch.no_grad())")
        raise
    weight = layer.base.weight
    if weight.requires_grad or weight.grad_fn is not None:
        return mistake("after merge(), base.weight requires grad: merge ran under autograd (no torch.no_grad()) "
                       "or put a new trainable nn.Parameter in base, so the frozen weight would now train",
                       "wrap the update in `with torch.no_grad():` and change base.weight in place "
                       "(self.base.weight += ...)")
    merged_weight = weight.detach().clone()
    if _close(merged_weight, W0):
        return mistake("merge() did not change base.weight", "merge adds dW = scaling * B @ A into "
                       "self.base.weight (in place, under torch.no_grad())")
    if not _close(merged_weight, W0 + delta):
        if _close(merged_weight, W0 + delta / scaling):
            return mistake("merge() adds B @ A without the scaling alpha / r", "add self.scaling * B @ A")
        if _close(merged_weight, W0 + (alpha // r) * B_now @ A_now):
            return mistake(f"merge() used integer division: alpha // r = {alpha // r} instead of alpha / r{where}",
                           "write alpha / r (true division)")
        return mistake("after merge(), base.weight is not W0 + (alpha / r) B A", "base.weight += scaling * B @ A")
    with torch.no_grad():
        out_merged = _forward(layer, x, f"{name}.forward after merge")
    if _close(out_merged, expected0 + 2 * scaling * branch):
        return mistake("after merge(), forward still adds the LoRA branch: dW is counted twice",
                       "remember that the layer is merged (e.g. self.merged = True) and skip the branch then")
    if not _close(out_merged, out):
        return mistake("merged outputs differ from unmerged outputs", "after merge, forward = base(x) only")
    call(layer.merge, what=f"{name}.merge (second call)")
    if not _close(layer.base.weight.detach(), merged_weight):
        return mistake("merge is not idempotent: merging twice adds dW twice",
                       "keep a flag (self.merged) and make merge() do nothing when it is already set")

    # unmerge: back to W0 and to the unmerged outputs; twice is a no-op
    call(layer.unmerge, what=f"{name}.unmerge")
    if layer.base.weight.requires_grad or layer.base.weight.grad_fn is not None:
        return mistake("after unmerge(), base.weight requires grad: unmerge ran under autograd (no torch.no_grad())",
                       "wrap the update in `with torch.no_grad():`")
    if not _close(layer.base.weight.detach(), W0):
        if _close(layer.base.weight.detach(), merged_weight):
            return mistake("unmerge does not restore W0: base.weight still holds W0 + dW",
                           "subtract what merge added: base.weight -= scaling * B @ A")
        return mistake("unmerge does not restore W0: base.weight is neither W0 nor W0 + dW",
                       "subtract exactly what merge added: base.weight -= scaling * B @ A")
    with torch.no_grad():
        out_unmerged = _forward(layer, x, f"{name}.forward after unmerge")
    if not _close(out_unmerged, out):
        return mistake("after unmerge(), forward no longer adds the LoRA branch",
                       "reset the flag in unmerge (self.merged = False) so forward adds B A x again")
    call(layer.unmerge, what=f"{name}.unmerge (second call)")
    if not _close(layer.base.weight.detach(), W0):
        return mistake("unmerge does not restore W0 when called twice: it subtracted dW again",
                       "make unmerge() do nothing when the layer is not merged")

    # training: only A and B get gradients (B on step 0 when B = 0 is covered by the init checks)
    layer.zero_grad(set_to_none=True)
    loss = _forward(layer, x, f"{name}.forward").pow(2).mean()
    call(loss.backward, what="loss.backward() through your layer")
    if A.grad is None or B.grad is None or not (A.grad.any() and B.grad.any()):
        return mistake("A or B gets no gradient through forward",
                       "use self.lora_A and self.lora_B themselves in forward (not a detached copy)")
    if any(p.grad is not None for p in layer.base.parameters()):
        return mistake("the frozen base layer received a gradient", "freeze base: requires_grad_(False)")
    return None


__all__ = ["check_lora_linear", "ReferenceLoRALinear"]
