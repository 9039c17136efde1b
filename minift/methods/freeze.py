"""Freeze: fine-tune only some layers of the pre-trained model, keep the rest fixed.

The oldest parameter-efficient recipe (e.g. Howard & Ruder 2018, ULMFiT; Lee et al. 2019, "What would
Elsa do? Freezing layers during Transformer fine-tuning"): the lower layers hold general features
worth keeping, the top layers are the most task-specific. For a set S of trainable tensors,

    theta = theta_frozen  U  theta_S,     gradient step only on theta_S (plus the new task head)

``freeze.apply(model, layers=2, modules=("ffn",))`` trains the FFNs of the last 2 layers: |S| =
2 (2 d d_ff + d_ff + d). ``layers=-2`` means the first 2 layers instead; ``layers=0`` leaves only the
task head trainable (linear probing).
"""

from __future__ import annotations

MODULES = ("ffn", "attn", "norm", "all")   # norm: the block's two LayerNorms; all: the whole block


def freeze_all_but_head(model):
    """requires_grad=False for every parameter except the task head's (model.head, if any).

    Every method's apply() starts here and then switches on what it trains.
    """
    model.requires_grad_(False)
    if getattr(model, "head", None) is not None:
        model.head.requires_grad_(True)
    return model


def selected_layers(n_layers: int, layers: int) -> range:
    """layers = N > 0: the last N layers; N < 0: the first |N|; 0: none."""
    return range(n_layers - layers, n_layers) if layers >= 0 else range(0, -layers)


def block_modules(block, modules):
    """The submodules of one Transformer block that the module names refer to."""
    parts = {"ffn": [block.ffn], "attn": [block.attn], "norm": [block.ln1, block.ln2], "all": [block]}
    return [part for name in modules for part in parts[name]]


def check_modules(modules) -> tuple[str, ...]:
    if isinstance(modules, str):
        modules = (modules,)
    modules = tuple(modules)
    if not modules:
        raise ValueError(f"modules is empty; choose from {MODULES}")
    for name in modules:
        if name not in MODULES:
            raise ValueError(f"unknown module {name!r}; allowed: {MODULES}")
    return modules


def apply(model, layers: int = 2, modules=("ffn",)):
    """Train only ``modules`` of the last ``layers`` blocks (negative: the first ones) and the head."""
    n_layers = model.config.n_layers
    if isinstance(layers, bool) or not isinstance(layers, int) or abs(layers) > n_layers:
        raise ValueError(f"layers={layers!r} is out of range: allowed -{n_layers}..{n_layers} "
                         f"(N > 0: last N layers, N < 0: first |N|, 0: only the task head)")
    modules = check_modules(modules)
    freeze_all_but_head(model)
    for i in selected_layers(n_layers, layers):
        for part in block_modules(model.blocks[i], modules):
            part.requires_grad_(True)
    return model
