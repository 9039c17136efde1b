"""Fine-tuning methods, one file each, all with the same shape: ``method.apply(model, ...) -> model``.

    full        every parameter trains (the SFT baseline)
    freeze      only chosen modules of the last (or first) N layers train
    lora        low-rank updates dW = (alpha / r) B A next to frozen linears
    prefix      trainable keys/values at every layer, through an MLP (prefix-tuning)
    ptuning_v2  trainable keys/values at every layer, stored directly (deep prompt tuning)
    ptuning     trainable prompt vectors in the input (P-tuning v1; encoder=None: prompt tuning)

Every apply() except full's first freezes the pre-trained weights (``freeze.freeze_all_but_head``),
then makes trainable what the method adds, plus the task head ``model.head`` if there is one. What an
earlier apply added - LoRA matrices, a prefix, a prompt - keeps the state it had, so methods combine
(article 2.3.4: LoRA with prefix-tuning, or a prompt with either) and both parts train. Two methods
that need the same hook are refused with a message: prefix-tuning and P-tuning v2 (one prefix hook),
two prompts (one prompt hook). full.apply freezes nothing: everything trains.
"""

from . import freeze, full, lora, prefix, ptuning, ptuning_v2

__all__ = ["full", "freeze", "lora", "prefix", "ptuning", "ptuning_v2"]
