"""Prefix-tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation").

Freeze the whole model and learn, for every layer, P "virtual tokens" that exist only as attention
keys and values. Every real token attends to them as if they were earlier context:

    head_l(x) = softmax(Q [P_k,l ; W_k x]^T / sqrt(d_head)) [P_v,l ; W_v x]

Trained through the paper's reparameterisation, P_theta[i, :] = MLP_theta(P'_theta[i, :]) with a
smaller P' and MLP = Linear -> tanh -> Linear; after training only the computed table is kept.
The machinery (shared with P-tuning v2) lives in prefix_module.py.

What apply freezes: every pre-trained weight. Trainable: the prefix (with its MLP) and the task head;
what an earlier method added (a LoRA adapter, an input prompt) keeps its state, so prefix-tuning
combines with LoRA (article 2.3.4). A second prefix (prefix-tuning or P-tuning v2) is refused.
"""

from __future__ import annotations

from .prefix_module import add_prefix, key_values, prefix_module

__all__ = ["apply", "key_values", "freeze_to_table"]


def apply(model, length: int = 16, reparam: bool = True, hidden: int | None = None):
    """Attach a trainable prefix of ``length`` virtual tokens at every layer; freeze everything else
    except the task head. ``hidden``: width of the reparameterisation MLP (default d_model)."""
    return add_prefix(model, length, reparam, hidden, method="prefix-tuning")


def freeze_to_table(model):
    """Drop the reparameterisation MLP after training; keep only the table it computes (same outputs)."""
    prefix_module(model).freeze_to_table()
    return model
