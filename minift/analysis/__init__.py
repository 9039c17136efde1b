"""Looking inside fine-tuned models: parameter counts (params.py) and more."""

from .params import (ParamSummary, attention_parameters, block_parameters, embedding_parameters,
                     ffn_parameters, freeze_parameters, head_parameters, layer_norm_parameters,
                     lora_parameters, prefix_parameters, ptuning_parameters, trainable_summary,
                     transformer_parameters)

__all__ = ["ParamSummary", "trainable_summary", "transformer_parameters", "attention_parameters",
           "ffn_parameters", "layer_norm_parameters", "block_parameters", "embedding_parameters",
           "head_parameters", "lora_parameters", "prefix_parameters", "ptuning_parameters",
           "freeze_parameters"]
