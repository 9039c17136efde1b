"""Freeze: fine-tune only some layers of the pre-trained model, keep the rest fixed.

The oldest parameter-efficient recipe (e.g. Howard & Ruder 2018, ULMFiT; Lee et al. 2019, "What would
Elsa do? Freezing layers during Transformer fine-tuning"): the lower layers hold general features
worth keeping, the top layers are the most task-specific. For a set S of trainable tensors,

    theta = theta_frozen  U  theta_S,     gradient step only on theta_S (plus the new task head)

``freeze.apply(model, layers=2, modules=("ffn",))`` trains the FFNs of the last 2 layers: |S| =
2 (2 d d_ff + d_ff + d). ``layers=-2`` means the first 2 layers instead; ``layers=0`` leaves only the
task head trainable (linear probing).

What apply freezes: every pre-trained weight except the chosen modules of the chosen layers; the task
head stays trainable. What an earlier method added (a LoRA adapter, a prefix, a prompt) keeps the
state it had.

This file also holds ``freeze_all_but_head``, the first step of every method's apply().
"""

from __future__ import annotations

from ..validate import choices, int_in_range

MODULES = ("ffn", "attn", "norm", "all")   # norm: the block's two LayerNorms; all: the whole block


def added_parameters(model) -> list:
    """The parameters that fine-tuning methods added to the model, as opposed to its pre-trained
    weights: everything in the hook modules ``model.prefix`` and ``model.prompt`` (prefix-tuning,
    P-tuning v2, P-tuning v1, prompt tuning) and LoRA's low-rank matrices (parameters named
    ``lora_*``, e.g. ``blocks.0.attn.q.lora_A``)."""
    added = {}
    for hook in (getattr(model, "prefix", None), getattr(model, "prompt", None)):
        if hook is not None:
            added.update((id(p), p) for p in hook.parameters())
    for name, p in model.named_parameters():
        if any(part.startswith("lora_") for part in name.split(".")):
            added[id(p)] = p
    return list(added.values())


def freeze_all_but_head(model):
    """Freeze the pre-trained weights; keep the task head (model.head, if any) trainable and leave
    what an earlier method added (see ``added_parameters``) as it was.

    Every method's apply() starts here and then switches on what it trains. Because an earlier
    method's additions keep their state, methods combine: ``prefix.apply(lora.apply(model))`` trains
    both the LoRA matrices and the prefix (article 2.3.4), instead of leaving a frozen - and, before
    training, random - prefix or adapter in the model.
    """
    keep = [p for p in added_parameters(model) if p.requires_grad]
    model.requires_grad_(False)
    for p in keep:
        p.requires_grad_(True)
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
    """A module name or a list of them, each from MODULES."""
    return choices("modules", modules, MODULES)


def apply(model, layers: int = 2, modules=("ffn",)):
    """Train only ``modules`` of the last ``layers`` blocks (negative: the first ones) and the head."""
    n_layers = model.config.n_layers
    layers = int_in_range("layers", layers, -n_layers, n_layers,
                          hint="N > 0: last N layers, N < 0: first |N|, 0: only the task head")
    modules = check_modules(modules)
    freeze_all_but_head(model)
    for i in selected_layers(n_layers, layers):
        for part in block_modules(model.blocks[i], modules):
            part.requires_grad_(True)
    return model
