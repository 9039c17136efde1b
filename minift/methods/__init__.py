"""Fine-tuning methods, one file each, all with the same shape: ``method.apply(model, ...) -> model``.

    full        every parameter trains (the SFT baseline)
    freeze      only chosen modules of the last (or first) N layers train
    lora        low-rank updates dW = (alpha / r) B A next to frozen linears
    prefix      trainable keys/values at every layer, through an MLP (prefix-tuning)
    ptuning_v2  trainable keys/values at every layer, stored directly (deep prompt tuning)
    ptuning     trainable prompt vectors in the input (P-tuning v1; encoder=None: prompt tuning)

Every apply() first freezes the whole model (base weights and anything an earlier apply added), then
makes trainable what the method adds, plus the task head ``model.head`` if there is one.
"""

from . import freeze, full, lora, prefix, ptuning, ptuning_v2

__all__ = ["full", "freeze", "lora", "prefix", "ptuning", "ptuning_v2"]
