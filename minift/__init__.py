"""minift: learn how large language models are fine-tuned by building every method from scratch.

    import minift
    source = minift.load_source_model("causal-base")
    model = minift.make_target_model(source, task="sequence", num_classes=3)

``import minift`` loads the library core only (config, model, heads, train, data, methods, analysis,
source models). The course wing (``minift.course``: notebook set-up, quizzes, exercise checkers,
widgets, plots) and the bridge to transformers (``minift.interop``) load on first use.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .config import ModelConfig
from .model import Transformer, TransformerOutput
from .heads import make_target_model, SequenceClassificationHead, TokenClassificationHead
from .train import fit, evaluate, default_device
from .analysis.params import trainable_summary
from .source_models import load_source_model
from . import data, methods, analysis

# Loaded on first attribute access, so that ``import minift`` stays fast and never pulls in the course
# wing or transformers. Old names of the course modules stay here as aliases for this release.
_LAZY_MODULES = {
    "interop": "minift.interop",
    "course": "minift.course",
    "quiz": "minift.quiz",
}


def load_pretrained(name: str, **options):
    """A real pretrained model shipped in a pip package, as ``model, tokenizer, card`` (chapter 10):
    "all-minilm-l6-v2" (BERT encoder) or "smollm2-135m-instruct" (LLaMA causal LM). See
    minift.real_models.loading.load_pretrained for the options; needs no transformers."""
    from .real_models.loading import load_pretrained as load

    return load(name, **options)


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        module = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minift' has no attribute {name!r}")


__all__ = ["ModelConfig", "Transformer", "TransformerOutput", "make_target_model",
           "SequenceClassificationHead", "TokenClassificationHead", "fit", "evaluate",
           "default_device", "trainable_summary", "load_source_model", "load_pretrained", "data", "methods", "analysis",
           "interop", "course", "quiz", "__version__"]
