"""Looking inside fine-tuned models.

    params    how many parameters each method trains: counted on a model, and in closed form
    memory    the memory of one training step: predicted per module kind, and measured
    lowrank   the rank structure of weight updates (chapter 03)
    probing   what each layer's hidden states hold (linear probes)
    metrics   entity-level scores for sequence labelling (BIO tags)

The parameter-count functions are re-exported here; the other modules are imported by name.
"""

from .params import (ParamSummary, attention_parameters, block_parameters, embedding_parameters,
                     ffn_parameters, freeze_parameters, head_parameters, layer_norm_parameters,
                     lora_parameters, prefix_parameters, ptuning_parameters, trainable_summary,
                     transformer_parameters)

__all__ = ["ParamSummary", "trainable_summary", "transformer_parameters", "attention_parameters",
           "ffn_parameters", "layer_norm_parameters", "block_parameters", "embedding_parameters",
           "head_parameters", "lora_parameters", "prefix_parameters", "ptuning_parameters",
           "freeze_parameters"]
