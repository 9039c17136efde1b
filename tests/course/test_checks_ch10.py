"""Chapter 10's checkers: the references pass (and agree with minift's own export and importers), blanks
are "not implemented", correct alternatives pass, and wrong implementations a student would really write
each fail with their mistake named."""

import random
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from minift.course.checks import ch10_real_models as checks
from minift.methods import lora
from verdict_asserts import assert_mistake, quiet

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ======================================================================= exercise 1: PEFT key names

def key_with_dict(layer, target, matrix):
    """Correct: a dict and an f-string."""
    module = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj",
              "w1": "mlp.c_fc", "w2": "mlp.c_proj"}[target]
    return f"base_model.model.transformer.h.{layer}.{module}.lora_{matrix}.weight"


def key_with_branches(layer, target, matrix):
    """Correct: if/elif and a join."""
    if target in ("q", "k", "v"):
        parent, child = "attn", "c_attn"
    elif target == "o":
        parent, child = "attn", "c_proj"
    elif target == "w1":
        parent, child = "mlp", "c_fc"
    else:
        parent, child = "mlp", "c_proj"
    return ".".join(["base_model", "model", "transformer", "h", str(layer), parent, child, "lora_" + matrix, "weight"])


def key_with_match_and_get(layer, target, matrix):
    """Correct: match/case, str concatenation, matrix.upper() (a no-op on "A" / "B")."""
    match target:
        case "q" | "k" | "v":
            module = "attn.c_attn"
        case "o":
            module = "attn.c_proj"
        case _:
            module = {"w1": "mlp.c_fc", "w2": "mlp.c_proj"}.get(target)
    return "base_model.model.transformer.h." + str(layer) + "." + module + ".lora_" + matrix.upper() + ".weight"


@pytest.mark.parametrize("fn", [checks.reference_peft_key, key_with_dict, key_with_branches, key_with_match_and_get])
def test_correct_peft_key_passes(fn):
    verdict = quiet(checks.check_peft_key, fn)
    assert verdict.passed, str(verdict)


def test_reference_keys_are_what_export_peft_writes(tmp_path):
    """The keys of a real from_hf_gpt2 model's export, every target: the checker's answers are PEFT's."""
    from minift.interop import from_hf_gpt2

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=31, n_embd=8, n_layer=2, n_head=2,
                                                              n_positions=8, bos_token_id=0, eos_token_id=0))
    model = lora.apply(from_hf_gpt2(hf), r=2, alpha=4, targets=("q", "k", "v", "o", "w1", "w2"), seed=0)
    lora.export_peft(model, tmp_path)
    written = set(load_file(tmp_path / "adapter_model.safetensors"))
    expected = {checks.reference_peft_key(i, t, m) for i in range(2) for t in checks.GPT2_MODULE for m in "AB"}
    assert written == expected


def test_blank_peft_key_is_not_implemented():
    def peft_key(layer, target, matrix):
        raise NotImplementedError()
    verdict = quiet(checks.check_peft_key, peft_key)
    assert verdict.status == "not implemented" and "peft_key" in verdict.message


def key_without_peft_prefix(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace("base_model.model.", "")


def key_without_transformer(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace("transformer.", "")


def key_with_minift_names(layer, target, matrix):
    module = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o", "w1": "ffn.w1", "w2": "ffn.w2"}[target]
    return f"base_model.model.transformer.h.{layer}.{module}.lora_{matrix}.weight"


def key_with_minift_path(layer, target, matrix):
    where = "attn" if target in "qkvo" else "ffn"
    return f"base_model.model.blocks.{layer}.{where}.{target}.lora_{matrix}.weight"


def key_a_b_swapped(layer, target, matrix):
    return key_with_dict(layer, target, "B" if matrix == "A" else "A")


def key_without_weight(layer, target, matrix):
    return key_with_dict(layer, target, matrix)[: -len(".weight")]


def key_c_proj_confused(layer, target, matrix):
    module = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "mlp.c_proj",
              "w1": "mlp.c_fc", "w2": "attn.c_proj"}[target]
    return f"base_model.model.transformer.h.{layer}.{module}.lora_{matrix}.weight"


def key_separate_q_k_v(layer, target, matrix):
    module = {"q": "attn.c_q", "k": "attn.c_k", "v": "attn.c_v", "o": "attn.c_proj",
              "w1": "mlp.c_fc", "w2": "mlp.c_proj"}[target]
    return f"base_model.model.transformer.h.{layer}.{module}.lora_{matrix}.weight"


def key_llama_names(layer, target, matrix):
    module = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
              "w1": "mlp.gate_proj", "w2": "mlp.down_proj"}[target]
    return f"base_model.model.model.layers.{layer}.{module}.lora_{matrix}.weight"


def key_counts_from_one(layer, target, matrix):
    return key_with_dict(layer + 1, target, matrix)


def key_layers_not_h(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace(".h.", ".layers.")


def key_lowercase(layer, target, matrix):
    return key_with_dict(layer, target, matrix.lower())


def key_as_tuple(layer, target, matrix):
    return ("base_model.model.transformer.h", layer, target, matrix)


def key_with_adapter_name(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace(".weight", ".default.weight")   # as in peft_model.state_dict()


def key_minus_one(layer, target, matrix):
    return key_with_dict(layer - 1, target, matrix)                                   # h.-1 for layer 0


def key_base_model_once(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace("base_model.model.", "base_model.")


def key_w1_w2_swapped(layer, target, matrix):
    return key_with_dict(layer, {"w1": "w2", "w2": "w1"}.get(target, target), matrix)


def key_indexed_layer(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace(f".h.{layer}.", f".h[{layer}].")


def key_without_parent(layer, target, matrix):
    return key_with_dict(layer, target, matrix).replace(".attn.", ".").replace(".mlp.", ".")


@pytest.mark.parametrize("fn, words", [
    (key_with_adapter_name, ["adapter name '.default'"]),
    (key_minus_one, ["off by one", "h.-1"]),
    (key_base_model_once, ["'model.' is missing"]),
    (key_w1_w2_swapped, ["w1 and w2 are swapped"]),
    (key_indexed_layer, ["h[0]"]),
    (key_without_parent, ["lacks 'attn.' before c_attn"]),
    (key_without_peft_prefix, ["base_model.model."]),
    (key_without_transformer, ["lacks 'transformer.'"]),
    (key_with_minift_names, ["minift's module names"]),
    (key_with_minift_path, ["minift's own parameter path"]),
    (key_a_b_swapped, ["lora_a and lora_b are swapped"]),
    (key_without_weight, ["'.weight'"]),
    (key_c_proj_confused, ["attn.c_proj and mlp.c_proj are confused"]),
    (key_separate_q_k_v, ["not mapped to the fused c_attn"]),
    (key_llama_names, ["llama's names"]),
    (key_counts_from_one, ["off by one"]),
    (key_layers_not_h, ["not 'layers'"]),
    (key_lowercase, ["upper/lower case"]),
    (key_as_tuple, ["expected a string"]),
])
def test_wrong_peft_key_is_named(fn, words):
    assert_mistake(quiet(checks.check_peft_key, fn), *words)


# ================================================================ exercise 2: the fused q/v adapter

def fuse_with_block_diag(A_q, B_q, A_v, B_v, alpha, r):
    """Correct: torch.block_diag, then d zero rows for k in the middle; numbers as plain Python."""
    d = B_q.shape[0]
    diagonal = torch.block_diag(B_q, B_v)                          # (2d, 2r)
    B = torch.cat([diagonal[:d], torch.zeros(d, diagonal.shape[1]), diagonal[d:]])
    return torch.cat([A_q, A_v]), B, 2 * int(r), 2 * float(alpha)


def fuse_with_loop(A_q, B_q, A_v, B_v, alpha, r):
    """Correct: a loop over the three parts of c_attn, NumPy arrays and a 0-d tensor returned."""
    d, r = B_q.shape[0], int(r)
    A = np.concatenate([A_q.numpy(), A_v.numpy()])
    B = np.zeros((3 * d, 2 * r), dtype=np.float32)
    for part, (block, column) in {0: (B_q, 0), 2: (B_v, r)}.items():
        B[part * d:(part + 1) * d, column:column + r] = block.numpy()
    return A, B, np.int64(2 * r), torch.tensor(alpha) * (2 * r) / r


def fuse_with_pad(A_q, B_q, A_v, B_v, alpha, r):
    """Correct: F.pad each B into its rows and columns, then add."""
    d, r = B_q.shape[0], int(r)
    pad = torch.nn.functional.pad
    B = pad(B_q, (0, r, 0, 2 * d)) + pad(B_v, (r, 0, 2 * d, 0))
    return torch.cat([A_q, A_v], dim=0), B, 2 * r, alpha * 2


def fuse_with_kron(A_q, B_q, A_v, B_v, alpha, r):
    """Correct: Kronecker products place each B in its rows and columns; float64 out, r from the shapes,
    alpha * r_fused / r (true division)."""
    rank = B_q.shape[1]
    q_place = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    v_place = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    B = torch.kron(q_place, B_q.double()) + torch.kron(v_place, B_v.double())
    return torch.vstack([A_q, A_v]).double(), B, torch.tensor(2 * rank), alpha * (2 * rank) / r


def fuse_with_new_zeros(A_q, B_q, A_v, B_v, alpha, r):
    """Correct: int(r), new_zeros, a list returned, NumPy numbers for r and alpha."""
    d, r = B_q.shape[0], int(r)
    B = B_q.new_zeros(3 * d, 2 * r)
    B[:d, :r] = B_q
    B[2 * d:, r:] = B_v
    return [torch.cat((A_q, A_v)), B, np.int64(2 * r), np.float64(alpha) * 2]


@pytest.mark.parametrize("fn", [checks.reference_fuse_qv, fuse_with_block_diag, fuse_with_loop, fuse_with_pad,
                                fuse_with_kron, fuse_with_new_zeros])
def test_correct_fuse_qv_passes(fn):
    verdict = quiet(checks.check_fuse_qv, fn)
    assert verdict.passed, str(verdict)


def test_the_checkers_gpt2_shaped_model_is_named_like_from_hf_gpt2():
    """The checker builds its GPT-2-shaped model without transformers: its origin must be the importer's."""
    from minift.interop import from_hf_gpt2

    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=17, n_embd=12, n_layer=3, n_head=3,
                                                              n_positions=8, bos_token_id=0, eos_token_id=0))
    real, ours = from_hf_gpt2(hf).hf_origin, checks.gpt2_shaped_model(seed=0).hf_origin
    assert (ours.architecture, ours.task_type, ours.modules, ours.fan_in_fan_out) == \
        (real.architecture, real.task_type, real.modules, real.fan_in_fan_out)


def test_reference_fuse_qv_is_what_export_peft_writes_with_odd_alpha():
    model = checks.gpt2_shaped_model(seed=5, r=3, alpha=5)
    config, tensors = checks.exported_adapter(model)
    q, v = model.blocks[1].attn.q, model.blocks[1].attn.v
    A, B, r, alpha = checks.reference_fuse_qv(q.lora_A.detach(), q.lora_B.detach(), v.lora_A.detach(),
                                              v.lora_B.detach(), 5, 3)
    key = "base_model.model.transformer.h.1.attn.c_attn.lora_"
    assert torch.equal(A, tensors[key + "A.weight"]) and torch.equal(B, tensors[key + "B.weight"])
    assert (r, config["r"]) == (6, 6) and abs(alpha - 10) < 1e-9 and abs(config["lora_alpha"] - 10) < 1e-9


def test_blank_fuse_qv_is_not_implemented():
    def fuse_qv(A_q, B_q, A_v, B_v, alpha, r):
        raise NotImplementedError()
    assert quiet(checks.check_fuse_qv, fuse_qv).status == "not implemented"


def _blocks(B_q, B_v, k_rows=None, dense=False):
    d, r = B_q.shape
    B = torch.zeros(3 * d, 2 * r)
    B[:d, :r], B[2 * d:, r:] = B_q, B_v
    if dense:
        B[:d, r:], B[2 * d:, :r] = B_q, B_v
    if k_rows is not None:
        B[d:2 * d] = k_rows
    return B


def fuse_transposed(A_q, B_q, A_v, B_v, alpha, r):
    A, B, r_f, alpha_f = checks.reference_fuse_qv(A_q, B_q, A_v, B_v, alpha, r)
    return A.T, B.T, r_f, alpha_f                     # Conv1D's (in, out) habit


def fuse_b_first(A_q, B_q, A_v, B_v, alpha, r):
    A, B, r_f, alpha_f = checks.reference_fuse_qv(A_q, B_q, A_v, B_v, alpha, r)
    return B, A, r_f, alpha_f


def fuse_alpha_kept(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * r, alpha


def fuse_r_kept(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), r, 2 * alpha


def fuse_integer_division(A_q, B_q, A_v, B_v, alpha, r):
    scaling = int(alpha) // int(r)
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * r, scaling * 2 * r


def fuse_scaling_returned(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * r, alpha / r


def fuse_v_in_k_rows(A_q, B_q, A_v, B_v, alpha, r):
    d, r = B_q.shape
    B = torch.zeros(3 * d, 2 * r)
    B[:d, :r] = B_q
    B[d:2 * d, r:] = B_v                               # [q | v | k]
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_k_copies_q(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v, k_rows=torch.cat([B_q, torch.zeros(d, r_)], 1)), 2 * r, 2 * alpha


def fuse_dense(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v, dense=True), 2 * r, 2 * alpha


def fuse_one_set_of_columns(A_q, B_q, A_v, B_v, alpha, r):
    d = B_q.shape[0]
    return torch.cat([A_q, A_v]), torch.cat([B_q, torch.zeros(d, B_q.shape[1]), B_v]), 2 * r, 2 * alpha


def fuse_no_k_rows(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), torch.block_diag(B_q, B_v), 2 * r, 2 * alpha


def fuse_b_swapped(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, :r_], B[2 * d:, r_:] = B_v, B_q
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_scaling_in_b(A_q, B_q, A_v, B_v, alpha, r):
    s = float(alpha) / float(r)
    return torch.cat([A_q, A_v]), _blocks(B_q * s, B_v * s), 2 * r, 2 * r        # alpha_f / r_f = 1


def fuse_a_v_first(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_v, A_q]), _blocks(B_q, B_v), 2 * r, 2 * alpha


def fuse_v_first_consistently(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, r_:], B[2 * d:, :r_] = B_q, B_v
    return torch.cat([A_v, A_q]), B, 2 * r, 2 * alpha


def fuse_side_by_side(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v], dim=1), _blocks(B_q, B_v), 2 * r, 2 * alpha


def fuse_in_place(A_q, B_q, A_v, B_v, alpha, r):
    B_q *= 1.0                                        # harmless looking...
    A_q.mul_(float(alpha) / float(r))                 # ...but this scales the caller's A_q
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * r, 2 * alpha


def fuse_two_things(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v)


def fuse_columns_swapped(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, r_:], B[2 * d:, :r_] = B_q, B_v               # right rows, each other's columns
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_same_columns(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, :r_], B[2 * d:, :r_] = B_q, B_v               # both use A_q's rows of A_fused
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_forgets_v(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, :r_] = B_q
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_stacked(A_q, B_q, A_v, B_v, alpha, r):
    return torch.stack([A_q, A_v]), _blocks(B_q, B_v), 2 * r, 2 * alpha


def fuse_r_and_alpha_swapped(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * alpha, 2 * r


def fuse_int_alpha(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), 2 * int(r), 2 * int(alpha)      # right for whole alphas only


def fuse_r_is_d(A_q, B_q, A_v, B_v, alpha, r):
    A = torch.cat([A_q, A_v])
    return A, _blocks(B_q, B_v), A.shape[1], 2 * alpha


def fuse_d_for_r(A_q, B_q, A_v, B_v, alpha, r):
    r_, d = A_q.shape[1], B_q.shape[0]                  # (r x d) read the wrong way round
    B = torch.zeros(3 * d, 2 * r_)
    B[:d, :B_q.shape[1]], B[2 * d:, r_:r_ + B_v.shape[1]] = B_q, B_v
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_b_only_transposed(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v).T, 2 * r, 2 * alpha


def fuse_half_precision(A_q, B_q, A_v, B_v, alpha, r):
    return torch.cat([A_q, A_v]).half(), _blocks(B_q, B_v).half(), 2 * r, 2 * alpha


def fuse_integer_zeros(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = torch.zeros(3 * d, 2 * r_, dtype=torch.long)   # B_q's numbers truncated on assignment
    B[:d, :r_], B[2 * d:, r_:] = B_q, B_v
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_float_r_breaks(A_q, B_q, A_v, B_v, alpha, r):
    d = B_q.shape[0]
    B = torch.zeros(3 * d, 2 * r)                        # fails when r is 3.0
    B[:d, :r], B[2 * d:, r:] = B_q, B_v
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


def fuse_doubles_alpha_in_place(A_q, B_q, A_v, B_v, alpha, r):
    alpha *= 2                                          # a 0-d tensor alpha: the caller's doubles too
    r *= 2
    return torch.cat([A_q, A_v]), _blocks(B_q, B_v), r, alpha


_BUFFER = torch.zeros(64, 64)


def fuse_into_a_reused_buffer(A_q, B_q, A_v, B_v, alpha, r):
    d, r_ = B_q.shape
    B = _BUFFER[:3 * d, :2 * r_]                        # a view of one module-level buffer, refilled every call
    B.zero_()
    B[:d, :r_], B[2 * d:, r_:] = B_q, B_v
    return torch.cat([A_q, A_v]), B, 2 * r, 2 * alpha


@pytest.mark.parametrize("fn, words", [
    (fuse_columns_swapped, ["columns are swapped"]),
    (fuse_same_columns, ["b_v sits in columns 0..r", "same r columns"]),
    (fuse_forgets_v, ["b_v is missing"]),
    (fuse_stacked, ["3 dimensions", "torch.stack"]),
    (fuse_r_and_alpha_swapped, ["r_fused and alpha_fused are swapped"]),
    (fuse_int_alpha, ["alpha=2.5", "drops alpha's fraction"]),
    (fuse_r_is_d, ["is d, the model width"]),
    (fuse_d_for_r, ["2d columns", "d was taken for r"]),
    (fuse_b_only_transposed, ["b_fused transposed"]),
    (fuse_half_precision, ["float16", "no longer exact"]),
    (fuse_integer_zeros, ["torch.int64", "rounded to integers"]),
    (fuse_float_r_breaks, ["r=3.0 (a float)", "typeerror", "int(r)"]),
    (fuse_doubles_alpha_in_place, ["alpha=tensor(3.)", "changed its input alpha in place", "alpha *= 2"]),
    (fuse_into_a_reused_buffer, ["changed when", "called again"]),
    (fuse_transposed, ["a/b transposed"]),
    (fuse_b_first, ["wrong order"]),
    (fuse_alpha_kept, ["alpha not doubled", "halves the scaling"]),
    (fuse_r_kept, ["r not doubled"]),
    (fuse_integer_division, ["integer division"]),
    (fuse_scaling_returned, ["scaling alpha/r"]),
    (fuse_v_in_k_rows, ["v's block is placed in k's rows"]),
    (fuse_k_copies_q, ["k rows not zero"]),
    (fuse_dense, ["not block-diagonal", "dense"]),
    (fuse_one_set_of_columns, ["dense stack"]),
    (fuse_no_k_rows, ["no rows for k"]),
    (fuse_b_swapped, ["b_q and b_v are swapped"]),
    (fuse_scaling_in_b, ["folded into b"]),
    (fuse_a_v_first, ["a_v above a_q"]),
    (fuse_v_first_consistently, ["v's rank first"]),
    (fuse_side_by_side, ["side by side"]),
    (fuse_in_place, ["changed its input a_q in place"]),
    (fuse_two_things, ["expected 4 things"]),
])
def test_wrong_fuse_qv_is_named(fn, words):
    assert_mistake(quiet(checks.check_fuse_qv, fn), *words)


def test_integer_division_is_caught_only_where_alpha_over_r_is_not_whole():
    """Case 1 (alpha=16, r=2) has alpha // r == alpha / r: the mistake must still be caught by a later case."""
    assert any(int(alpha) // int(r) != float(alpha) / float(r) for _, _, _, alpha, r in checks._fuse_cases())
    assert 16 // 2 == 16 / 2 and checks._fuse_cases()[0][3] == 16


def test_fuse_cases_give_r_and_alpha_every_number_type_the_exercise_allows():
    """The exercise allows r and alpha as an int, a float, a NumPy number or a 0-d tensor: each one appears,
    and one alpha is not a whole number (so int(alpha) is caught)."""
    def kinds(values):
        return {"tensor" if isinstance(v, torch.Tensor) else "numpy" if isinstance(v, np.generic)
                else type(v).__name__ for v in values}
    cases = checks._fuse_cases()
    assert kinds(c[4] for c in cases) == kinds(c[3] for c in cases) == {"int", "float", "numpy", "tensor"}
    assert any(float(c[3]) != int(float(c[3])) for c in cases)


# =================================================================== exercise 3: a BERT layer, copied

PAIRS = [("attn.q", "attention.self.query"), ("attn.k", "attention.self.key"), ("attn.v", "attention.self.value"),
         ("attn.o", "attention.output.dense"), ("ln1", "attention.output.LayerNorm"),
         ("ffn.w1", "intermediate.dense"), ("ffn.w2", "output.dense"), ("ln2", "output.LayerNorm")]


def copy_with_load_state_dict(hf_layer_state, block):
    """Correct: rename the keys, then load_state_dict (which copies in place)."""
    renamed = {f"{own}.{kind}": hf_layer_state[f"{hf}.{kind}"] for own, hf in PAIRS for kind in ("weight", "bias")}
    block.load_state_dict(renamed)


def copy_module_by_module(hf_layer_state, block):
    """Correct: one line per module, through the modules' attributes."""
    modules = {"attention.self.query": block.attn.q, "attention.self.key": block.attn.k,
               "attention.self.value": block.attn.v, "attention.output.dense": block.attn.o,
               "attention.output.LayerNorm": block.ln1, "intermediate.dense": block.ffn.w1,
               "output.dense": block.ffn.w2, "output.LayerNorm": block.ln2}
    with torch.no_grad():
        for hf, module in modules.items():
            module.weight.copy_(hf_layer_state[hf + ".weight"])
            module.bias.copy_(hf_layer_state[hf + ".bias"])


def copy_through_data(hf_layer_state, block):
    """Correct: .data.copy_ (in place, no autograd) and slice assignment."""
    params = dict(block.named_parameters())
    for own, hf in PAIRS:
        params[own + ".weight"].data.copy_(hf_layer_state[hf + ".weight"])
        with torch.no_grad():
            params[own + ".bias"][:] = hf_layer_state[hf + ".bias"]


def copy_under_inference_mode(hf_layer_state, block):
    """Correct: torch.inference_mode() instead of no_grad, .get on the dict, and the block returned."""
    with torch.inference_mode():
        for own, hf in PAIRS:
            module = block.get_submodule(own)
            module.weight.copy_(hf_layer_state.get(hf + ".weight"))
            module.bias.copy_(hf_layer_state.get(hf + ".bias"))
    return block


def copy_through_detach_and_data_clone(hf_layer_state, block):
    """Correct: copy_ into a detached view (same memory), and .data = a clone (same Parameter, own memory)."""
    for own, hf in PAIRS:
        module = block.get_submodule(own)
        module.weight.detach().copy_(hf_layer_state[hf + ".weight"])
        module.bias.data = hf_layer_state[hf + ".bias"].clone()


@pytest.mark.parametrize("fn", [checks.reference_bert_layer_to_block, copy_with_load_state_dict,
                                copy_module_by_module, copy_through_data, copy_under_inference_mode,
                                copy_through_detach_and_data_clone])
def test_correct_bert_layer_to_block_passes(fn):
    verdict = quiet(checks.check_bert_layer_to_block, fn)
    assert verdict.passed, str(verdict)


def test_reference_copy_agrees_with_from_hf_bert():
    """Layer by layer, the reference puts every tensor where minift.interop.from_hf_bert puts it."""
    from minift.interop import from_hf_bert

    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(vocab_size=23, hidden_size=12, num_hidden_layers=2,
                                                        num_attention_heads=3, intermediate_size=20,
                                                        max_position_embeddings=16))
    imported = from_hf_bert(hf)
    fresh = from_hf_bert(hf)
    with torch.no_grad():
        for p in fresh.blocks.parameters():
            p.zero_()
    for block, layer in zip(fresh.blocks, hf.encoder.layer):
        checks.reference_bert_layer_to_block(layer.state_dict(), block)
    for (name, a), (_, b) in zip(imported.blocks.named_parameters(), fresh.blocks.named_parameters()):
        assert torch.equal(a, b), name


def test_blank_bert_layer_to_block_is_not_implemented():
    def bert_layer_to_block(hf_layer_state, block):
        raise NotImplementedError()
    assert quiet(checks.check_bert_layer_to_block, bert_layer_to_block).status == "not implemented"


def test_a_blank_helper_is_named():
    def copy_linear(linear, hf_layer_state, hf_name):
        raise NotImplementedError()

    def bert_layer_to_block(hf_layer_state, block):
        copy_linear(block.attn.q, hf_layer_state, "attention.self.query")

    verdict = quiet(checks.check_bert_layer_to_block, bert_layer_to_block)
    assert verdict.status == "not implemented" and "copy_linear" in verdict.message
    assert "bert_layer_to_block calls it" in verdict.message


def _copy(block, hf_layer_state, pairs, transform=lambda t: t, kinds=("weight", "bias")):
    params = dict(block.named_parameters())
    with torch.no_grad():
        for own, hf in pairs:
            for kind in kinds:
                params[f"{own}.{kind}"].copy_(transform(hf_layer_state[f"{hf}.{kind}"]))


def copy_layernorms_swapped(hf_layer_state, block):
    swapped = {"attention.output.LayerNorm": "output.LayerNorm", "output.LayerNorm": "attention.output.LayerNorm"}
    _copy(block, hf_layer_state, [(own, swapped.get(hf, hf)) for own, hf in PAIRS])


def copy_transposed(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS, transform=lambda t: t.T if t.dim() == 2 else t)   # as for GPT-2


def copy_weights_only(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS, kinds=("weight",))


def copy_linears_only(hf_layer_state, block):
    _copy(block, hf_layer_state, [(own, hf) for own, hf in PAIRS if not own.startswith("ln")])


def copy_q_k_swapped(hf_layer_state, block):
    swapped = {"attention.self.query": "attention.self.key", "attention.self.key": "attention.self.query"}
    _copy(block, hf_layer_state, [(own, swapped.get(hf, hf)) for own, hf in PAIRS])


def copy_output_denses_swapped(hf_layer_state, block):
    swapped = {"attention.output.dense": "output.dense", "output.dense": "attention.output.dense"}
    _copy(block, hf_layer_state, [(own, swapped.get(hf, hf)) for own, hf in PAIRS])


def copy_new_parameters(hf_layer_state, block):
    for own, hf in PAIRS:
        module = block.get_submodule(own)
        module.weight = torch.nn.Parameter(hf_layer_state[hf + ".weight"].clone())
        module.bias = torch.nn.Parameter(hf_layer_state[hf + ".bias"].clone())


def copy_load_state_dict_assign(hf_layer_state, block):
    renamed = {f"{own}.{kind}": hf_layer_state[f"{hf}.{kind}"].clone()
               for own, hf in PAIRS for kind in ("weight", "bias")}
    block.load_state_dict(renamed, assign=True)


def copy_by_data_assignment(hf_layer_state, block):
    for own, hf in PAIRS:
        module = block.get_submodule(own)
        module.weight.data = hf_layer_state[hf + ".weight"]          # shares memory with the input
        module.bias.data = hf_layer_state[hf + ".bias"]


def copy_popping_the_input(hf_layer_state, block):
    params = dict(block.named_parameters())
    with torch.no_grad():
        for own, hf in PAIRS:
            for kind in ("weight", "bias"):
                params[f"{own}.{kind}"].copy_(hf_layer_state.pop(f"{hf}.{kind}"))


def copy_transposing_the_input(hf_layer_state, block):
    for key, tensor in hf_layer_state.items():
        if tensor.dim() == 2 and tensor.shape[0] == tensor.shape[1]:
            tensor.t_()                                  # "undo" a transpose that BERT does not need
    _copy(block, hf_layer_state, PAIRS, transform=lambda t: t.contiguous())


def copy_without_no_grad(hf_layer_state, block):
    params = dict(block.named_parameters())
    for own, hf in PAIRS:
        for kind in ("weight", "bias"):
            params[f"{own}.{kind}"].copy_(hf_layer_state[f"{hf}.{kind}"])


def copy_after_freezing(hf_layer_state, block):
    for p in block.parameters():
        p.requires_grad = False                          # to get past the leaf-variable error
    _copy(block, hf_layer_state, PAIRS)


def copy_then_eval(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS)
    block.eval()


def copy_by_position(hf_layer_state, block):
    with torch.no_grad():
        for parameter, tensor in zip(block.parameters(), hf_layer_state.values()):   # the orders differ
            parameter.copy_(tensor)


def copy_one_bias_forgotten(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS, kinds=("weight",))
    _copy(block, hf_layer_state, [(own, hf) for own, hf in PAIRS if own != "ffn.w2"], kinds=("bias",))


def copy_as_float64(hf_layer_state, block):
    for own, hf in PAIRS:
        module = block.get_submodule(own)
        module.weight.data = hf_layer_state[hf + ".weight"].double()     # "more precision"
        module.bias.data = hf_layer_state[hf + ".bias"].double()


def copy_into_a_copy(hf_layer_state, block):
    import copy
    block = copy.deepcopy(block)                                       # the caller's block stays as it was
    _copy(block, hf_layer_state, PAIRS)


def copy_with_layer_prefix(hf_layer_state, block):
    _copy(block, {f"encoder.layer.0.{k}": v for k, v in hf_layer_state.items()}, PAIRS)


def copy_bias_into_weight(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS)
    with torch.no_grad():
        block.attn.v.weight.copy_(hf_layer_state["attention.self.value.bias"])   # copy-paste slip: broadcasts


def copy_through_half(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS, transform=lambda t: t.half())


def copy_ffn_denses_swapped(hf_layer_state, block):
    swapped = {"intermediate.dense": "output.dense", "output.dense": "intermediate.dense"}
    _copy(block, hf_layer_state, [(own, swapped.get(hf, hf)) for own, hf in PAIRS])


def copy_layernorm_biases_forgotten(hf_layer_state, block):
    _copy(block, hf_layer_state, [(own, hf) for own, hf in PAIRS if not own.startswith("ln")])
    _copy(block, hf_layer_state, [(own, hf) for own, hf in PAIRS if own.startswith("ln")], kinds=("weight",))


def copy_then_zero_the_input(hf_layer_state, block):
    _copy(block, hf_layer_state, PAIRS)
    for tensor in hf_layer_state.values():
        tensor.zero_()                                                  # "free" the memory


@pytest.mark.parametrize("fn, words", [
    (copy_by_position, ["by name, not by position"]),
    (copy_one_bias_forgotten, ["bias forgotten", "block.ffn.w2.bias still holds"]),
    (copy_as_float64, ["torch.float64", "was torch.float32"]),
    (copy_into_a_copy, ["nothing was copied"]),
    (copy_with_layer_prefix, ["keyerror", "without a layer prefix"]),
    (copy_bias_into_weight, ["attention.self.value.bias repeated", "bias was copied into a weight"]),
    (copy_through_half, ["rounded"]),
    (copy_ffn_denses_swapped, ["intermediate.dense and output.dense are swapped"]),
    (copy_layernorm_biases_forgotten, ["layernorm bias forgotten", "ln1.bias"]),
    (copy_then_zero_the_input, ["changed its input"]),
    (copy_layernorms_swapped, ["layernorms are swapped"]),
    (copy_transposed, ["weight transposed"]),
    (copy_weights_only, ["bias forgotten"]),
    (copy_linears_only, ["layernorm not copied"]),
    (copy_q_k_swapped, ["query/key/value mixed up"]),
    (copy_output_denses_swapped, ["attention.output.dense and output.dense are swapped"]),
    (copy_new_parameters, ["parameter replaced"]),
    (copy_load_state_dict_assign, ["parameter replaced"]),
    (copy_by_data_assignment, ["shares memory"]),
    (copy_popping_the_input, ["changed its input"]),
    (copy_transposing_the_input, ["changed its input"]),
    (copy_without_no_grad, ["torch.no_grad()"]),
    (copy_after_freezing, ["requires_grad changed"]),
    (copy_then_eval, ["train/eval mode"]),
])
def test_wrong_bert_layer_to_block_is_named(fn, words):
    assert_mistake(quiet(checks.check_bert_layer_to_block, fn), *words)


def test_the_block_is_compared_with_transformers_output():
    """A wrong copy that fools the parameter comparison would still differ in the block's output."""
    hf, block = checks.bert_pair(0, *checks._bert_cases()[1])
    checks.reference_bert_layer_to_block(hf.state_dict(), block)
    x = torch.randn(2, 5, block.attn.q.in_features)
    block.eval(), hf.eval()
    with torch.no_grad():
        assert torch.allclose(block(x), checks._bert_output(hf, x), atol=1e-5)
        block.ln1.weight.mul_(1.01)
        assert not torch.allclose(block(x), checks._bert_output(hf, x), atol=1e-5)


# ======================================================================================= all three

def test_checkers_leave_global_random_state_alone():
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(9)
    expected = (torch.rand(1), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(9)
    quiet(checks.check_peft_key, checks.reference_peft_key)
    quiet(checks.check_fuse_qv, checks.reference_fuse_qv)
    quiet(checks.check_bert_layer_to_block, checks.reference_bert_layer_to_block)
    assert torch.equal(torch.rand(1), expected[0]) and random.random() == expected[1]
    assert np.random.rand() == expected[2]


def test_checkers_never_raise_on_garbage():
    for check in (checks.check_peft_key, checks.check_fuse_qv, checks.check_bert_layer_to_block):
        assert quiet(check, None).status == "mistake"
        assert quiet(check, lambda *a: 1 / 0).status == "mistake"
        assert quiet(check, lambda *a: None).status in ("mistake", "passed")


def test_a_checker_that_accepted_everything_would_fail_these_tests():
    """The wrong implementations above are really wrong: the references give different answers."""
    assert key_without_peft_prefix(0, "q", "A") != checks.reference_peft_key(0, "q", "A")
    A_q, B_q, A_v, B_v = checks._adapter_tensors(6, 2, 0)
    right = checks.reference_fuse_qv(A_q, B_q, A_v, B_v, 16, 2)
    wrong = fuse_dense(A_q, B_q, A_v, B_v, 16, 2)
    assert not torch.equal(right[1], wrong[1])
