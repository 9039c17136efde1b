"""Chapter 10's benchmark: fine-tuning methods on a real pretrained encoder against minift's own.

    python benchmarks/real_models.py --cpu        # about 10 minutes on one core: results/10_real_encoder_cpu.json
    python benchmarks/real_models.py --gpu        # more data, steps and seeds, and the causal-LM part:
                                                  #   results/10_real_models_gpu.json
    python benchmarks/real_models.py --dry-run    # seconds; the test suite (its numbers mean nothing)

The encoder part (every configuration): the mini-world's sentiment task (3 classes), its sentences cut
by the real WordPiece tokenizer for all-MiniLM-L6-v2 (a 6-layer BERT, 22.6M parameters) and by the
mini-world word tokenizer for minift's encoder-base (4 layers, d = 128). Methods from minift.methods,
unchanged: on MiniLM the head alone (a linear probe of the frozen features), LoRA r = 8 on W_q, W_v,
P-tuning v2 with 16 deep prompts (the same 73,728 trainable parameters as that LoRA) and Freeze (the FFN
of the last layer, the article's recipe); on encoder-base full fine-tuning and the same LoRA. --gpu adds
full fine-tuning of MiniLM. Both models pool the mean of the real tokens (what MiniLM was trained with).

The causal part (--gpu; --dry-run with --parts causal): SmolLM2-135M-Instruct taught the mini-world's
negation task as a chat (system "Negate the sentence.", user: a sentence, assistant: its negation; the
loss counts the assistant's tokens only), LoRA r = 8 on W_q, W_v against LoRA r = 8 on every linear;
the score is exact match of greedy decoding, which equals "every answer token, and the end-of-turn
token, is the arg-max under teacher forcing" (one forward pass instead of a decoding loop); the
published model's own score (before any fine-tuning) is stored as causal_zero_shot.

How every number is made: a target model with a new head (seed), the method applied (its random parts
seeded), minift.fit for the configured steps (batches shuffled by the seed). Each (model, method) gets
its learning rate from a 3-value grid on the validation split (seed 0); then seeds 0..n-1 train at that
rate and are scored on the test split. The comparisons are paired by seed (same head, same batches):
per-seed differences, their mean and a 95% t-interval; "inconclusive" when the interval contains 0.

Resumable and seeded: the results file is rewritten after every run and runs already in it (same
recipe) are skipped; same machine, same numbers (the time columns excepted). The file holds the
machine, torch version, commit, date, configuration, every run and the summary.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch                                        # noqa: E402

import minift                                       # noqa: E402
from minift import data                             # noqa: E402
from minift.course.setup import cpu_name, git_commit, set_threads   # noqa: E402
from minift.files import atomic_path                # noqa: E402
from minift.analysis.metrics import t95             # noqa: E402
from minift.methods import freeze, full, lora, ptuning_v2   # noqa: E402

SCHEMA = "minift-10-real-models-v1"
MINILM, MINI = "all-MiniLM-L6-v2", "encoder-base"
SMOLLM2 = "SmolLM2-135M-Instruct"
ALL_LINEARS = ("q", "k", "v", "o", "w1", "w2", "w3")          # every linear of a LLaMA block
SYSTEM = "Negate the sentence."                                  # the causal task's system message

# (model, method) -> (what trains, apply, learning-rate grid). The grids sit where each family is known
# to work: prompts need larger rates than weights, a pre-trained FFN smaller ones than a new adapter.
ENCODER_METHODS = {
    (MINILM, "head only"): ("the new head (linear probe)", lambda m: freeze.apply(m, layers=0), (1e-2, 3e-2, 1e-1)),
    (MINILM, "LoRA r=8 (q,v)"): ("A, B on W_q, W_v + head",
                                 lambda m: lora.apply(m, r=8, alpha=16, targets=("q", "v"), seed=0), (3e-3, 1e-2, 3e-2)),
    (MINILM, "P-tuning v2 (16)"): ("16 deep prompts per layer + head",
                                   lambda m: ptuning_v2.apply(m, length=16), (3e-2, 1e-1, 3e-1)),
    (MINILM, "Freeze (last FFN)"): ("FFN of the last layer + head",
                                    lambda m: freeze.apply(m, layers=1, modules=("ffn",)), (1e-3, 3e-3, 1e-2)),
    (MINILM, "full"): ("everything", full.apply, (3e-5, 1e-4, 3e-4)),
    (MINI, "full"): ("everything", full.apply, (1e-3, 3e-3, 1e-2)),
    (MINI, "LoRA r=8 (q,v)"): ("A, B on W_q, W_v + head",
                               lambda m: lora.apply(m, r=8, alpha=16, targets=("q", "v"), seed=0), (1e-3, 3e-3, 1e-2)),
}
CAUSAL_METHODS = {
    (SMOLLM2, "LoRA r=8 (q,v)"): ("A, B on W_q, W_v", lambda m: lora.apply(m, r=8, alpha=16, targets=("q", "v"), seed=0),
                                  (3e-4, 1e-3, 3e-3)),
    (SMOLLM2, "LoRA r=8 (all 7)"): ("A, B on q, k, v, o, w1, w2, w3",
                                    lambda m: lora.apply(m, r=8, alpha=16, targets=ALL_LINEARS, seed=0), (3e-4, 1e-3, 3e-3)),
}
# (A, B): "A - B" on the same seeds
ENCODER_COMPARISONS = [((MINILM, "LoRA r=8 (q,v)"), (MINI, "LoRA r=8 (q,v)")),
                       ((MINILM, "LoRA r=8 (q,v)"), (MINI, "full")),
                       ((MINILM, "LoRA r=8 (q,v)"), (MINILM, "P-tuning v2 (16)")),
                       ((MINILM, "LoRA r=8 (q,v)"), (MINILM, "Freeze (last FFN)")),
                       ((MINILM, "LoRA r=8 (q,v)"), (MINILM, "head only")),
                       ((MINILM, "full"), (MINILM, "LoRA r=8 (q,v)"))]
CAUSAL_COMPARISONS = [((SMOLLM2, "LoRA r=8 (all 7)"), (SMOLLM2, "LoRA r=8 (q,v)"))]

CPU_ENCODER = [(MINI, "full"), (MINI, "LoRA r=8 (q,v)"), (MINILM, "head only"), (MINILM, "LoRA r=8 (q,v)"),
               (MINILM, "P-tuning v2 (16)"), (MINILM, "Freeze (last FFN)")]
CONFIGS = {
    # a smoke test of the machinery (the test suite): one rate per grid, two seeds, two steps
    "dry-run": {"device": "cpu", "parts": ["encoder"], "out": "10_real_models_dry_run.json",
                "encoder": {"methods": CPU_ENCODER, "n_train": 64, "n_val": 16, "n_test": 16, "steps": 2,
                            "batch_size": 8, "max_length": 32, "seeds": [0, 1], "grid": "middle"},
                "causal": {"methods": list(CAUSAL_METHODS), "task": "negation", "n_train": 16, "n_val": 4,
                           "n_test": 4, "steps": 1, "batch_size": 2, "seeds": [0, 1], "grid": "middle"}},
    # one core of a busy 2-core machine, about 10 minutes (9 min of runs measured): the encoder part only
    "cpu": {"device": "cpu", "parts": ["encoder"], "out": "10_real_encoder_cpu.json",
            "encoder": {"methods": CPU_ENCODER, "n_train": 1000, "n_val": 200, "n_test": 500, "steps": 50,
                        "batch_size": 16, "max_length": 32, "seeds": [0, 1, 2, 3, 4], "grid": "all"}},
    # one accelerator: more data, steps and seeds, MiniLM's full fine-tuning, and the causal LM
    "gpu": {"device": "cuda", "parts": ["encoder", "causal"], "out": "10_real_models_gpu.json",
            "encoder": {"methods": CPU_ENCODER + [(MINILM, "full")], "n_train": 4000, "n_val": 500,
                        "n_test": 2000, "steps": 300, "batch_size": 32, "max_length": 32,
                        "seeds": list(range(10)), "grid": "all"},
            "causal": {"methods": list(CAUSAL_METHODS), "task": "negation", "n_train": 2000, "n_val": 100,
                       "n_test": 300, "steps": 100, "batch_size": 16, "seeds": [0, 1, 2, 3, 4], "grid": "all"}},
}
COMPARISONS = {"encoder": ENCODER_COMPARISONS, "causal": CAUSAL_COMPARISONS}
METHODS = {"encoder": ENCODER_METHODS, "causal": CAUSAL_METHODS}


# ------------------------------------------------------------------------------------ data
def wordpiece_split(split, tokenizer, max_length: int = 32):
    """The same sentences and labels, cut by a real (WordPiece) tokenizer: [CLS] pieces [SEP], right-padded."""
    batch = tokenizer(list(split.texts), max_length=max_length)
    return data.Split(batch["input_ids"], batch["attention_mask"], split.labels.clone(), list(split.texts))


_NAMES = sorted({name if isinstance(name, tuple) else (name,)
                 for group in (data.PERSON_NAMES, data.SURNAMES, data.PLACES, data.ORGANISATIONS,
                               tuple(data.PERSON_PLACE_NAMES))
                 for name in group}, key=len, reverse=True)


def natural(text: str) -> str:
    """A mini-world sentence as English is written: names capitalised, the first letter too, no space
    before punctuation ("mia likes red star bank ." -> "Mia likes Red Star Bank.")."""
    words, i = text.split(), 0
    while i < len(words):
        for name in _NAMES:
            if tuple(words[i:i + len(name)]) == name:
                words[i:i + len(name)] = [w.capitalize() for w in name]
                i += len(name) - 1
                break
        i += 1
    text = re.sub(r" ([.,?!])", r"\1", " ".join(words))
    return text[:1].upper() + text[1:]


def chat_prompt(tokenizer, sentence: str) -> str:
    return tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": sentence}], add_generation_prompt=True)


def chat_split(split, tokenizer):
    """Each "prompt [SEP] answer" of a generation task as a chat: the prompt and answer in natural
    English, ids = chat prompt + answer + <|im_end|>, right-padded; labels = the next token on the
    assistant's tokens (the answer and <|im_end|>), -100 everywhere else. texts: (sentence, answer)."""
    rows, targets, texts = [], [], []
    for text in split.texts:
        sentence, answer = (natural(part) for part in data.prompt_and_answer(text))
        prompt = tokenizer.encode(chat_prompt(tokenizer, sentence))
        ids = tokenizer.encode(chat_prompt(tokenizer, sentence) + answer + "<|im_end|>")
        assert ids[:len(prompt)] == prompt, "the answer changed how the prompt is tokenised"
        labels = [data.IGNORE_INDEX] * len(ids)
        labels[len(prompt) - 1:len(ids) - 1] = ids[len(prompt):]          # predict the next token
        rows.append(ids), targets.append(labels), texts.append((sentence, answer))
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), tokenizer.pad_id)
    mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, data.IGNORE_INDEX)
    for i, (ids, target) in enumerate(zip(rows, targets)):
        input_ids[i, :len(ids)], mask[i, :len(ids)] = torch.tensor(ids), 1
        labels[i, :len(ids)] = torch.tensor(target)
    return data.Split(input_ids, mask, labels, texts)


@torch.no_grad()
def exact_match(model, split, batch_size: int = 16) -> float:
    """Share of examples whose whole answer (and end of turn) is the arg-max at every position under
    teacher forcing: exactly the examples greedy decoding answers word for word, and then stops."""
    model.eval()
    device = next(model.parameters()).device
    right = []
    for batch in split.batches(batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        predicted = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
        labels = batch["labels"]
        right += ((predicted == labels) | (labels == data.IGNORE_INDEX)).all(dim=1).tolist()
    return sum(right) / len(right)


# ------------------------------------------------------------------------------------ models and runs
_CACHE: dict = {}


def source(name: str):
    """(model, tokenizer) of a source model, loaded once."""
    if name not in _CACHE:
        if name == MINILM:
            model, tokenizer, _ = minift.load_pretrained("all-minilm-l6-v2")
        elif name == SMOLLM2:
            model, tokenizer, _ = minift.load_pretrained("smollm2-135m-instruct")
        else:
            model, tokenizer = minift.load_source_model(name), None
        _CACHE[name] = (model, tokenizer)
    return _CACHE[name]


def encoder_task(name: str, cfg: dict):
    """The sentiment task as ``name`` reads it (WordPiece for MiniLM, the word tokenizer for minift's)."""
    key = ("encoder", name, cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["max_length"])
    if key not in _CACHE:
        task = data.classification_task(n_train=cfg["n_train"], n_val=cfg["n_val"], n_test=cfg["n_test"], seed=0)
        if name == MINILM:
            tokenizer = source(name)[1]
            task = data.Task(task.name, task.kind, *(wordpiece_split(s, tokenizer, cfg["max_length"])
                                                     for s in (task.train, task.val, task.test)),
                             task.label_names, task.description)
        _CACHE[key] = task
    return _CACHE[key]


def causal_task(cfg: dict):
    key = ("causal", cfg["task"], cfg["n_train"], cfg["n_val"], cfg["n_test"])
    if key not in _CACHE:
        task = data.generation_task(cfg["task"], n_train=cfg["n_train"], n_val=cfg["n_val"], n_test=cfg["n_test"], seed=0)
        tokenizer = source(SMOLLM2)[1]
        _CACHE[key] = {"train": chat_split(task.train, tokenizer), "val": chat_split(task.val, tokenizer),
                       "test": chat_split(task.test, tokenizer)}
    return _CACHE[key]


def build_encoder(name: str, method: str, seed: int):
    """Target model: a new 3-class head on the mean of the real tokens (seed), the method applied."""
    model = minift.make_target_model(source(name)[0], task="sequence", num_classes=3, pool="mean", seed=seed)
    torch.manual_seed(seed)
    return ENCODER_METHODS[name, method][1](model)


def build_causal(method: str, seed: int):
    model = copy.deepcopy(source(SMOLLM2)[0])
    torch.manual_seed(seed)
    return CAUSAL_METHODS[SMOLLM2, method][1](model)


def train_run(part: str, cfg: dict, name: str, method: str, lr: float, seed: int, device: str) -> dict:
    start = time.perf_counter()
    if part == "encoder":
        task = encoder_task(name, cfg)
        train, val, test = task.train, task.val, task.test
        model = build_encoder(name, method, seed)
    else:
        splits = causal_task(cfg)
        train, val, test = splits["train"], splits["val"], splits["test"]
        model = build_causal(method, seed)
    history = minift.fit(model, train, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=lr, seed=seed,
                         device=device, progress=False)
    summary = minift.trainable_summary(model)
    if part == "encoder":
        val_score, test_score = (minift.evaluate(model, split)["accuracy"] for split in (val, test))
    else:
        val_score, test_score = exact_match(model, val), exact_match(model, test)
    return {"val": val_score, "test": test_score, "trainable": summary.trainable, "total": summary.total,
            "final_loss": history.train_loss[-1], "seconds_per_step": history.seconds_per_step,
            "seconds": time.perf_counter() - start}


def grid_of(part: str, cfg: dict, key) -> tuple:
    grid = METHODS[part][key][2]
    return (grid[len(grid) // 2],) if cfg["grid"] == "middle" else tuple(grid)


def recipe(part: str, cfg: dict) -> dict:
    """What a run's result depends on besides (model, method, lr, seed): runs with another recipe are redone."""
    keys = ("n_train", "n_val", "n_test", "steps", "batch_size", "max_length", "task")
    return {k: cfg[k] for k in keys if k in cfg}


def find(records: list, part: str, name: str, method: str, lr=None, seed=None) -> list:
    return [r for r in records if r["part"] == part and r["model"] == name and r["method"] == method
            and (lr is None or r["lr"] == lr) and (seed is None or r["seed"] == seed)]


def chosen_lr(records: list, part: str, cfg: dict, name: str, method: str):
    """The grid value with the best validation score at seed 0 (ties: the smaller rate)."""
    grid = grid_of(part, cfg, (name, method))
    runs = [r for lr in grid for r in find(records, part, name, method, lr, 0)]
    if len(runs) < len(grid):
        return None
    return max(runs, key=lambda r: (r["val"], -r["lr"]))["lr"]


def seed_runs(records: list, part: str, cfg: dict, name: str, method: str) -> list:
    """The runs at the chosen rate, one per configured seed, sorted by seed."""
    lr = chosen_lr(records, part, cfg, name, method)
    if lr is None:
        return []
    runs = {r["seed"]: r for r in find(records, part, name, method, lr) if r["seed"] in cfg["seeds"]}
    return [runs[s] for s in sorted(runs)]


# ------------------------------------------------------------------------------------ statistics

def paired(a: list, b: list, key: str = "test") -> dict:
    """A - B seed by seed: the differences, their mean, a 95% t-interval, and the verdict."""
    by_seed = {r["seed"]: r[key] for r in b}
    seeds = [r["seed"] for r in a if r["seed"] in by_seed]
    diffs = [r[key] - by_seed[r["seed"]] for r in a if r["seed"] in by_seed]
    n = len(diffs)
    mean = statistics.fmean(diffs) if n else float("nan")
    half = t95(n - 1) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else float("nan")
    low, high = mean - half, mean + half
    verdict = "inconclusive" if not (low > 0 or high < 0) else ("A higher" if low > 0 else "B higher")
    return {"seeds": seeds, "diffs": diffs, "mean": mean, "half_width": half, "low": low, "high": high,
            "verdict": verdict}


def summarise(records: list, part: str, cfg: dict) -> dict:
    rows = {}
    for name, method in cfg["methods"]:
        runs = seed_runs(records, part, cfg, name, method)
        if not runs:
            continue
        scores = [r["test"] for r in runs]
        grid = grid_of(part, cfg, (name, method))
        rows[f"{name} | {method}"] = {
            "model": name, "method": method, "trains": METHODS[part][name, method][0],
            "lr": runs[0]["lr"], "grid": list(grid),
            "at_grid_edge": len(grid) > 1 and runs[0]["lr"] in (min(grid), max(grid)),
            "grid_val": [find(records, part, name, method, lr, 0)[0]["val"] for lr in grid],
            "seeds": [r["seed"] for r in runs], "test": scores, "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "trainable": runs[0]["trainable"], "total": runs[0]["total"],
            "ms_per_step": 1000 * statistics.median(r["seconds_per_step"] for r in runs)}
    comparisons = []
    for a, b in COMPARISONS[part]:
        if a in cfg["methods"] and b in cfg["methods"]:
            ra, rb = (seed_runs(records, part, cfg, *x) for x in (a, b))
            if ra and rb:
                comparisons.append({"a": " | ".join(a), "b": " | ".join(b), **paired(ra, rb)})
    return {"rows": rows, "comparisons": comparisons}


# ------------------------------------------------------------------------------------ the driver
def machine_info(device: str) -> dict:
    info = {"platform": platform.platform(), "processor": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "device": device}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load(out: Path) -> dict:
    if out.is_file():
        try:
            return json.loads(out.read_text())
        except json.JSONDecodeError:
            pass
    return {}


def save(out: Path, result: dict) -> None:
    with atomic_path(out) as temporary:
        Path(temporary).write_text(json.dumps(result, indent=1) + "\n")


def in_plan(record: dict, cfg: dict, records: list) -> bool:
    """Whether a finished run belongs to the configuration: a grid rate at seed 0, or a configured seed
    at the chosen rate."""
    key = (record["model"], record["method"])
    if key not in [tuple(k) for k in cfg["methods"]]:
        return False
    if record["seed"] == 0 and record["lr"] in grid_of(record["part"], cfg, key):
        return True
    return record["seed"] in cfg["seeds"] and record["lr"] == chosen_lr(records, record["part"], cfg, *key)


def plan(part: str, cfg: dict) -> list:
    """(model, method, lr or None, seed) in the order they run: each grid before its seeds."""
    jobs = []
    for name, method in cfg["methods"]:
        jobs += [(name, method, lr, 0) for lr in grid_of(part, cfg, (name, method))]
        jobs += [(name, method, None, seed) for seed in cfg["seeds"]]
    return jobs


def run(config: str, out: Path, parts=None, progress: bool = True) -> dict:
    cfg = CONFIGS[config]
    device = cfg["device"]
    parts = list(parts or cfg["parts"])
    result = load(out)
    if result.get("schema") != SCHEMA:
        result = {"schema": SCHEMA, "records": []}
    result.update(config_name=config, config={p: cfg[p] for p in parts}, command=f"python benchmarks/real_models.py --{config}"
                  + (f" --parts {' '.join(parts)}" if parts != cfg["parts"] else ""), parts=parts)
    records = result["records"]
    started = time.time()
    for part in parts:
        pcfg, want = cfg[part], recipe(part, cfg[part])
        # runs of another recipe (other sizes or steps) are not this configuration's: drop them
        records[:] = [r for r in records if r["part"] != part or r["recipe"] == want]
        jobs = plan(part, pcfg)
        if part == "causal" and result.get("causal_zero_shot", {}).get("recipe") != want:
            # the published model, before any fine-tuning: the "before" of every causal run
            model = source(SMOLLM2)[0].to(device)
            splits = causal_task(pcfg)
            result["causal_zero_shot"] = {"recipe": want, "val": exact_match(model, splits["val"]),
                                          "test": exact_match(model, splits["test"])}
            save(out, result)
        for number, (name, method, lr, seed) in enumerate(jobs, 1):
            if lr is None:
                lr = chosen_lr(records, part, pcfg, name, method)
            if find(records, part, name, method, lr, seed):
                continue
            record = {"part": part, "model": name, "method": method, "lr": lr, "seed": seed, "recipe": want,
                      **train_run(part, pcfg, name, method, lr, seed, device)}
            records.append(record)
            result["summary"] = {p: summarise(records, p, cfg[p]) for p in parts}
            result.update(machine=machine_info(device), torch=torch.__version__, commit=git_commit(),
                          date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
            result["compute_seconds"] = sum(r["seconds"] for r in records)
            save(out, result)
            if progress:
                print(f"[{number}/{len(jobs)}] {part} {name} {method} lr={lr:g} seed={seed}: "
                      f"val {record['val']:.3f} test {record['test']:.3f} ({record['seconds']:.1f} s)", flush=True)
    # runs of a rate no longer in a grid, or of seeds at a rate no longer chosen, are not this configuration's
    records[:] = [r for r in list(records) if r["part"] not in parts or in_plan(r, cfg[r["part"]], records)]
    result["summary"] = {p: summarise(records, p, cfg[p]) for p in parts}
    result.update(machine=machine_info(device), torch=torch.__version__, commit=git_commit(),
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    result["compute_seconds"] = sum(r["seconds"] for r in records)
    result["last_session_seconds"] = time.time() - started
    save(out, result)
    return result


def report(result: dict) -> str:
    lines = []
    for part, summary in result["summary"].items():
        lines.append(f"{part}: test score, mean ± std over seeds (chosen learning rate)")
        for row in summary["rows"].values():
            lines.append(f"  {row['model']:<17} {row['method']:<18} {row['mean']:.3f} ± {row['std']:.3f}  "
                         f"lr {row['lr']:g}  trainable {row['trainable']:,}  {row['ms_per_step']:.0f} ms/step")
        if part == "causal" and "causal_zero_shot" in result:
            lines.append(f"  the published model, before fine-tuning: {result['causal_zero_shot']['test']:.3f}")
        for c in summary["comparisons"]:
            lines.append(f"  {c['a']}  -  {c['b']}: {c['mean']:+.3f}, 95% CI [{c['low']:+.3f}, {c['high']:+.3f}] "
                         f"-> {c['verdict']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--cpu", action="store_true", help="the documented CPU configuration (encoder part)")
    mode.add_argument("--gpu", action="store_true", help="more data, steps and seeds, and the causal LM (CUDA)")
    mode.add_argument("--dry-run", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--parts", nargs="+", choices=("encoder", "causal"), help="run only these parts")
    parser.add_argument("--out", help="results JSON (default: results/<the configuration's file>)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    config = "cpu" if args.cpu else "gpu" if args.gpu else "dry-run"
    cfg = CONFIGS[config]
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device (none is available); use --cpu")
    set_threads(cfg["device"])                    # $MINIFT_THREADS, else 1 on the CPU
    if args.out:
        out = Path(args.out)
    elif config == "dry-run":
        out = Path(tempfile.mkdtemp()) / cfg["out"]
    else:
        out = ROOT / "results" / cfg["out"]
    result = run(config, out, args.parts, progress=not args.quiet)
    if not args.quiet:
        print(report(result))
        print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
