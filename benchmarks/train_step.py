"""Time one full training step of minift.Transformer against transformers' GPT2LMHeadModel.

    python benchmarks/train_step.py [--steps N] [--warmup W] [--json out.json] [--profile]

A training step is: forward, next-token cross-entropy, backward, AdamW step, zero_grad. Both models
get the same GPT-2-shaped config (learned positions, pre-LN, tanh-GELU, tied LM head, dropout 0) and the
same starting weights: the HF model is built first and converted with minift.interop.from_hf_gpt2, so
the first losses agree to float precision (checked). The loss is computed outside both models by the
same code, so only the models differ. HF runs with use_cache=False (no KV cache while training) and,
row by row, attn_implementation="sdpa" (torch's fused scaled_dot_product_attention) and "eager"
(matmul-softmax-matmul in Python). minift runs with attention="sdpa" and "explicit" (its counterpart
of "eager"). HF's rows use GPT-2's own activation_function="gelu_new", which transformers evaluates as
a chain of elementwise ops (pow, mul, add, tanh, ...); minift computes the same function with one
fused kernel, F.gelu(approximate="tanh"). A fifth row, HF sdpa with "gelu_pytorch_tanh" (the same
fused kernel), separates the activation's cost from everything else.

Steps are interleaved (one step of each model in turn, repeated) so that slow drifts of the machine
(thermal, other processes) hit every row alike. Reported: median and interquartile range (IQR,
75th - 25th percentile) of the per-step wall time in ms, and the ratio HF median / minift median
(> 1: minift is faster), against the minift row with the matching attention kind.

--profile prints torch.profiler's top operators over 3 steps of each model (after 3 untimed ones) and
no timing table. Read it for where time goes inside one model, not to compare models: under the
profiler, elementwise ops and fills on fresh large buffers (page faults) look far costlier than they
are in the unprofiled wall-clock timings.
Nothing is saved unless --json is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from minift.interop import from_hf_gpt2  # noqa: E402

SHAPES = [dict(d_model=128, n_layers=4, n_heads=4), dict(d_model=256, n_layers=4, n_heads=4)]
VOCAB, MAX_LEN, BATCH, SEQ = 1000, 128, 16, 128
HF_ACTIVATION = "gelu_new"   # GPT-2's own; minift runs the same function as "gelu_tanh"


def build_models(shape, hf_activation=HF_ACTIVATION, fused_gelu_row=True):
    """{label: model}: minift sdpa/explicit, HF sdpa/eager (and HF sdpa with gelu_pytorch_tanh), all
    with the same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=VOCAB, n_positions=MAX_LEN, n_embd=shape["d_model"],
                        n_layer=shape["n_layers"], n_head=shape["n_heads"], activation_function=hf_activation,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
                        bos_token_id=None, eos_token_id=None, attn_implementation="sdpa")
    torch.manual_seed(0)
    hf_sdpa = GPT2LMHeadModel(config)
    config_eager = GPT2Config.from_dict(config.to_dict())
    config_eager._attn_implementation = "eager"
    hf_eager = GPT2LMHeadModel(config_eager)
    hf_eager.load_state_dict(hf_sdpa.state_dict())
    assert hf_sdpa.config._attn_implementation == "sdpa" and hf_eager.config._attn_implementation == "eager"
    models = {
        "minift (sdpa)": from_hf_gpt2(hf_sdpa, attention="sdpa"),
        "minift (explicit)": from_hf_gpt2(hf_sdpa, attention="explicit"),
        f"HF GPT2LMHeadModel (sdpa, {hf_activation})": hf_sdpa,
        f"HF GPT2LMHeadModel (eager, {hf_activation})": hf_eager,
    }
    if fused_gelu_row and hf_activation != "gelu_pytorch_tanh":
        # Same function as gelu_new, but one fused kernel (F.gelu(approximate="tanh")) like minift's,
        # instead of gelu_new's chain of Python-level elementwise ops: isolates the activation's cost.
        config_fused = GPT2Config.from_dict(config.to_dict())
        config_fused.activation_function = "gelu_pytorch_tanh"
        config_fused._attn_implementation = "sdpa"
        hf_fused = GPT2LMHeadModel(config_fused)
        hf_fused.load_state_dict(hf_sdpa.state_dict())
        models["HF GPT2LMHeadModel (sdpa, gelu_pytorch_tanh)"] = hf_fused
    for model in models.values():
        model.train()
        assert model.config.tie_word_embeddings if hasattr(model.config, "tie_word_embeddings") \
            else model.config.tie_embeddings
    return models


def logits_of(model, ids):
    if hasattr(model, "transformer"):          # HF
        return model(input_ids=ids, use_cache=False).logits
    return model(ids).logits


def lm_loss(logits, ids):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def make_step(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step(ids):
        loss = lm_loss(logits_of(model, ids), ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def run_shape(shape, steps, warmup, batches):
    models = build_models(shape)
    stepper = {label: make_step(model) for label, model in models.items()}
    first_losses = {label: float(stepper[label](batches[0])) for label in models}
    spread = max(first_losses.values()) - min(first_losses.values())
    if spread > 1e-4:
        raise RuntimeError(f"the models do not start from the same function: first losses {first_losses}")
    for i in range(warmup):
        for label in models:
            stepper[label](batches[(i + 1) % len(batches)])
    times = {label: [] for label in models}
    for i in range(steps):
        ids = batches[i % len(batches)]
        for label in models:
            start = time.perf_counter()
            stepper[label](ids)
            times[label].append((time.perf_counter() - start) * 1000.0)
    rows = []
    for label, samples in times.items():
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        rows.append(dict(shape=f"d={shape['d_model']} L={shape['n_layers']} H={shape['n_heads']}",
                         model=label, params=count_parameters(models[label]),
                         median_ms=statistics.median(samples), iqr_ms=q3 - q1, samples_ms=samples))
    baseline = {("explicit" if "explicit" in r["model"] else "sdpa"): r["median_ms"]
                for r in rows if r["model"].startswith("minift")}
    for row in rows:
        if row["model"].startswith("HF"):
            kind = "sdpa" if "sdpa" in row["model"] else "explicit"
            row["compared_with"] = f"minift ({kind})"
            row["hf_over_minift"] = row["median_ms"] / baseline[kind]
        else:
            row["compared_with"], row["hf_over_minift"] = None, None
    return rows, first_losses


def print_table(rows):
    print("| config | model | params | median ms/step | IQR ms | HF median / minift median |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        ratio = "-" if row["hf_over_minift"] is None else \
            f"{row['hf_over_minift']:.2f} (vs {row['compared_with']})"
        print(f"| {row['shape']} | {row['model']} | {row['params']:,} | {row['median_ms']:.1f} | "
              f"{row['iqr_ms']:.1f} | {ratio} |")


def profile(shape, batches, top=18):
    from torch.profiler import ProfilerActivity, profile as torch_profile
    models = build_models(shape)
    for label, model in models.items():
        step = make_step(model)
        for ids in batches[:3]:
            step(ids)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for ids in batches[:3]:
                step(ids)
        print(f"\n### {label}, d={shape['d_model']}: top operators over 3 steps (self CPU time)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def busy_warning(threads):
    """A line to print when other processes already keep the cores busy: timings would then mostly
    measure the contention (OpenMP threads waiting for cores), not the models."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load >= max(cores - threads, 0) + 1.0:
        return (f"WARNING: 1-minute load average is {load:.1f} on {cores} cores before starting; if other "
                f"processes still compete for the CPUs, these timings will be slow and noisy.")
    return ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results (with every sample) here")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables instead")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (for an IQR)")

    import transformers
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, VOCAB, (BATCH, SEQ), generator=generator) for _ in range(4)]
    if args.profile:
        for shape in SHAPES:
            profile(shape, batches)
        return

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.processor() or platform.machine()}; batch {BATCH} x seq {SEQ}, vocab {VOCAB}, "
          f"fp32, AdamW; {args.warmup} warm-up + {args.steps} timed steps per model, interleaved; "
          f"HF activation {HF_ACTIVATION!r} unless named = minift 'gelu_tanh'; HF use_cache=False\n")
    busy = busy_warning(args.threads)
    if busy:
        print(busy + "\n")
    all_rows, losses = [], {}
    for shape in SHAPES:
        rows, first = run_shape(shape, args.steps, args.warmup, batches)
        all_rows += rows
        losses[rows[0]["shape"]] = first
    print_table(all_rows)
    if args.json:
        args.json.write_text(json.dumps(dict(torch=torch.__version__, transformers=transformers.__version__,
                                             threads=torch.get_num_threads(), batch=BATCH, seq=SEQ,
                                             vocab=VOCAB, steps=args.steps, warmup=args.warmup,
                                             first_losses=losses, rows=all_rows), indent=1))


if __name__ == "__main__":
    main()
