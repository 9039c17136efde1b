"""Several named LoRA adapters on one frozen model: add, switch (use), save and load.

LoRA's most practical advantage (article 2.3): one copy of the pre-trained model, a small A, B pair per
task, switched at run time. lora.py's layer holds one adapter; this file lets it hold several:

* the **active** adapter sits in the layer's own attributes, lora_A, lora_B, r, alpha, scaling, dropout:
  what forward reads, and what every other part of minift reads (merge, the memory model, ...);
* the others wait, frozen, in ``layer.adapter_slots[name]`` (an AdapterSlot each), until use() swaps
  them in. The active adapter's slot is empty meanwhile, so the slots keep the order adapters were
  added in;
* ``layer.adapter_name`` says which adapter is active (None: none, the layer computes its base linear).

A layer gets its slots only when a second adapter arrives (or use() parks the only one), so a model
with one adapter is exactly what lora.apply built. A layer whose adapters are all parked has lora_A
and lora_B None; LoRALinear then computes its base linear. (A hand-written layer class can be switched
too, but only if its forward handles lora_A None the same way.)

    lora.apply(model, r=8, name="paraphrase"); minift.fit(model, ...)
    lora.apply(model, r=8, name="negation");   minift.fit(model, ...)     # the first one is parked, frozen
    lora.use(model, "paraphrase")                                       # switch; None: the base model
    lora.save(model, "paraphrase.safetensors", name="paraphrase")       # A and B of one adapter
    lora.load(other_copy_of_the_base, "paraphrase.safetensors")          # checked first, then loaded

File format (safetensors, no pickle): tensors "blocks.{i}.attn.q.lora_A" / ".lora_B" for every adapted
linear, and the JSON metadata "minift_lora": format, name, r, alpha, dropout, targets, layers and the
model's d_model, d_ff, n_layers. load() checks the whole file against itself and the model before it
changes anything: a bad file raises a ValueError naming the file and the problem, and leaves the model
as it was.
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..files import atomic_path
from ..model import TARGETS, model_targets, target_linear, target_parent, target_shape
from ..validate import choices, positive_int, positive_number, probability
from .freeze import freeze_all_but_head
from .lora import (LoRALinear, apply, build_layers, check_arguments, check_layers, check_name, is_lora_layer,
                   lora_layers, merge, set_trainable, unmerge)

FILE_FORMAT = "minift-lora-v1"
FILE_FIELDS = ("format", "name", "r", "alpha", "dropout", "targets", "layers", "d_model", "d_ff", "n_layers")


class AdapterSlot(nn.Module):
    """Where a parked adapter waits: its A and B (frozen) and its r, alpha, scaling, dropout.
    Empty (A and B None) while its adapter is the active one, i.e. lives in the layer itself."""

    def __init__(self):
        super().__init__()
        self.register_parameter("lora_A", None)
        self.register_parameter("lora_B", None)
        self.r = self.alpha = self.scaling = self.dropout = None

    def extra_repr(self) -> str:
        return "active: its A and B are in the layer" if self.lora_A is None else \
            f"r={self.r}, scaling={self.scaling:g}, parked"


SETTINGS = ("r", "alpha", "scaling")       # the numbers that travel with A and B


def _move(source, target) -> None:
    """Move A, B and the settings from one holder (layer or slot) to the other; empty the source."""
    target.lora_A, target.lora_B = source.lora_A, source.lora_B
    source.lora_A = source.lora_B = None
    for setting in SETTINGS:
        if hasattr(source, setting):
            setattr(target, setting, getattr(source, setting))
            setattr(source, setting, None)
    p = _dropout_p(source)
    if isinstance(target, AdapterSlot):
        target.dropout = p
    elif isinstance(getattr(target, "dropout", None), nn.Dropout):
        target.dropout.p = p


def _dropout_p(holder) -> float:
    dropout = getattr(holder, "dropout", None)
    return dropout.p if isinstance(dropout, nn.Dropout) else (dropout or 0.0)


def _has_slots(layer) -> bool:
    return isinstance(getattr(layer, "adapter_slots", None), nn.ModuleDict)


def _slots(layer) -> nn.ModuleDict:
    """The layer's slots, created on first need (one empty slot for the active adapter)."""
    if not _has_slots(layer):
        active = getattr(layer, "adapter_name", None)
        layer.adapter_slots = nn.ModuleDict({active: AdapterSlot()} if active is not None else {})
    return layer.adapter_slots


def _park(layer) -> None:
    """Put the active adapter back into its slot; the layer then computes its base linear alone."""
    name = getattr(layer, "adapter_name", None)
    if name is not None:
        _move(layer, _slots(layer)[name])
        layer.adapter_name = None


def _activate(layer, name: str) -> None:
    _move(_slots(layer)[name], layer)
    layer.adapter_name = name


def layer_adapters(layer) -> list[str]:
    """Names of the adapters one layer holds, in the order they were added."""
    if _has_slots(layer):
        return list(layer.adapter_slots)
    name = getattr(layer, "adapter_name", None)
    return [name] if name is not None else []


def adapters(model) -> list[str]:
    """Names of the adapters on this model, in the order they were added."""
    names: list[str] = []
    for _, layer in lora_layers(model):
        names += [n for n in layer_adapters(layer) if n not in names]
    return names


def _holder(layer, name: str):
    """The layer itself if ``name`` is active there, else the slot where it is parked."""
    return layer if getattr(layer, "adapter_name", None) == name else layer.adapter_slots[name]


def _train_only_active(model) -> None:
    """The active adapter's A and B train; parked ones stay frozen."""
    for _, layer in lora_layers(model):
        if layer.lora_A is not None:
            set_trainable(layer, True)
        for slot in layer.adapter_slots.values() if _has_slots(layer) else ():
            if slot.lora_A is not None:
                slot.lora_A.requires_grad_(False)
                slot.lora_B.requires_grad_(False)


def adapter_delta_weight(layer, name: str, where: str) -> torch.Tensor:
    """dW of adapter ``name`` at one layer, active or parked."""
    if name not in layer_adapters(layer):
        raise ValueError(f"{where} has no adapter {name!r}; it has: {layer_adapters(layer)}")
    holder = _holder(layer, name)
    return (holder.scaling * (holder.lora_B @ holder.lora_A)).detach().clone()


# ----------------------------------------------------------------------------------------------------
# Adding and switching

def add(model, name: str, r: int = 8, alpha: float = 16, targets=("q", "v"), dropout: float = 0.0,
        seed: int | None = None, layer=None, layers=None, init: str = "gaussian"):
    """Add a new adapter ``name`` (same arguments as lora.apply) and make it the active, trainable one.

    The adapters already on the model are unmerged and parked, frozen. A linear that is already a
    LoRA layer gets the new A and B next to its other adapters (made by its own class); a plain
    linear is wrapped. Freezes like lora.apply. Returns the model.
    """
    args = check_arguments(model, r, alpha, targets, dropout, seed, layer, layers, init, name)
    if name in adapters(model):
        raise ValueError(f"the model already has a LoRA adapter named {name!r}; pick another name "
                         f"(existing: {adapters(model)}) or start again from the base model")
    blocks = model.blocks
    linears = {(i, t): target_linear(blocks[i], t) for i in args["layers"] for t in args["targets"]}
    # a linear already wrapped by a hand-written layer class gets its new A and B from that class
    custom = {type(m) for m in linears.values() if is_lora_layer(m) and not isinstance(m, LoRALinear)}
    if args["layer"] is None and custom:
        if len(custom) > 1:
            raise ValueError(f"the targets are wrapped by different LoRA layer classes "
                             f"{sorted(c.__name__ for c in custom)}; pass layer= to choose one")
        args["layer"] = custom.pop()
    built = build_layers(model, args, {key: getattr(m, "base", m) for key, m in linears.items()})

    unmerge(model)
    for _, existing_layer in lora_layers(model):
        _park(existing_layer)
    for (i, target), fresh in built.items():
        current = linears[i, target]
        if is_lora_layer(current):        # a new slot, and the fresh A, B into the layer itself
            _slots(current)[name] = AdapterSlot()
            _move(fresh, current)
            current.adapter_name = name
        else:
            setattr(target_parent(blocks[i], target), target, fresh)
            fresh.adapter_name = name
    freeze_all_but_head(model)
    _train_only_active(model)
    return model


def use(model, name: str | None):
    """Make adapter ``name`` the active and trainable one (the others stay, frozen); None: the base model.

    If an adapter is merged, it is unmerged first and the new one merged in its place.
    """
    names = adapters(model)
    if name is not None and name not in names:
        raise ValueError(f"no LoRA adapter named {name!r} on this model; existing: {names}")
    was_merged = any(layer.merged for _, layer in lora_layers(model))
    unmerge(model)
    for _, layer in lora_layers(model):
        if getattr(layer, "adapter_name", None) != name:
            _park(layer)
            if name in layer_adapters(layer):
                _activate(layer, name)
    _train_only_active(model)
    if was_merged:
        merge(model)
    return model


# ----------------------------------------------------------------------------------------------------
# Files

def _module_paths(model) -> dict:
    return {module: path for path, module in model.named_modules()}


def _tensor_names(model, layers, targets) -> dict:
    """(block, target) -> the name its A (and, with _B, its B) has in a file: "blocks.0.attn.q"."""
    paths = _module_paths(model)
    return {(i, t): f"{paths[target_parent(model.blocks[i], t)]}.{t}" for i in layers for t in targets}


def _covered(model, name: str) -> dict:
    """(block, target) -> layer for every linear that holds adapter ``name``."""
    found = {}
    for i, block in enumerate(model.blocks):
        for t in model_targets(model.config):        # w3 only where the FFN is gated
            layer = target_linear(block, t)
            if is_lora_layer(layer) and name in layer_adapters(layer):
                found[i, t] = layer
    return found


def adapter_config(model, name: str) -> dict:
    """What save() writes next to the tensors, so load() can check compatibility."""
    covered = _covered(model, name)
    if not covered:
        raise ValueError(f"no LoRA adapter named {name!r} on this model; existing: {adapters(model)}")
    holder = _holder(next(iter(covered.values())), name)
    r = holder.lora_A.shape[0]
    alpha = holder.alpha if getattr(holder, "alpha", None) is not None else holder.scaling * r
    return {"format": FILE_FORMAT, "name": name, "r": r, "alpha": float(alpha), "dropout": _dropout_p(holder),
            "targets": [t for t in TARGETS if any(key[1] == t for key in covered)],
            "layers": sorted({i for i, _ in covered}),
            "d_model": model.config.d_model, "d_ff": model.config.d_ff, "n_layers": model.config.n_layers}


def save(model, path, name: str | None = None) -> None:
    """Write adapter ``name`` (default: the active one) alone: its A and B tensors plus its config.

    safetensors (no pickle), written to a temporary file in the same folder and then renamed, so an
    interrupted save never leaves a half-written adapter behind. A merged adapter is saved as well
    (A and B are kept next to the merged weight).
    """
    name = _active_name(model) if name is None else name
    config = adapter_config(model, name)
    covered = _covered(model, name)
    names = _tensor_names(model, config["layers"], config["targets"])
    tensors = {}
    for key, layer in covered.items():
        holder = _holder(layer, name)
        tensors[f"{names[key]}.lora_A"] = holder.lora_A.detach().cpu().contiguous()
        tensors[f"{names[key]}.lora_B"] = holder.lora_B.detach().cpu().contiguous()
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata={"minift_lora": json.dumps(config)})


def read_adapter_file(path) -> tuple[dict, dict]:
    """(config, tensors) of an adapter file written by save(), checked on its own (not yet against a
    model). Every problem is a ValueError (FileNotFoundError if there is no file) naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no LoRA adapter file at {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a LoRA adapter file (give the .safetensors file's path)")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read as a safetensors file, it is empty, truncated or "
                         f"corrupt ({error}); save the adapter again") from error
    if "minift_lora" not in metadata:
        raise ValueError(f"{path} is not a minift LoRA adapter (no 'minift_lora' metadata)")
    try:
        config = json.loads(metadata["minift_lora"])
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the adapter metadata is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the adapter metadata is not a JSON object")
    if config.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} has adapter format {config.get('format')!r}; this minift reads {FILE_FORMAT!r}")
    missing = [field for field in FILE_FIELDS if field not in config]
    if missing:
        raise ValueError(f"{path}: the adapter metadata lacks {missing}; the file is damaged or was not "
                         "written by lora.save")
    try:
        check_name(config["name"])
        positive_int("r", config["r"])
        positive_number("alpha", config["alpha"])
        probability("dropout", config["dropout"])
        choices("targets", config["targets"], TARGETS)
        for field in ("d_model", "d_ff", "n_layers"):
            positive_int(field, config[field])
        check_layers(config["layers"], config["n_layers"])
    except ValueError as error:
        raise ValueError(f"{path}: bad adapter metadata: {error}") from None
    return config, tensors


def _check_against_model(model, path, config: dict, tensors: dict, name: str) -> None:
    """Everything load() needs to hold, checked before the model is changed."""
    model_config = model.config
    for field in ("n_layers", "d_model", "d_ff"):
        if config[field] != getattr(model_config, field):
            raise ValueError(f"{path} was saved from a model with {field}={config[field]}; this model has "
                             f"{field}={getattr(model_config, field)}: the adapter does not fit it")
    r, layers, targets = config["r"], config["layers"], config["targets"]
    names = _tensor_names(model, layers, targets)
    expected = {}
    for (i, t), base_name in names.items():
        n_in, n_out = target_shape(model_config, t)
        expected[f"{base_name}.lora_A"], expected[f"{base_name}.lora_B"] = (r, n_in), (n_out, r)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ValueError(f"{path} lacks tensor {missing[0]!r} ({len(missing)} missing) although its metadata "
                         f"lists targets {targets} on layers {layers}: the file is incomplete")
    for key, tensor in sorted(tensors.items()):
        if key not in expected:
            raise ValueError(f"tensor {key!r} in {path} has no matching LoRA layer (file: targets {targets}, "
                             f"layers {layers}, n_layers={config['n_layers']})")
        if tuple(tensor.shape) != expected[key]:
            raise ValueError(f"tensor {key!r} in {path} has shape {tuple(tensor.shape)}, but r={r} and this "
                             f"model need {expected[key]}")
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"tensor {key!r} in {path} is not a finite floating-point tensor ({tensor.dtype})")

    covered = _covered(model, name)
    if covered:                    # loading into an existing adapter: it must have the file's shape
        every = _tensor_names(model, range(model_config.n_layers), TARGETS)
        for key in sorted(set(covered) | set(names)):
            where = f"{every[key]}.lora_A"
            if key not in names:
                raise ValueError(f"the model's adapter {name!r} has {where!r}, which {path} lacks "
                                 f"(file: targets {targets}, layers {layers})")
            if key not in covered:
                raise ValueError(f"tensor {where!r} in {path} has no matching LoRA layer in the model's "
                                 f"adapter {name!r}")
            have = _holder(covered[key], name).lora_A.shape[0]
            if have != r:
                raise ValueError(f"tensor {where!r} in {path} has rank r={r}, the model's adapter {name!r} "
                                 f"has r={have}")
    else:                          # a new adapter: apply's own checks, before anything is built
        check_arguments(model, r, config["alpha"], targets, config["dropout"], None, None, layers,
                        "gaussian", name)


def load(model, path, name: str | None = None):
    """Load an adapter written by save() into ``model`` and make it active. Returns the model.

    If the model has no adapter of that name yet (default: the name in the file), one is created
    first with the saved r, alpha, dropout, targets and layers (drawing A like apply does; it is
    overwritten). The file is checked completely first, on its own and against the model (its
    n_layers, d_model, d_ff, every tensor present with the right shape, an existing adapter's targets
    and rank): if anything is wrong, a ValueError names the file and the problem, and the model is
    left unchanged. A missing file raises FileNotFoundError.
    """
    config, tensors = read_adapter_file(path)
    path = os.fspath(path)
    name = check_name(config["name"] if name is None else name)
    _check_against_model(model, path, config, tensors, name)

    was_merged = any(layer.merged for _, layer in lora_layers(model))
    if name not in adapters(model):
        apply(model, r=config["r"], alpha=config["alpha"], targets=tuple(config["targets"]),
              dropout=config["dropout"], layers=config["layers"], name=name)
    unmerge(model)
    use(model, name)
    names = _tensor_names(model, config["layers"], config["targets"])
    with torch.no_grad():
        for key, layer in _covered(model, name).items():
            layer.lora_A.copy_(tensors[f"{names[key]}.lora_A"])
            layer.lora_B.copy_(tensors[f"{names[key]}.lora_B"])
            layer.scaling = config["alpha"] / config["r"]
            if hasattr(layer, "alpha"):
                layer.alpha = float(config["alpha"])
            if isinstance(getattr(layer, "dropout", None), nn.Dropout):
                layer.dropout.p = config["dropout"]
    if was_merged:
        merge(model)
    return model


def _active_name(model) -> str:
    active = {getattr(layer, "adapter_name", None) for _, layer in lora_layers(model)} - {None}
    if len(active) != 1:
        raise ValueError(f"cannot tell which adapter to use (active: {sorted(active) or None}); "
                         f"pass name=, one of {adapters(model)}")
    return active.pop()
