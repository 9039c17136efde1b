"""benchmarks/bench.py: the speed benchmark's machinery (its numbers are checked by running `make bench`).

One --quick run (a tiny shape, with the bf16 rows that otherwise only CUDA runs) checks that every row
and comparison is produced from models that start from the same function with equal trainable counts,
and that the README section is generated from the JSON. The pieces whose failure would be silent are
tested directly: the contention filter, the contended fallback, the FLOP count, and the cheap-win LoRA
variant's equality check (it must catch a variant that computes something else).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("minift_bench_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--bf16", "--budget", "20", "--json", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    return path, json.loads(path.read_text()), done.stdout


def test_quick_run_has_every_row_checked_and_timed(bench, quick_result):
    _, result, stdout = quick_result
    meta = result["meta"]
    assert meta["schema"] == "minift-bench-v1" and meta["quick"] and meta["bf16"]
    for key in ("date", "commit", "torch", "transformers", "peft", "threads", "device_name"):
        assert meta[key], key
    [shape] = result["shapes"]
    labels = {m["label"] for m in shape["models"]}
    main = {bench.MINIFT, bench.HF_NEW, bench.HF_TANH, bench.LORA_QV, bench.LORA_QKV, bench.PEFT_LORA,
            bench.PREFIX, bench.PEFT_PREFIX, bench.PROMPT, bench.PEFT_PROMPT}
    assert main | {m + " bf16" for m in main} | {bench.LORA_QV_SCALED} <= labels
    assert all(check["ok"] for check in shape["checks"]) and len(shape["checks"]) >= 8
    by_label = {m["label"]: m for m in shape["models"]}
    for a, b in ((bench.PREFIX, bench.PEFT_PREFIX), (bench.PROMPT, bench.PEFT_PROMPT), (bench.LORA_QV, bench.PEFT_LORA)):
        assert by_label[a]["trainable"] == by_label[b]["trainable"]
    assert abs(by_label[bench.PREFIX]["first_loss"] - by_label[bench.PEFT_PREFIX]["first_loss"]) < 1e-4
    for m in shape["models"]:
        assert m["rounds"] >= 2 and m["median_ms"] > 0 and m["min_ms"] <= m["median_ms"] <= m["max_ms"]
        assert m["flops"] > m["matmul_flops"] > 0 and m["peak_gflops"] > 0 and m["peak_fraction"] > 0
    names = {c["name"] for c in shape["comparisons"]}
    assert {name for name, _, _ in bench.VERSUS + bench.BF16_VS_FP32} <= names
    assert {c["kind"] for c in shape["comparisons"]} == {"versus", "cheap_win", "precision"}
    groups = result["inference"]["groups"]
    assert [(g["batch"], g["seq"]) for g in groups] == [(1, 8), (1, 32), (4, 8), (4, 32)]
    assert {c["name"] for c in groups[0]["comparisons"]} == {"LoRA merged / base", "LoRA unmerged / base",
                                                              "prefix (16) / base", "prompt (8) / base"}
    assert "| HF gelu_new / minift |" in stdout and "steps discarded" in stdout


def test_readme_section_is_generated_from_the_json(bench, quick_result, capsys):
    path, result, _ = quick_result
    assert bench.main(["--readme", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## Speed") and result["meta"]["commit"][:12] in text
    assert "| d=64 L2 |" in text and "Cheap wins" in text and "Inference" in text and "bf16 autocast" in text
    assert text.count("| d=64 L2 |") >= 5        # versus, bf16, GFLOP/s, tokens/s, cheap wins


def test_contention_filter(bench):
    monitor = bench.CpuMonitor(threads_used=bench.available_cpus())
    assert monitor.quiet(float("nan"), 1.0)                  # not monitored: nothing is discarded
    assert monitor.quiet(0.05, 1.0)
    assert not monitor.quiet(1.0, 1.0)                       # another process kept a core busy
    assert monitor.limit(0.01) > monitor.limit(1.0)           # short samples: tick resolution allowed for
    assert bench.CpuMonitor(threads_used=1, clock="cpu").quiet(5.0, 1.0)   # CPU time is not stretched by others


def test_ratios_fall_back_to_all_rounds_and_say_so(bench):
    rounds = [{"a": (1.0, 0.0, True), "b": (2.0, 0.0, True)},
              {"a": (1.0, 0.0, True), "b": (4.0, 0.0, False)},
              {"a": (1.0, 0.0, True), "b": (3.0, 0.0, True)}]
    quiet = bench.summarize_ratio(rounds, "b / a", "b", "a", "versus")
    assert (quiet["median"], quiet["min"], quiet["max"], quiet["kept"], quiet["contended"]) == (2.5, 2.0, 3.0, 2, False)
    rounds[2]["b"] = (3.0, 0.0, False)
    busy = bench.summarize_ratio(rounds, "b / a", "b", "a", "versus")
    assert busy["contended"] and busy["kept"] == 1 and busy["median"] == 3.0    # all 3 rounds, flagged


def test_flop_count_of_a_linear_and_an_attention(bench):
    x, weight = torch.randn(4, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)
    q = k = v = torch.randn(1, 2, 5, 4)
    recorder = bench.MatmulRecorder()
    with recorder:
        F.linear(x, weight).sum().backward()                # forward 2*4*8*16, backward twice that
        F.scaled_dot_product_attention(q, k, v)
    assert recorder.matmul_flops == 3 * 2 * 4 * 8 * 16
    assert recorder.attention_flops == 4 * 1 * 2 * 5 * 5 * 4
    clock = bench.MatmulClock(torch.device("cpu"), bench.CpuMonitor(threads_used=1), min_seconds=0.001)
    assert clock.at_peak(recorder) > 0


def test_scaled_lora_variant_check_catches_a_different_function(bench, monkeypatch):
    from minift import ModelConfig, Transformer
    from minift.methods import lora
    torch.manual_seed(0)
    model = lora.apply(Transformer(ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, max_len=8)),
                       r=2, alpha=4)
    ids = torch.randint(0, 50, (2, 8))
    assert bench.check_scaled_variant(model, ids)["ok"]

    def unscaled(self, x):                                   # forgets alpha / r: a different function
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B)
    monkeypatch.setattr(bench.ScaledIntermediateLoRALinear, "forward", unscaled)
    with pytest.raises(RuntimeError, match="not the same function"):
        bench.check_scaled_variant(model, ids)
