"""The source-model ladder: small Transformers pre-trained on the mini-world corpus.

Fine-tuning starts from a pre-trained *source model*. No weights can be downloaded here, so minift
pre-trains its own: four causal (GPT-style) models of increasing size, for the "does it still work at
scale?" plots, and one bidirectional masked-LM encoder (BERT-style). ``python -m minift.pretrain``
rebuilds them reproducibly; the checkpoints are committed so no notebook waits for pre-training.

Checkpoints are safetensors files: tensors plus a JSON metadata string. Loading them never unpickles
anything, so a checkpoint file cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from .config import ModelConfig
from .files import atomic_path
from .model import Transformer

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MAX_LEN = 64


@dataclass(frozen=True)
class SourceRecipe:
    """How one source model of the ladder is built and pre-trained."""

    d_model: int
    n_layers: int
    n_heads: int
    causal: bool = True
    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0

    @property
    def objective(self) -> str:
        return "causal LM" if self.causal else "masked LM"


LADDER: dict[str, SourceRecipe] = {
    "causal-tiny": SourceRecipe(d_model=32, n_layers=2, n_heads=2, steps=2000, lr=3e-3),
    "causal-small": SourceRecipe(d_model=64, n_layers=3, n_heads=4, steps=2000, lr=2e-3),
    "causal-base": SourceRecipe(d_model=128, n_layers=4, n_heads=4, steps=2000, lr=1e-3),
    "causal-large": SourceRecipe(d_model=192, n_layers=6, n_heads=6, steps=2000, lr=6e-4),
    "encoder-base": SourceRecipe(d_model=128, n_layers=4, n_heads=4, causal=False, steps=2000, lr=1e-3),
}


def source_config(name: str, vocab_size: int) -> ModelConfig:
    recipe = recipe_for(name)
    return ModelConfig(vocab_size=vocab_size, d_model=recipe.d_model, n_layers=recipe.n_layers,
                       n_heads=recipe.n_heads, max_len=MAX_LEN, causal=recipe.causal)


def recipe_for(name: str) -> SourceRecipe:
    if name not in LADDER:
        raise ValueError(f"unknown source model {name!r}; available: {list(LADDER)}")
    return LADDER[name]


def save_model(model: Transformer, path, metadata: dict | None = None) -> None:
    """Write weights + config as safetensors, atomically (temp file, then rename): a crash never
    leaves a half-written checkpoint behind. Tied LM-head weights are stored once."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    header = {"config": json.dumps(model.config.to_dict()), "metadata": json.dumps(metadata or {})}
    with atomic_path(path) as temporary:
        save_file(state, temporary, metadata=header)


def read_metadata(path) -> tuple[ModelConfig, dict]:
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if "config" not in header:
        raise ValueError(f"{path} is not a minift checkpoint (no config in its metadata)")
    return ModelConfig.from_dict(json.loads(header["config"])), json.loads(header.get("metadata", "{}"))


def load_model(path, device=None) -> Transformer:
    """Build a Transformer from a safetensors checkpoint written by save_model (no pickle)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    config, metadata = read_metadata(path)
    model = Transformer(config)
    with safe_open(str(path), framework="pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
    if config.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match its config: missing {missing}, unexpected {unexpected}")
    model.metadata = metadata
    model.eval()
    return model.to(device) if device is not None else model


def load_source_model(name: str = "causal-base", device=None) -> Transformer:
    """Load one pre-trained source model of the ladder (see LADDER for the names)."""
    recipe_for(name)
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"the checkpoint {path} is missing; rebuild it with `python -m minift.pretrain --only {name}`")
    return load_model(path, device=device)


def source_models_info() -> list[dict]:
    """Name, objective, shape, parameter count and final validation loss of every shipped model."""
    rows = []
    for name, recipe in LADDER.items():
        path = CHECKPOINT_DIR / f"{name}.safetensors"
        if not path.exists():
            continue
        config, metadata = read_metadata(path)
        rows.append({"name": name, "objective": recipe.objective, "d_model": config.d_model,
                     "n_layers": config.n_layers, "n_heads": config.n_heads, **metadata})
    return rows
