"""A miniature of P-tuning v2's scale figure (Liu et al. 2022, figure 1; the article's figure 8).

Score against model size for full fine-tuning, prompt tuning, P-tuning v1 and P-tuning v2, on a
sentence-classification task and a sequence-labelling task of the mini-world, for the source models of
minift's ladder. Chapter 06 loads the JSON this writes and plots it.

    python benchmarks/scale_miniature.py                 # CPU configuration (causal-tiny, causal-small)
    python benchmarks/scale_miniature.py --quick         # a smoke test: seconds, numbers mean nothing
    python benchmarks/scale_miniature.py --gpu           # every model of the ladder, 10 seeds, 300 steps
    python benchmarks/scale_miniature.py --workers 2     # two runs at a time (processes)

How every number is made (the same for every model, task and method):

* a target model from the source model (minift.make_target_model): a new random head, on the last
  real token (causal) or [CLS] (encoder) for classification, on every token for tagging;
* the method: full fine-tuning (full.apply), prompt tuning (ptuning.apply, encoder=None), P-tuning v1
  (ptuning.apply, encoder="lstm", all prompts in front), P-tuning v2 (ptuning_v2.apply: deep prompts,
  no reparameterisation); prompts of the same length for all three prompt methods;
* the learning rate of each (model, task, method) is chosen from a grid on the validation split,
  by the mean over separate selection seeds; then new seeds train at that rate and are scored on the
  test split: accuracy (classification) or entity-level F1 (tagging, minift.analysis.metrics);
* seeds fix the head, the prompts and the batch order; the data are the same for every run.

The results file (results/06_scale_miniature_cpu.json, _gpu.json on a CUDA run, _quick.json for
--quick) is rewritten after every run, so an interrupted run resumes where it stopped: runs already in
the file with the same training recipe (steps, batch, prompt length, data sizes) are not repeated, even
when the grid or the seed list has grown since. It holds every run, the chosen rates, and a summary
per (model, task, method): mean test score, 95% t-interval over seeds, and the per-seed paired
difference to full fine-tuning with its own 95% interval; plus device, torch, commit and date.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch                                        # noqa: E402
from tqdm.auto import tqdm                          # noqa: E402

import minift                                       # noqa: E402
from minift import data                             # noqa: E402
from minift.analysis import metrics                 # noqa: E402
from minift.analysis.metrics import t95             # noqa: E402
from minift.course.setup import results_dir, run_metadata, save_results, set_threads   # noqa: E402
from minift.methods import full, ptuning, ptuning_v2   # noqa: E402

SCHEMA = "minift-06-scale-miniature-v1"
METHODS = ("full fine-tuning", "prompt tuning", "P-tuning v1", "P-tuning v2")
TASKS = ("classification", "tagging")
MAX_LEN = 24                  # the task sentences fit in 22 tokens; 64 positions leave room for prompts

CONFIGS = {
    # ~10 minutes of one CPU core on a busy 2-core machine: the two smallest models, 5 test seeds
    "cpu": dict(models=["causal-tiny", "causal-small"], steps=150, batch=32, length=8,
                n_train=2000, n_val=300, n_test=600, select_seeds=[100, 101], test_seeds=[0, 1, 2, 3, 4],
                grids={"full fine-tuning": [3e-4, 1e-3, 3e-3, 1e-2], "prompt tuning": [3e-3, 1e-2, 3e-2, 1e-1],
                       "P-tuning v1": [3e-3, 1e-2, 3e-2, 1e-1], "P-tuning v2": [3e-3, 1e-2, 3e-2, 1e-1]}),
    # the whole ladder, longer training, more seeds and a finer grid: a few minutes on one GPU
    # (720 runs; with --workers 12 on one GPU, a few minutes)
    "gpu": dict(models=["causal-tiny", "causal-small", "causal-base", "encoder-base", "causal-large"],
                steps=300, batch=32, length=8, n_train=4000, n_val=500, n_test=2000,
                select_seeds=[100, 101], test_seeds=list(range(10)),
                grids={"full fine-tuning": [3e-4, 1e-3, 3e-3, 1e-2], "prompt tuning": [3e-3, 1e-2, 3e-2, 1e-1],
                       "P-tuning v1": [3e-3, 1e-2, 3e-2, 1e-1], "P-tuning v2": [3e-3, 1e-2, 3e-2, 1e-1]}),
    # a smoke test of the machinery (the notebook's tests and a first look): numbers mean nothing
    "quick": dict(models=["causal-tiny"], steps=4, batch=16, length=4, n_train=64, n_val=32, n_test=32,
                  select_seeds=[100], test_seeds=[0, 1], grids={m: [1e-2] for m in METHODS}),
}




def interval(values) -> dict:
    """Mean and 95% t-interval over seeds (the half-width is t * sd / sqrt(n))."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = t95(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


# ----------------------------------------------------------------------------------------- one run

def make_task(name: str, cfg: dict):
    maker = data.classification_task if name == "classification" else data.tagging_task
    return maker(n_train=cfg["n_train"], n_val=cfg["n_val"], n_test=cfg["n_test"], seed=0, max_len=MAX_LEN)


def build(source, task, method: str, seed: int, length: int):
    """The target model for ``method``, with its head and prompts drawn from ``seed``."""
    kind = "sequence" if task.name == "classification" else "token"
    model = minift.make_target_model(source, task=kind, num_classes=len(task.label_names), seed=seed)
    torch.manual_seed(seed)                         # the prompts' random initialisation
    if method == "full fine-tuning":
        return full.apply(model)
    if method == "prompt tuning":
        return ptuning.apply(model, length=length, encoder=None)
    if method == "P-tuning v1":
        return ptuning.apply(model, length=length, encoder="lstm")
    if method == "P-tuning v2":
        return ptuning_v2.apply(model, length=length)
    raise ValueError(f"unknown method {method!r}; allowed: {METHODS}")


def score(model, task, split) -> float:
    """Accuracy for classification, entity-level F1 for tagging."""
    if task.name == "classification":
        return minift.evaluate(model, split)["accuracy"]
    return metrics.entity_f1(model, split, task.label_names)["f1"]


def run_one(source, task, method, lr, seed, cfg, device) -> dict:
    model = build(source, task, method, seed, cfg["length"])
    start = time.perf_counter()
    try:
        minift.fit(model, task.train, steps=cfg["steps"], batch_size=cfg["batch"], lr=lr, seed=seed,
                   device=device, progress=False)
        val, test, failed = score(model, task, task.val), score(model, task, task.test), False
    except FloatingPointError:                      # a diverged run: a failure, scored as missing
        val, test, failed = None, None, True
    summary = minift.trainable_summary(model)
    return {"val": val, "test": test, "failed": failed, "trainable": summary.trainable,
            "total": summary.total, "seconds": time.perf_counter() - start}


def key(run: dict) -> tuple:
    return (run["model"], run["task"], run["method"], float(run["lr"]), int(run["seed"]), run["phase"])


# ------------------------------------------------------------------------------------------ driver

def chosen_rate(runs, model, task, method, grid) -> float | None:
    """The grid rate whose selection runs have the best mean validation score (failures count 0)."""
    best, best_mean = None, -1.0
    for lr in grid:
        vals = [r["val"] if r["val"] is not None else 0.0 for r in runs
                if (r["model"], r["task"], r["method"], r["phase"]) == (model, task, method, "select")
                and r["lr"] == lr]
        if vals and statistics.fmean(vals) > best_mean:
            best, best_mean = lr, statistics.fmean(vals)
    return best


def summarise(runs, cfg) -> dict:
    """Per (model, task, method): chosen rate, test mean and 95% interval, paired difference to full."""
    out = {}
    for model in cfg["models"]:
        for task in TASKS:
            tests = {}
            for method in METHODS:
                lr = chosen_rate(runs, model, task, method, cfg["grids"][method])
                rows = {r["seed"]: r for r in runs if (r["model"], r["task"], r["method"], r["phase"])
                        == (model, task, method, "test") and r["lr"] == lr}
                tests[method] = rows
                if not rows:
                    continue
                any_row = next(iter(rows.values()))
                grid = cfg["grids"][method]
                out.setdefault(model, {}).setdefault(task, {})[method] = {
                    "lr": lr, "lr_at_grid_edge": lr in (min(grid), max(grid)),
                    "trainable": any_row["trainable"], "total": any_row["total"],
                    "test": interval([r["test"] for r in rows.values()]),
                    "failed": sum(r["failed"] for r in rows.values()),
                    "scores": [rows[s]["test"] for s in sorted(rows)]}
            full_rows = tests.get("full fine-tuning", {})
            for method in METHODS[1:]:
                rows = tests.get(method, {})
                seeds = sorted(set(rows) & set(full_rows))
                diffs = [rows[s]["test"] - full_rows[s]["test"] for s in seeds
                         if rows[s]["test"] is not None and full_rows[s]["test"] is not None]
                if diffs and method in out.get(model, {}).get(task, {}):
                    out[model][task][method]["minus_full"] = {**interval(diffs), "per_seed": diffs}
    return out


def plan(cfg) -> list[dict]:
    """Every run of the configuration; test runs need the chosen rate, so they are planned per group."""
    jobs = []
    for model in cfg["models"]:
        for task in TASKS:
            for method in METHODS:
                for lr in cfg["grids"][method]:
                    for seed in cfg["select_seeds"]:
                        jobs.append({"model": model, "task": task, "method": method, "lr": lr, "seed": seed,
                                     "phase": "select"})
                for seed in cfg["test_seeds"]:
                    jobs.append({"model": model, "task": task, "method": method, "lr": None, "seed": seed,
                                 "phase": "test"})
    return jobs


_CACHE: dict = {}


def _run_cached(job, cfg, device_name, threads):
    """One run in this process, with the tasks and source models loaded once per process."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    if "tasks" not in _CACHE:
        _CACHE["tasks"] = {t: make_task(t, cfg) for t in TASKS}
    sources = _CACHE.setdefault("sources", {})
    if job["model"] not in sources:
        sources[job["model"]] = minift.load_source_model(job["model"]).to(device)
    return run_one(sources[job["model"]], _CACHE["tasks"][job["task"]], job["method"], job["lr"], job["seed"],
                   cfg, device)


def _execute(todo, cfg, device, workers):
    """Yield (job, result) for every job: in this process, or in ``workers`` processes at a time (each
    run is seeded on its own, so the order in which they finish changes nothing)."""
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            yield job, _run_cached(job, cfg, str(device), None)
        return
    import concurrent.futures
    import multiprocessing
    per_worker = max(1, (os.cpu_count() or 1) // workers)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_cached, job, cfg, str(device), per_worker): job for job in todo}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--gpu", action="store_true", help="the GPU configuration (whole ladder, 10 seeds)")
    group.add_argument("--quick", action="store_true", help="a smoke test: one tiny model, a few steps")
    parser.add_argument("--models", nargs="*", help="only these source models (default: the configuration's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--name", default=None, help="results name (default 06_scale_miniature_<config>)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing results file (no resume)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs at a time in separate processes (default: 1; --gpu: 12, since these small "
                             "models leave a GPU mostly idle)")
    args = parser.parse_args(argv)

    config = "gpu" if args.gpu else "quick" if args.quick else "cpu"
    if args.workers is None:
        args.workers = 12 if config == "gpu" else 1
    if args.workers < 1:
        parser.error(f"--workers must be a positive integer, got {args.workers}")
    cfg = json.loads(json.dumps(CONFIGS[config]))
    if args.models:
        unknown = [m for m in args.models if m not in minift.source_models.LADDER]
        if unknown:
            parser.error(f"unknown source model(s) {unknown}; available: {list(minift.source_models.LADDER)}")
        cfg["models"] = args.models
    device = torch.device(args.device) if args.device else minift.default_device()
    threads = set_threads(device)
    torch.manual_seed(0)
    name = args.name or f"06_scale_miniature_{config}"

    runs = []
    previous = None if args.fresh else _load(name)
    if previous is not None:
        old = previous["data"]
        if old.get("schema") == SCHEMA and _run_settings(old.get("settings", {})) == _run_settings(_settings(cfg)):
            runs = old["runs"]         # same training recipe: keep every run (grids and seed lists may grow)
        else:
            print(f"{name}.json was made with other settings: starting afresh (it will be overwritten)")
    done = {key(r) for r in runs}
    jobs = plan(cfg)
    print(f"configuration {config}: {len(cfg['models'])} model(s) x {len(TASKS)} tasks x {len(METHODS)} methods, "
          f"{len(jobs)} runs planned, {len(done)} already done | device {device} | {threads} thread(s) | "
          f"{args.workers} worker(s)")

    start = time.perf_counter()
    cpu_start = time.process_time()
    elapsed_before = previous["data"].get("seconds", 0.0) if runs and previous else 0.0
    cpu_before = previous["data"].get("cpu_seconds", 0.0) if runs and previous else 0.0

    def save():
        return _save(name, cfg, config, runs, elapsed_before + time.perf_counter() - start,
                     cpu_before + time.process_time() - cpu_start, device)

    # two phases: every selection run, then the test runs at the rates the selection chose
    with tqdm(total=len(jobs), desc="scale miniature", mininterval=10) as bar:
        for phase in ("select", "test"):
            todo = []
            for job in (j for j in jobs if j["phase"] == phase):
                if phase == "test":
                    job = {**job, "lr": chosen_rate(runs, job["model"], job["task"], job["method"],
                                                    cfg["grids"][job["method"]])}
                if key(job) in done:
                    bar.update()
                else:
                    todo.append(job)
            for job, result in _execute(todo, cfg, device, args.workers):
                runs.append({**job, **result})
                done.add(key(job))
                save()
                bar.set_postfix_str(f"{job['model']} {job['task']} {job['method']} lr={job['lr']:g} "
                                    f"seed={job['seed']}")
                bar.update()
    path = save()
    _report(summarise(runs, cfg))
    print(f"wrote {path}")
    return 0


def _settings(cfg) -> dict:
    return {**cfg, "max_len": MAX_LEN}


RUN_SETTINGS = ("steps", "batch", "length", "n_train", "n_val", "n_test", "max_len")


def _run_settings(settings: dict) -> dict:
    """What decides the outcome of one run (not which runs are planned)."""
    return {k: settings.get(k) for k in RUN_SETTINGS}


def _load(name):
    path = results_dir() / f"{name}.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _save(name, cfg, config, runs, seconds, cpu_seconds, device):
    meta = run_metadata()
    payload = {"schema": SCHEMA, "config": config, "settings": _settings(cfg), "methods": list(METHODS),
               "tasks": list(TASKS), "runs": runs, "summary": summarise(runs, cfg), "seconds": seconds,
               "cpu_seconds": cpu_seconds,
               "machine": {"platform": platform.platform(), "processor": meta["device_name"],
                           "cpus": os.cpu_count(), "device": str(device)},
               "command": "python benchmarks/scale_miniature.py" + {"cpu": "", "gpu": " --gpu",
                                                                     "quick": " --quick"}[config]}
    if meta["git_commit"] == "unknown" and os.environ.get("MINIFT_COMMIT"):
        payload["git_commit"] = os.environ["MINIFT_COMMIT"]
    return save_results(name, payload)


def _report(summary) -> None:
    for model, by_task in summary.items():
        for task, by_method in by_task.items():
            for method, row in by_method.items():
                t = row["test"]
                diff = row.get("minus_full")
                extra = "" if not diff else (f" | minus full {diff['mean']:+.3f} "
                                             f"[{diff['low']:+.3f}, {diff['high']:+.3f}]")
                mean = "nan" if t["mean"] is None else f"{t['mean']:.3f}"
                edge = "*" if row.get("lr_at_grid_edge") else " "
                print(f"{model:<13} {task:<15} {method:<17} lr={row['lr']:<7g}{edge} test {mean} "
                      f"(n={t['n']}, failed {row['failed']}){extra}")


if __name__ == "__main__":
    sys.exit(main())
