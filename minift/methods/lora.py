"""LoRA: low-rank adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models").

The pre-trained weight W0 (out x in) stays frozen; only a low-rank update is learned next to it:

    h = W0 x + dW x,     dW = (alpha / r) * B A,     A: r x in (random),  B: out x r (zeros)

Because B starts at zero, dW = 0 and the adapted model starts exactly at the pre-trained one. After
training, dW can be added into W0 ("merge"), so inference costs nothing extra; subtracting it again
("unmerge") gives the base model back.

    lora.apply(model, r=8, alpha=16, targets=("q", "v"))    # adapt W_q and W_v of every layer
    minift.fit(model, ...)                                    # trains A, B (and the task head)
    lora.save(model, "adapter.safetensors")                   # a few KB: A and B only
    lora.merge(model)                                         # W0 <- W0 + dW, for inference
    lora.remove(model)                                        # the plain base model again

This file is the method itself: ``LoRALinear`` (one adapter around one nn.Linear; the chapter-04
exercise's ``MyLoRALinear`` has the same constructor and attributes, and ``apply(..., layer=MyLoRALinear)``
puts a hand-written layer into a model) and apply / merge / unmerge / remove / delta_weight.
Several named adapters on one frozen model (add, use, save, load) sit on top, in lora_adapters.py;
their functions are re-exported here, so ``lora.save``, ``lora.use`` ... work as well.

What apply freezes: every pre-trained weight, the wrapped linears' weights and biases included
(``freeze.freeze_all_but_head``). The task head stays trainable, and what an earlier method added (a
prefix, a prompt) keeps its state, so LoRA combines with them. Then the new A and B are made trainable.

Two rules that keep mistakes from passing silently:

* A new LoRA layer takes the train/eval mode of the linear it wraps: LoRA dropout stays off in a model
  that is in eval mode (e.g. straight from ``load_source_model``), as every other dropout does.
* A merged adapter does not train: its dW sits inside base.weight, forward skips the branch, and A, B
  would get no gradient. A forward pass in training mode with gradients on, through a merged layer
  whose A or B is trainable, raises RuntimeError: unmerge first (or, for inference, use model.eval()
  or torch.no_grad()).
"""

from __future__ import annotations

import contextlib
import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model import TARGETS, target_linear, target_parent, target_shape
from ..validate import choice, choices, int_in_range, positive_int, positive_number, probability
from .freeze import freeze_all_but_head

INITS = ("gaussian", "kaiming")


class LoRALinear(nn.Module):
    """A frozen nn.Linear ``base`` plus a trainable low-rank update: base(x) + (alpha / r) B A dropout(x).

    Attributes: base, lora_A (r x in), lora_B (out x r, zeros at the start), r, alpha,
    scaling = alpha / r, dropout (on the LoRA branch's input only: the frozen path is never dropped),
    merged. lora_A and lora_B are None while a layer has no active adapter (lora_adapters.use).
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, init: str = "gaussian"):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.r, self.alpha = positive_int("r", r), positive_number("alpha", alpha)
        self.scaling = self.alpha / self.r
        weight = base.weight
        A = torch.empty(self.r, base.in_features, device=weight.device, dtype=weight.dtype)
        if choice("init", init, INITS) == "gaussian":
            # std 1/sqrt(in): each of the r outputs of A x has about the variance of one input entry,
            # whatever the width (the fan-in rule nn.Linear uses); alpha / r does the rest.
            nn.init.normal_(A, mean=0.0, std=1.0 / math.sqrt(base.in_features))
        else:
            # microsoft/LoRA's choice: nn.Linear's default kaiming-uniform, bound 1/sqrt(in).
            nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        self.lora_A = nn.Parameter(A)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.r, device=A.device, dtype=A.dtype))
        self.dropout = nn.Dropout(probability("dropout", dropout))
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """dW = (alpha / r) B A, shape (out, in) like base.weight."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.lora_A is None:                 # no active adapter: the base linear alone
            return out
        if self.merged:                         # dW is inside base.weight already
            refuse_training_merged(self)
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)

    @torch.no_grad()
    def merge(self) -> None:
        """W0 <- W0 + dW. Merging twice changes nothing."""
        if not self.merged and self.lora_A is not None:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W0 <- W0 - dW: the frozen weight again (up to float rounding). A no-op when not merged."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}, merged={self.merged}" \
            if self.lora_A is not None else "no active adapter"


def refuse_training_merged(layer) -> None:
    """Training through a merged layer would leave A and B without gradient: say so instead."""
    trainable = any(p is not None and p.requires_grad for p in (layer.lora_A, layer.lora_B))
    if layer.training and torch.is_grad_enabled() and trainable:
        raise RuntimeError("this LoRA adapter is merged into the base weight, so training would not update "
                           "A and B (forward skips the LoRA branch). Call lora.unmerge(model) before training; "
                           "for inference use model.eval() or torch.no_grad()")


# ----------------------------------------------------------------------------------------------------
# Finding LoRA layers, checking arguments, building layers

def is_lora_layer(module) -> bool:
    """A LoRALinear, or a hand-written layer with the same public attributes (base, lora_A, ...)."""
    return isinstance(getattr(module, "base", None), nn.Linear) and hasattr(module, "lora_A")


def lora_layers(model) -> list[tuple[str, nn.Module]]:
    """(name in the model, LoRA layer) for every adapted linear, in layer order."""
    return [(name, module) for name, module in model.named_modules() if is_lora_layer(module)]


def check_name(name) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"adapter name must be a non-empty string without '.', got {name!r}")
    return name


def check_layers(layers, n_layers: int) -> tuple[int, ...]:
    """None (every layer) or a list of distinct block indices 0..n_layers-1, returned sorted."""
    if layers is None:
        return tuple(range(n_layers))
    if isinstance(layers, numbers.Integral):
        raise ValueError(f"layers must be a list of layer indices (e.g. [{layers}]) or None for all "
                         f"{n_layers} layers, got the integer {layers}")
    return tuple(sorted(choices("layers", layers, range(n_layers))))


def check_arguments(model, r, alpha, targets, dropout, seed, layer, layers, init, name) -> dict:
    """Every argument of apply(), checked before the model is touched; returns them cleaned up."""
    config = model.config
    targets = choices("targets", targets, TARGETS)
    r = positive_int("r", r)
    for target in targets:
        n_in, n_out = target_shape(config, target)
        if r > min(n_in, n_out):
            raise ValueError(f"LoRA rank r={r} is too large for target {target!r} ({n_out} x {n_in}): "
                             f"allowed 1..{min(n_in, n_out)}")
    if layer is not None and not callable(layer):
        raise TypeError(f"layer= takes the LoRA layer class to use (e.g. MyLoRALinear), got {layer!r}; "
                        "to choose which blocks to adapt, use layers=")
    if layer is not None and init != "gaussian":
        raise ValueError("init= chooses how minift's LoRALinear draws A; a layer= class initialises A itself")
    return dict(r=r, alpha=positive_number("alpha", alpha), targets=targets,
                dropout=probability("dropout", dropout),
                seed=positive_int("seed", seed, allow_none=True, minimum=0),
                layer=layer, layers=check_layers(layers, config.n_layers), init=choice("init", init, INITS),
                name=check_name(name))


@contextlib.contextmanager
def random_stream(seed: int | None, device: torch.device):
    """With a seed: draw from a private random stream and leave the global one as it was.
    Without: draw from the global stream (so torch.manual_seed before apply decides A)."""
    if seed is None:
        yield
        return
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def build_layers(model, args: dict, bases: dict) -> dict:
    """A new LoRA layer for every (block index, target) -> base nn.Linear in ``bases``, with fresh A, B.

    Nothing is put into the model here, so a layer class that fails leaves the model untouched.
    """
    cls, r, alpha, dropout = args["layer"], args["r"], args["alpha"], args["dropout"]
    built = {}
    with random_stream(args["seed"], model.tok_emb.weight.device):
        for (i, target), base in bases.items():        # block by block, q before v: the order A is drawn in
            if cls is None:
                module = LoRALinear(base, r, alpha, dropout=dropout, init=args["init"])
            else:
                module = cls(base, r, alpha, dropout=dropout) if dropout else cls(base, r, alpha)
                check_layer_class(module, cls, base, r)
                module = module.to(base.weight.device)
            built[i, target] = module.train(base.training)   # eval model: no LoRA dropout either
    return built


def check_layer_class(module, cls, base: nn.Linear, r: int) -> None:
    """A hand-written layer must look like LoRALinear: what merge, save and the analysis tools read."""
    name = getattr(cls, "__name__", repr(cls))
    if not isinstance(module, nn.Module) or getattr(module, "base", None) is not base:
        raise TypeError(f"{name}(base, r, alpha) must return an nn.Module that keeps the linear as self.base")
    want = {"lora_A": (r, base.in_features), "lora_B": (base.out_features, r)}
    for attribute, shape in want.items():
        value = getattr(module, attribute, None)
        if not isinstance(value, nn.Parameter) or tuple(value.shape) != shape:
            raise TypeError(f"{name} must have self.{attribute}, an nn.Parameter of shape {shape}; got "
                            f"{tuple(value.shape) if isinstance(value, torch.Tensor) else value!r}")
    for attribute in ("scaling", "merged", "merge", "unmerge"):
        if not hasattr(module, attribute):
            raise TypeError(f"{name} has no {attribute}: LoRA layers need scaling, merged, merge() and unmerge()")


def set_trainable(module, trainable: bool) -> None:
    module.lora_A.requires_grad_(trainable)
    module.lora_B.requires_grad_(trainable)


# ----------------------------------------------------------------------------------------------------
# The public functions

def apply(model, r: int = 8, alpha: float = 16, targets=("q", "v"), dropout: float = 0.0,
          seed: int | None = None, layer=None, layers=None, init: str = "gaussian", name: str = "default"):
    """Wrap the ``targets`` linears of ``layers`` (None: every block) in LoRA layers. Returns the model.

    r, alpha: rank and scale (dW = (alpha / r) B A); dropout: on the LoRA branch's input;
    seed: draw A from a private random stream (same seed, same A; the global random state is left
    untouched); layer: the layer class, any callable (base, r, alpha) -> module with LoRALinear's
    attributes (default LoRALinear); init: "gaussian" or "kaiming" (LoRALinear only); name: the
    adapter's name. Freezes every pre-trained weight (see the module docstring); A and B train.
    On a model that already has an adapter, adds a second one (see lora_adapters.add).
    """
    args = check_arguments(model, r, alpha, targets, dropout, seed, layer, layers, init, name)
    if lora_layers(model):
        return add(model, **args)
    blocks = model.blocks
    built = build_layers(model, args, {(i, t): target_linear(blocks[i], t)
                                       for i in args["layers"] for t in args["targets"]})
    for (i, target), module in built.items():
        setattr(target_parent(blocks[i], target), target, module)
        module.adapter_name = args["name"]
    freeze_all_but_head(model)
    for module in built.values():
        set_trainable(module, True)
    return model


def merge(model):
    """Add each layer's dW into its base weight, for inference. Merging twice is a no-op.

    While merged, forward skips the LoRA branch and A, B get no gradient: unmerge before training on
    (a training step through a merged layer raises, see the module docstring).
    """
    for _, module in lora_layers(model):
        module.merge()
    return model


def unmerge(model):
    """Subtract the merged dW again, restoring the frozen weights. A no-op when nothing is merged."""
    for _, module in lora_layers(model):
        module.unmerge()
    return model


def remove(model, merge: bool = False):
    """Take the LoRA layers out again: every one is replaced by the plain nn.Linear it wraps.

    By default the result is the original base model: a merged adapter is unmerged first, so the
    linears hold W0 again (up to float rounding if they were merged). With ``merge=True`` the active
    adapter is merged in instead, so the plain model computes what the adapted one did (to export it,
    e.g. to_hf_gpt2). Every adapter (named ones too) is dropped. The linears stay frozen, as apply left
    them (full.apply(model) makes everything trainable again). Returns the model.
    """
    for path, module in lora_layers(model):
        module.merge() if merge else module.unmerge()
        parent, _, attribute = path.rpartition(".")
        setattr(model.get_submodule(parent), attribute, module.base)
    return model


@torch.no_grad()
def delta_weight(model, layer: int, target: str, name: str | None = None) -> torch.Tensor:
    """dW = (alpha / r) B A of adapter ``name`` (default: the active one) at blocks[layer].target."""
    n_layers = model.config.n_layers
    layer = int_in_range("layer", layer, 0, n_layers - 1)
    linear = target_linear(model.blocks[layer], choice("target", target, TARGETS))
    if not is_lora_layer(linear):
        raise ValueError(f"blocks.{layer} target {target!r} has no LoRA adapter")
    if name is not None and name != getattr(linear, "adapter_name", None):
        return adapter_delta_weight(linear, name, f"blocks.{layer} target {target!r}")
    if linear.lora_A is None:
        raise ValueError(f"blocks.{layer} target {target!r} has no active LoRA adapter; pass name=")
    return (linear.scaling * (linear.lora_B @ linear.lora_A)).detach().clone()


# Named adapters (several on one model, switching, files) build on this file; re-exported here so that
# lora.add / lora.use / lora.save / lora.load keep working. Imported last: lora_adapters imports this file.
from .lora_adapters import (adapter_config, adapter_delta_weight, adapters, add, load,  # noqa: E402
                            save, use)
# PEFT's adapter folder format (chapter 10), in lora_peft.py.
from .lora_peft import export_peft, import_peft  # noqa: E402

__all__ = ["LoRALinear", "apply", "merge", "unmerge", "remove", "delta_weight", "lora_layers",
           "is_lora_layer", "add", "adapters", "use", "save", "load", "adapter_config", "INITS",
           "export_peft", "import_peft"]
