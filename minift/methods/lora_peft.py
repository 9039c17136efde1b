"""LoRA adapters in Hugging Face PEFT's format: export_peft (minift -> PEFT) and import_peft (PEFT -> minift).

A PEFT LoRA adapter is a folder with two files:

* ``adapter_config.json``: peft_type "LORA", r, lora_alpha (scaling = lora_alpha / r, or / sqrt(r)
  with use_rslora), target_modules (which modules carry an adapter), task_type, lora_dropout,
  fan_in_fan_out (True for GPT-2, whose Conv1D stores weights (in, out)), and rank_pattern /
  alpha_pattern for modules whose r or alpha differ from the global ones;
* ``adapter_model.safetensors``: for every adapted module, ``base_model.model.<module name>.lora_A.weight``
  (r x in) and ``.lora_B.weight`` (out x r), where <module name> is the module's name in the
  transformers model PEFT wraps (``transformer.h.0.attn.c_attn``, ``model.layers.0.self_attn.q_proj``).

minift's own LoRA layers hold the same A and B (same shapes, same dW = scaling B A); only the names
differ. A model imported with minift.interop knows its origin (``model.hf_origin``) and the export
uses the original module names, so ``PeftModel.from_pretrained(original_hf_model, folder)`` computes
what the minift model computes. A minift model without an origin is exported under its own names
(``blocks.0.attn.q``), which PEFT can load onto a minift model.

GPT-2's fused c_attn: GPT-2 computes q, k and v with one linear, output rows [q | k | v]; minift has
three, each with its own adapter. The adapters of one layer become ONE exact adapter of c_attn: stack
the A's (rank r_q + r_v), and put each B in its own rows and columns of a block-diagonal B (the k rows
stay zero). Then B_fused A_fused x = [B_q A_q x | 0 | B_v A_v x]: exactly the three updates. To keep
scaling = alpha / r unchanged, alpha grows with r (two adapters: r and alpha both doubled). The file's
safetensors metadata records the split ("minift_peft"), so import_peft gives back the original
adapters; an adapter made by PEFT (no such record) is split into one adapter per part, each of the
fused rank (exact too: B's rows of part p times the full A).

Import (PEFT -> minift): every module of the file is mapped back to minift's linears (origin names, or
minift's own). minift gives one named adapter one rank and one alpha; where PEFT's modules differ
(rank_pattern, alpha_pattern, a split fused module), the smaller adapters are padded with zero rows of A
and zero columns of B (dW unchanged) and each module's scaling is folded into its B. Everything is
checked before the model is changed; a bad folder raises FileNotFoundError / ValueError naming it.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..files import atomic_path
from ..model import TARGETS, target_shape
from .lora import apply, check_name, lora_layers
from .lora_adapters import _active_name, _covered, _dropout_p, _holder, _tensor_names, adapters

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
KEY_PREFIX = "base_model.model."


def _origin_modules(model) -> tuple[dict, str | None, bool]:
    """(minift linear path -> (module name, part, parts), task type, fan_in_fan_out) for ``model``."""
    origin = getattr(model, "hf_origin", None)
    if origin is None:                                # minift's own names
        paths = _tensor_names(model, range(model.config.n_layers), TARGETS)
        return {path: (path, 0, 1) for path in paths.values()}, None, False
    return dict(origin.modules), origin.task_type, origin.fan_in_fan_out


# ----------------------------------------------------------------------------------------------------
# minift -> PEFT

def export_peft(model, folder, name: str | None = None) -> Path:
    """Write adapter ``name`` (default: the active one) as a PEFT LoRA adapter folder. Returns the folder.

    Each file is written atomically (temporary file, then rename), the weights first and the config
    last, so a folder with an adapter_config.json always has its complete weights next to it.
    """
    name = _active_name(model) if name is None else check_name(name)
    if name not in adapters(model):
        raise ValueError(f"no LoRA adapter named {name!r} on this model; existing: {adapters(model)}")
    modules, task_type, fan_in_fan_out = _origin_modules(model)
    covered = _covered(model, name)
    paths = _tensor_names(model, sorted({i for i, _ in covered}), TARGETS)

    pieces: dict[str, list] = {}                      # module name -> [(part, parts, path, A, B, scaling)]
    dropout = 0.0
    for key, layer in covered.items():
        holder = _holder(layer, name)
        path = paths[key]
        if path not in modules:
            raise ValueError(f"{path} has a LoRA adapter but no module of the original model "
                             f"({model.hf_origin.architecture}) to name it after")
        module, part, parts = modules[path]
        A, B = holder.lora_A.detach().float().cpu(), holder.lora_B.detach().float().cpu()
        pieces.setdefault(module, []).append((part, parts, path, A, B, float(holder.scaling)))
        dropout = _dropout_p(holder)

    tensors, ranks, split = {}, {}, {}
    for module, items in pieces.items():
        items.sort(key=lambda item: item[0])
        scaling = items[0][5]
        if len(items) == 1 and items[0][1] == 1:          # one minift linear = one module
            _, _, path, A, B, scaling = items[0]
        else:                                             # a fused module: stack A, block-diagonal B
            A = torch.cat([item[3] for item in items])
            rows = items[0][4].shape[0]                   # each part's output rows
            B = torch.zeros(rows * items[0][1], A.shape[0])
            column, split[module] = 0, []
            for part, _, path, A_part, B_part, part_scaling in items:
                r_part = A_part.shape[0]
                B[part * rows:(part + 1) * rows, column:column + r_part] = B_part * (part_scaling / scaling)
                split[module].append([path, part, column, column + r_part])
                column += r_part
        r = A.shape[0]
        ranks[module] = (r, scaling * r)                  # alpha such that alpha / r = scaling
        tensors[f"{KEY_PREFIX}{module}.lora_A.weight"] = A.contiguous()
        tensors[f"{KEY_PREFIX}{module}.lora_B.weight"] = B.contiguous()

    # a task head (PEFT: modules_to_save) goes with the adapter, as it trains with it
    origin = getattr(model, "hf_origin", None)
    head_names = dict(origin.head) if origin is not None and getattr(model, "head", None) is not None else {}
    own = dict(model.named_parameters())
    for minift_name, hf_name in head_names.items():
        tensors[f"{KEY_PREFIX}{hf_name}"] = own[minift_name].detach().float().cpu().contiguous()

    (r, alpha), _ = Counter(ranks.values()).most_common(1)[0]
    config = {
        "peft_type": "LORA", "task_type": task_type, "base_model_name_or_path": None, "revision": None,
        "r": r, "lora_alpha": _number(alpha), "lora_dropout": dropout,
        "target_modules": sorted(pieces), "fan_in_fan_out": fan_in_fan_out, "bias": "none",
        "use_rslora": False, "use_dora": False, "modules_to_save": list(origin.modules_to_save) if head_names else None, "init_lora_weights": True,
        "inference_mode": True,
        "rank_pattern": {m: rm for m, (rm, _) in ranks.items() if rm != r},
        "alpha_pattern": {m: _number(am) for m, (rm, am) in ranks.items() if am != alpha},
    }
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; export_peft writes a folder of two files")
    metadata = {"format": "pt", "minift_peft": json.dumps({"name": name, "split": split})}
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        save_file(tensors, temporary, metadata=metadata)
    with atomic_path(folder / CONFIG_FILE) as temporary:
        Path(temporary).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def _number(x: float):
    """alpha as an int when it is one (PEFT writes lora_alpha as an int), else a float."""
    return int(x) if float(x).is_integer() else float(x)


# ----------------------------------------------------------------------------------------------------
# PEFT -> minift

def read_peft_folder(folder) -> tuple[dict, dict, dict]:
    """(adapter config, tensors, minift metadata or {}) of a PEFT LoRA folder, checked on its own."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"no PEFT adapter folder at {folder}")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file; a PEFT adapter is a folder with {CONFIG_FILE} and {WEIGHTS_FILE}")
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}: not a PEFT adapter folder")
    if not weights_path.exists():
        pickled = folder / "adapter_model.bin"
        hint = (" (it has adapter_model.bin, a pickle file minift does not open: save the adapter with "
                "safe_serialization=True)") if pickled.exists() else ""
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}{hint}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} is not a JSON object")
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{config_path} has peft_type={config.get('peft_type')!r}; import_peft reads LoRA "
                         "adapters only (peft_type 'LORA')")
    refused = {"use_dora": (False, None), "bias": ("none", None), "lora_bias": (False, None)}
    for field, allowed in refused.items():
        if config.get(field, allowed[0]) not in allowed:
            raise ValueError(f"{config_path}: {field}={config[field]!r} is not supported (minift's LoRA has "
                             f"{field}={allowed[0]!r})")
    try:
        with safe_open(str(weights_path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_path} cannot be read as a safetensors file ({error})") from error
    try:
        extra = json.loads(metadata.get("minift_peft", "{}"))
    except json.JSONDecodeError:
        extra = {}
    return config, tensors, extra if isinstance(extra, dict) else {}


def _module_weights(folder, tensors: dict, head: dict) -> tuple[dict, dict]:
    """(module name -> (A, B), minift head parameter -> tensor) from the file's keys
    base_model.model.<module>.lora_A.weight / .lora_B.weight and the task head's (``head``: its
    transformers names -> minift's, from the model's origin)."""
    found: dict[str, dict] = {}
    head_tensors = {}
    for key, tensor in tensors.items():
        for which in ("lora_A", "lora_B"):
            suffix = f".{which}.weight"
            if key.startswith(KEY_PREFIX) and key.endswith(suffix):
                found.setdefault(key[len(KEY_PREFIX):-len(suffix)], {})[which] = tensor
                break
        else:
            if key.startswith(KEY_PREFIX) and key[len(KEY_PREFIX):] in head:
                head_tensors[head[key[len(KEY_PREFIX):]]] = tensor
                continue
            raise ValueError(f"tensor {key!r} in {folder} is neither a LoRA weight of the form "
                             f"{KEY_PREFIX}<module>.lora_A.weight / .lora_B.weight nor a weight of this "
                             f"model's task head (known: {sorted(head) or 'none'})")
    for module, pair in found.items():
        if set(pair) != {"lora_A", "lora_B"}:
            raise ValueError(f"{folder}: module {module!r} has {sorted(pair)} but not both lora_A and lora_B")
        A, B = pair["lora_A"], pair["lora_B"]
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise ValueError(f"{folder}: module {module!r} has lora_A {tuple(A.shape)} and lora_B "
                             f"{tuple(B.shape)}, which are not r x in and out x r")
        if not A.is_floating_point() or not bool(torch.isfinite(A).all() and torch.isfinite(B).all()):
            raise ValueError(f"{folder}: module {module!r} has non-finite or non-float LoRA weights")
    return {module: (pair["lora_A"].float(), pair["lora_B"].float()) for module, pair in found.items()}, head_tensors


def head_names_of(origin, own: str) -> str:
    return origin.head.get(own, own)


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rank_pattern / alpha_pattern: the value of the first key that matches the module's name
    (a key matches a name that is the key, or ends with "." + key)."""
    import re

    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def import_peft(model, folder, name: str = "default"):
    """Load a PEFT LoRA adapter folder into ``model`` as the LoRA adapter ``name`` and make it active.

    ``model`` must be the minift import of the model the adapter was made for (or, for an adapter
    written by export_peft from a native minift model, that model's shape). Returns the model.
    """
    name = check_name(name)
    config, tensors, extra = read_peft_folder(folder)
    if name in adapters(model):
        raise ValueError(f"the model already has a LoRA adapter named {name!r}; pass another name= "
                         f"(existing: {adapters(model)})")
    modules, _, _ = _origin_modules(model)
    by_module: dict[str, list] = {}
    for path, (module, part, parts) in modules.items():
        by_module.setdefault(module, []).append((part, parts, path))
    origin = getattr(model, "hf_origin", None)
    head = {hf: own for own, hf in origin.head.items()} if origin is not None and model.head is not None else {}
    weights, head_tensors = _module_weights(folder, tensors, head)
    parameters = dict(model.named_parameters())
    for own, tensor in head_tensors.items():
        if tensor.shape != parameters[own].shape:
            raise ValueError(f"{folder}: the task head's {head_names_of(origin, own)} has shape "
                             f"{tuple(tensor.shape)}, this model's {own} has {tuple(parameters[own].shape)}")
    unknown = sorted(set(weights) - set(by_module))
    if unknown:
        where = model.hf_origin.architecture if getattr(model, "hf_origin", None) else "this minift model"
        raise ValueError(f"{folder} adapts module {unknown[0]!r} ({len(unknown)} unknown), which {where} does not "
                         f"have among its LoRA targets (e.g. {sorted(by_module)[:3]})")
    if not weights:
        raise ValueError(f"{folder} holds no LoRA weights")

    r_default, alpha_default = config.get("r", 8), config.get("lora_alpha", 8)
    split = extra.get("split", {})
    pieces = {}                                           # minift path -> (A, B, scaling)
    for module, (A, B) in weights.items():
        r = _pattern_value(config.get("rank_pattern"), module, r_default)
        alpha = _pattern_value(config.get("alpha_pattern"), module, alpha_default)
        if A.shape[0] != r:
            raise ValueError(f"{folder}: module {module!r} has rank {A.shape[0]} in the file but r={r} in "
                             f"{CONFIG_FILE}")
        scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        targets = sorted(by_module[module])
        parts = targets[0][1]
        rows = B.shape[0] // parts
        if parts == 1:
            pieces[targets[0][2]] = (A, B, scaling)
        elif module in split:                             # written by export_peft: the exact split back
            for path, part, start, end in split[module]:
                pieces[path] = (A[start:end], B[part * rows:(part + 1) * rows, start:end], scaling)
        else:                                             # PEFT's own: every part gets the fused rank
            for part, _, path in targets:
                pieces[path] = (A, B[part * rows:(part + 1) * rows], scaling)

    # one rank and one alpha for minift's adapter: pad smaller ranks, fold other scalings into B
    paths = _tensor_names(model, range(model.config.n_layers), TARGETS)
    where = {path: key for key, path in paths.items()}
    r_common = max(A.shape[0] for A, _, _ in pieces.values())
    scaling_common = Counter(s for _, _, s in pieces.values()).most_common(1)[0][0]
    layers = sorted({where[path][0] for path in pieces})
    targets = [t for t in TARGETS if any(where[path][1] == t for path in pieces)]
    for path, (A, B, _) in pieces.items():
        n_in, n_out = target_shape(model.config, where[path][1])
        if A.shape[1] != n_in or B.shape[0] != n_out:
            raise ValueError(f"{folder}: the adapter for {path} has A {tuple(A.shape)}, B {tuple(B.shape)}, "
                             f"but that linear is {n_out} x {n_in}: the adapter was made for another model")

    apply(model, r=r_common, alpha=scaling_common * r_common, targets=tuple(targets),
          dropout=float(config.get("lora_dropout", 0.0) or 0.0), layers=layers, name=name)
    with torch.no_grad():
        for own, tensor in head_tensors.items():
            parameters[own].copy_(tensor)
        for path, layer in lora_layers(model):
            if getattr(layer, "adapter_name", None) != name:
                continue
            layer.lora_A.zero_()
            layer.lora_B.zero_()
            if path in pieces:
                A, B, scaling = pieces[path]
                r = A.shape[0]
                layer.lora_A[:r].copy_(A)
                layer.lora_B[:, :r].copy_(B * (scaling / scaling_common))
    return model
