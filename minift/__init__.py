"""minift: learn how large language models are fine-tuned by building every method from scratch.

    import minift
    source = minift.load_source_model("causal-base")
    model = minift.make_target_model(source, task="sequence", num_classes=3)
"""

__version__ = "0.1.0"

from .config import ModelConfig
from .model import Transformer, TransformerOutput
from .heads import make_target_model, SequenceClassificationHead, TokenClassificationHead
from .train import fit, evaluate, default_device
from .analysis.params import trainable_summary
from .pretrained import load_source_model
from . import course, data, methods, quiz


__all__ = ["ModelConfig", "Transformer", "TransformerOutput", "make_target_model",
           "SequenceClassificationHead", "TokenClassificationHead", "fit", "evaluate",
           "default_device", "trainable_summary", "load_source_model", "course", "data", "methods", "quiz"]
