"""The source-model ladder: small Transformers pre-trained on the mini-world corpus.

Fine-tuning starts from a pre-trained *source model*. No weights can be downloaded here, so minift
pre-trains its own: four causal (GPT-style) models of increasing size, for the "does it still work at
scale?" plots, and one bidirectional masked-LM encoder (BERT-style). This module holds the whole
ladder: the recipes (LADDER), building and pre-training a model (pretrain), and saving and loading
checkpoints (save_model, load_model, load_source_model). The checkpoints are committed, so no notebook
waits for pre-training; rebuild them with

    python -m minift.source_models [--only NAME ...] [--out DIR] [--steps N] [--threads N]

(or ``make pretrain``). Each model is pre-trained from scratch with minift's own fit(): causal models
predict the next word, the encoder predicts masked words. Everything is seeded, so the same machine
with the same --threads gives the same checkpoints (the thread count can change the order of
floating-point sums, so it is stored in each checkpoint's metadata). The losses printed at the end go
into the README's table.

Checkpoints are safetensors files: tensors plus a JSON metadata string. Loading them never unpickles
anything, so a checkpoint file cannot run code; a file that is empty, truncated, a directory or not
a minift checkpoint is refused with an error that names it and says what is wrong.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import data
from .config import ModelConfig
from .files import atomic_path
from .model import Transformer
from .train import evaluate, fit

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MAX_LEN = 64
VALIDATION_SEED = 10_000
REBUILD_COMMAND = "python -m minift.source_models"

# `python -m minift.source_models` runs this file as __main__ after `import minift` has already
# imported it (for load_source_model), and runpy warns that this "may result in unpredictable
# behaviour". Here it is intended and harmless: the __main__ copy only runs main(). Only that one
# message is silenced.
warnings.filterwarnings("ignore", message=r"'minift\.source_models' found in sys\.modules",
                        category=RuntimeWarning)


# ---------------------------------------------------------------------------------- the ladder
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


def recipe_for(name: str) -> SourceRecipe:
    if name not in LADDER:
        raise ValueError(f"unknown source model {name!r}; available: {list(LADDER)}")
    return LADDER[name]


def source_config(name: str, vocab_size: int) -> ModelConfig:
    recipe = recipe_for(name)
    return ModelConfig(vocab_size=vocab_size, d_model=recipe.d_model, n_layers=recipe.n_layers,
                       n_heads=recipe.n_heads, max_len=MAX_LEN, causal=recipe.causal)


# ------------------------------------------------------------------------------- checkpoints
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


def _read(path: Path, tensors: bool) -> tuple[dict, dict]:
    """(header metadata, tensors if asked) of a safetensors file. safetensors reports a damaged file
    as a bare SafetensorError or OSError that does not name it; this says which file and what is wrong."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory, not a safetensors file")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes), not a safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()} if tensors else {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: it is truncated, "
                         f"corrupt or in another format (safetensors says: {error})") from error
    return header, state


def _parse_header(path: Path, header: dict) -> tuple[ModelConfig, dict]:
    if "config" not in header:
        raise ValueError(f"{path} is not a minift checkpoint (no config in its metadata)")
    try:
        config = ModelConfig.from_dict(json.loads(header["config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"checkpoint {path} has an invalid config or metadata: {error}") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"checkpoint {path} has invalid metadata: expected a JSON object, got {metadata!r}")
    return config, metadata


def read_metadata(path) -> tuple[ModelConfig, dict]:
    """(config, metadata) of a checkpoint, without reading its tensors."""
    path = Path(path)
    return _parse_header(path, _read(path, tensors=False)[0])


def load_model(path, device=None) -> Transformer:
    """Build a Transformer from a safetensors checkpoint written by save_model (no pickle). A file
    that cannot be read, or whose tensors do not fit its config, raises ValueError naming the file."""
    path = Path(path)
    header, state = _read(path, tensors=True)
    config, metadata = _parse_header(path, header)
    model = Transformer(config)
    if config.tie_embeddings and "tok_emb.weight" in state:
        state["lm_head.weight"] = state["tok_emb.weight"]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:                      # a tensor of the wrong shape
        raise ValueError(f"checkpoint {path} does not match its config: {error}") from error
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match its config: missing {missing}, unexpected {unexpected}")
    model.metadata = metadata
    model.eval()
    return model.to(device) if device is not None else model


def load_source_model(name: str = "causal-base", device=None) -> Transformer:
    """Load one pre-trained source model of the ladder (see LADDER for the names)."""
    recipe_for(name)
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    rebuild = f"rebuild it with `{REBUILD_COMMAND} --only {name}`"
    if not path.exists():
        raise FileNotFoundError(f"the checkpoint {path} is missing; {rebuild}")
    try:
        return load_model(path, device=device)
    except ValueError as error:
        raise ValueError(f"{error}; {rebuild}") from error


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


# ------------------------------------------------------------------------------- pre-training
def corpus_split(causal: bool, n_sentences: int, seed: int):
    """Source-corpus sentences as a pre-training split: next word (causal) or masked words."""
    texts = data.source_corpus(n_sentences, seed=seed)
    if causal:
        return data.causal_lm_split(texts, max_len=MAX_LEN, pack=True)
    return data.masked_lm_split(texts, max_len=MAX_LEN, seed=seed, pack=True)


def pretrain(name: str, steps: int | None = None, device="cpu", progress: bool = True):
    """Pre-train one model of the ladder. Returns (model, metrics)."""
    recipe = recipe_for(name)
    steps = steps or recipe.steps
    tokenizer = data.get_tokenizer()
    torch.manual_seed(recipe.seed)
    model = Transformer(source_config(name, tokenizer.vocab_size))
    # enough packed rows for about two passes over fresh sentences
    n_sentences = max(2000, steps * recipe.batch_size * 3 // 2)
    train = corpus_split(recipe.causal, n_sentences, seed=recipe.seed)
    val = corpus_split(recipe.causal, 2000, seed=VALIDATION_SEED)
    start = time.perf_counter()
    fit(model, train, val, steps=steps, batch_size=recipe.batch_size, lr=recipe.lr, warmup=0.05,
        weight_decay=0.01, seed=recipe.seed, device=device, progress=progress,
        desc=f"pre-training {name}")
    seconds = time.perf_counter() - start
    model.to("cpu")
    final = evaluate(model, val)
    metrics = {"objective": recipe.objective, "parameters": model.num_parameters(), "steps": steps,
               "batch_size": recipe.batch_size, "lr": recipe.lr, "seed": recipe.seed,
               "val_loss": round(final["loss"], 4), "val_accuracy": round(final["accuracy"], 4),
               "train_seconds": round(seconds, 1), "device": str(device),
               "threads": torch.get_num_threads()}
    return model, metrics


def main(argv=None):
    """Rebuild the source-model ladder (the command line of ``python -m minift.source_models``)."""
    parser = argparse.ArgumentParser(prog=REBUILD_COMMAND,
                                     description="Rebuild the source-model ladder: pre-train each model "
                                                 "and write its checkpoint.")
    parser.add_argument("--only", nargs="*", choices=list(LADDER), help="models to rebuild (default: all)")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="where to write the checkpoints")
    parser.add_argument("--steps", type=int, default=None, help="override every recipe's step count")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.only or list(LADDER):
        model, metrics = pretrain(name, steps=args.steps)
        save_model(model, args.out / f"{name}.safetensors", metrics)
        rows.append((name, metrics))
        print(f"{name:14s} {metrics['objective']:10s} params={metrics['parameters']:>9,d} "
              f"val_loss={metrics['val_loss']:.4f} val_acc={metrics['val_accuracy']:.4f} "
              f"({metrics['train_seconds']:.0f} s)", flush=True)
    return rows


if __name__ == "__main__":
    main()
