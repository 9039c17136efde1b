"""benchmarks/real_models.py (chapter 10): a --dry-run goes end to end on the real encoder, writes a
resumable JSON with its metadata, and its paired statistics and data helpers do what the notebook says.

Needs the packaged all-MiniLM-L6-v2 weights (the minilm_path fixture skips without them, or fails under
MINIFT_REAL_WEIGHTS=required). The causal-LM part (SmolLM2) is not run here: it is --gpu only and
costs a 135M-parameter model load; its helpers are checked on a tiny stand-in tokenizer.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_models_bench", ROOT / "benchmarks" / "real_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def dry_run(bench, minilm_path, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("real_models") / "10_dry.json"
    result = bench.main(["--dry-run", "--out", str(out), "--quiet"])
    return out, result


def test_dry_run_writes_every_run_and_the_metadata(bench, dry_run):
    out, result = dry_run
    saved = json.loads(out.read_text())
    assert {"machine", "torch", "commit", "date", "config", "command", "records", "summary"} <= set(saved)
    assert saved["command"] == "python benchmarks/real_models.py --dry-run"
    cfg = bench.CONFIGS["dry-run"]["encoder"]
    rows = saved["summary"]["encoder"]["rows"]
    assert len(rows) == len(cfg["methods"])
    for row in rows.values():
        assert row["seeds"] == cfg["seeds"] and all(0.0 <= s <= 1.0 for s in row["test"])
        assert row["lr"] in row["grid"]
    # a grid of one rate (dry run) and two seeds: seed 0 of the grid is reused, so 2 runs per method
    assert len(saved["records"]) == 2 * len(cfg["methods"])
    by_name = {(r["model"], r["method"]): r for r in rows.values()}
    assert by_name[bench.MINILM, "LoRA r=8 (q,v)"]["trainable"] == by_name[bench.MINILM, "P-tuning v2 (16)"]["trainable"] \
        == 73_728 + 384 * 3 + 3                                  # the same budget, plus the head
    assert {c["verdict"] for c in saved["summary"]["encoder"]["comparisons"]} <= {"inconclusive", "A higher", "B higher"}


def test_rerun_skips_what_is_done(bench, dry_run):
    out, result = dry_run
    before = [r["seconds"] for r in json.loads(out.read_text())["records"]]
    again = bench.main(["--dry-run", "--out", str(out), "--quiet"])
    assert [r["seconds"] for r in again["records"]] == before          # nothing re-ran


def test_paired_interval_and_verdict(bench):
    a = [{"seed": s, "test": v} for s, v in enumerate([0.8, 0.82, 0.79, 0.81, 0.8])]
    b = [{"seed": s, "test": v} for s, v in enumerate([0.7, 0.71, 0.7, 0.72, 0.69])]
    c = bench.paired(a, b)
    diffs = [0.1, 0.11, 0.09, 0.09, 0.11]
    assert c["diffs"] == pytest.approx(diffs) and c["mean"] == pytest.approx(0.1)
    sd = math.sqrt(sum((d - 0.1) ** 2 for d in diffs) / 4)
    assert c["half_width"] == pytest.approx(2.776 * sd / math.sqrt(5))
    assert c["verdict"] == "A higher" and bench.paired(b, a)["verdict"] == "B higher"
    noisy = [{"seed": s, "test": v} for s, v in enumerate([0.8, 0.6, 0.79, 0.61, 0.7])]
    assert bench.paired(noisy, b)["verdict"] == "inconclusive"


def test_natural_spelling_and_wordpiece_split(bench, minilm_path):
    assert bench.natural("mia likes red star bank .") == "Mia likes Red Star Bank."
    assert bench.natural("the lamp is not good .") == "The lamp is not good."
    from minift import data
    from minift.real_models.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_folder(minilm_path)
    split = data.classification_task(n_train=8, n_val=2, n_test=2, seed=0).train
    real = bench.wordpiece_split(split, tokenizer)
    assert torch.equal(real.labels, split.labels) and real.texts == split.texts
    assert (real.input_ids[:, 0] == tokenizer.cls_id).all()


class _CharTokenizer:
    """A stand-in for the BPE tokenizer: one id per character, ChatML markers as single ids."""
    pad_id, eos_id = 0, 1
    SPECIAL = {"<|im_end|>": 1, "<|im_start|>": 2}

    def apply_chat_template(self, messages, add_generation_prompt=True):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def encode(self, text):
        ids = []
        while text:
            for marker, i in self.SPECIAL.items():
                if text.startswith(marker):
                    ids.append(i)
                    text = text[len(marker):]
                    break
            else:
                ids.append(3 + ord(text[0]) % 200)
                text = text[1:]
        return ids


def test_chat_split_counts_only_the_assistant_tokens(bench):
    from minift import data

    task = data.generation_task("negation", n_train=4, n_val=1, n_test=1, seed=0)
    tokenizer = _CharTokenizer()
    split = bench.chat_split(task.train, tokenizer)
    for row, (sentence, answer) in enumerate(split.texts):
        n = int(split.attention_mask[row].sum())
        counted = (split.labels[row] != data.IGNORE_INDEX).nonzero().flatten()
        assert len(counted) == len(answer) + 1                       # the answer's characters and <|im_end|>
        assert split.labels[row, counted[-1]].item() == tokenizer.eos_id and counted[-1] == n - 2
        assert torch.equal(split.labels[row, counted], split.input_ids[row, counted + 1])
