"""Full fine-tuning: the baseline every parameter-efficient method is measured against.

Supervised fine-tuning (SFT) in its plainest form, as in GPT (Radford et al. 2018) and BERT (Devlin
et al. 2019): start from the pre-trained weights theta_0 (with a new task head) and update all of
them on the target task,

    theta <- theta - lr * grad_theta L(theta),     every theta trainable

so the trainable fraction is 100% and each fine-tuned task needs its own full copy of the model.

What apply freezes: nothing. Every parameter becomes trainable, including anything an earlier method
added (LoRA matrices, a prefix, a prompt) and the frozen base weights under them.
"""

from __future__ import annotations


def apply(model):
    """Make every parameter trainable (including any adapters, prefixes or prompts on the model)."""
    model.requires_grad_(True)
    return model
