"""LoRA: low-rank adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models").

The pre-trained weight W0 (out x in) stays frozen; only a low-rank update is learned next to it:

    h = W0 x + dW x,     dW = (alpha / r) * B A,     A: r x in (random),  B: out x r (zeros)

Because B starts at zero, dW = 0 and the adapted model starts exactly at the pre-trained one. After
training, dW can be added into W0 ("merge"), so inference costs nothing extra; subtracting it again
("unmerge") gives the base model back, and several adapters can share one frozen model.

    lora.apply(model, r=8, alpha=16, targets=("q", "v"))    # adapt W_q and W_v of every layer
    minift.fit(model, ...)                                    # trains A, B (and the task head)
    lora.save(model, "adapter.safetensors")                   # a few KB: A and B only
    lora.merge(model)                                         # W0 <- W0 + dW, for inference
"""

from __future__ import annotations

import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..files import atomic_path
from .freeze import freeze_all_but_head

TARGETS = ("q", "k", "v", "o", "w1", "w2")        # q, k, v, o in block.attn; w1, w2 in block.ffn
INITS = ("gaussian", "kaiming")
FILE_FORMAT = "minift-lora-v1"


class LoRALinear(nn.Module):
    """A frozen nn.Linear (``base``) plus one or more named low-rank branches; one is active.

    forward(x) = base(x) + scaling * B (A dropout(x)) for the active adapter. Dropout touches the LoRA
    branch only, never the frozen path. After merge() the active adapter's dW lives inside
    base.weight and the branch is skipped, so the output is the same but costs one matmul.
    """

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.lora_A = nn.ParameterDict()        # name -> (r, in)
        self.lora_B = nn.ParameterDict()        # name -> (out, r)
        self.lora_dropout = nn.ModuleDict()     # name -> nn.Dropout (identity when p = 0)
        self.rank: dict[str, int] = {}
        self.alpha: dict[str, float] = {}
        self.active: str | None = None          # the adapter forward() uses (None: base only)
        self.merged: str | None = None          # the adapter currently added into base.weight

    # The frozen weight and bias, so code that reads linear.weight keeps working on adapted layers.
    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def scaling(self, name: str) -> float:
        return self.alpha[name] / self.rank[name]

    def add_adapter(self, name: str, r: int, alpha: float, dropout: float, init: str) -> None:
        """Create A (random) and B (zeros) for a new adapter ``name``."""
        A = torch.empty(r, self.in_features, device=self.base.weight.device, dtype=self.base.weight.dtype)
        if init == "gaussian":
            # std = 1/sqrt(in): each of the r outputs of A x then has about the variance of one input
            # entry, whatever the width (the fan-in rule nn.Linear itself uses); alpha/r does the rest.
            nn.init.normal_(A, mean=0.0, std=1.0 / math.sqrt(self.in_features))
        else:
            # microsoft/LoRA's choice: nn.Linear's default kaiming-uniform, bound 1/sqrt(in).
            nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        self.lora_A[name] = nn.Parameter(A)
        self.lora_B[name] = nn.Parameter(torch.zeros(self.out_features, r, device=A.device, dtype=A.dtype))
        self.lora_dropout[name] = nn.Dropout(dropout)
        self.rank[name], self.alpha[name] = r, float(alpha)

    def delta_weight(self, name: str) -> torch.Tensor:
        """dW = (alpha / r) B A, shape (out, in) like base.weight."""
        return self.scaling(name) * (self.lora_B[name] @ self.lora_A[name])

    @torch.no_grad()
    def merge(self) -> None:
        """W0 <- W0 + dW of the active adapter. A no-op when already merged or nothing is active."""
        if self.merged is None and self.active is not None:
            self.base.weight += self.delta_weight(self.active).to(self.base.weight.dtype)
            self.merged = self.active

    @torch.no_grad()
    def unmerge(self) -> None:
        """W0 <- W0 - dW: the frozen weight again (up to float rounding). A no-op when not merged."""
        if self.merged is not None:
            self.base.weight -= self.delta_weight(self.merged).to(self.base.weight.dtype)
            self.merged = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        name = self.active
        if name is None or self.merged is not None:
            return out
        x = self.lora_dropout[name](x)
        return out + self.scaling(name) * F.linear(F.linear(x, self.lora_A[name]), self.lora_B[name])

    def extra_repr(self) -> str:
        ranks = ", ".join(f"{n}: r={r}" for n, r in self.rank.items())
        return f"adapters={{{ranks}}}, active={self.active!r}, merged={self.merged!r}"


# ----------------------------------------------------------------------------------------------------
# Finding the linears a target name refers to

def _parent(block: nn.Module, target: str) -> nn.Module:
    return block.attn if target in ("q", "k", "v", "o") else block.ffn


def _linear(model, layer: int, target: str) -> nn.Module:
    return getattr(_parent(model.blocks[layer], target), target)


def lora_layers(model):
    """(name in the model, LoRALinear) for every adapted linear, in layer order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoRALinear)]


def adapters(model) -> list[str]:
    """Names of the adapters on this model, in the order they were added."""
    names: list[str] = []
    for _, module in lora_layers(model):
        names += [n for n in module.rank if n not in names]
    return names


def _check_targets(targets) -> tuple[str, ...]:
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    if not targets:
        raise ValueError(f"targets is empty; choose from {TARGETS}")
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"unknown LoRA target {t!r}; valid targets: {TARGETS} "
                             "(q, k, v, o: attention projections; w1, w2: FFN layers)")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets {targets} names a layer twice")
    return targets


def _check_layers(layers, n_layers: int) -> tuple[int, ...]:
    if layers is None:
        return tuple(range(n_layers))
    if isinstance(layers, int):
        raise ValueError(f"layers must be a list of layer indices (e.g. [{layers}]) or None for all "
                         f"{n_layers} layers, got the integer {layers}")
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers is empty; pass None to adapt every layer")
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_layers:
            raise ValueError(f"layer index {i!r} is out of range: allowed 0..{n_layers - 1}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {layers} names a layer twice")
    return tuple(sorted(layers))


def _check_name(name) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"adapter name must be a non-empty string without '.', got {name!r}")


# ----------------------------------------------------------------------------------------------------
# The public functions

def apply(model, r: int = 8, alpha: float = 16, targets=("q", "v"), dropout: float = 0.0,
          layers=None, init: str = "gaussian", name: str = "default"):
    """Add a LoRA adapter ``name`` to the ``targets`` linears of ``layers`` (None: all layers).

    Wraps each target nn.Linear in a LoRALinear the first time; a second call with a new name adds
    another adapter to the same wrappers. The new adapter becomes the active one. Freezes every other
    parameter (the base model and any other adapters) except the task head. Returns the model.
    """
    config = model.config
    targets = _check_targets(targets)
    layers = _check_layers(layers, config.n_layers)
    _check_name(name)
    if name in adapters(model):
        raise ValueError(f"the model already has a LoRA adapter named {name!r}; pick another name "
                         f"(existing: {adapters(model)}) or start again from the base model")
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
    for target in targets:
        linear = _linear(model, layers[0], target)
        largest = min(linear.in_features, linear.out_features)
        if r > largest:
            raise ValueError(f"LoRA rank r={r} is too large for target {target!r} "
                             f"({linear.out_features} x {linear.in_features}): allowed 1..{largest}")
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha > 0):
        raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if init not in INITS:
        raise ValueError(f"init={init!r} is unknown; allowed: {INITS}")

    for layer in layers:
        for target in targets:
            parent, linear = _parent(model.blocks[layer], target), _linear(model, layer, target)
            if not isinstance(linear, LoRALinear):
                linear = LoRALinear(linear)
                setattr(parent, target, linear)
            linear.add_adapter(name, r, alpha, dropout, init)
    freeze_all_but_head(model)
    use(model, name)
    return model


def use(model, name: str | None):
    """Make adapter ``name`` the active and trainable one (others stay, frozen); None: base model only.

    If an adapter is merged, it is unmerged first and the new one merged in its place.
    """
    names = adapters(model)
    if name is not None and name not in names:
        raise ValueError(f"no LoRA adapter named {name!r} on this model; existing: {names}")
    was_merged = any(m.merged is not None for _, m in lora_layers(model))
    unmerge(model)
    for _, module in lora_layers(model):
        module.active = name if name in module.rank else None
        for adapter in module.rank:
            module.lora_A[adapter].requires_grad_(adapter == name)
            module.lora_B[adapter].requires_grad_(adapter == name)
    if was_merged:
        merge(model)
    return model


def merge(model):
    """Add the active adapter's dW into every adapted weight, for inference. Merging twice is a no-op.

    While merged, forward() skips the LoRA branch, so A and B get no gradient: unmerge before training on.
    """
    for _, module in lora_layers(model):
        module.merge()
    return model


def unmerge(model):
    """Subtract the merged dW again, restoring the frozen weights. A no-op when nothing is merged."""
    for _, module in lora_layers(model):
        module.unmerge()
    return model


@torch.no_grad()
def delta_weight(model, layer: int, target: str, name: str | None = None) -> torch.Tensor:
    """dW = (alpha / r) B A of adapter ``name`` (default: the active one) at blocks[layer].target."""
    n_layers = model.config.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer!r} is out of range: allowed 0..{n_layers - 1}")
    _check_targets((target,))
    linear = _linear(model, layer, target)
    if not isinstance(linear, LoRALinear):
        raise ValueError(f"blocks.{layer} target {target!r} has no LoRA adapter")
    name = linear.active if name is None else name
    if name not in linear.rank:
        raise ValueError(f"blocks.{layer} target {target!r} has no adapter {name!r}; "
                         f"it has: {list(linear.rank)}")
    return linear.delta_weight(name).detach().clone()


def adapter_config(model, name: str) -> dict:
    """What save() writes next to the tensors, so load() can check compatibility."""
    found = [(path, m) for path, m in lora_layers(model) if name in m.rank]
    if not found:
        raise ValueError(f"no LoRA adapter named {name!r} on this model; existing: {adapters(model)}")
    first = found[0][1]
    targets = [t for t in TARGETS if any(path.endswith(f".{t}") for path, _ in found)]
    layers = sorted({int(path.split(".")[1]) for path, _ in found})
    return {"format": FILE_FORMAT, "name": name, "r": first.rank[name], "alpha": first.alpha[name],
            "dropout": first.lora_dropout[name].p, "targets": targets, "layers": layers,
            "d_model": model.config.d_model, "d_ff": model.config.d_ff,
            "n_layers": model.config.n_layers}


def save(model, path, name: str | None = None) -> None:
    """Write adapter ``name`` (default: the active one) alone: its A and B tensors plus its config.

    safetensors (no pickle), written to a temporary file in the same folder and then renamed, so an
    interrupted save never leaves a half-written adapter behind.
    """
    name = name if name is not None else _active_name(model)
    config = adapter_config(model, name)
    tensors = {}
    for path_in_model, module in lora_layers(model):
        if name in module.rank:
            tensors[f"{path_in_model}.lora_A"] = module.lora_A[name].detach().cpu().contiguous()
            tensors[f"{path_in_model}.lora_B"] = module.lora_B[name].detach().cpu().contiguous()
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata={"minift_lora": json.dumps(config)})


def load(model, path, name: str | None = None):
    """Load an adapter written by save() into ``model`` and make it active.

    If the model has no adapter of that name yet, one is created first with the saved r, alpha,
    targets and layers. Every tensor in the file must match an adapted linear of the same shape, and
    the reverse: otherwise a ValueError names the offending tensor. Returns the model.
    """
    path = os.fspath(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    if "minift_lora" not in metadata:
        raise ValueError(f"{path} is not a minift LoRA adapter (no 'minift_lora' metadata)")
    saved = json.loads(metadata["minift_lora"])
    if saved.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} has adapter format {saved.get('format')!r}; this minift reads {FILE_FORMAT!r}")
    tensors = load_file(path)
    name = saved["name"] if name is None else name
    _check_name(name)
    exists = name in adapters(model)

    for key, tensor in sorted(tensors.items()):
        want = _expected_shape(model, key, name if exists else None, saved["r"])
        if want is None:
            raise ValueError(f"tensor {key!r} in {path} has no matching LoRA layer in this model "
                             f"(file: targets {saved['targets']}, layers {saved['layers']}, "
                             f"n_layers={saved['n_layers']})")
        if tuple(tensor.shape) != want:
            raise ValueError(f"tensor {key!r} in {path} has shape {tuple(tensor.shape)}, but this model "
                             f"needs {want} (file: d_model={saved['d_model']}, r={saved['r']}; "
                             f"model: d_model={model.config.d_model})")
    if exists:
        missing = sorted(set(_tensor_names(model, name)) - set(tensors))
        if missing:
            raise ValueError(f"tensor {missing[0]!r} of adapter {name!r} is missing from {path} "
                             f"(file: targets {saved['targets']}, layers {saved['layers']})")
    else:
        apply(model, r=saved["r"], alpha=saved["alpha"], targets=tuple(saved["targets"]),
              dropout=saved["dropout"], layers=saved["layers"], name=name)

    was_merged = any(m.merged is not None for _, m in lora_layers(model))
    unmerge(model)
    with torch.no_grad():
        for key, tensor in tensors.items():
            module_path, _, kind = key.rpartition(".")
            linear = model.get_submodule(module_path)
            getattr(linear, kind)[name].copy_(tensor)
            linear.alpha[name] = float(saved["alpha"])
    use(model, name)
    if was_merged:
        merge(model)
    return model


def _expected_shape(model, key: str, name: str | None, r: int):
    """Shape the model needs for file tensor ``key`` ("blocks.0.attn.q.lora_A"), None if no place."""
    module_path, _, kind = key.rpartition(".")
    if kind not in ("lora_A", "lora_B"):
        return None
    try:
        linear = model.get_submodule(module_path)
    except AttributeError:
        return None
    if name is not None:           # loading into an existing adapter: its own tensors decide
        if not isinstance(linear, LoRALinear) or name not in linear.rank:
            return None
        return tuple(getattr(linear, kind)[name].shape)
    base = linear.base if isinstance(linear, LoRALinear) else linear
    if not isinstance(base, nn.Linear):
        return None
    return (r, base.in_features) if kind == "lora_A" else (base.out_features, r)


def _tensor_names(model, name):
    return [f"{p}.{kind}" for p, m in lora_layers(model) if name in m.rank for kind in ("lora_A", "lora_B")]


def _active_name(model) -> str:
    active = {m.active for _, m in lora_layers(model)} - {None}
    if len(active) != 1:
        raise ValueError(f"cannot tell which adapter to use (active: {sorted(active) or None}); "
                         f"pass name=, one of {adapters(model)}")
    return active.pop()
