"""minift.course.checks.ch04_lora: right layers of several styles pass, a stub is "not implemented", and each
typical mistake of a hand-written LoRA layer is named (often two different wrong implementations per mistake).

WRONG and RIGHT are module-level so the same implementations can be run against other checker
versions (they were run against the checkers of HEAD~6 to show which wrong answers those accepted)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.course.checks import ch04_lora as checks_lora
from minift.course.checks.ch04_lora import ReferenceLoRALinear as Ref

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)


def verdict(cls):
    return checks_lora.check_lora_linear(cls, quiet=True)


def test_reference_passes():
    assert verdict(Ref).passed


def test_stub_is_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self, base, r, alpha, dropout=0.0):
            raise NotImplementedError("write your code here")

    class StubMerge(Ref):
        def merge(self):
            raise NotImplementedError("write your code here")

    for cls in (Stub, StubMerge):
        result = checks_lora.check_lora_linear(cls)
        assert result.status == "not implemented", str(result)
    assert "not implemented yet" in capsys.readouterr().out


def test_never_raises():
    class Crashes(nn.Module):
        def __init__(self, base, r, alpha, dropout=0.0):
            {}["oops"]

    class ReturnsNone(Ref):
        def forward(self, x):
            return None

    assert verdict(Crashes).status == "mistake" and "KeyError" in verdict(Crashes).message
    assert verdict(ReturnsNone).status == "mistake"
    assert verdict(42).status == "mistake"


# --- each mistake class, two (or more) ways of making it ----------------------------------------------

class BRandn(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_B = nn.Parameter(torch.randn(base.out_features, r) * 0.01)


class BLikeA(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_B, a=5 ** 0.5)


class BothZero(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_A = nn.Parameter(torch.zeros(r, base.in_features))


class AStdZero(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_A = nn.Parameter(nn.init.normal_(torch.empty(r, base.in_features), std=0.0))


class NoScaling(Ref):
    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


class ScalingOne(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.scaling = r / r


class ScalingAlpha(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.scaling = alpha


class ForwardTimesAlpha(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.alpha = alpha

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.alpha * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)


class Transposed(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_A = nn.Parameter(torch.randn(base.in_features, r) * 0.1)
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.scaling * (self.dropout(x) @ self.lora_A @ self.lora_B)


class NamesSwapped(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.lora_A = nn.Parameter(torch.zeros(base.out_features, r))          # B's shape
        self.lora_B = nn.Parameter(torch.randn(r, base.in_features) * 0.1)      # A's shape

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.scaling * F.linear(F.linear(x, self.lora_B), self.lora_A)


class MergeNoFlag(Ref):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.delta_weight()
        self.merged = True


class MergeFlagNeverSet(Ref):
    """Checks a flag but never sets it (sets a differently named one)."""

    is_merged = False

    @torch.no_grad()
    def merge(self):
        if not self.is_merged:              # checks one flag ...
            self.base.weight += self.delta_weight()
            self.merged = True              # ... but sets another


class UnmergeOnlyFlag(Ref):
    def unmerge(self):
        self.merged = False


class UnmergeAddsAgain(Ref):
    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight += self.delta_weight()
            self.merged = False


class UnmergeNoFlag(Ref):
    @torch.no_grad()
    def unmerge(self):
        self.base.weight -= self.delta_weight()
        self.merged = False


class BaseTrainable(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        for p in self.base.parameters():
            p.requires_grad_(True)


class BiasTrainable(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.base.bias.requires_grad_(True)


class DropoutOnInput(Ref):
    def forward(self, x):
        x = self.dropout(x)
        out = self.base(x)
        return out if self.merged else out + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)


class DropoutOnOutput(Ref):
    def forward(self, x):
        out = self.base(x)
        if not self.merged:
            out = out + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)
        return self.dropout(out)


class BranchAfterMerge(Ref):
    def forward(self, x):
        return self.base(x) + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


class BranchAfterMergeNoFlag(Ref):
    @torch.no_grad()
    def merge(self):
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = "yes"

    def forward(self, x):
        out = self.base(x)
        if self.merged is True:
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


FIRST_WRONG = [
    (BRandn, "B is not zero"), (BLikeA, "B is not zero"),
    (BothZero, "A is zero"), (AStdZero, "A is zero"),
    (NoScaling, "scaling is missing"), (ScalingOne, "scaling is missing"),
    (ScalingAlpha, "alpha instead of alpha / r"), (ForwardTimesAlpha, "alpha instead of alpha / r"),
    (Transposed, "shapes are transposed"), (NamesSwapped, "shapes are swapped"),
    (MergeNoFlag, "merging twice"), (MergeFlagNeverSet, "merging twice"),
    (UnmergeOnlyFlag, "unmerge does not restore W0"), (UnmergeAddsAgain, "unmerge does not restore W0"),
    (UnmergeNoFlag, "unmerge does not restore W0"),
    (BaseTrainable, "base layer is trainable"), (BiasTrainable, "base layer is trainable"),
    (DropoutOnInput, "dropout is applied to the base path"), (DropoutOnOutput, "dropout is applied to the base path"),
    (BranchAfterMerge, "dW is counted twice"), (BranchAfterMergeNoFlag, "dW is counted twice"),
]


@pytest.mark.parametrize("cls, fragment", FIRST_WRONG, ids=lambda x: getattr(x, "__name__", None))
def test_mistake_is_named(cls, fragment):
    result = verdict(cls)
    assert result.status == "mistake", f"{cls.__name__}: {result}"
    assert fragment in result.message, f"{cls.__name__}: {result}"
    assert result.hint


# --- more right styles ---------------------------------------------------------------------------------

class Kaiming(nn.Module):
    """kaiming init, scaling computed on the fly, a differently named flag, @ instead of F.linear."""

    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base, self.r, self.alpha, self.is_merged = base, r, alpha, False
        base.weight.requires_grad_(False)
        base.bias.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.base(x)
        if not self.is_merged:
            y = y + (self.drop(x) @ self.lora_A.T @ self.lora_B.T) * (self.alpha / self.r)
        return y

    def merge(self):
        if not self.is_merged:
            with torch.no_grad():
                self.base.weight.add_(self.lora_B @ self.lora_A, alpha=self.alpha / self.r)
            self.is_merged = True

    def unmerge(self):
        if self.is_merged:
            with torch.no_grad():
                self.base.weight.sub_(self.lora_B @ self.lora_A, alpha=self.alpha / self.r)
            self.is_merged = False


class RankOneLoop(nn.Module):
    """The update as a loop over r rank-one terms, F.dropout with self.training, .data for the merge."""

    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base, self.r, self.p = base, r, dropout
        self.base.requires_grad_(False)
        self.scale = float(alpha) / float(r)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) * 0.01)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.merged = False

    def delta(self):
        return sum(torch.outer(self.lora_B[:, k], self.lora_A[k]) for k in range(self.r)) * self.scale

    def forward(self, x):
        if self.merged:
            return self.base(x)
        dropped = F.dropout(x, self.p, training=self.training)
        return self.base(x) + F.linear(dropped, self.delta())

    def merge(self):
        if not self.merged:
            self.base.weight.data += self.delta().detach()
            self.merged = True

    def unmerge(self):
        if self.merged:
            self.base.weight.data -= self.delta().detach()
            self.merged = False


RIGHT = {"check_lora_linear": [Ref, Kaiming, RankOneLoop]}


@pytest.mark.parametrize("cls", RIGHT["check_lora_linear"], ids=lambda c: c.__name__)
def test_right_layers_of_any_style_pass(cls):
    result = verdict(cls)
    assert result.passed, f"{cls.__name__}: {result}"


def test_configs_cover_shapes_and_fractional_scalings():
    assert len({(i, o) for i, o, _, _ in checks_lora.CONFIGS}) >= 3
    assert any(alpha // r != alpha / r for _, _, r, alpha in checks_lora.CONFIGS)
    assert len({alpha / r for _, _, r, alpha in checks_lora.CONFIGS}) == len(checks_lora.CONFIGS)


# --- more wrong layers ---------------------------------------------------------------------------------

class IntegerDivision(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.scaling = alpha // r


class MergeWithoutNoGrad(Ref):
    def merge(self):
        if not self.merged:
            self.base.weight.add_(self.delta_weight())    # autograd records it: the weight now requires grad
            self.merged = True


class MergeAugmentedWithoutNoGrad(Ref):
    def merge(self):
        if not self.merged:
            self.base.weight += self.delta_weight()       # torch refuses: a non-leaf tensor as a parameter
            self.merged = True


class MergeNewParameter(Ref):
    def merge(self):
        if not self.merged:
            self.base.weight = nn.Parameter(self.base.weight + self.delta_weight().detach())
            self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


class DropoutAlsoInEval(Ref):
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        dropped = F.dropout(x, self.dropout.p, training=True)        # ignores eval()
        return out + self.scaling * F.linear(F.linear(dropped, self.lora_A), self.lora_B)


class DropoutIgnored(Ref):
    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)


class DropoutInPlace(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.dropout = nn.Dropout(dropout, inplace=True)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


class DropoutAfterB(Ref):
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.dropout(self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B))


class ReinitialisesBase(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        nn.init.kaiming_uniform_(base.weight)            # "initialise the layer"
        super().__init__(base, r, alpha, dropout)


class RSLoRA(Ref):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout)
        self.scaling = alpha / r ** 0.5


MORE_WRONG = [
    (IntegerDivision, "integer division"),
    (MergeWithoutNoGrad, "base.weight requires grad"),
    (MergeAugmentedWithoutNoGrad, "without torch.no_grad()"),
    (MergeNewParameter, "base.weight requires grad"),
    (DropoutAlsoInEval, "still active after model.eval()"),
    (DropoutIgnored, "dropout is never applied"),
    (DropoutInPlace, "changed its input x in place"),
    (DropoutAfterB, "branch's output"),
    (ReinitialisesBase, "changed the pre-trained weights"),
    (RSLoRA, "alpha / sqrt(r)"),
]


@pytest.mark.parametrize("cls, fragment", MORE_WRONG, ids=lambda x: getattr(x, "__name__", None))
def test_more_mistakes_are_named(cls, fragment):
    result = verdict(cls)
    assert result.status == "mistake", f"{cls.__name__}: {result}"
    assert fragment in result.message, f"{cls.__name__}: {result}"
    assert result.hint


WRONG = {"check_lora_linear": FIRST_WRONG + MORE_WRONG}
