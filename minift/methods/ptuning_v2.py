"""P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning
Universally Across Scales and Tasks"): deep prompt tuning.

Trainable continuous prompts at every layer instead of only at the input, applied to understanding
tasks with an ordinary classification head. Mechanically it is prefix-tuning: layer l attends to

    softmax(Q [P_k,l ; W_k x]^T / sqrt(d_head)) [P_v,l ; W_v x]

so it reuses the same module (prefix_module.py), but by default without the reparameterisation MLP
(the paper found it helps some tasks and not others): each layer's P_k,l and P_v,l are independent
random parameters trained directly.

What apply freezes: every pre-trained weight. Trainable: the deep prompts and the task head; what an
earlier method added (a LoRA adapter, an input prompt) keeps its state. P-tuning v2 and prefix-tuning
share the one prefix hook, so the second of them is refused.
"""

from __future__ import annotations

from .prefix_module import add_prefix, key_values

__all__ = ["apply", "key_values"]


def apply(model, length: int = 16, reparam: bool = False, hidden: int | None = None):
    """Attach ``length`` trainable deep prompts (keys and values) at every layer; freeze everything
    else except the task head. reparam=True uses prefix-tuning's MLP (width ``hidden``)."""
    return add_prefix(model, length, reparam, hidden, method="P-tuning v2")

