"""Speed you can check: minift's training step against transformers and PEFT, for every adapter method.

    make bench                                     # = python benchmarks/bench.py (about 9 minutes on 2 cores)
    python benchmarks/bench.py --quick --json X    # seconds: the same machinery on one tiny shape (tests)
    python benchmarks/bench.py --readme results/bench_cpu.json [results/bench_cuda.json]   # README section

What is timed. One training step = forward, next-token cross-entropy (computed outside every model by the
same code), backward, AdamW step, zero_grad; batch 16 x 128 tokens, vocabulary 1000, fp32, dropout 0, at
d = 128 (4 layers, 4 heads), 256 (4, 4), 512 (6, 8) and 768 (2, 12). Per shape these models run side by
side:

* full fine-tuning: minift vs transformers' GPT2LMHeadModel with GPT-2's own activation ``gelu_new``
  (evaluated by transformers as a chain of elementwise ops) and, as a control, ``gelu_pytorch_tanh``
  (the same function as one fused kernel, which is what minift uses): the control shows where the
  difference comes from;
* LoRA r=8, alpha=16: minift on (q, v) and on (q, k, v) vs PEFT LoRA on GPT-2's fused ``c_attn``;
* prefix-tuning (16 virtual tokens, reparameterised by an MLP of width d) vs PEFT PREFIX_TUNING;
* prompt tuning (8 vectors at the input) vs PEFT PROMPT_TUNING;
* two cheap wins, each next to its "before": AdamW(fused=True) vs torch's default AdamW for minift's
  full step (the default is the per-parameter loop on CPU, foreach on CUDA), and LoRA with alpha/r
  applied to the rank-r intermediate, ((x A^T) s) B^T, instead of to the output, ((x A^T) B^T) s (a
  local subclass: minift's own LoRA is not changed here).

Every model of a shape starts from the same weights: transformers' GPT-2 is built first and converted
with minift.interop.from_hf_gpt2; PEFT's prefix and prompt modules get a copy of minift's. This is
checked, not assumed: the first losses must agree (to 1e-4), and so must the trainable-parameter counts
of each pair. The one pair whose counts agree but whose function differs is LoRA: PEFT adapts the fused
c_attn (d -> 3d) with one A (r x d) and one B (3d x r), which is exactly the parameter count of minift's
(q, v) (two A's, two B's of d x r), while it adapts q, k and v; so PEFT is compared with both.

How it is timed. The models of a shape run interleaved: one sample of each, in a freshly shuffled order,
round after round, on the same batch within a round, so slow drifts of the machine hit all alike. The
first round is a warm-up; it also sets how many consecutive steps one sample averages (enough for 0.2 s
on CPU, so that /proc/stat's 10 ms ticks can tell whether another process ran). Before each round the
script waits up to 10 s for a quiet spell. A sample is discarded when other processes used the CPU while
it ran: /proc/stat's busy time minus this process's own CPU time, per second of wall time, above 0.15
cores (plus the tick resolution) beyond the cores this benchmark leaves free. Per model: median [min-max]
ms per step over its kept samples. Per comparison: the median [min-max] over rounds of the paired ratio
time(B) / time(A) from the same round, using only rounds where both samples were kept; the tables say
how many were kept. When fewer than 2 were kept, all rounds are used and the row is marked "contended".
Rounds run until 6 (--rounds) were kept for every comparison or the time budget (--budget, 540 s, shared
equally by the shapes left) is spent; a shape that finds the budget spent is skipped and
named as such, so a busy machine gives fewer numbers rather than a much longer run.

GFLOP/s and the matmul peak. One untimed step per model runs under a dispatch hook that records every
matrix product (mm, addmm, bmm, baddbmm: shapes, strides, dtype) and every fused attention call. FLOPs =
2 m n k per product plus 4 B H Tq Tk d_head per attention forward (twice that backward). Each distinct
product is then timed alone, with the same shapes and memory layout, in the same run (best of several
batches, before and again after the shape's rounds: the machine's speed drifts): the "peak" of a model
is its matrix-product FLOPs divided by the time those products take alone, i.e. the speed the BLAS
reaches on that step's own shapes. Reported: achieved GFLOP/s = FLOPs / median step time, its fraction of
that peak, and the share of the step the products would take at the peak speed.

Inference (part 3): forward passes of minift's d=512 L6 model in eval mode under inference_mode: LoRA
(q, v) merged and unmerged, prefix-tuning (table, after freeze_to_table) and prompt tuning, each as a
latency ratio to the base model from the same round, at batch 1 and 16 and several sequence lengths.

On CUDA every main model also runs under bf16 autocast (rows marked bf16), and tokens per second are
printed; results go to results/bench_cuda.json instead of results/bench_cpu.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))            # run from a checkout without installing

from minift.interop import from_hf_gpt2  # noqa: E402
from minift.methods import lora, prefix, ptuning  # noqa: E402
from minift.course.setup import cpu_name  # noqa: E402  (the same name the course results record)

SCHEMA = "minift-bench-v1"
SHAPES = (dict(d_model=128, n_layers=4, n_heads=4), dict(d_model=256, n_layers=4, n_heads=4),
          dict(d_model=512, n_layers=6, n_heads=8), dict(d_model=768, n_layers=2, n_heads=12))
QUICK_SHAPES = (dict(d_model=64, n_layers=2, n_heads=2),)
VOCAB = 1000
BATCH, SEQ = 16, 128
QUICK_BATCH, QUICK_SEQ = 4, 32
LORA_R, LORA_ALPHA = 8, 16
PREFIX_LENGTH, PROMPT_LENGTH = 16, 8
LR, WEIGHT_DECAY = 1e-4, 0.01
INFERENCE_SHAPE = SHAPES[2]
INFERENCE_BATCHES, INFERENCE_LENGTHS = (1, 16), (16, 64, 128)
QUICK_INFERENCE_BATCHES, QUICK_INFERENCE_LENGTHS = (1, 4), (8, 32)
OTHERS_LIMIT = 0.15          # cores other processes may use (beyond the free ones) before a step is discarded
FIRST_LOSS_TOLERANCE = 1e-4
INFERENCE_SHARE = 0.15       # of the time budget left after set-up, when inference is measured
QUIET_WAIT = 10.0            # seconds a round may wait for other processes to leave the CPU

# Model labels. The cheap-win variants run only in fp32; on CUDA the others also run as "<label> bf16".
MINIFT, HF_NEW, HF_TANH, MINIFT_FUSED = ("minift", "HF GPT-2 gelu_new", "HF GPT-2 gelu_pytorch_tanh",
                                         "minift fused AdamW")
LORA_QV, LORA_QV_SCALED, LORA_QKV, PEFT_LORA = ("minift LoRA q,v", "minift LoRA q,v s on rank-r",
                                                "minift LoRA q,k,v", "PEFT LoRA c_attn")
PREFIX, PEFT_PREFIX, PROMPT, PEFT_PROMPT = ("minift prefix", "PEFT prefix", "minift prompt", "PEFT prompt")

# (name, numerator, denominator): ratio = time(numerator) / time(denominator), from the same round.
VERSUS = (("HF gelu_new / minift", HF_NEW, MINIFT),
          ("HF gelu_pytorch_tanh / minift", HF_TANH, MINIFT),
          ("PEFT LoRA c_attn / minift LoRA q,v", PEFT_LORA, LORA_QV),
          ("PEFT LoRA c_attn / minift LoRA q,k,v", PEFT_LORA, LORA_QKV),
          ("PEFT prefix / minift prefix", PEFT_PREFIX, PREFIX),
          ("PEFT prompt / minift prompt", PEFT_PROMPT, PROMPT))
CHEAP_WINS = (("fused AdamW / default AdamW (minift full step)", MINIFT_FUSED, MINIFT),
              ("LoRA q,v: alpha/r on rank-r intermediate / on output", LORA_QV_SCALED, LORA_QV))
BF16_VS_FP32 = (("minift bf16 / fp32", MINIFT + " bf16", MINIFT),
                ("HF gelu_new bf16 / fp32", HF_NEW + " bf16", HF_NEW))


# ----------------------------------------------------------------------------------------------------
# The machine: is anyone else using the CPU while we time?

def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class CpuMonitor:
    """How many cores other processes kept busy during a timed interval.

    /proc/stat counts busy time of all CPUs (in clock ticks, steal time included: a hypervisor taking our
    CPU is contention too); this process's own CPU time comes from time.process_time(). The difference
    per second of wall time is the number of cores someone else used. Where /proc/stat does not exist
    (macOS, Windows) nothing is discarded and the results say the rounds were not monitored.
    """

    def __init__(self, threads_used: int, clock: str = "wall"):
        self.clock = clock
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.cpus = available_cpus()
        self.free_cores = max(0, self.cpus - threads_used)
        self.available = self._busy_seconds() is not None

    def _busy_seconds(self):
        try:
            with open("/proc/stat", encoding="ascii") as stream:
                fields = [int(x) for x in stream.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
        return (sum(fields[:8]) - idle) / self.ticks                        # guest time is inside user

    def snapshot(self):
        return self._busy_seconds(), time.process_time()

    def others(self, start, wall: float) -> float:
        """Cores used by other processes since ``start`` (nan when not monitored)."""
        busy0, own0 = start
        busy1, own1 = self.snapshot()
        if busy0 is None or busy1 is None or wall <= 0:
            return float("nan")
        return ((busy1 - busy0) - (own1 - own0)) / wall

    def limit(self, wall: float) -> float:
        """Above this many other-process cores a step is discarded: the free cores, OTHERS_LIMIT, and
        the tick resolution of /proc/stat (one tick per CPU over the interval)."""
        return self.free_cores + OTHERS_LIMIT + self.cpus / (self.ticks * max(wall, 1e-3))

    def quiet(self, others: float, wall: float) -> bool:
        if self.clock == "cpu":                       # CPU time: other processes do not stretch it
            return True
        return not (others > self.limit(wall))        # nan (not monitored) counts as quiet

    def wait_for_quiet(self, max_wait: float, probe: float = 0.2) -> float:
        """Sleep in ``probe``-second looks until one look finds no other process on the CPU, for at most
        ``max_wait`` seconds: rounds then start in quiet spells. Returns the seconds waited."""
        if not self.available or max_wait <= 0 or self.clock == "cpu":
            return 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < max_wait:
            snapshot, begin = self.snapshot(), time.perf_counter()
            time.sleep(probe)
            wall = time.perf_counter() - begin
            if self.quiet(self.others(snapshot, wall), wall):
                break
        return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def git_commit() -> str:
    """HEAD of the checkout (+"-dirty" with uncommitted changes), $MINIFT_COMMIT where the copy has no
    .git (a device machine gets the files only), else "unknown"."""
    given = os.environ.get("MINIFT_COMMIT", "").strip()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return given or "unknown"


def metadata(device: torch.device, monitor: CpuMonitor, args) -> dict:
    import peft
    import transformers
    meta = {
        "schema": SCHEMA, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "device": device.type, "cpu": cpu_name(), "cpus": monitor.cpus,
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "quick": args.quick, "cheap_wins_only": args.cheap_wins, "clock": args.clock, "budget_s": args.budget, "rounds_wanted": args.rounds,
        "cpu_monitored": monitor.available, "others_limit_cores": OTHERS_LIMIT,
        "free_cores": monitor.free_cores, "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
        meta["cuda"] = torch.version.cuda
    else:
        meta["device_name"] = meta["cpu"]
    return meta


# ----------------------------------------------------------------------------------------------------
# The cheap-win variants (measured here; minift's own code is not changed by this script)

class ScaledIntermediateLoRALinear(lora.LoRALinear):
    """minift's LoRALinear with alpha/r applied to the (tokens x r) intermediate instead of the
    (tokens x out) output: the same function, r/out times fewer multiplications for the scaling.
    (A copy of LoRALinear.forward with that one change; check_scaled_variant() guards the copy.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.lora_A is None:
            return out
        if self.merged:
            lora.refuse_training_merged(self)
            return out
        return out + F.linear(F.linear(self.dropout(x), self.lora_A) * self.scaling, self.lora_B)


def lora_modules(model) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, lora.LoRALinear)]


def scale_on_intermediate(model) -> nn.Module:
    """Switch every LoRALinear of ``model`` (in place) to the scaled-intermediate forward."""
    layers = [module for module in lora_modules(model) if type(module) is lora.LoRALinear]
    if not layers:
        raise ValueError("the model has no LoRA layers to switch")
    for module in layers:
        module.__class__ = ScaledIntermediateLoRALinear
    return model


@torch.no_grad()
def check_scaled_variant(lora_model, ids) -> dict:
    """The variant must compute the same function as minift's LoRA once B != 0 (at B = 0 both are the
    base model, which proves nothing): same logits to float rounding."""
    reference = copy.deepcopy(lora_model).eval()
    for module in lora_modules(reference):
        module.lora_B.normal_(std=0.5)
    variant = scale_on_intermediate(copy.deepcopy(reference))
    expected, got = reference(ids).logits, variant(ids).logits
    difference = float((expected - got).abs().max())
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-4):
        raise RuntimeError(f"the scaled-intermediate LoRA variant is not the same function as minift's "
                           f"LoRALinear (max difference {difference}); has lora.py's forward changed?")
    return dict(what="LoRA variant with alpha/r on the rank-r intermediate: same logits as minift's LoRA "
                     "(B random)", ok=True, values={"max_abs_difference": difference})


def adamw(parameters, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW over ``parameters``; fused=True asks for the single-kernel implementation (torch >= 2.4 on
    CPU, >= 2.0 on CUDA) and raises where this torch has none, so a row is never silently the default."""
    parameters = [p for p in parameters if p.requires_grad]
    if fused:
        return torch.optim.AdamW(parameters, lr=LR, weight_decay=WEIGHT_DECAY, fused=True)
    return torch.optim.AdamW(parameters, lr=LR, weight_decay=WEIGHT_DECAY)


def fused_adamw_supported(device: torch.device) -> bool:
    try:
        probe = nn.Parameter(torch.zeros(2, device=device))
        probe.grad = torch.zeros(2, device=device)
        torch.optim.AdamW([probe], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------------
# Models: one "runner" per row, all from the same starting weights

def lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


@dataclass
class Runner:
    """A model, how to get its logits for the real tokens, and its optimizer: one training step."""

    label: str
    model: nn.Module
    logits: Callable[[torch.Tensor], torch.Tensor]
    precision: str = "fp32"                       # "fp32" or "bf16" (autocast)
    fused: bool = False
    optimizer: torch.optim.Optimizer | None = None
    info: dict = field(default_factory=dict)

    def prepare(self):
        self.model.train()
        self.optimizer = adamw(self.model.parameters(), fused=self.fused)
        self.info.update(trainable=count(self.model, trainable=True), parameters=count(self.model))

    def autocast(self, device):
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def step(self, ids: torch.Tensor, device) -> torch.Tensor:
        with self.autocast(device):
            loss = lm_loss(self.logits(ids), ids)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def count(model: nn.Module, trainable: bool = False) -> int:
    """Parameters (shared tensors once), or only those with requires_grad."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def gpt2(shape: dict, max_len: int, activation: str, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=VOCAB, n_positions=max_len, n_embd=shape["d_model"],
                        n_layer=shape["n_layers"], n_head=shape["n_heads"], activation_function=activation,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
                        bos_token_id=None, eos_token_id=None, attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if model.config._attn_implementation != "sdpa":
        raise RuntimeError(f"transformers chose attention {model.config._attn_implementation!r}, not sdpa")
    return model


def minift_logits(model):
    return lambda ids: model(ids).logits


def hf_logits(model, skip: int = 0):
    """HF/PEFT logits without a KV cache; ``skip`` leading positions (PEFT prompt tuning's virtual tokens,
    which PEFT keeps in its output) are cut off, as minift's prompt hook does itself."""
    def logits(ids):
        out = model(input_ids=ids, use_cache=False).logits
        return out[:, skip:] if skip else out
    return logits


def peft_model(hf, config):
    from peft import get_peft_model
    return get_peft_model(copy.deepcopy(hf), config)


def copy_prefix_weights(minift_prefix, peft_model_) -> None:
    """PEFT's PrefixEncoder (embedding, transform = Linear, Tanh, Linear) gets minift's reparameterisation.
    Both lay the MLP's output out as (P, layers, key/value, heads, d_head), so the prefixes are equal."""
    encoder = peft_model_.prompt_encoder["default"]
    with torch.no_grad():
        encoder.embedding.weight.copy_(minift_prefix.embedding.weight)
        for ours, theirs in ((minift_prefix.mlp[0], encoder.transform[0]), (minift_prefix.mlp[2], encoder.transform[2])):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)


def copy_prompt_weights(minift_prompt, peft_model_) -> None:
    with torch.no_grad():
        peft_model_.prompt_encoder["default"].embedding.weight.copy_(minift_prompt.embedding)


def build_runners(shape: dict, max_len: int, device: torch.device, fused_ok: bool, bf16: bool) -> list[Runner]:
    """Every row of one shape, all starting from one GPT-2's weights (see the module docstring)."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig
    hf_new = gpt2(shape, max_len, "gelu_new")
    hf_tanh = gpt2(shape, max_len, "gelu_pytorch_tanh", seed=1)
    hf_tanh.load_state_dict(hf_new.state_dict())
    base = from_hf_gpt2(hf_new, attention="sdpa")
    d = shape["d_model"]

    lora_qv = lora.apply(copy.deepcopy(base), r=LORA_R, alpha=LORA_ALPHA, targets=("q", "v"))
    lora_qkv = lora.apply(copy.deepcopy(base), r=LORA_R, alpha=LORA_ALPHA, targets=("q", "k", "v"))
    peft_lora = peft_model(hf_new, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=["c_attn"],
                                              lora_dropout=0.0, fan_in_fan_out=True, task_type="CAUSAL_LM"))
    torch.manual_seed(2)
    with_prefix = prefix.apply(copy.deepcopy(base), length=PREFIX_LENGTH, reparam=True, hidden=d)
    peft_prefix = peft_model(hf_new, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PREFIX_LENGTH,
                                                        prefix_projection=True, encoder_hidden_size=d))
    copy_prefix_weights(with_prefix.prefix, peft_prefix)
    torch.manual_seed(3)
    with_prompt = ptuning.apply(copy.deepcopy(base), length=PROMPT_LENGTH, encoder=None)
    peft_prompt = peft_model(hf_new, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PROMPT_LENGTH))
    copy_prompt_weights(with_prompt.prompt, peft_prompt)

    main = [Runner(MINIFT, base, None), Runner(HF_NEW, hf_new, None), Runner(HF_TANH, hf_tanh, None),
            Runner(LORA_QV, lora_qv, None), Runner(LORA_QKV, lora_qkv, None), Runner(PEFT_LORA, peft_lora, None),
            Runner(PREFIX, with_prefix, None), Runner(PEFT_PREFIX, peft_prefix, None),
            Runner(PROMPT, with_prompt, None), Runner(PEFT_PROMPT, peft_prompt, None)]
    variants = [Runner(LORA_QV_SCALED, scale_on_intermediate(copy.deepcopy(lora_qv)), None)]
    if fused_ok:
        variants.append(Runner(MINIFT_FUSED, copy.deepcopy(base), None, fused=True))
    runners = main + variants
    if bf16:
        runners += [Runner(r.label + " bf16", copy.deepcopy(r.model), None, precision="bf16") for r in main]
    for runner in runners:
        runner.model.to(device)
        is_hf = not hasattr(runner.model, "blocks")
        skip = PROMPT_LENGTH if runner.label.startswith(PEFT_PROMPT) else 0
        runner.logits = hf_logits(runner.model, skip) if is_hf else minift_logits(runner.model)
        runner.prepare()
    return runners


def check_runners(runners: list[Runner], first_loss: dict) -> list[dict]:
    """The pairs must start from the same function and train the same number of parameters."""
    by_label = {r.label: r for r in runners}
    checks = []

    def same(what, labels, key, tolerance=0.0):
        present = [label for label in labels if label in by_label]
        if len(present) < 2:                    # a row left out (--cheap-wins): nothing to compare
            return
        values = {label: (first_loss[label] if key == "first_loss" else by_label[label].info[key]) for label in present}
        spread = max(values.values()) - min(values.values())
        ok = spread <= tolerance
        checks.append(dict(what=what, ok=ok, values=values))
        if not ok:
            raise RuntimeError(f"benchmark set-up is wrong: {what} differ: {values}")

    fp32 = [r.label for r in runners if r.precision == "fp32"]
    same("first losses of every model without prefix or prompt (LoRA starts at B = 0)",
         [label for label in fp32 if label not in (PREFIX, PEFT_PREFIX, PROMPT, PEFT_PROMPT)], "first_loss",
         FIRST_LOSS_TOLERANCE)
    same("first losses, prefix-tuning pair (PEFT gets minift's prefix weights)", [PREFIX, PEFT_PREFIX],
         "first_loss", FIRST_LOSS_TOLERANCE)
    same("first losses, prompt-tuning pair (PEFT gets minift's prompt vectors)", [PROMPT, PEFT_PROMPT],
         "first_loss", FIRST_LOSS_TOLERANCE)
    same("parameters of minift and GPT-2 (tied LM head)", [MINIFT, HF_NEW, HF_TANH], "parameters")
    same("trainable parameters, full fine-tuning", [MINIFT, HF_NEW, HF_TANH, MINIFT_FUSED], "trainable")
    same("trainable parameters, minift LoRA q,v and PEFT LoRA on c_attn (PEFT: one A, one 3d x r B, "
         "adapting q, k and v)", [LORA_QV, LORA_QV_SCALED, PEFT_LORA], "trainable")
    same("trainable parameters, prefix-tuning", [PREFIX, PEFT_PREFIX], "trainable")
    same("trainable parameters, prompt tuning", [PROMPT, PEFT_PROMPT], "trainable")
    return checks


# ----------------------------------------------------------------------------------------------------
# FLOPs and the matmul peak at the step's own shapes

aten = torch.ops.aten
MATMULS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm}


def _spec(value):
    """A hashable description of an argument: tensors by shape, strides, dtype and device."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.stride()), str(value.dtype), str(value.device))
    if isinstance(value, (list, tuple)):
        return tuple(_spec(v) for v in value)
    return value


def _materialize(spec):
    if isinstance(spec, tuple) and spec and spec[0] == "tensor":
        _, shape, stride, dtype, device = spec
        tensor = torch.empty_strided(shape, stride, dtype=getattr(torch, dtype.split(".")[-1]), device=device)
        if not tensor.is_floating_point():
            return tensor.zero_()
        try:
            return tensor.normal_()
        except RuntimeError:               # overlapping memory (an expanded view): one value for all
            return tensor.fill_(0.5)
    if isinstance(spec, tuple):
        return tuple(_materialize(s) for s in spec)
    return spec


def _attention_flops(q_shape, k_shape) -> int:
    """q @ k^T and weights @ v: 2 products of 2 * B H Tq Tk d_head FLOPs each (masking not discounted)."""
    batch, heads, length_q, d_head = q_shape
    return 4 * batch * heads * length_q * k_shape[-2] * d_head


class MatmulRecorder(TorchDispatchMode):
    """Records the matrix products and fused attention calls of whatever runs inside it."""

    def __init__(self):
        super().__init__()
        self.matmuls: dict = {}          # key -> [calls, flops per call]
        self.attention_flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in MATMULS:
            a, b = (args[0], args[1]) if packet in (aten.mm, aten.bmm) else (args[1], args[2])
            flops = 2 * a.numel() * b.shape[-1]              # 2 m k n (times the batch for bmm)
            key = (func, _spec(tuple(args)), _spec(tuple(sorted(kwargs.items()))))
            entry = self.matmuls.setdefault(key, [0, flops])
            entry[0] += 1
        elif packet.__name__.startswith("_scaled_dot_product"):
            if "backward" in packet.__name__:                 # (grad_out, q, k, v, ...): 4 products
                self.attention_flops += 2 * _attention_flops(args[1].shape, args[2].shape)
            else:                                             # (q, k, v, ...)
                self.attention_flops += _attention_flops(args[0].shape, args[1].shape)
        return out

    @property
    def matmul_flops(self) -> int:
        return sum(calls * flops for calls, flops in self.matmuls.values())


class MatmulClock:
    """Seconds one matrix product of a recorded kind takes alone, cached by kind: the best of at least 3
    batches of calls (each batch >= min_seconds). Other processes can only slow a batch down, so the
    best batch is the estimate; while no batch was quiet, up to 8 are tried, and kinds timed without a
    quiet batch are counted in ``contended``."""

    def __init__(self, device: torch.device, monitor: "CpuMonitor", min_seconds: float):
        self.device, self.monitor, self.min_seconds = device, monitor, min_seconds
        self.cache: dict = {}
        self.contended: set = set()

    def seconds(self, key, again: bool = False) -> float:
        """The cached time of ``key``; again=True times it once more and keeps the better of the two
        (a second look minutes later, in case the machine was slow during the first)."""
        if key not in self.cache or again:
            func, arg_specs, kwarg_specs = key
            args, kwargs = _materialize(arg_specs), dict(_materialize(kwarg_specs))
            func(*args, **kwargs)
            once, _ = timed(lambda: func(*args, **kwargs), self.monitor, self.device)
            repeats = max(1, min(1000, math.ceil(self.min_seconds / max(once, 1e-7))))

            def batch():
                for _ in range(repeats):
                    func(*args, **kwargs)
            best, quiet = float("inf"), 0
            for attempt in range(8):
                seconds, others = timed(batch, self.monitor, self.device)
                best = min(best, seconds / repeats)
                quiet += self.monitor.quiet(others, seconds)
                if attempt >= 2 and quiet:
                    break
            if quiet:
                self.contended.discard(key)
            elif key not in self.cache:
                self.contended.add(key)
            self.cache[key] = min(best, self.cache.get(key, best))
        return self.cache[key]

    def at_peak(self, recorder: MatmulRecorder) -> float:
        """Seconds the recorded products take when each runs alone, at the BLAS's own speed."""
        return sum(calls * self.seconds(key) for key, (calls, _) in recorder.matmuls.items())

    def peak_contended(self, recorder: MatmulRecorder) -> bool:
        return any(key in self.contended for key in recorder.matmuls)


# ----------------------------------------------------------------------------------------------------
# Timing: interleaved rounds, busy steps discarded

def timed(step, monitor: CpuMonitor, device) -> tuple[float, float]:
    """(seconds, cores other processes used meanwhile); seconds of wall time, or of this process's CPU
    time with --clock cpu."""
    synchronize(device)
    start_cpu = monitor.snapshot()
    start = time.perf_counter()
    step()
    synchronize(device)
    wall = time.perf_counter() - start
    seconds = wall if monitor.clock == "wall" else time.process_time() - start_cpu[1]
    return seconds, monitor.others(start_cpu, wall)


def run_rounds(steps: dict, inputs: list, comparisons, monitor: CpuMonitor, device, *, budget: float,
               wanted: int, min_rounds: int = 2, max_rounds: int | None = None, min_sample: float = 0.0,
               quiet_wait: float = QUIET_WAIT, seed: int = 0) -> tuple[list[dict], dict]:
    """Interleaved rounds of ``steps`` ({label: callable(input)}), each in a new shuffled order on one
    input, after one warm-up round. The warm-up also sets how many calls one sample makes (``repeats``),
    so that a sample lasts at least ``min_sample`` seconds: long enough for /proc/stat's ticks to tell
    whether another process ran. Before each round it waits (a little) for the CPU to be quiet. It stops
    when the next round would overrun ``budget`` seconds (counted from the call; one round always runs),
    when every comparison has ``wanted`` rounds with both samples quiet (not before ``min_rounds``), or
    at ``max_rounds``.
    Returns ([{label: (seconds per call, others, quiet)} per round], {label: repeats})."""
    start = time.perf_counter()
    max_rounds = max_rounds if max_rounds is not None else 4 * wanted
    order = list(steps)
    shuffler = random.Random(seed)
    repeats = dict.fromkeys(steps, 1)
    rounds: list[dict] = []

    def sample(label, data):
        def run():
            for _ in range(repeats[label]):
                steps[label](data)
        wall, others = timed(run, monitor, device)
        return wall / repeats[label], others, monitor.quiet(others, wall)

    for r in range(max_rounds + 1):
        monitor.wait_for_quiet(min(quiet_wait, max(0.0, budget - (time.perf_counter() - start)) / 4))
        shuffler.shuffle(order)
        data = inputs[r % len(inputs)]
        round_start = time.perf_counter()
        samples = {label: sample(label, data) for label in order}
        if r == 0:                                             # the warm-up round: not kept
            repeats = {label: max(1, min(1000, math.ceil(min_sample / max(samples[label][0], 1e-6))))
                       for label in steps}
            continue
        rounds.append(samples)
        round_seconds = time.perf_counter() - round_start
        kept = min((sum(1 for s in rounds if s[a][2] and s[b][2]) for _, a, b in comparisons), default=len(rounds))
        elapsed = time.perf_counter() - start
        if elapsed + round_seconds > budget or (len(rounds) >= min_rounds and kept >= wanted):
            break
    return rounds, repeats


def summarize_model(rounds: list[dict], label: str) -> dict:
    walls = [s[label][0] for s in rounds]
    kept = [s[label][0] for s in rounds if s[label][2]]
    contended = len(kept) < 1
    use = walls if contended else kept
    return dict(median_ms=1000 * statistics.median(use), min_ms=1000 * min(use), max_ms=1000 * max(use),
                kept=len(kept), rounds=len(rounds), contended=contended,
                samples_ms=[round(1000 * w, 3) for w in walls],
                others_cores=[None if math.isnan(s[label][1]) else round(s[label][1], 3) for s in rounds])


def summarize_ratio(rounds: list[dict], name: str, numerator: str, denominator: str, kind: str) -> dict:
    pairs = [(s[numerator][0] / s[denominator][0], s[numerator][2] and s[denominator][2]) for s in rounds]
    kept = [ratio for ratio, quiet in pairs if quiet]
    contended = len(kept) < min(2, len(pairs))
    use = [ratio for ratio, _ in pairs] if contended else kept
    return dict(name=name, kind=kind, numerator=numerator, denominator=denominator,
                median=statistics.median(use), min=min(use), max=max(use), kept=len(kept),
                rounds=len(rounds), contended=contended)


# ----------------------------------------------------------------------------------------------------
# One shape: build, check, count FLOPs, time, summarize

def shape_label(shape: dict) -> str:
    return f"d={shape['d_model']} L{shape['n_layers']}"


def step_cost(shape: dict, tokens: int) -> float:
    """Rough FLOPs of a full training step (6 N tokens): shares the time budget between shapes."""
    d, layers = shape["d_model"], shape["n_layers"]
    return 6.0 * tokens * (12 * d * d * layers + d * VOCAB)


def bench_shape(shape, batches, device, monitor, clock, args, budget, fused_ok, bf16) -> dict:
    start = time.perf_counter()
    batch, seq = batches[0].shape
    max_len = seq + max(PREFIX_LENGTH, PROMPT_LENGTH) + 16
    runners = build_runners(shape, max_len, device, fused_ok, bf16=bf16)
    if args.cheap_wins:
        runners = [r for r in runners if r.label in {label for _, a, b in CHEAP_WINS for label in (a, b)}]
    by_label = {r.label: r for r in runners}

    first_loss, recorders = {}, {}
    for runner in runners:              # one untimed step each: first loss, FLOPs, matmul shapes
        recorder = MatmulRecorder()
        with recorder:
            first_loss[runner.label] = float(runner.step(batches[0], device))
        recorders[runner.label] = recorder
    checks = check_runners(runners, first_loss)
    checks.append(check_scaled_variant(by_label[LORA_QV].model, batches[0][:2]))
    peak_start = time.perf_counter()
    for recorder in recorders.values():              # first look at the matmul peak
        clock.at_peak(recorder)
    peak_seconds = time.perf_counter() - peak_start

    comparisons = list(VERSUS) + list(CHEAP_WINS)
    if bf16:
        comparisons += [(f"{name} (bf16)", a + " bf16", b + " bf16") for name, a, b in VERSUS] + list(BF16_VS_FP32)
    comparisons = [(name, a, b) for name, a, b in comparisons if a in by_label and b in by_label]
    steps = {r.label: (lambda ids, r=r: r.step(ids, device)) for r in runners}
    spent = time.perf_counter() - start + peak_seconds   # the second look at the peak comes after the rounds
    rounds, repeats = run_rounds(steps, batches, comparisons, monitor, device, budget=max(budget - spent, 0.0),
                                 wanted=args.rounds, max_rounds=args.max_rounds, min_sample=args.min_sample,
                                 quiet_wait=args.quiet_wait, seed=shape["d_model"])

    for key in {key for recorder in recorders.values() for key in recorder.matmuls}:
        clock.seconds(key, again=True)               # second look, minutes after the first
    blas_seconds = {label: clock.at_peak(recorder) for label, recorder in recorders.items()}
    models = []
    for runner in runners:
        recorder = recorders[runner.label]
        row = dict(label=runner.label, precision=runner.precision, **runner.info, repeats=repeats[runner.label],
                   first_loss=first_loss[runner.label], **summarize_model(rounds, runner.label))
        seconds = row["median_ms"] / 1000
        flops = recorder.matmul_flops + recorder.attention_flops
        at_peak = blas_seconds[runner.label]
        peak = recorder.matmul_flops / at_peak if at_peak > 0 else float("nan")
        row.update(flops=flops, matmul_flops=recorder.matmul_flops, attention_flops=recorder.attention_flops,
                   matmul_kinds=len(recorder.matmuls), achieved_gflops=flops / seconds / 1e9,
                   peak_gflops=peak / 1e9, peak_fraction=(flops / seconds) / peak,
                   matmul_share_at_peak=at_peak / seconds, peak_contended=clock.peak_contended(recorder),
                   tokens_per_s=batch * seq / seconds)
        models.append(row)
    ratios = [summarize_ratio(rounds, name, a, b,
                              "cheap_win" if (name, a, b) in CHEAP_WINS else
                              "precision" if (name, a, b) in BF16_VS_FP32 else "versus")
              for name, a, b in comparisons]
    return dict(shape=shape, label=shape_label(shape), batch=batch, seq=seq, max_len=max_len, models=models,
                comparisons=ratios, checks=checks, rounds=len(rounds),
                quiet_rounds=sum(1 for s in rounds if all(v[2] for v in s.values())),
                steps=sum(len(s) for s in rounds), steps_discarded=sum(1 for s in rounds for v in s.values() if not v[2]),
                seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------
# Inference: merged / unmerged LoRA, prefix and prompt, relative to the base model

def inference_models(shape: dict, max_len: int, device) -> dict:
    base = from_hf_gpt2(gpt2(shape, max_len, "gelu_new"), attention="sdpa")
    torch.manual_seed(4)
    unmerged = lora.apply(copy.deepcopy(base), r=LORA_R, alpha=LORA_ALPHA, targets=("q", "v"))
    with torch.no_grad():               # a trained adapter has B != 0; merging must then cost nothing
        for module in lora_modules(unmerged):
            module.lora_B.normal_(std=0.02)
    merged = lora.merge(copy.deepcopy(unmerged))
    with_prefix = prefix.freeze_to_table(prefix.apply(copy.deepcopy(base), length=PREFIX_LENGTH, reparam=True))
    with_prompt = ptuning.apply(copy.deepcopy(base), length=PROMPT_LENGTH, encoder=None)
    models = {"base": base, "LoRA merged": merged, "LoRA unmerged": unmerged,
              f"prefix ({PREFIX_LENGTH})": with_prefix, f"prompt ({PROMPT_LENGTH})": with_prompt}
    for model in models.values():
        model.to(device).eval()
    return models


def bench_inference(shape, batches, lengths, device, monitor, args, budget) -> dict:
    start = time.perf_counter()
    max_len = max(lengths) + PREFIX_LENGTH + PROMPT_LENGTH
    models = inference_models(shape, max_len, device)
    comparisons = [(f"{name} / base", name, "base") for name in models if name != "base"]
    generator = torch.Generator().manual_seed(1)
    groups = []
    configs = [(b, t) for b in batches for t in lengths]
    for i, (batch, length) in enumerate(configs):
        inputs = [torch.randint(0, VOCAB, (batch, length), generator=generator).to(device) for _ in range(2)]

        def forward(model):
            def run(ids):
                with torch.inference_mode():
                    model(ids)
            return run
        steps = {name: forward(model) for name, model in models.items()}
        left = budget - (time.perf_counter() - start)
        rounds, repeats = run_rounds(steps, inputs, comparisons, monitor, device, budget=left / (len(configs) - i),
                                     wanted=max(args.rounds, 5), min_rounds=3, max_rounds=60,
                                     min_sample=args.min_sample, quiet_wait=args.quiet_wait,
                                     seed=batch * 1000 + length)
        groups.append(dict(batch=batch, seq=length,
                           models=[dict(label=name, repeats=repeats[name], **summarize_model(rounds, name))
                                   for name in models],
                           comparisons=[summarize_ratio(rounds, *c, "inference") for c in comparisons]))
    return dict(shape=shape, label=shape_label(shape), groups=groups, seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------
# Printing

def _ratio(c: dict) -> str:
    flag = " contended" if c["contended"] else ""
    return f"{c['median']:.2f} [{c['min']:.2f}-{c['max']:.2f}]{flag}"


def print_shape(result: dict, device) -> None:
    print(f"\n### {result['label']} (batch {result['batch']} x {result['seq']}): {result['rounds']} timed rounds, "
          f"{result['steps_discarded']} of {result['steps']} steps discarded as contended, "
          f"{result['seconds']:.0f} s\n")
    tokens = device.type == "cuda" or any(m["precision"] == "bf16" for m in result["models"])
    print("| model | trainable | ms/step median [min-max] | kept | GFLOP/s | peak GFLOP/s | of peak |"
          " matmul share at peak |" + (" tokens/s |" if tokens else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if tokens else ""))
    for m in result["models"]:
        flag = " contended" if m["contended"] else ""
        print(f"| {m['label']} | {m['trainable']:,} | {m['median_ms']:.1f} [{m['min_ms']:.1f}-{m['max_ms']:.1f}]{flag} | "
              f"{m['kept']}/{m['rounds']} | {m['achieved_gflops']:.1f} | {m['peak_gflops']:.1f} | "
              f"{100 * m['peak_fraction']:.0f}% | {100 * m['matmul_share_at_peak']:.0f}% |"
              + (f" {m['tokens_per_s']:,.0f} |" if tokens else ""))
    print("\n| comparison (time / time, same round) | median [min-max] | rounds kept |")
    print("|---|---:|---:|")
    for c in result["comparisons"]:
        print(f"| {c['name']} | {_ratio(c)} | {c['kept']}/{c['rounds']} |")


def print_inference(result: dict) -> None:
    print(f"\n### Inference, {result['label']}: forward latency / base model's, same round "
          f"({result['seconds']:.0f} s)\n")
    names = [c["name"] for c in result["groups"][0]["comparisons"]]
    print("| batch x tokens | base ms | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for g in result["groups"]:
        base = next(m for m in g["models"] if m["label"] == "base")
        print(f"| {g['batch']} x {g['seq']} | {base['median_ms']:.2f} | "
              + " | ".join(_ratio(c) for c in g["comparisons"]) + " |")


# ----------------------------------------------------------------------------------------------------
# The README's speed section, generated from the JSON

def _cell(c: dict | None) -> str:
    if c is None:
        return "-"
    return f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})" + ("*" if c["contended"] else "")


def _find(items, key, value):
    return next((item for item in items if item[key] == value), None)


def _table(shapes, columns, cell) -> list[str]:
    """Markdown rows: one per shape, one column per (header, key) with cell(shape, key)."""
    lines = ["| shape | " + " | ".join(header for header, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for s in shapes:
        lines.append(f"| {s['label']} | " + " | ".join(cell(s, key) for _, key in columns) + " |")
    return lines


def _short(commit: str) -> str:
    """First 12 hex digits, keeping a "-dirty" mark (uncommitted changes when it ran)."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _span(fractions) -> str:
    low, high = round(100 * min(fractions)), round(100 * max(fractions))
    return f"{low}%" if low == high else f"{low}-{high}%"


def _ratio_cell(s, name):
    return _cell(_find(s["comparisons"], "name", name))


def _discard_line(result: dict) -> str:
    shapes = result["shapes"]
    steps = sum(s["steps"] for s in shapes)
    discarded = sum(s["steps_discarded"] for s in shapes)
    rounds = ", ".join(f"{s['label']}: {s['rounds']}" for s in shapes)
    if result["meta"].get("clock") == "cpu":
        line = (f"Timed rounds per shape: {rounds}. Timed by this process's CPU time (--clock cpu), which other "
                "processes do not stretch (they still share caches and memory bandwidth), because the machine "
                "was too busy for wall-clock timing; no sample was discarded")
    elif result["meta"]["cpu_monitored"]:
        line = (f"Timed rounds per shape: {rounds}; {discarded} of {steps} timed samples were discarded because "
                "other processes used the CPU while they ran")
    else:
        line = f"Timed rounds per shape: {rounds}; the CPU was not monitored for other processes"
    if any(c["contended"] for s in shapes for c in s["comparisons"]):
        line += " (* marks ratios with fewer than 2 quiet rounds, computed from all rounds: read them as rough)"
    line += "."
    if result["meta"]["device"] == "cpu":
        line += (" A shared virtual machine's speed also drifts for reasons /proc/stat does not show (other "
                 "machines on the same host): read each median with its (min-max).")
    if result["meta"].get("skipped_shapes"):
        line += (" Not measured, the time budget being spent on a busy machine: "
                 f"{', '.join(result['meta']['skipped_shapes'])}.")
    return line


# Short column headers for the README (the JSON and the printed tables use the full names).
README_VERSUS = (("GPT-2 gelu_new", "HF gelu_new / minift"),
                 ("GPT-2 gelu_pytorch_tanh (control)", "HF gelu_pytorch_tanh / minift"),
                 ("PEFT LoRA / LoRA q,v", "PEFT LoRA c_attn / minift LoRA q,v"),
                 ("PEFT LoRA / LoRA q,k,v", "PEFT LoRA c_attn / minift LoRA q,k,v"),
                 ("PEFT prefix / prefix", "PEFT prefix / minift prefix"),
                 ("PEFT prompt / prompt", "PEFT prompt / minift prompt"))
README_MODELS = ((MINIFT, MINIFT), ("GPT-2 gelu_new", HF_NEW), ("LoRA q,v", LORA_QV), ("PEFT LoRA", PEFT_LORA),
                 ("prefix", PREFIX), ("PEFT prefix", PEFT_PREFIX), ("prompt", PROMPT), ("PEFT prompt", PEFT_PROMPT))
README_CHEAP = (("AdamW fused / default", CHEAP_WINS[0][0]), ("LoRA: s on rank-r / on output", CHEAP_WINS[1][0]))


def readme_section(results: list[dict]) -> str:
    """The README's speed section, in markdown, from one or more bench JSON files (CPU, then CUDA)."""
    out = ["## Speed", "",
           "`make bench` (benchmarks/bench.py, about 9 minutes on 2 cores) times one training step (forward, "
           "next-token loss, backward, AdamW step) of minift against transformers' `GPT2LMHeadModel` and "
           "against PEFT for each adapter method, with identical starting weights (checked: equal first "
           "losses) and equal trainable counts (checked), interleaved in shuffled order, round after round; "
           "samples during which another process used the CPU are discarded. It writes "
           "`results/bench_cpu.json` (`bench_cuda.json` on a GPU), from which this section is generated "
           "(`python benchmarks/bench.py --readme results/bench_cpu.json`).", ""]
    for result in results:
        meta = result["meta"]
        shapes = result["shapes"]
        if not shapes:
            continue
        first = shapes[0]
        threads = f"{meta['threads']} thread" + ("s" if meta["threads"] != 1 else "")
        where = (f"{meta['device_name']} (CUDA {meta.get('cuda')})" if meta["device"] == "cuda"
                 else f"{meta['cpu']}, {threads}" + (", timed by CPU time" if meta.get("clock") == "cpu" else ""))
        out += [f"### {'GPU' if meta['device'] == 'cuda' else 'CPU'}: {where}", "",
                f"{meta['date'][:10]}, commit {_short(meta['commit'])}{', --quick' if meta['quick'] else ''}, "
                f"torch {meta['torch']}, transformers {meta['transformers']}, peft {meta['peft']}; batch "
                f"{first['batch']} x {first['seq']} tokens, vocabulary {VOCAB}, fp32"
                + (" (bf16 autocast where marked)" if meta.get("bf16") else "") + ". " + _discard_line(result), "",
                "Training step, time of the other / time of minift from the same round, median (min-max) over "
                "rounds; > 1: minift is faster. The control row runs GPT-2 with the fused tanh-GELU that "
                "minift uses: the difference to the gelu_new row is the cost of transformers' unfused "
                "`gelu_new`.", ""]
        out += _table(shapes, README_VERSUS, _ratio_cell)
        if meta.get("bf16"):
            out += ["", "bf16 autocast:", ""]
            out += _table(shapes, [(h + " (bf16)", n + " (bf16)") for h, n in README_VERSUS[:3]]
                          + [("minift bf16 / fp32", BF16_VS_FP32[0][0]), ("GPT-2 bf16 / fp32", BF16_VS_FP32[1][0])],
                          _ratio_cell)
        counts = ", ".join(f"{s['label']}: {_find(s['models'], 'label', PEFT_LORA)['trainable']:,}" for s in shapes)
        out += ["", "PEFT's LoRA on GPT-2's fused `c_attn` (d -> 3d) has one A (r x d) and one B (3d x r): "
                f"the same trainable count as minift's LoRA r=8 on q and v ({counts}), but it adapts q, k and "
                "v, so it is compared with both. Prefix-tuning (16 virtual tokens, reparameterised) and prompt "
                "tuning (8 vectors) have equal counts in both libraries and start from the same prefix/prompt.",
                ""]

        def gflops(s, label):
            m = _find(s["models"], "label", label)
            return "-" if m is None else f"{m['achieved_gflops']:.0f} ({100 * m['peak_fraction']:.0f}%)"
        share = [m["matmul_share_at_peak"] for s in shapes for m in s["models"] if m["label"] == MINIFT]
        out += ["Achieved GFLOP/s of each training step (matrix products and attention), and in brackets its "
                "fraction of the matmul peak measured in the same run: each of the step's own matrix "
                "products timed alone, same shapes and memory layout"
                + (" (bf16 rows: the bf16 peak)" if meta.get("bf16") else "")
                + f". At that peak speed, the products alone would take {_span(share)} of minift's full step: "
                "the rest is elementwise work, attention, the loss and the optimizer.", ""]
        out += _table(shapes, README_MODELS, gflops)
        if meta["device"] == "cuda" or meta.get("bf16"):
            def tokens(s, label):
                m = _find(s["models"], "label", label)
                return "-" if m is None else f"{m['tokens_per_s']:,.0f}"
            out += ["", "Training tokens per second:", ""]
            out += _table(shapes, [(f"{h} {p}", label + (" bf16" if p == "bf16" else ""))
                                   for h, label in README_MODELS[:4] for p in ("fp32", "bf16")], tokens)

        out += ["", "Cheap wins, each timed next to its \"before\" in the same rounds (time after / time before; "
                "< 1: faster): AdamW(fused=True) against torch's default AdamW (a per-parameter loop on CPU, "
                "foreach on CUDA) for minift's full step, and LoRA with alpha/r applied to the r-wide "
                "intermediate instead of the d-wide output.", ""]
        out += _table(shapes, README_CHEAP, _ratio_cell)

        inference = result.get("inference")
        if inference:
            names = [c["name"] for c in inference["groups"][0]["comparisons"]]
            out += ["", f"Inference, {inference['label']}, forward passes in eval mode: latency relative to the "
                    "base model from the same round, median (min-max); a merged LoRA should cost nothing.", "",
                    "| batch x tokens | base ms | " + " | ".join(n.replace(" / base", "") for n in names) + " |",
                    "|---|---:|" + "---:|" * len(names)]
            for g in inference["groups"]:
                base = _find(g["models"], "label", "base")
                out.append(f"| {g['batch']} x {g['seq']} | {base['median_ms']:.2f} | "
                           + " | ".join(_cell(c) for c in g["comparisons"]) + " |")
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------

def parse_shapes(text: str) -> tuple[dict, ...]:
    """"128/4,512/6" -> shapes with d_model/64 heads (at least 2)."""
    shapes = []
    for part in text.split(","):
        try:
            d, layers = (int(x) for x in part.split("/"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shape {part!r} is not d_model/n_layers, e.g. 512/6") from None
        if d <= 0 or layers <= 0 or d % 2:
            raise argparse.ArgumentTypeError(f"shape {part!r}: d_model must be even and > 0, n_layers > 0")
        heads = next(h for h in (d // 64, 4, 2) if h >= 2 and d % h == 0)
        shapes.append(dict(d_model=d, n_layers=layers, n_heads=heads))
    return tuple(shapes)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch sees no CUDA device")
    return torch.device(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, 2 rounds: checks the machinery")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable CPUs)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default 540, --quick 60); rounds stop when it is spent")
    parser.add_argument("--rounds", type=int, default=None,
                        help="quiet rounds wanted per comparison (default 6 on CPU, 20 on CUDA, --quick 2)")
    parser.add_argument("--shapes", type=parse_shapes, default=None, help="e.g. 128/4,512/6 (default: the four)")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference part")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: time this process's CPU time instead of wall time, for a machine too busy "
                        "for wall-clock timing; use with --threads 1 (waiting threads spin) - CPU only")
    parser.add_argument("--cheap-wins", action="store_true",
                        help="time only the cheap wins and their 'before' rows (more rounds in the same time)")
    parser.add_argument("--bf16", action="store_true",
                        help="also the bf16-autocast rows (always on CUDA; on CPU only to test that path)")
    parser.add_argument("--json", type=Path, default=None,
                        help="results file (default results/bench_<device>.json; --quick writes none unless given)")
    parser.add_argument("--readme", type=Path, nargs="+", metavar="JSON",
                        help="print the README's speed section from these result files and exit")
    args = parser.parse_args(argv)
    if args.readme:
        print(readme_section([json.loads(path.read_text()) for path in args.readme]))
        return 0

    warnings.filterwarnings("ignore")                 # transformers/PEFT deprecation chatter
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    device = pick_device(args.device)
    threads = args.threads or (1 if args.quick else available_cpus())
    if threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(threads)
    args.budget = args.budget if args.budget is not None else (60.0 if args.quick else 540.0)
    args.rounds = args.rounds or (2 if args.quick else 20 if device.type == "cuda" else 6)
    args.max_rounds = 3 if args.quick else 4 * args.rounds
    args.min_sample = 0.02 if args.quick or device.type == "cuda" else 0.2   # seconds per timed sample
    args.quiet_wait = 0.0 if args.quick else QUIET_WAIT
    bf16 = args.bf16 or device.type == "cuda"
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    batch, seq = (QUICK_BATCH, QUICK_SEQ) if args.quick else (BATCH, SEQ)
    json_path = args.json if (args.json or args.quick) else ROOT / "results" / f"bench_{device.type}.json"

    start = time.perf_counter()
    if args.clock == "cpu" and device.type != "cpu":
        parser.error("--clock cpu times the CPU only")
    monitor = CpuMonitor(threads if device.type == "cpu" else 1, clock=args.clock)
    meta = metadata(device, monitor, args)
    fused_ok = fused_adamw_supported(device)
    meta.update(fused_adamw=fused_ok, bf16=bf16)
    print(f"minift bench: {meta['device_name']}, {meta['threads']} threads, torch {meta['torch']}, transformers "
          f"{meta['transformers']}, peft {meta['peft']}, {meta['date']}, commit {meta['commit'][:12]}; "
          f"batch {batch} x {seq}, vocab {VOCAB}; budget {args.budget:.0f} s, {args.rounds} quiet rounds wanted"
          + ("" if monitor.available else "; CPU NOT monitored for other processes")
          + ("; CLOCK: this process's CPU time, not wall time" if args.clock == "cpu" else "")
          + ("" if fused_ok else "; fused AdamW not supported here"), flush=True)

    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, VOCAB, (batch, seq), generator=generator).to(device) for _ in range(4)]
    clock = MatmulClock(device, monitor, min_seconds=0.05 if device.type == "cpu" and not args.quick else 0.002)
    left = args.budget - (time.perf_counter() - start)
    training_budget = left * (1.0 if args.no_inference or args.cheap_wins else 1.0 - INFERENCE_SHARE)
    # Each shape left gets an equal share of the time left: a small shape that has its quiet rounds early
    # passes the rest on to the larger ones. costs[] only predicts whether a shape can still fit at all.
    costs = [step_cost(shape, batch * seq) for shape in shapes]
    results, skipped = [], []
    training_start = time.perf_counter()
    seconds_per_cost = None                 # wall seconds per unit of step_cost for one round, measured
    for i, shape in enumerate(shapes):
        remaining = training_budget - (time.perf_counter() - training_start)
        # A shape needs about 4 rounds' time at least (first step, warm-up, peak timing, one round): when
        # the shapes before say that no longer fits, skip it instead of overrunning the budget.
        least = 4 * seconds_per_cost * costs[i] if seconds_per_cost else 0.0
        if remaining <= 0 or least > remaining:     # a contended machine ate the budget: say so
            print(f"\n### {shape_label(shape)}: skipped, the time budget is spent", flush=True)
            skipped.append(shape_label(shape))
            continue
        share = remaining / (len(shapes) - i)
        result = bench_shape(shape, batches, device, monitor, clock, args, share, fused_ok, bf16)
        seconds_per_cost = result["seconds"] / ((result["rounds"] + 3) * costs[i])
        print_shape(result, device)
        results.append(result)
        sys.stdout.flush()
    meta["skipped_shapes"] = skipped
    output = dict(meta=meta, shapes=results)
    if not (args.no_inference or args.cheap_wins):
        inference_shape = shapes[-1] if args.quick or args.shapes else INFERENCE_SHAPE
        lengths = QUICK_INFERENCE_LENGTHS if args.quick else INFERENCE_LENGTHS
        batches_inf = QUICK_INFERENCE_BATCHES if args.quick else INFERENCE_BATCHES
        left = args.budget - (time.perf_counter() - start)
        if left < 0.05 * args.budget:
            print("\n### Inference: skipped, the time budget is spent", flush=True)
            meta["skipped_shapes"].append("inference")
        else:
            output["inference"] = bench_inference(inference_shape, batches_inf, lengths, device, monitor, args, left)
            print_inference(output["inference"])
    meta["seconds"] = time.perf_counter() - start
    print(f"\ntotal {meta['seconds']:.0f} s")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = json_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(output, indent=1) + "\n")
        temporary.replace(json_path)
        print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
