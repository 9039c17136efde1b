"""Checkers for chapter 10 (the bridge to real models): PEFT's key names, GPT-2's fused q/v adapter, and
a BERT layer copied into a minift post-LayerNorm block.

    from minift.course.checks import ch10_real_models as checks
    checks.check_peft_key(peft_key)
    checks.check_fuse_qv(fuse_qv)
    checks.check_bert_layer_to_block(bert_layer_to_block)

The functions under test follow the interfaces the exercise describes::

    def peft_key(layer: int, target: str, matrix: str) -> str:
        # the name PEFT gives LoRA's A or B ("A" / "B") for minift target ("q", "k", "v", "o", "w1",
        # "w2") of block ``layer`` in a GPT2LMHeadModel adapter file:
        # "base_model.model.transformer.h.{layer}.attn.c_attn.lora_A.weight" for q, k and v (one fused
        # module), attn.c_proj for o, mlp.c_fc for w1, mlp.c_proj for w2.

    def fuse_qv(A_q, B_q, A_v, B_v, alpha, r) -> (A_fused, B_fused, r_fused, alpha_fused):
        # two LoRA adapters of rank r (A: r x d, B: d x r, scaling alpha / r) on GPT-2's q and v, as ONE
        # exact adapter of the fused c_attn (output rows [q | k | v]): A_fused = [A_q ; A_v] (2r x d),
        # B_fused (3d x 2r) block-diagonal: B_q in rows 0..d, columns 0..r; B_v in rows 2d..3d,
        # columns r..2r; zero elsewhere (k has no adapter). r_fused = 2r, alpha_fused = 2 alpha.

    def bert_layer_to_block(hf_layer_state: dict, block) -> None:
        # copy a transformers BertLayer's state_dict (attention.self.query/key/value,
        # attention.output.dense, attention.output.LayerNorm, intermediate.dense, output.dense,
        # output.LayerNorm; weights and biases) into the parameters of a minift post-LN block, in place.

peft_key runs every target, both matrices, several layers, and names: the missing "base_model.model." or
"transformer." prefix, minift's or LLaMA's module names instead of GPT-2's, q/k/v not mapped to the one
fused c_attn, attn.c_proj and mlp.c_proj confused, w1 and w2 swapped, lora_A and lora_B swapped, ".weight"
missing, PEFT's in-memory adapter name ".default" kept, "base_model." without "model.", the "attn." / "mlp."
parent missing, the layer index off by one (h.-1 for layer 0 too) or written h[i], "layers." / "layer."
instead of GPT-2's "h.".

fuse_qv runs several d, r and alpha (alpha // r != alpha / r among them, alpha = 2.5 not whole; alpha
and r each as int, float, NumPy scalar, 0-d tensor), and one case against what minift's lora.export_peft
writes for a GPT-2-shaped model. It checks the identity (alpha_f / r_f) B_f A_f x == [s B_q A_q x | 0 |
s B_v A_v x] and names: A and/or B transposed or returned in the wrong order, A made with torch.stack (3-d),
A stacked v before q, B not block-diagonal (a dense stack, or one set of r columns for both), B's column
blocks swapped or shared, B_q or B_v missing, B with 2d columns (d taken for r), v's block in k's rows
(c_attn's order is q, k, v), k rows not zero, no k rows at all, B_q and B_v swapped, the scaling folded into
A or B, integer or half-precision tensors, r or alpha not doubled (alpha / r changed), r_fused = d, r_fused
and alpha_fused swapped, alpha truncated by int(), alpha computed with integer division, inputs changed in
place (alpha *= 2 on a 0-d tensor included), an error on a float or tensor r (named with the case), and
tensors returned earlier that change when fn runs again (a reused buffer).

bert_layer_to_block runs three layer shapes (the first square: d_ff = d, so that a transposed copy does
not fail on shapes), compares the block with transformers' BertLayer on random input in eval mode, and
names: nothing copied (into a copy of the block), the two LayerNorms swapped (attention.output.LayerNorm
is ln1, output.LayerNorm ln2), weights transposed (BERT's nn.Linear needs no .T, only GPT-2's Conv1D
does), biases forgotten, a LayerNorm (or only its bias) not copied, a bias copied into a weight, numbers
rounded through float16, query/key/value mixed up, the two output denses or the FFN's two denses confused,
a Parameter replaced (a new object: an optimizer or a LoRA wrapper holding the old one would not see it),
made to share memory with the input (p.data = tensor) or given another dtype / device, requires_grad or
train/eval mode changed, the input dict changed, a copy_ into a Parameter outside torch.no_grad(), a
KeyError (the keys listed) and tensors paired by position (a shape error).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from .framework import (Rejected, Verdict, _StudentRaised, _where, as_number, call, changed, checker, mistake,
                        name_of, passed, same_number, snapshot)
from .helpers import close

# ============================================================================ exercise 1: PEFT key names
PREFIX = "base_model.model."
GPT2_MODULE = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj",
               "w1": "mlp.c_fc", "w2": "mlp.c_proj"}
MINIFT_MODULE = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o", "w1": "ffn.w1", "w2": "ffn.w2"}
LLAMA_MODULE = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                "w1": "mlp.gate_proj", "w2": "mlp.down_proj"}


def reference_peft_key(layer: int, target: str, matrix: str) -> str:
    """The reference solution: the key of LoRA's A or B for a GPT2LMHeadModel adapter file."""
    return f"{PREFIX}transformer.h.{int(layer)}.{GPT2_MODULE[target]}.lora_{matrix}.weight"


def _key_cases():
    """(layer, target, matrix): every target, both matrices, three layers."""
    return [(layer, target, matrix) for layer in (0, 3, 11) for target in GPT2_MODULE for matrix in ("A", "B")]


def _key_variants(layer, target, matrix) -> list[tuple[str, str, str]]:
    """(wrong key, mistake, hint) for the usual mistakes, to recognise them."""
    module, other = GPT2_MODULE[target], "B" if matrix == "A" else "A"
    body = f"h.{layer}.{module}.lora_{matrix}.weight"
    c_proj = {"o": "mlp.c_proj", "w2": "attn.c_proj"}
    fused = "every one of q, k and v is a slice of GPT-2's one fused module attn.c_attn (its output rows are " \
            "[q | k | v]), so PEFT's key names c_attn for all three"
    variants = [
        (f"transformer.{body}", "the key lacks the prefix 'base_model.model.'",
         "PEFT wraps the model twice (PeftModel -> LoraModel -> the transformers model), so every key "
         "starts with base_model.model."),
        (f"{PREFIX}{body}", "the key lacks 'transformer.' after base_model.model.",
         "in a GPT2LMHeadModel the blocks live in model.transformer.h, next to lm_head: the module's name "
         "is transformer.h.<layer>..."),
        (body, "the key lacks both prefixes, 'base_model.model.' and 'transformer.'",
         "write the module's full name in the GPT2LMHeadModel (transformer.h.<layer>...) behind PEFT's "
         "base_model.model."),
        (f"{PREFIX}transformer.h.{layer}.{module}.lora_{other}.weight", "lora_A and lora_B are swapped",
         f"matrix={matrix!r} asks for lora_{matrix}; A is the r x in matrix applied first, B the out x r one"),
        (f"{PREFIX}transformer.h.{layer}.{module}.lora_{matrix}", "the key lacks '.weight' at the end",
         "PEFT's LoRA A and B are nn.Linear layers: their tensors are called lora_A.weight and lora_B.weight"),
        (f"{PREFIX}transformer.h.{layer}.{MINIFT_MODULE[target]}.lora_{matrix}.weight",
         "you used minift's module names (attn.q, ffn.w1, ...); the file names GPT-2's modules",
         "PEFT loads the adapter onto the transformers model, so the keys use its names: attn.c_attn for "
         "q/k/v, attn.c_proj for o, mlp.c_fc for w1, mlp.c_proj for w2"),
        (f"{PREFIX}blocks.{layer}.{MINIFT_MODULE[target]}.lora_{matrix}.weight",
         "you wrote minift's own parameter path (blocks.<layer>.attn.q); the file names GPT-2's modules",
         "the key is base_model.model. + the module's name in GPT2LMHeadModel: transformer.h.<layer>.attn.c_attn, ..."),
        (f"{PREFIX}transformer.h.{layer}.{LLAMA_MODULE[target]}.lora_{matrix}.weight",
         "you used LLaMA's module names (q_proj, gate_proj, ...); this is a GPT-2 file",
         "GPT-2: attn.c_attn (q, k, v fused), attn.c_proj, mlp.c_fc, mlp.c_proj"),
        (f"{PREFIX}model.layers.{layer}.{LLAMA_MODULE[target]}.lora_{matrix}.weight",
         "you used LLaMA's names (model.layers.<i>.self_attn.q_proj); this is a GPT-2 file",
         "GPT-2: transformer.h.<layer>.attn.c_attn (q, k, v fused), attn.c_proj, mlp.c_fc, mlp.c_proj"),
        (f"{PREFIX}transformer.layers.{layer}.{module}.lora_{matrix}.weight",
         "GPT-2 calls its list of blocks 'h', not 'layers'", "transformer.h.<layer>...: model.transformer.h[0] "
         "is the first block"),
        (f"{PREFIX}transformer.layer.{layer}.{module}.lora_{matrix}.weight",
         "GPT-2 calls its list of blocks 'h', not 'layer' (that is BERT's encoder.layer)",
         "transformer.h.<layer>...: model.transformer.h[0] is the first block"),
    ]
    variants += [
        (f"{PREFIX}transformer.h.{layer}.{module}.lora_{matrix}.default.weight",
         "the key holds PEFT's adapter name '.default' (lora_A.default.weight is the name inside a loaded "
         "PeftModel, not in the file)", "the file leaves the adapter name out: ...lora_A.weight and "
         "...lora_B.weight (PEFT adds '.default' back when it loads the file)"),
        (f"base_model.transformer.h.{layer}.{module}.lora_{matrix}.weight",
         "the key starts with 'base_model.' only: 'model.' is missing", "PEFT wraps the model twice "
         "(PeftModel.base_model is a LoraModel, whose .model is the transformers model): base_model.model."),
        (f"{PREFIX}transformer.h[{layer}].{module}.lora_{matrix}.weight",
         f"the layer is written as an index, h[{layer}]: module names are dotted",
         f"a module's name in a state dict is dotted all the way: transformer.h.{layer}..."),
        (f"{PREFIX}transformer.h.{layer}.{module.split('.')[1]}.lora_{matrix}.weight",
         f"the key lacks '{module.split('.')[0]}.' before {module.split('.')[1]}",
         "in a GPT-2 block c_attn and c_proj (o) sit in block.attn, c_fc and c_proj (w2) in block.mlp: "
         "transformer.h.<layer>.attn.c_attn, ..., transformer.h.<layer>.mlp.c_fc"),
    ]
    for shifted in (layer + 1, layer - 1):           # h.-1 for layer 0 too: layer - 1 is the mistake
        variants.append((f"{PREFIX}transformer.h.{shifted}.{module}.lora_{matrix}.weight",
                         f"the layer index is off by one (h.{shifted} for layer {layer})",
                         "blocks are numbered from 0 in both minift and GPT-2: layer i is transformer.h.i"))
    if target in ("w1", "w2"):
        other_ffn = "mlp.c_proj" if target == "w1" else "mlp.c_fc"
        variants.append((f"{PREFIX}transformer.h.{layer}.{other_ffn}.lora_{matrix}.weight",
                         f"w1 and w2 are swapped (you wrote {other_ffn} for {target})",
                         "mlp.c_fc is the FFN's first linear (minift's w1, d -> d_ff), mlp.c_proj its second "
                         "(w2, d_ff -> d)"))
    if target in ("q", "k", "v"):
        for name in (f"attn.c_{target}", f"attn.{target}_proj", f"attn.c_attn.{target}"):
            variants.append((f"{PREFIX}transformer.h.{layer}.{name}.lora_{matrix}.weight",
                             f"q, k and v are not mapped to the fused c_attn (you wrote {name} for {target})",
                             fused))
    if target in c_proj:
        variants.append((f"{PREFIX}transformer.h.{layer}.{c_proj[target]}.lora_{matrix}.weight",
                         "attn.c_proj and mlp.c_proj are confused",
                         "GPT-2 has two c_proj: attn.c_proj is the attention's output projection (minift's o), "
                         "mlp.c_proj the FFN's second linear (minift's w2)"))
    return variants


@checker
def check_peft_key(fn) -> Verdict:
    """fn(layer, target, matrix) -> the PEFT key, for every target, A and B, layers 0, 3 and 11."""
    name = name_of(fn)
    for layer, target, matrix in _key_cases():
        got = call(fn, layer, target, matrix, what=name)
        case = f"{name}({layer}, {target!r}, {matrix!r})"
        if got is None:
            return mistake(f"{case} returned None", "did you forget the return statement?")
        if not isinstance(got, str):
            return mistake(f"{case} returned {type(got).__name__} {got!r}, expected a string",
                           "return the key as a str, e.g. an f-string")
        expected = reference_peft_key(layer, target, matrix)
        if got == expected:
            continue
        if got.strip() == expected:
            return mistake(f"{case} returned {got!r}, with spaces around the key", "no spaces in a key")
        for wrong, message, hint in _key_variants(layer, target, matrix):
            if got == wrong or got.lower() == wrong.lower():
                return mistake(f"{message}: {case} gave {got!r}, expected {expected!r}", hint)
        if got.lower() == expected.lower():
            return mistake(f"{case} gave {got!r}: upper/lower case differs from {expected!r}",
                           "keys are case-sensitive: lora_A, lora_B, c_attn")
        return mistake(f"{case} gave {got!r}, expected {expected!r}",
                       "base_model.model. + the module's name in GPT2LMHeadModel + .lora_A.weight / .lora_B.weight")
    return passed(f"{name} gives PEFT's GPT-2 key for every target (q, k, v fused into c_attn), A and B, "
                  "layers 0, 3 and 11")


# ====================================================================== exercise 2: the fused q/v adapter
def reference_fuse_qv(A_q, B_q, A_v, B_v, alpha, r):
    """The reference solution: one exact adapter of GPT-2's c_attn from the q and v adapters."""
    d, r_q, r_v = B_q.shape[0], A_q.shape[0], A_v.shape[0]
    A = torch.cat([A_q, A_v], dim=0)
    B = torch.zeros(3 * d, r_q + r_v, dtype=B_q.dtype)
    B[:d, :r_q] = B_q
    B[2 * d:, r_q:] = B_v
    r_fused = r_q + r_v
    return A, B, r_fused, as_number(alpha) * r_fused / as_number(r)


def _fuse_cases():
    """(label, d, r, alpha as given to the student, r as given): alpha // r != alpha / r in four cases,
    alpha not a whole number in one, r as an int, a NumPy int, a float and a 0-d tensor (the exercise allows
    each)."""
    return [("d=6, r=2, alpha=16", 6, 2, 16, 2),
            ("d=8, r=3, alpha=4.0 (alpha/r = 1.33, alpha//r = 1)", 8, 3, 4.0, 3),
            ("d=10, r=4, alpha=numpy 6 (alpha/r = 1.5)", 10, 4, np.float64(6.0), np.int64(4)),
            ("d=5, r=1, alpha=tensor(3.)", 5, 1, torch.tensor(3.0), 1),
            ("d=7, r=2, alpha=5 (alpha/r = 2.5)", 7, 2, 5, 2),
            ("d=6, r=3.0 (a float), alpha=2.5", 6, 3, 2.5, 3.0),
            ("d=4, r=tensor(2), alpha=tensor(7)", 4, 2, torch.tensor(7), torch.tensor(2))]


def _adapter_tensors(d: int, r: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=generator)          # noqa: E731
    return randn(r, d), randn(d, r) * 0.5, randn(r, d), randn(d, r) * 0.5    # A_q, B_q, A_v, B_v


def _as_matrix(value, what: str, fn_name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    raise Rejected(mistake(f"{fn_name} returned {type(value).__name__} as {what}, expected a tensor",
                           f"return {what} as a torch tensor"))


def _is_zero(t: torch.Tensor) -> bool:
    return t.numel() == 0 or bool((t.double().abs() <= 1e-7).all())


def _fused_update(A, B, alpha, r, x):
    return (alpha / r) * (x @ A.double().T @ B.double().T)


def _name_fused_matrices(A, B, A_q, B_q, A_v, B_v, case, alpha, r):
    """Reject the fused A, B with the mistake named, or return None when they are the right ones."""
    d, rq = B_q.shape[0], A_q.shape[0]
    exp_A, exp_B = reference_fuse_qv(A_q, B_q, A_v, B_v, alpha, r)[:2]
    shapes = f"A_fused {tuple(A.shape)} and B_fused {tuple(B.shape)}; expected {tuple(exp_A.shape)} and " \
             f"{tuple(exp_B.shape)}"
    layout = "PEFT stores lora_A as (r x in) and lora_B as (out x r), like minift's LoRA: A_fused is " \
             f"(2r x d) = {tuple(exp_A.shape)}, B_fused (3d x 2r) = {tuple(exp_B.shape)}"
    if A.dim() != 2 or B.dim() != 2:
        which, M = ("A_fused", A) if A.dim() != 2 else ("B_fused", B)
        return mistake(f"{case}: {which} has {M.dim()} dimensions, shape {tuple(M.shape)} (torch.stack adds a new "
                       f"dimension); expected {tuple(exp_A.shape)} and {tuple(exp_B.shape)}",
                       "torch.cat joins along an existing dimension: A_fused = torch.cat([A_q, A_v], dim=0)")
    if A.shape != exp_A.shape or B.shape != exp_B.shape:
        if A.shape == exp_A.shape and B.shape == (3 * d, 2 * A_q.shape[1]) and A_q.shape[1] != rq:
            return mistake(f"{case}: B_fused has 2d columns instead of 2r ({shapes}): d was taken for r",
                           "A_q is (r x d): r = A_q.shape[0] (or B_q.shape[1]), d = A_q.shape[1] (or B_q.shape[0])")
        if A.shape == exp_B.shape and B.shape == exp_A.shape:
            return mistake(f"{case}: A and B are returned in the wrong order ({shapes})",
                           "return (A_fused, B_fused, r_fused, alpha_fused): A first")
        A_t, B_t = tuple(A.shape) == tuple(exp_A.shape[::-1]), tuple(B.shape) == tuple(exp_B.shape[::-1])
        if A_t or B_t:
            which = "A/B transposed" if A_t and B_t else "A_fused transposed" if A_t else "B_fused transposed"
            return mistake(f"{case}: {which} ({shapes})", layout + "; no .T anywhere")
        if B.shape == (3 * d, rq):
            return mistake(f"{case}: B_fused is a dense stack [B_q ; 0 ; B_v] with r columns ({shapes}), so "
                           "q and v would share one A", "B must be block-diagonal with 2r columns: B_q in columns "
                           "0..r (multiplying A_q), B_v in columns r..2r (multiplying A_v)")
        if B.shape[0] == 2 * d:
            return mistake(f"{case}: B_fused has 2d rows, no rows for k ({shapes})", "c_attn has 3d outputs, "
                           "ordered [q | k | v]: B_fused needs d zero rows for k between q's and v's")
        if A.shape == (rq, 2 * A_q.shape[1]):
            return mistake(f"{case}: A_q and A_v are put side by side (torch.cat along dim=1): {shapes}",
                           "stack them along the rank: A_fused = torch.cat([A_q, A_v], dim=0), (2r x d)")
        if A.shape[0] == rq:
            return mistake(f"{case}: A_fused has r rows: the two A's are not stacked ({shapes})",
                           "A_fused = torch.cat([A_q, A_v]): rank r_q + r_v = 2r")
        return mistake(f"{case}: wrong shapes: {shapes}", layout)

    for which, M in (("A_fused", A), ("B_fused", B)):
        if not M.is_floating_point():
            return mistake(f"{case}: {which} is a {M.dtype} tensor: the adapter's numbers were rounded to integers",
                           "create the zeros with the inputs' dtype: torch.zeros(..., dtype=B_q.dtype)")
        if M.dtype in (torch.float16, torch.bfloat16) and A_q.dtype not in (torch.float16, torch.bfloat16):
            return mistake(f"{case}: {which} is {M.dtype}, but the adapters are {A_q.dtype}: the fused adapter is "
                           "rounded, no longer exact", "keep the inputs' dtype (torch.zeros(..., dtype=B_q.dtype)); "
                           "do not convert with .half() or .bfloat16()")
    A_vq = torch.cat([A_v, A_q])
    if not close(A, exp_A):
        if close(A, A_vq):
            if close(B[:d, rq:], B_q) and close(B[2 * d:, :rq], B_v):
                return mistake(f"{case}: the adapter is exact but puts v's rank first (A_fused = [A_v ; A_q])",
                               "follow c_attn's order, q then v, as export_peft does (its split record and "
                               "import_peft expect it): A_fused = [A_q ; A_v], B_q in columns 0..r")
            return mistake(f"{case}: A_fused stacks A_v above A_q, but B_q sits in the first r columns: B's "
                           "columns no longer line up with A's rows (q's output would use A_v)",
                           "A_fused = torch.cat([A_q, A_v]): row j of A pairs with column j of B")
        if close(A, exp_A * alpha / r):
            return mistake(f"{case}: the scaling alpha/r was folded into A_fused", "keep A_q and A_v as they are; "
                           "the scaling is alpha_fused / r_fused, written in adapter_config.json")
        return mistake(f"{case}: A_fused is not A_q stacked above A_v", "A_fused = torch.cat([A_q, A_v], dim=0)")

    q_rows, k_rows, v_rows = B[:d], B[d:2 * d], B[2 * d:]
    if _is_zero(v_rows) and close(k_rows[:, rq:], B_v) and _is_zero(k_rows[:, :rq]):
        return mistake(f"{case}: v's block is placed in k's rows (rows d..2d)", "c_attn's output rows are "
                       "[q | k | v]: q in rows 0..d, k in d..2d, v in 2d..3d; B_v goes in rows 2d..3d")
    if close(q_rows[:, :rq], B_v) and close(v_rows[:, rq:], B_q):
        return mistake(f"{case}: B_q and B_v are swapped (v's B in q's rows)", "B_q goes to rows 0..d, "
                       "columns 0..r; B_v to rows 2d..3d, columns r..2r")
    if close(B, exp_B * alpha / r):
        return mistake(f"{case}: B_fused was multiplied by alpha/r (the scaling folded into B)",
                       "keep B_q and B_v as they are and let alpha_fused / r_fused carry the scaling: that is "
                       "the file export_peft writes, and the one a further training run expects")
    blocks_right = close(q_rows[:, :rq], B_q) and close(v_rows[:, rq:], B_v)
    if blocks_right and not (_is_zero(q_rows[:, rq:]) and _is_zero(v_rows[:, :rq])):
        return mistake(f"{case}: B_fused is not block-diagonal: q's rows have entries in v's columns (or v's "
                       "rows in q's), a dense stack", "q's update must be B_q A_q x only: zeros in B_fused[:d, r:] "
                       "and B_fused[2d:, :r] (torch.zeros, then fill the two blocks, or torch.block_diag)")
    if blocks_right and not _is_zero(k_rows):
        return mistake(f"{case}: k rows not zero (B_fused[d:2d] holds numbers)", "k has no adapter: its rows "
                       "of B_fused stay 0, so c_attn's k output is unchanged")
    q_in_v_columns, v_in_q_columns = close(q_rows[:, rq:], B_q), close(v_rows[:, :rq], B_v)
    if q_in_v_columns and v_in_q_columns:
        return mistake(f"{case}: B's columns are swapped: B_q sits in columns r..2r and B_v in columns 0..r, so q's "
                       "output uses A_v and v's uses A_q", "row j of A_fused pairs with column j of B_fused: with "
                       "A_fused = [A_q ; A_v], B_q goes in columns 0..r and B_v in columns r..2r")
    if q_in_v_columns or v_in_q_columns:
        which, columns, A_name = ("B_q", "r..2r", "A_v") if q_in_v_columns else ("B_v", "0..r", "A_q")
        return mistake(f"{case}: {which} sits in columns {columns}, so it multiplies {A_name}: both blocks use the "
                       "same r columns", "row j of A_fused pairs with column j of B_fused: B_q in columns 0..r (A_q's "
                       "rows of A_fused), B_v in columns r..2r (A_v's rows)")
    if close(q_rows[:, :rq], B_q) and _is_zero(v_rows) and _is_zero(k_rows):
        return mistake(f"{case}: B_v is missing: B_fused's v rows (2d..3d) are all zero", "put B_v in rows 2d..3d, "
                       "columns r..2r: B_fused[2 * d:, r:] = B_v")
    if close(v_rows[:, rq:], B_v) and _is_zero(q_rows) and _is_zero(k_rows):
        return mistake(f"{case}: B_q is missing: B_fused's q rows (0..d) are all zero", "put B_q in rows 0..d, "
                       "columns 0..r: B_fused[:d, :r] = B_q")
    if not close(B, exp_B):
        return mistake(f"{case}: B_fused is not the block-diagonal [[B_q, 0], [0, 0], [0, B_v]]",
                       "rows 0..d, columns 0..r: B_q; rows 2d..3d, columns r..2r: B_v; zeros elsewhere")
    return None


def _name_fused_scaling(r_got, alpha_got, r_in, alpha_in, case, d=None) -> Verdict | None:
    r_want, alpha_want = 2 * r_in, 2 * alpha_in
    if r_got is None:
        raise Rejected(mistake(f"{case}: r_fused is not a number", "return r_fused as a number (an int)"))
    if alpha_got is None:
        raise Rejected(mistake(f"{case}: alpha_fused is not a number", "return alpha_fused as a number"))
    if not same_number(r_got, r_want):
        if same_number(r_got, alpha_want) and same_number(alpha_got, r_want):
            return mistake(f"{case}: r_fused and alpha_fused are swapped (you returned r_fused = {r_got:g}, "
                           f"alpha_fused = {alpha_got:g})", "return (A_fused, B_fused, r_fused, alpha_fused): the "
                           "rank 2r third, alpha 2 alpha fourth")
        if d is not None and same_number(r_got, d):
            return mistake(f"{case}: r_fused = {r_got:g} is d, the model width, not the fused rank {r_want:g}",
                           "A_fused is (2r x d): r_fused = A_fused.shape[0] = 2r, not A_fused.shape[1]")
        if same_number(r_got, r_in):
            return mistake(f"{case}: r not doubled: r_fused = {r_got:g}, but A_fused has {r_want:g} rows",
                           "r in adapter_config.json is the fused adapter's rank, r_q + r_v = 2r")
        return mistake(f"{case}: r_fused = {r_got:g}, expected {r_want:g}", "the fused rank is r_q + r_v = 2r")
    if same_number(alpha_got, alpha_want):
        return None
    if same_number(alpha_got, alpha_in):
        return mistake(f"{case}: alpha not doubled: alpha_fused = {alpha_got:g} with r_fused = {r_want:g} halves "
                       f"the scaling alpha/r (from {alpha_in / r_in:g} to {alpha_got / r_want:g})",
                       "PEFT scales by lora_alpha / r: with r doubled, alpha must double too")
    if alpha_in != int(alpha_in) and same_number(alpha_got, 2 * int(alpha_in)):
        return mistake(f"{case}: alpha_fused = {alpha_got:g} drops alpha's fraction (int(alpha) = {int(alpha_in)}, "
                       f"but alpha = {alpha_in:g})", "alpha may be a float: alpha_fused = 2 * alpha, no int()")
    if same_number(alpha_got, (alpha_in // r_in) * r_want):
        return mistake(f"{case}: alpha_fused = {alpha_got:g} comes from integer division (alpha // r = "
                       f"{alpha_in // r_in:g}, but alpha / r = {alpha_in / r_in:g})",
                       "use true division, or simply alpha_fused = 2 * alpha")
    if same_number(alpha_got, alpha_in / r_in):
        return mistake(f"{case}: you returned the scaling alpha/r = {alpha_got:g} as alpha_fused",
                       "lora_alpha is alpha itself; PEFT divides it by r: alpha_fused / r_fused must equal alpha / r")
    return mistake(f"{case}: alpha_fused = {alpha_got:g} changes the scaling: alpha_fused / r_fused = "
                   f"{alpha_got / r_want:g}, but alpha / r = {alpha_in / r_in:g}",
                   "alpha_fused = alpha * r_fused / r = 2 alpha keeps alpha / r unchanged")


def _check_fused(fn, name, A_q, B_q, A_v, B_v, alpha, r, case):
    """Call fn on copies, reject in-place changes, name the mistakes; return (A, B, r_f, alpha_f)."""
    args = [A_q.clone(), B_q.clone(), A_v.clone(), B_v.clone(),
            alpha.clone() if isinstance(alpha, torch.Tensor) else alpha,
            r.clone() if isinstance(r, torch.Tensor) else r]
    before = snapshot(args)
    try:
        result = call(fn, *args, what=name)
    except _StudentRaised as raised:
        error = raised.error
        if isinstance(r, int) and isinstance(alpha, int):
            raise
        kinds = f"r={r!r} ({type(r).__name__}), alpha={alpha!r} ({type(alpha).__name__})"
        raise Rejected(mistake(f"{case}: your code raised {type(error).__name__}: {error}{_where(error)}",
                               f"here {kinds}: the exercise allows r and alpha as an int, a float, a NumPy "
                               "number or a 0-d tensor. Read the rank from the shapes (r = A_q.shape[0]) or use "
                               "int(r) for sizes and slices; compute alpha_fused = 2 * alpha")) from None
    names = ["A_q", "B_q", "A_v", "B_v", "alpha", "r"]
    for arg_name, b, a in zip(names, before, args):
        if changed(b, a, arg_name):
            hint = ("write alpha_fused = 2 * alpha and r_fused = 2 * r: `alpha *= 2` on a 0-d tensor doubles the "
                    "caller's alpha too" if arg_name in ("alpha", "r") else
                    "build new tensors (torch.cat, torch.zeros, then slices of the new one); never write into "
                    "A_q, B_q, A_v or B_v (x *= s and x.mul_ change the caller's)")
            raise Rejected(mistake(f"{case}: {name} changed its input {arg_name} in place", hint))
    if result is None:
        raise Rejected(mistake(f"{case}: {name} returned None", "did you forget the return statement?"))
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise Rejected(mistake(f"{case}: {name} returned {type(result).__name__}"
                               f"{'' if not isinstance(result, (tuple, list)) else f' of {len(result)} items'}, "
                               "expected 4 things", "return A_fused, B_fused, r_fused, alpha_fused"))
    A, B = _as_matrix(result[0], "A_fused", name), _as_matrix(result[1], "B_fused", name)
    alpha_in, r_in = as_number(alpha), as_number(r)
    named = _name_fused_matrices(A, B, A_q, B_q, A_v, B_v, case, alpha_in, r_in)
    if named is not None:
        raise Rejected(named)
    r_got, alpha_got = as_number(result[2]), as_number(result[3])
    named = _name_fused_scaling(r_got, alpha_got, r_in, alpha_in, case, d=B_q.shape[0])
    if named is not None:
        raise Rejected(named)
    # the identity that makes the fused adapter exact, on random inputs
    d = B_q.shape[0]
    x = torch.randn(5, A_q.shape[1], generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    want = torch.cat([_fused_update(A_q, B_q, alpha_in, r_in, x), torch.zeros(5, d, dtype=torch.float64),
                      _fused_update(A_v, B_v, alpha_in, r_in, x)], dim=1)
    if not close(_fused_update(A, B, alpha_got, r_got, x), want):
        raise Rejected(mistake(f"{case}: (alpha_f / r_f) B_f A_f x differs from [s B_q A_q x | 0 | s B_v A_v x]",
                               "A_fused = [A_q ; A_v], B_fused block-diagonal with k rows zero, alpha/r unchanged"))
    return A, B, r_got, alpha_got


def gpt2_shaped_model(seed: int, d: int = 12, n_layers: int = 3, n_heads: int = 3, r: int = 2, alpha: float = 7):
    """A minift model shaped and named like a GPT2LMHeadModel (its hf_origin is what from_hf_gpt2 records)
    with LoRA on q and v and a non-zero B, built without transformers and without touching the caller's
    random state."""
    from minift.config import ModelConfig
    from minift.interop import GPT2_MODULES, HFOrigin
    from minift.methods import lora
    from minift.model import Transformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(ModelConfig(vocab_size=17, d_model=d, n_layers=n_layers, n_heads=n_heads, max_len=8))
    modules = {f"blocks.{i}.{'attn' if t in ('q', 'k', 'v', 'o') else 'ffn'}.{t}":
               ("transformer." + hf_name.format(i=i), part, parts)
               for i in range(n_layers) for t, (hf_name, part, parts) in GPT2_MODULES.items()}
    model.hf_origin = HFOrigin("GPT2LMHeadModel", "CAUSAL_LM", modules, fan_in_fan_out=True)
    lora.apply(model, r=r, alpha=alpha, targets=("q", "v"), seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            layer.lora_B.copy_(0.5 * torch.randn(layer.lora_B.shape, generator=generator))
    return model


def exported_adapter(model) -> tuple[dict, dict]:
    """(adapter_config.json, tensors) that lora.export_peft writes for ``model``."""
    from safetensors.torch import load_file

    from minift.methods import lora

    with tempfile.TemporaryDirectory() as folder:
        lora.export_peft(model, folder)
        config = json.loads((Path(folder) / "adapter_config.json").read_text())
        tensors = load_file(str(Path(folder) / "adapter_model.safetensors"))
    return config, tensors


@checker
def check_fuse_qv(fn) -> Verdict:
    """fn(A_q, B_q, A_v, B_v, alpha, r) -> (A_fused, B_fused, r_fused, alpha_fused) on 7 cases, then
    compared with the adapter file lora.export_peft writes for a GPT-2-shaped model; the tensors returned
    must not change when fn is called again."""
    name = name_of(fn)
    returned = []                 # (case, A, B as returned, copies of them): a later call must not change them
    for seed, (label, d, r, alpha, r_given) in enumerate(_fuse_cases()):
        A_q, B_q, A_v, B_v = _adapter_tensors(d, r, seed)
        A, B, _, _ = _check_fused(fn, name, A_q, B_q, A_v, B_v, alpha, r_given, f"case {label}")
        returned.append((f"case {label}", A, B, A.clone(), B.clone()))
    # against minift's own export: same A, B, r and lora_alpha as the file
    r, alpha = 2, 7
    model = gpt2_shaped_model(seed=3, r=r, alpha=alpha)
    config, tensors = exported_adapter(model)
    for i in (0, 2):
        q, v = model.blocks[i].attn.q, model.blocks[i].attn.v
        case = f"layer {i} of a GPT-2-shaped model with LoRA r={r}, alpha={alpha} on q and v"
        A, B, r_got, alpha_got = _check_fused(fn, name, q.lora_A.detach(), q.lora_B.detach(), v.lora_A.detach(),
                                              v.lora_B.detach(), alpha, r, case)
        returned.append((case, A, B, A.clone(), B.clone()))
        key = f"{PREFIX}transformer.h.{i}.attn.c_attn.lora_"
        if not (close(A, tensors[key + "A.weight"]) and close(B, tensors[key + "B.weight"])
                and same_number(r_got, config["r"]) and same_number(alpha_got, config["lora_alpha"])):
            return mistake(f"{case}: your fused adapter differs from what lora.export_peft writes",
                           "compare with minift/methods/lora_peft.py's export_peft")
    for case, A, B, A_then, B_then in returned:
        for which, now, then in (("A_fused", A, A_then), ("B_fused", B, B_then)):
            if not (now.shape == then.shape and torch.equal(now, then)):
                return mistake(f"{case}: the {which} {name} returned changed when {name} was called again (it is "
                               "a view of a tensor your function reuses and overwrites)", "build fresh tensors on "
                               "every call (torch.cat, torch.zeros): one adapter per layer, none sharing memory")
    return passed(f"{name} builds GPT-2's exact fused c_attn adapter (A stacked, B block-diagonal with k rows "
                  "zero, r and alpha doubled) on 7 cases and matches lora.export_peft's file")


# ==================================================================== exercise 3: a BERT layer, copied
BERT_NAMES = {"attn.q": "attention.self.query", "attn.k": "attention.self.key", "attn.v": "attention.self.value",
              "attn.o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
              "ffn.w1": "intermediate.dense", "ffn.w2": "output.dense", "ln2": "output.LayerNorm"}


def _source_of(param_name: str) -> str:
    """"attn.q.weight" -> "attention.self.query.weight"."""
    module, kind = param_name.rsplit(".", 1)
    return f"{BERT_NAMES[module]}.{kind}"


def reference_bert_layer_to_block(hf_layer_state, block) -> None:
    """The reference solution: every BertLayer tensor copied into its minift parameter, in place."""
    parameters = dict(block.named_parameters())
    with torch.no_grad():
        for own, hf in BERT_NAMES.items():
            for kind in ("weight", "bias"):
                parameters[f"{own}.{kind}"].copy_(hf_layer_state[f"{hf}.{kind}"])


def _bert_cases():
    """(d, heads, d_ff, eps): the first is square (d_ff = d), so a transposed copy fits every shape."""
    return [(8, 2, 8, 1e-12), (12, 3, 20, 1e-12), (16, 4, 24, 1e-5)]


def _randomise(module, generator):
    """O(0.3) random numbers everywhere, LayerNorm gains near 1: every mistake changes the output visibly."""
    gains = {id(m.weight) for m in module.modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1.0 + 0.2 * noise if id(parameter) in gains else 0.3 * noise)


def bert_pair(seed: int, d: int, heads: int, d_ff: int, eps: float):
    """(transformers BertLayer, minift post-LN block) of the same shape, both with random O(0.3) weights
    (LayerNorm gains near 1) that differ, dropout 0.1, built without touching the global random state."""
    try:
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertLayer
    except ImportError:
        raise Rejected(mistake("this check compares your block with transformers' BertLayer, and Hugging Face "
                               "transformers is not installed", "pip install transformers (it comes with "
                               "minift's test extras: pip install -e '.[test]')")) from None

    from minift.config import ModelConfig
    from minift.model import Transformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = BertLayer(BertConfig(hidden_size=d, num_attention_heads=heads, intermediate_size=d_ff,
                                  hidden_act="gelu", layer_norm_eps=eps, hidden_dropout_prob=0.1,
                                  attention_probs_dropout_prob=0.1, attn_implementation="eager"))
        model = Transformer(ModelConfig(vocab_size=11, d_model=d, n_layers=1, n_heads=heads, d_ff=d_ff, max_len=8,
                                        causal=False, norm_position="post", n_token_types=2, activation="gelu",
                                        layer_norm_eps=eps, dropout=0.1, attention="explicit"))
    generator = torch.Generator().manual_seed(seed + 100)
    _randomise(hf, generator)
    _randomise(model, generator)
    return hf, model.blocks[0]


def _bert_output(hf, x):
    out = hf(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def _storages(tensors) -> dict:
    return {t.untyped_storage().data_ptr(): key for key, t in tensors.items() if isinstance(t, torch.Tensor)}


def _name_copy_mistake(after: dict, expected: dict, initial: dict, state: dict, case: str) -> Verdict | None:
    """The first wrong parameter, with what it holds instead: not copied, transposed, another tensor."""
    wrong = [n for n in expected if not (after[n].shape == expected[n].shape and torch.equal(after[n], expected[n]))]
    if not wrong:
        return None
    if all(torch.equal(after[n], initial[n]) for n in expected):
        return mistake(f"{case}: nothing was copied: every parameter of the block still holds its own numbers",
                       "copy into the block you were given (not a copy of it, not a new one): with "
                       "torch.no_grad(): block.attn.q.weight.copy_(hf_layer_state['attention.self.query.weight']), ...")
    ln_swap = {"ln1.weight": "output.LayerNorm.weight", "ln2.weight": "attention.output.LayerNorm.weight"}
    if all(n in wrong and torch.equal(after[n], state[src]) for n, src in ln_swap.items()):
        return mistake(f"{case}: BERT's LayerNorms are swapped: ln1 holds output.LayerNorm, ln2 holds "
                       "attention.output.LayerNorm", "in a post-LN block ln1 normalises x + attention(x): that "
                       "is attention.output.LayerNorm; ln2 normalises x + FFN(x): output.LayerNorm")
    weights = [n for n in wrong if n.endswith("weight") and after[n].dim() == 2]
    if weights and all(torch.equal(after[n], state[_source_of(n)].T) for n in weights):
        return mistake(f"{case}: weight transposed: block.{weights[0]} holds {_source_of(weights[0])}.T",
                       "BERT's linears are nn.Linear, stored (out, in) like minift's: copy them as they are "
                       "(only GPT-2's Conv1D, stored (in, out), needs .T)")
    biases = [n for n in wrong if n.endswith("bias") and not n.startswith("ln")]
    if biases and set(biases) == {n for n in wrong if not n.startswith("ln")} and \
            all(torch.equal(after[n], initial[n]) for n in biases):
        others = f" and {len(biases) - 1} other biases" if len(biases) > 1 else ""
        return mistake(f"{case}: bias forgotten: block.{biases[0]}{others} still hold"
                       f"{'' if others else 's'} the block's own numbers",
                       "every BERT linear has a bias: copy '...bias' as well as '...weight'")
    for n in wrong:
        held = after[n]
        if n.startswith("ln") and torch.equal(held, initial[n]):
            other = n.rsplit(".", 1)[0] + (".weight" if n.endswith("bias") else ".bias")
            if other not in wrong:
                return mistake(f"{case}: LayerNorm {n.rsplit('.', 1)[1]} forgotten: block.{n} still holds the block's "
                               f"own numbers (block.{other} was copied)", f"copy {_source_of(n)} into block.{n} too: "
                               "a LayerNorm has a weight (gain) and a bias")
            return mistake(f"{case}: LayerNorm not copied: block.{n} still holds the block's own numbers",
                           f"copy {_source_of(n)} into block.{n} (weight and bias of both LayerNorms)")
        if torch.equal(held, initial[n]):
            return mistake(f"{case}: block.{n} was not copied (it still holds the block's own numbers)",
                           f"copy {_source_of(n)} into it")
        if held.dim() == 2 and held.shape[::-1] == state[_source_of(n)].shape[::-1] and \
                torch.equal(held, state[_source_of(n)].T):
            return mistake(f"{case}: weight transposed: block.{n} holds {_source_of(n)}.T",
                           "BERT's nn.Linear weights are (out, in) like minift's: no .T")
        if held.dim() == 2 and n.endswith("weight"):
            broadcast = [key for key, t in state.items() if t.dim() == 1 and t.shape[0] == held.shape[1]
                         and torch.equal(held, t.expand_as(held))]
            if broadcast:
                return mistake(f"{case}: block.{n} holds {broadcast[0]} repeated in every row: a bias was copied into "
                               "a weight (copy_ broadcasts a vector over the rows)", f"block.{n} <- "
                               f"{_source_of(n)}; the bias goes into block.{n.rsplit('.', 1)[0]}.bias")
        source = state[_source_of(n)]
        if held.shape == source.shape and not torch.equal(held, source) and \
                torch.allclose(held, source, rtol=1e-2, atol=1e-3):
            return mistake(f"{case}: block.{n} holds {_source_of(n)} rounded (lower precision on the way: .half(), "
                           f".bfloat16()?), max difference {(held - source).abs().max():.2g}", "copy the tensor as "
                           "it is: parameter.copy_(tensor) keeps every bit of a float32")
        others = [key for key, t in state.items() if key != _source_of(n) and t.shape == held.shape
                  and torch.equal(held, t)]
        if others:
            source = others[0]
            if n.split(".")[0] == "attn" and n.split(".")[1] in ("q", "k", "v") and \
                    source.startswith("attention.self."):
                return mistake(f"{case}: query/key/value mixed up: block.{n} holds {source}, it should hold "
                               f"{_source_of(n)}", "attn.q <- attention.self.query, attn.k <- key, attn.v <- value")
            denses = {source.rsplit(".", 1)[0], BERT_NAMES[n.rsplit(".", 1)[0]]}
            if denses == {"attention.output.dense", "output.dense"}:
                return mistake(f"{case}: attention.output.dense and output.dense are swapped: block.{n} holds "
                               f"{source}", "attention.output.dense is the attention's output projection "
                               "(attn.o); output.dense is the FFN's second linear (ffn.w2)")
            if denses == {"intermediate.dense", "output.dense"}:
                return mistake(f"{case}: intermediate.dense and output.dense are swapped: block.{n} holds {source}",
                               "intermediate.dense is the FFN's first linear (ffn.w1, d -> d_ff), output.dense its "
                               "second (ffn.w2, d_ff -> d)")
            if "LayerNorm" in source and n.startswith("ln"):
                return mistake(f"{case}: BERT's LayerNorm swapped: block.{n} holds {source}, it should hold "
                               f"{_source_of(n)}", "ln1 <- attention.output.LayerNorm, ln2 <- output.LayerNorm")
            return mistake(f"{case}: block.{n} holds {source}, it should hold {_source_of(n)}",
                           "attn.q/k/v <- attention.self.query/key/value, attn.o <- attention.output.dense, "
                           "ffn.w1 <- intermediate.dense, ffn.w2 <- output.dense")
        return mistake(f"{case}: block.{n} does not hold {_source_of(n)}", f"copy {_source_of(n)} into it unchanged")
    return None


def _call_copy(fn, name, state, block):
    try:
        call(fn, state, block, what=name)
    except _StudentRaised as raised:
        error = raised.error
        if isinstance(error, KeyError):
            raise Rejected(mistake(f"your code raised KeyError: {error}{_where(error)}: no such key",
                                   "hf_layer_state is ONE layer's state_dict, without a layer prefix: its keys are "
                                   "<module>.weight and <module>.bias for " + ", ".join(BERT_NAMES.values()) +
                                   "; the block's own parameters are named " + ", ".join(BERT_NAMES) +
                                   " (+ .weight / .bias)")) from None
        if isinstance(error, RuntimeError) and ("must match" in str(error) or "broadcast" in str(error)):
            raise Rejected(mistake(f"your code raised RuntimeError: {error}{_where(error)}: a tensor was copied into a "
                                   "parameter of another shape", "pair the tensors by name, not by position "
                                   "(block.parameters() starts with ln1, hf_layer_state with attention.self.query): "
                                   "attention.self.query.weight goes into block.attn.q.weight, ...; and copy BERT's "
                                   "nn.Linear weights as they are, without .T")) from None
        if "leaf Variable that requires grad" in str(raised.error):
            raise Rejected(mistake("your code copied into a Parameter in place outside torch.no_grad() (torch "
                                   "raised: a leaf Variable that requires grad is used in an in-place operation)",
                                   "wrap the copies in `with torch.no_grad():`, then parameter.copy_(tensor)")
                           ) from None
        raise


@checker
def check_bert_layer_to_block(fn) -> Verdict:
    """fn(hf_layer_state, block): the block then computes what transformers' BertLayer computes."""
    name = name_of(fn)
    for seed, (d, heads, d_ff, eps) in enumerate(_bert_cases()):
        case = f"case d={d}, {heads} heads, d_ff={d_ff}"
        hf, block = bert_pair(seed, d, heads, d_ff, eps)
        state = {key: value.detach().clone() for key, value in hf.state_dict().items()}
        state_before = snapshot(state)
        initial = {n: p.detach().clone() for n, p in block.named_parameters()}
        identities = [(n, id(p)) for n, p in block.named_parameters()]
        grads = {n: p.requires_grad for n, p in block.named_parameters()}
        modes = [m.training for m in block.modules()]
        expected_block = copy.deepcopy(block)
        reference_bert_layer_to_block(state, expected_block)
        expected = {n: p.detach() for n, p in expected_block.named_parameters()}

        _call_copy(fn, name, state, block)

        differs = changed(state_before, state, "hf_layer_state")
        if differs:
            return mistake(f"{case}: {name} changed its input {differs[0]} in place (or added / removed keys)",
                           "read the tensors and copy them into the block's parameters; never transpose, pop or "
                           "write into hf_layer_state: the caller (the transformers layer) still needs it")
        now = dict(block.named_parameters())
        if [n for n, _ in identities] != list(now):
            return mistake(f"{case}: the block's parameters changed names (a module or Parameter was added, removed "
                           "or replaced)", "copy into the existing parameters: parameter.copy_(tensor) under "
                           "torch.no_grad()")
        replaced = [n for n, i in identities if id(now[n]) != i]
        if replaced:
            return mistake(f"{case}: Parameter replaced: block.{replaced[0]} is a new object (of {len(replaced)} "
                           "replaced) instead of the old one updated in place", "an optimizer, a LoRA wrapper or "
                           "tied weights still hold the old Parameter; copy into it: with torch.no_grad(): "
                           "block.attn.q.weight.copy_(tensor)")
        shared = _storages(state)
        aliased = [n for n, p in now.items() if p.untyped_storage().data_ptr() in shared]
        if aliased:
            return mistake(f"{case}: block.{aliased[0]} shares memory with "
                           f"hf_layer_state[{shared[now[aliased[0]].untyped_storage().data_ptr()]!r}] (p.data = "
                           "tensor): training the block would change the transformers layer too",
                           "copy the numbers: parameter.copy_(tensor) under torch.no_grad()")
        retyped = [n for n, p in now.items() if p.dtype != initial[n].dtype or p.device != initial[n].device]
        if retyped:
            n = retyped[0]
            return mistake(f"{case}: block.{n} is now {now[n].dtype} on {now[n].device}, it was {initial[n].dtype} on "
                           f"{initial[n].device} (p.data = tensor.to(...) changes a parameter's type)",
                           "copy_ keeps the parameter's dtype and device: with torch.no_grad(): p.copy_(tensor)")
        frozen = [n for n, p in now.items() if p.requires_grad != grads[n]]
        if frozen:
            return mistake(f"{case}: requires_grad changed on block.{frozen[0]}", "copying weights must leave the "
                           "parameters trainable: use torch.no_grad() around copy_ instead of requires_grad = False")
        if [m.training for m in block.modules()] != modes:
            return mistake(f"{case}: the block's train/eval mode changed (block.eval() or .train() was called)",
                           "copying weights is all this function does; the caller chooses the mode")
        named = _name_copy_mistake({n: p.detach() for n, p in now.items()}, expected, initial, state, case)
        if named is not None:
            return named
        # what the block computes, in eval mode, against transformers' BertLayer
        x = torch.randn(2, 5, d, generator=torch.Generator().manual_seed(seed + 7))
        block.eval()
        hf.eval()
        with torch.no_grad():
            ours, theirs = block(x), _bert_output(hf, x)
        if not close(ours, theirs):
            return mistake(f"{case}: the block's output differs from transformers' BertLayer (max difference "
                           f"{(ours - theirs).abs().max():.3g})", "every BERT tensor must land in its minift parameter")
    return passed(f"{name} copies a BertLayer into a minift post-LN block on 3 shapes: same outputs as "
                  "transformers (eval mode), same Parameter objects updated in place, input left unchanged")


__all__ = ["check_peft_key", "check_fuse_qv", "check_bert_layer_to_block", "reference_peft_key",
           "reference_fuse_qv", "reference_bert_layer_to_block"]
