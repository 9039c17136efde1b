"""Rebuild the source-model ladder: ``python -m minift.pretrain [--only NAME ...] [--out DIR]``.

Each model is pre-trained from scratch on the mini-world source corpus with minift's own fit(): causal
models predict the next word, the encoder predicts masked words. Everything is seeded, so the same
machine with the same --threads gives the same checkpoints (the thread count can change the order of
floating-point sums, so it is stored in each checkpoint's metadata). The losses printed at the end go into the README's table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import data
from .pretrained import CHECKPOINT_DIR, LADDER, MAX_LEN, recipe_for, save_model, source_config
from .model import Transformer
from .train import evaluate, fit

VALIDATION_SEED = 10_000


def corpus_split(causal: bool, n_sentences: int, seed: int):
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
