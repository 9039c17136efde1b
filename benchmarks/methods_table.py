"""Every fine-tuning method on the same budget: trainable share and test accuracy (the README's table).

    python benchmarks/methods_table.py [--source causal-small] [--steps 300] [--seeds 0 1 2]

Each method starts from the same pre-trained source model with the same new classification head and
trains for the same number of steps on the mini-world classification task; the test split holds words
never seen in training. Learning rates follow common practice per method (adapters and prompts need a
larger one than full fine-tuning) and are printed with the table. Seeded: the same machine gives the
same table.
"""

from __future__ import annotations

import argparse
import statistics

import torch

import minift
from minift import data
from minift.methods import freeze, full, lora, prefix, ptuning, ptuning_v2

METHODS = {
    # name: (what it trains, apply function, learning rate)
    "head only (linear probe)": ("the new head", lambda m: freeze.apply(m, layers=0), 3e-3),
    "full fine-tuning": ("everything", full.apply, 1e-3),
    "Freeze (last 2 FFNs)": ("FFN of the last 2 layers + head", lambda m: freeze.apply(m, layers=2, modules=("ffn",)), 1e-3),
    "LoRA r=8 (q, v)": ("A, B on W_q, W_v + head", lambda m: lora.apply(m, r=8, alpha=16, targets=("q", "v")), 3e-3),
    "prefix-tuning (16, reparam)": ("prefix MLP + table + head", lambda m: prefix.apply(m, length=16, reparam=True), 3e-3),
    "P-tuning v2 (16)": ("per-layer keys/values + head", lambda m: ptuning_v2.apply(m, length=16), 3e-3),
    "P-tuning v1 (8, LSTM)": ("input prompt encoder + head", lambda m: ptuning.apply(m, length=8, encoder="lstm"), 3e-3),
    "prompt tuning (8)": ("input prompt vectors + head", lambda m: ptuning.apply(m, length=8, encoder=None), 3e-3),
}


def run(source_name: str, steps: int, seeds, n_train: int):
    task = data.classification_task(n_train=n_train, n_val=300, n_test=1000, seed=0)
    source = minift.load_source_model(source_name)
    rows = []
    for name, (what, apply, lr) in METHODS.items():
        accuracies = []
        for seed in seeds:
            model = minift.make_target_model(source, "sequence", task.num_classes, seed=seed)
            apply(model)
            summary = minift.trainable_summary(model)
            minift.fit(model, task.train, steps=steps, batch_size=32, lr=lr, seed=seed,
                       device="cpu", progress=False)
            accuracies.append(minift.evaluate(model, task.test)["accuracy"])
        rows.append({"method": name, "trains": what, "trainable_percent": summary.percent, "lr": lr,
                     "mean": statistics.mean(accuracies),
                     "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0})
        print(f"  {name}: {rows[-1]['mean']:.3f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="causal-small")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.source, args.steps, args.seeds, args.n_train)
    print(f"\nsource {args.source}, {args.n_train} labelled examples, {args.steps} steps of batch 32, "
          f"seeds {args.seeds}; test accuracy mean ± std (chance = 0.33)\n")
    print("| method | trains | trainable % | lr | test accuracy |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['trains']} | {r['trainable_percent']:.2f} | {r['lr']:g} | "
              f"{r['mean']:.3f} ± {r['std']:.3f} |")


if __name__ == "__main__":
    main()
