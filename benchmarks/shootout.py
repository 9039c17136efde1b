"""The shoot-out: every fine-tuning method on the same work, with the same budget (chapter 08).

    python benchmarks/shootout.py --quick            # seconds; the test suite and fast-mode notebook
    python benchmarks/shootout.py --cpu              # the documented CPU configuration
    python benchmarks/shootout.py --gpu              # larger sources, more seeds (one accelerator)
    python benchmarks/shootout.py --readme results/08_shootout_cpu.json   # README methods table

Each method starts from the same pre-trained source model with the same new task head (same seed, same
head, same order of batches) and trains for the same number of optimizer steps. Its learning rate is
picked from a 3-value grid on the validation split (seed 0, first budget) and then run with >= 5 seeds,
at the budget and at a second budget 4x larger. Per run: test score (accuracy, or entity F1 for BIO
tagging), trainable parameters, steps to reach 95% of the run's final validation score; per method,
task and source: measured training memory (on CUDA the peak allocator figure), time per step, bytes on
disk of what must be stored per task, inference latency (LoRA merged). Data efficiency: score against
the number of labelled examples for full, LoRA, Freeze and P-tuning v2.

Resumable: every finished run is one JSON line in ``<out>.records.jsonl``; a re-run skips what is there
(two processes may share the file: ``--sources`` splits the work). The last step writes ``<out>``: the
machine, torch version, commit, date, configuration and every record. Seeded: same machine, same numbers
(the time columns excepted).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import minift
from minift import data
from minift.analysis.memory import measure_training_memory
from minift.analysis.metrics import entity_f1
from minift.methods import freeze, full, lora, prefix, ptuning, ptuning_v2

ROOT = Path(__file__).resolve().parent.parent
ALL_SIX = ("q", "k", "v", "o", "w1", "w2")   # every linear of a block with a plain (non-gated) FFN

# name: (what is trained, apply function, learning-rate grid). The grids sit where each family is
# known to work (prompts and prefixes need larger rates than full fine-tuning); the middle value is
# the usual choice, the validation split picks one of the three.
METHODS = {
    "head only": ("the new head", lambda m: freeze.apply(m, layers=0), (3e-3, 1e-2, 3e-2)),
    "full": ("everything", full.apply, (3e-4, 1e-3, 3e-3)),
    "Freeze (last 2 FFNs)": ("FFNs of the last 2 layers + head",
                             lambda m: freeze.apply(m, layers=2, modules=("ffn",)), (1e-3, 3e-3, 1e-2)),
    "LoRA r=8 (q,v)": ("A, B on W_q, W_v + head",
                       lambda m: lora.apply(m, r=8, alpha=16, targets=("q", "v"), seed=0), (1e-3, 3e-3, 1e-2)),
    "LoRA r=8 (all 6)": ("A, B on q, k, v, o, w1, w2 + head",
                         lambda m: lora.apply(m, r=8, alpha=16, targets=ALL_SIX, seed=0), (1e-3, 3e-3, 1e-2)),
    "prefix (reparam)": ("prefix MLP + table + head",
                         lambda m: prefix.apply(m, length=16, reparam=True), (3e-3, 1e-2, 3e-2)),
    "prompt tuning": ("8 input vectors + head",
                      lambda m: ptuning.apply(m, length=8, encoder=None), (1e-2, 3e-2, 1e-1)),
    "P-tuning v1 (LSTM)": ("LSTM prompt encoder + head",
                           lambda m: ptuning.apply(m, length=8, encoder="lstm"), (3e-3, 1e-2, 3e-2)),
    "P-tuning v2": ("keys/values at every layer + head",
                    lambda m: ptuning_v2.apply(m, length=16), (3e-3, 1e-2, 3e-2)),
    "LoRA + prefix": ("LoRA (q,v) + prefix MLP + head",
                      lambda m: prefix.apply(lora.apply(m, r=8, alpha=16, targets=("q", "v"), seed=0),
                                             length=16, reparam=True), (1e-3, 3e-3, 1e-2)),
}
DATA_METHODS = ("full", "LoRA r=8 (q,v)", "Freeze (last 2 FFNs)", "P-tuning v2")
TASKS = {"classification": ("sequence", "accuracy"), "tagging": ("token", "entity F1")}

# Each configuration is a list of "parts" run in this order, so that what matters most is done first.
# A part: sources x tasks x methods at the given budgets (the LR grid always runs at the first budget).
CONFIGS = {
    "quick": {
        "device": "cpu", "batch_size": 8, "n_train": 48, "n_val": 16, "n_test": 16, "seeds": [0, 1],
        "budget": 3, "parts": [
            {"sources": ["causal-tiny"], "tasks": ["classification"], "methods": list(METHODS),
             "budgets": [1, 4]},
            {"sources": ["causal-tiny"], "tasks": ["tagging"], "methods": ["LoRA r=8 (q,v)"], "budgets": [1]},
        ],
        "labels": {"source": "causal-tiny", "task": "classification", "sizes": [16],
                   "methods": list(DATA_METHODS), "seeds": [0, 1]},
    },
    "cpu": {
        "device": "cpu", "batch_size": 16, "n_train": 1000, "n_val": 200, "n_test": 500,
        "seeds": [0, 1, 2, 3, 4], "budget": 40, "parts": [
            {"sources": ["causal-tiny"], "tasks": ["classification", "tagging"], "methods": list(METHODS),
             "budgets": [1]},
            {"sources": ["causal-tiny"], "tasks": ["classification"], "methods": list(METHODS),
             "budgets": [4]},
            {"sources": ["causal-small"], "tasks": ["classification"], "methods": list(METHODS),
             "budgets": [1]},
        ],
        "labels": {"source": "causal-tiny", "task": "classification", "sizes": [30, 100, 300, 1000],
                   "methods": list(DATA_METHODS), "seeds": [0, 1, 2, 3, 4]},
    },
    "gpu": {
        "device": "cuda", "batch_size": 32, "n_train": 3000, "n_val": 500, "n_test": 1000,
        "seeds": list(range(10)), "budget": 200, "parts": [
            {"sources": ["causal-base", "causal-large"], "tasks": ["classification", "tagging"],
             "methods": list(METHODS), "budgets": [1, 4]},
        ],
        "labels": {"source": "causal-base", "task": "classification", "sizes": [30, 100, 300, 1000, 3000],
                   "methods": list(DATA_METHODS), "seeds": list(range(10))},
    },
}
DEFAULT_OUT = {"quick": "results/08_shootout_quick.json", "cpu": "results/08_shootout_cpu.json",
               "gpu": "results/08_shootout_gpu.json"}


# ------------------------------------------------------------------------------------ helpers
def machine_info(device: str) -> dict:
    """What ran the numbers (the time columns mean little without it)."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "device": device}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


_TASK_CACHE: dict = {}


def get_task(name: str, n_train: int, cfg: dict):
    """The task at n_train labelled examples; val and test are the same for every n_train."""
    key = (name, n_train, cfg["n_val"], cfg["n_test"])
    if key not in _TASK_CACHE:
        make = data.classification_task if name == "classification" else data.tagging_task
        _TASK_CACHE[key] = make(n_train=n_train, n_val=cfg["n_val"], n_test=cfg["n_test"], seed=0)
    return _TASK_CACHE[key]


_SOURCE_CACHE: dict = {}


def get_source(name: str):
    if name not in _SOURCE_CACHE:
        _SOURCE_CACHE[name] = minift.load_source_model(name)
    return _SOURCE_CACHE[name]


def build(source_name: str, task, method: str, seed: int):
    """The source model with a new head (seed) and the method applied (its random parts seeded too)."""
    model = minift.make_target_model(get_source(source_name), TASKS[task.name][0], task.num_classes, seed=seed)
    torch.manual_seed(seed)
    METHODS[method][1](model)
    return model


def score(model, task, split) -> float:
    """Accuracy for classification, entity F1 for BIO tagging."""
    if task.name == "tagging":
        return entity_f1(model, split, task.label_names)["f1"]
    return minift.evaluate(model, split)["accuracy"]


def steps_to_fraction(eval_steps, values, fraction: float = 0.95):
    """The first evaluation step whose value reaches ``fraction`` of the last value (None if none do).

    How fast a method gets going: a slow starter needs most of its budget to get near where it ends."""
    if not values:
        return None
    target = fraction * values[-1]
    for step, value in zip(eval_steps, values):
        if value >= target:
            return int(step)
    return int(eval_steps[-1])


def train_run(cfg, source: str, task_name: str, method: str, lr: float, seed: int, steps: int,
              n_train: int) -> dict:
    task = get_task(task_name, n_train, cfg)
    model = build(source, task, method, seed)
    start = time.perf_counter()
    history = minift.fit(model, task.train, task.val, steps=steps, batch_size=cfg["batch_size"], lr=lr,
                         seed=seed, device=cfg["device"], progress=False, eval_every=max(1, steps // 10))
    summary = minift.trainable_summary(model)
    return {"val": score(model, task, task.val), "test": score(model, task, task.test),
            "trainable": summary.trainable, "total_params": summary.total, "trainable_percent": summary.percent,
            "seconds_per_step": history.seconds_per_step,
            "steps_to_95": steps_to_fraction(history.eval_step, history.eval_accuracy),
            "val_curve": [history.eval_step, history.eval_accuracy],
            "seconds": time.perf_counter() - start}


def stored_bytes(model) -> int:
    """Bytes on disk of what one more task costs: the trainable tensors (the frozen source is shared)."""
    state = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task.pt"
        torch.save(state, path)
        return path.stat().st_size


@torch.no_grad()
def latency_ms(model, batch, repeats: int = 20) -> float:
    """Median milliseconds of one forward pass on ``batch`` in eval mode (after two warm-up passes)."""
    model.eval()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    cuda = ids.device.type == "cuda"
    times = []
    for i in range(repeats + 2):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(ids, attention_mask=mask)
        if cuda:
            torch.cuda.synchronize()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cost_run(cfg, source: str, task_name: str, method: str) -> dict:
    """Memory, storage and latency of one method (these do not depend on the seed or the rate)."""
    task = get_task(task_name, cfg["n_train"], cfg)
    device = torch.device(cfg["device"])
    model = build(source, task, method, 0).to(device)
    batch = {k: v.to(device) for k, v in next(iter(task.train.batches(cfg["batch_size"], shuffle=False))).items()}
    memory = measure_training_memory(copy.deepcopy(model), batch)
    test_batch = {k: v.to(device) for k, v in next(iter(task.test.batches(64, shuffle=False))).items()}
    merged = method.startswith("LoRA")
    if merged:
        lora.merge(model)
    return {"memory": memory, "memory_bytes": memory.get("peak_cuda", memory["total"]),
            "stored_bytes": stored_bytes(model), "latency_ms": latency_ms(model, test_batch),
            "latency_merged": merged}


# ------------------------------------------------------------------------------------ records
def record_key(rec: dict) -> str:
    return "|".join(str(rec[k]) for k in ("kind", "source", "task", "method", "budget", "lr", "seed", "n_train"))


def read_records(path: Path) -> list:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:       # a line cut short by an interrupted run: redo that run
                continue
    return out


def append_record(path: Path, rec: dict) -> None:
    """One line, one write, appended (two processes may share the file)."""
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def chosen_lr(records: list, source: str, task: str, method: str):
    """The grid value with the best validation score (ties: the smaller rate); None if not run yet."""
    grid = [r for r in records if r["kind"] == "lr" and r["source"] == source and r["task"] == task
            and r["method"] == method]
    if len(grid) < len(METHODS[method][2]):
        return None
    return max(grid, key=lambda r: (r["val"], -r["lr"]))["lr"]


def plan(cfg: dict, sources=None) -> list:
    """Every job of the configuration, in the order they run: (kind, source, task, method, budget, seed, n_train)."""
    jobs = []
    b = cfg["budget"]
    for number, part in enumerate(cfg["parts"]):
        if number == 1:                      # score against labels right after the first part
            jobs += _label_jobs(cfg, sources)
        for source in part["sources"]:
            if sources and source not in sources:
                continue
            for task in part["tasks"]:
                for method in part["methods"]:
                    if 1 in part["budgets"]:
                        jobs += [("lr", source, task, method, b, 0, cfg["n_train"], lr) for lr in METHODS[method][2]]
                        jobs.append(("cost", source, task, method, 0, 0, cfg["n_train"], 0))
                    for mult in part["budgets"]:
                        jobs += [("run", source, task, method, b * mult, s, cfg["n_train"], None)
                                 for s in cfg["seeds"]]
    if len(cfg["parts"]) == 1:
        jobs += _label_jobs(cfg, sources)
    return jobs


def _label_jobs(cfg: dict, sources) -> list:
    jobs, b = [], cfg["budget"]
    lab = cfg["labels"]
    if not sources or lab["source"] in sources:
        for n in lab["sizes"]:
            for method in lab["methods"]:
                if n == cfg["n_train"] and _main_cell(cfg, lab["source"], lab["task"], method):
                    continue                    # the main runs are these runs: label_runs() reuses them
                jobs += [("labels", lab["source"], lab["task"], method, b, s, n, None) for s in lab["seeds"]]
    return jobs


def _main_cell(cfg: dict, source: str, task: str, method: str) -> bool:
    """Whether the main parts run this cell at the first budget with every labels seed."""
    return any(source in p["sources"] and task in p["tasks"] and method in p["methods"] and 1 in p["budgets"]
               for p in cfg["parts"]) and set(cfg["labels"]["seeds"]) <= set(cfg["seeds"])


def run_jobs(cfg: dict, records_path: Path, sources=None, progress: bool = True) -> None:
    records = read_records(records_path)
    done = {record_key(r) for r in records}
    jobs = plan(cfg, sources)
    with tqdm(jobs, desc="shoot-out", disable=not progress) as bar:
        for kind, source, task, method, budget, seed, n_train, lr in bar:
            if kind in ("run", "labels"):
                lr = chosen_lr(records, source, task, method)
                if lr is None:
                    raise RuntimeError(f"no learning rate chosen yet for {method} on {source}/{task}: "
                                       "its grid must run first (it comes earlier in the plan)")
            rec = {"kind": kind, "source": source, "task": task, "method": method, "budget": budget,
                   "lr": lr, "seed": seed, "n_train": n_train}
            if record_key(rec) in done:
                continue
            bar.set_postfix_str(f"{kind} {source} {task} {method} {budget}")
            rec["started"] = time.time()
            if kind == "cost":
                rec.update(cost_run(cfg, source, task, method))
            else:
                rec.update(train_run(cfg, source, task, method, lr, seed, budget, n_train))
            rec["finished"] = time.time()
            append_record(records_path, rec)
            records.append(rec)
            done.add(record_key(rec))


def write_results(cfg_name: str, cfg: dict, records_path: Path, out: Path, command: str) -> dict:
    records = read_records(records_path)
    started = min((r["started"] for r in records), default=time.time())
    finished = max((r["finished"] for r in records), default=time.time())
    result = {
        "config_name": cfg_name, "config": cfg, "command": command,
        "methods": {name: {"trains": what, "lr_grid": list(grid)} for name, (what, _, grid) in METHODS.items()},
        "tasks": {name: {"head": head, "metric": metric} for name, (head, metric) in TASKS.items()},
        "machine": machine_info(cfg["device"]), "torch": torch.__version__, "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": finished - started,
        "compute_seconds": sum(r["finished"] - r["started"] for r in records),
        "records": records,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


# ------------------------------------------------------------------------------------ summaries
def runs(result: dict, source: str, task: str, method: str, budget: int, kind: str = "run") -> list:
    """The seed runs of one cell, sorted by seed."""
    return sorted((r for r in result["records"] if r["kind"] == kind and r["source"] == source
                   and r["task"] == task and r["method"] == method and r["budget"] == budget),
                  key=lambda r: r["seed"])


def label_runs(result: dict, method: str, n_train: int) -> list:
    """The data-efficiency runs of ``method`` at ``n_train`` labelled examples, sorted by seed."""
    cfg, lab = result["config"], result["config"]["labels"]
    if n_train == cfg["n_train"] and _main_cell(cfg, lab["source"], lab["task"], method):
        rs = runs(result, lab["source"], lab["task"], method, cfg["budget"])
        return [r for r in rs if r["seed"] in lab["seeds"]]
    return sorted((r for r in result["records"] if r["kind"] == "labels" and r["method"] == method
                   and r["n_train"] == n_train), key=lambda r: r["seed"])


def cost(result: dict, source: str, task: str, method: str):
    for r in result["records"]:
        if r["kind"] == "cost" and r["source"] == source and r["task"] == task and r["method"] == method:
            return r
    return None


def table_rows(result: dict, source: str, task: str, budget: int) -> list:
    """One row per method that ran: mean and std over seeds of the test score, plus the costs."""
    rows = []
    for method in METHODS:
        rs = runs(result, source, task, method, budget)
        c = cost(result, source, task, method)
        if not rs or c is None:
            continue
        scores = [r["test"] for r in rs]
        rows.append({"method": method, "trains": METHODS[method][0], "lr": rs[0]["lr"], "n_seeds": len(rs),
                     "mean": statistics.mean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                     "trainable": rs[0]["trainable"], "trainable_percent": rs[0]["trainable_percent"],
                     "memory_bytes": c["memory_bytes"], "stored_bytes": c["stored_bytes"],
                     "latency_ms": c["latency_ms"],
                     "ms_per_step": 1000 * statistics.median(r["seconds_per_step"] for r in rs),
                     "steps_to_95": statistics.median(r["steps_to_95"] for r in rs)})
    return rows


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1024 ** 2 else f"{n / 1024 ** 2:,.1f} MiB"


def readme_section(result: dict) -> str:
    """The README's methods table, from the shoot-out JSON (one source of truth)."""
    cfg = result["config"]
    part = cfg["parts"][0]
    source, task = part["sources"][0], part["tasks"][0]
    # the longest budget at which every method of the first setting ran (the least under-trained table)
    budgets = sorted({cfg["budget"] * m for p in cfg["parts"] if source in p["sources"] and task in p["tasks"]
                      for m in p["budgets"]}, reverse=True)
    budget = next((b for b in budgets if len(table_rows(result, source, task, b)) == len(METHODS)), budgets[-1])
    metric = result["tasks"][task]["metric"]
    rows = table_rows(result, source, task, budget)
    lines = [
        "## The methods, measured",
        "",
        f"Every method on the same work (`{source}` source, {task}, {cfg['n_train']} labelled examples, "
        f"{budget} steps of batch {cfg['batch_size']}), learning rate picked per method from a 3-value grid "
        f"on the validation split (at {cfg['budget']} steps), {len(cfg['seeds'])} seeds. Test {metric}: mean ± std over seeds. "
        "Memory: measured bytes of one training step (weights, gradients, AdamW states, activations); "
        "stored: bytes on disk of what one more task needs (the source is shared); latency: one forward "
        "pass of 64 test sentences (LoRA merged), measured once per method: on a machine shared with other jobs "
        "(as for the committed file) it is mostly noise; chapter 08 times merged LoRA against the plain model "
        "interleaved and finds them equal.",
        "",
        f"| method | trains | trainable % | lr | test {metric} | train memory | stored per task | latency |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trains']} | {r['trainable_percent']:.2f} | {r['lr']:g} | "
                     f"{r['mean']:.3f} ± {r['std']:.3f} | {_kib(r['memory_bytes'])} | {_kib(r['stored_bytes'])} | "
                     f"{r['latency_ms']:.1f} ms |")
    lines += ["", f"Made by `{result['command']}` on {result['machine']['processor']} "
              f"({result['machine']['cpu_count']} cores, torch {result['torch']}), {result['date'][:10]}, "
              f"{result['wall_seconds'] / 60:.0f} min wall. Chapter 08 (`notebooks/08_shootout.ipynb`) has "
              "the other task and source, the 4x budget, score against labels, paired differences with 95% "
              "intervals, and where this disagrees with the article.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="a few steps of a few methods (tests)")
    mode.add_argument("--cpu", action="store_true", help="the documented CPU configuration")
    mode.add_argument("--gpu", action="store_true", help="larger sources and more seeds on CUDA")
    mode.add_argument("--readme", metavar="JSON", help="print the README methods table from a results file")
    parser.add_argument("--out", help="results JSON (default: results/08_shootout_<config>.json)")
    parser.add_argument("--sources", nargs="+", help="run only these sources (to split work between processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.readme:
        print(readme_section(json.loads(Path(args.readme).read_text())))
        return None
    name = "quick" if args.quick else "cpu" if args.cpu else "gpu"
    cfg = CONFIGS[name]
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device (none is available); use --cpu")
    unknown = set(args.sources or ()) - {s for p in cfg["parts"] for s in p["sources"]}
    if unknown:
        raise SystemExit(f"--sources {sorted(unknown)}: not in the {name} configuration")
    torch.set_num_threads(args.threads)
    out = Path(args.out or ROOT / DEFAULT_OUT[name])
    out.parent.mkdir(parents=True, exist_ok=True)
    records_path = out.with_name(out.name.replace(".json", "") + ".records.jsonl")
    run_jobs(cfg, records_path, args.sources, progress=not args.no_progress)
    command = f"python benchmarks/shootout.py --{name}"
    return write_results(name, cfg, records_path, out, command)


if __name__ == "__main__":
    main()
