"""Bridges to Hugging Face ``transformers``: GPT-2 weights in (and back out of) a minift Transformer.

minift's Transformer is shaped like GPT-2 (learned position embeddings, pre-LayerNorm blocks, a final
LayerNorm, an LM head tied to the token embedding), so a GPT-2 checkpoint maps onto it exactly and gives
the same logits to float precision. With internet access, bring the real weights in like this:

    from transformers import GPT2LMHeadModel
    from minift.interop import from_hf_gpt2

    hf = GPT2LMHeadModel.from_pretrained("gpt2")        # 124M; also "gpt2-medium", "distilgpt2", ...
    model = from_hf_gpt2(hf)                            # a minift.Transformer, eval mode, causal
    logits = model(input_ids, attention_mask).logits    # == hf(input_ids, attention_mask=...).logits

(the tokenizer stays on the Hugging Face side: ``GPT2TokenizerFast.from_pretrained("gpt2")``).
``to_hf_gpt2(model)`` goes the other way, e.g. to use ``generate()`` or ``save_pretrained()``. A model
with LoRA adapters exports what it computes: the active adapter is merged into the weights of a copy
(GPT-2 has no LoRA layers), so the user's model keeps its adapters, unmerged.

Weight layout: what changes on the way
--------------------------------------
* GPT-2's linear layers are ``transformers.pytorch_utils.Conv1D``, whose weight is stored
  (in_features, out_features) and applied as ``x @ W + b``. ``nn.Linear`` stores (out_features,
  in_features) and computes ``x @ W.T + b``, so every matrix is transposed on the way in (and out).
* GPT-2 computes q, k and v with one fused projection, ``attn.c_attn``: weight (d, 3d), bias (3d,),
  with the output columns ordered [q | k | v]. minift has three separate linears (``attn.q``,
  ``attn.k``, ``attn.v``, the names LoRA targets), so the fused weight is split into three (d, d)
  column blocks, each transposed; the bias into three (d,) pieces. Heads are contiguous blocks of
  d_head columns in both, so no per-head reshuffling is needed.
* Name map, per block i (``transformer.h.i.`` -> ``blocks.i.``): ``ln_1`` -> ``ln1``,
  ``attn.c_attn`` -> ``attn.q/k/v``, ``attn.c_proj`` -> ``attn.o``, ``ln_2`` -> ``ln2``,
  ``mlp.c_fc`` -> ``ffn.w1``, ``mlp.c_proj`` -> ``ffn.w2``; and ``wte`` -> ``tok_emb``,
  ``wpe`` -> ``pos_emb``, ``ln_f`` -> ``ln_f``, ``lm_head`` -> ``lm_head`` (no bias in either).
* Config map: n_embd -> d_model, n_layer -> n_layers, n_head -> n_heads, n_inner (None means
  4 * n_embd) -> d_ff, n_positions -> max_len, layer_norm_epsilon -> layer_norm_eps,
  activation_function "gelu_new" / "gelu_pytorch_tanh" -> "gelu_tanh", "gelu" -> "gelu",
  "relu" -> "relu". Whether the LM head is tied to wte is read from the model itself.
* Dropout: GPT-2 has three probabilities (embd_pdrop, attn_pdrop, resid_pdrop); minift has one,
  used in all those places. ``resid_pdrop`` is copied (all three are 0.1 in the released GPT-2s);
  pass ``dropout=`` to override. Dropout only matters for further training: the result is in eval mode.

What is refused, and why
------------------------
GPT-2 configs that minift cannot compute exactly raise ValueError: ``scale_attn_by_inverse_layer_idx``
(an extra 1/(layer+1) factor on the attention scores), ``scale_attn_weights=False`` (no 1/sqrt(d_head)),
``reorder_and_upcast_attn`` (a different float32-upcast evaluation order, meant for fp16 training),
``add_cross_attention`` (encoder-decoder blocks), and activations other than the three above.

BERT-family models (BERT, RoBERTa, DistilBERT, ...) cannot be imported: their blocks are post-LN
(``x = LN(x + Attention(x))``, ``x = LN(x + FFN(x))``) while minift's are pre-LN
(``x = x + Attention(LN(x))``); no choice of weights makes one compute the other, so no converter is
offered rather than one that would silently give different outputs.

``transformers`` is only needed for this module (a bridge/test dependency): it is imported inside the
functions, so ``import minift`` works without it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .config import ModelConfig
from .methods import lora
from .model import Transformer

# Hugging Face activation_function -> minift activation (same function, same numbers).
HF_TO_MINIFT_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                           "gelu": "gelu", "relu": "relu"}
# minift activation -> the Hugging Face name used when exporting.
MINIFT_TO_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def _import_transformers():
    try:
        import transformers
    except ImportError as error:   # pragma: no cover - depends on the environment
        raise ImportError("minift.interop needs Hugging Face transformers to convert models: "
                          "pip install transformers") from error
    return transformers


def _check_gpt2_config(config) -> str:
    """Raise ValueError for GPT-2 settings minift cannot compute exactly; return minift's activation."""
    refused = []
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        refused.append("scale_attn_by_inverse_layer_idx=True (scores also scaled by 1/(layer_idx+1))")
    if getattr(config, "reorder_and_upcast_attn", False):
        refused.append("reorder_and_upcast_attn=True (a different float32-upcast attention order)")
    if not getattr(config, "scale_attn_weights", True):
        refused.append("scale_attn_weights=False (minift always divides scores by sqrt(d_head))")
    if getattr(config, "add_cross_attention", False):
        refused.append("add_cross_attention=True (minift blocks have no cross-attention)")
    if refused:
        raise ValueError("this GPT-2 config cannot be represented exactly by minift: " + "; ".join(refused))
    activation = config.activation_function
    if activation not in HF_TO_MINIFT_ACTIVATION:
        raise ValueError(f"GPT-2 activation_function={activation!r} is not supported by minift; "
                         f"supported: {sorted(HF_TO_MINIFT_ACTIVATION)}")
    return HF_TO_MINIFT_ACTIVATION[activation]


@torch.no_grad()
def from_hf_gpt2(hf_model, attention: str = "sdpa", dropout: float | None = None) -> Transformer:
    """Convert a transformers ``GPT2LMHeadModel`` (or a bare ``GPT2Model``) into a minift Transformer
    that gives the same logits. Returns the model in eval mode, with the HF model's dtype and device.

    attention: minift's attention implementation, "sdpa" or "explicit" (same numbers either way).
    dropout: minift's single dropout probability; defaults to the config's ``resid_pdrop``.

    For a ``GPT2Model`` (no LM head), minift's lm_head is tied to the token embedding, as GPT-2 does;
    its logits are then those a tied ``GPT2LMHeadModel`` with the same body would give.
    Raises ValueError for GPT-2 configs minift cannot represent exactly (see the module docstring).
    """
    transformers = _import_transformers()
    if isinstance(hf_model, transformers.GPT2LMHeadModel):
        body, hf_head = hf_model.transformer, hf_model.lm_head
    elif isinstance(hf_model, transformers.GPT2Model):
        body, hf_head = hf_model, None
    else:
        raise TypeError(f"from_hf_gpt2 expects a transformers GPT2LMHeadModel or GPT2Model, "
                        f"got {type(hf_model).__name__}")
    hf_config = hf_model.config
    activation = _check_gpt2_config(hf_config)
    tied = hf_head is None or hf_head.weight is body.wte.weight or \
        hf_head.weight.data_ptr() == body.wte.weight.data_ptr()
    if hf_head is not None and hf_head.bias is not None:
        raise ValueError("this GPT2LMHeadModel's lm_head has a bias; minift's LM head has none")

    d = hf_config.n_embd
    config = ModelConfig(
        vocab_size=hf_config.vocab_size,
        d_model=d,
        n_layers=hf_config.n_layer,
        n_heads=hf_config.n_head,
        d_ff=hf_config.n_inner if hf_config.n_inner is not None else 4 * d,
        max_len=hf_config.n_positions,
        causal=True,
        dropout=float(hf_config.resid_pdrop if dropout is None else dropout),
        tie_embeddings=tied,
        activation=activation,
        layer_norm_eps=float(hf_config.layer_norm_epsilon),
        attention=attention,
    )
    reference = body.wte.weight
    model = Transformer(config).to(device=reference.device, dtype=reference.dtype)

    def copy(target: torch.Tensor, source: torch.Tensor):
        if target.shape != source.shape:   # a hand-edited model whose config no longer fits its weights
            raise ValueError(f"shape mismatch while converting: minift {tuple(target.shape)} "
                             f"vs GPT-2 {tuple(source.shape)}")
        target.copy_(source)

    def copy_conv1d(linear: nn.Linear, weight: torch.Tensor, bias: torch.Tensor):
        copy(linear.weight, weight.t())     # Conv1D (in, out) -> Linear (out, in)
        copy(linear.bias, bias)

    copy(model.tok_emb.weight, body.wte.weight)
    copy(model.pos_emb.weight, body.wpe.weight)
    for block, hf_block in zip(model.blocks, body.h):
        copy(block.ln1.weight, hf_block.ln_1.weight)
        copy(block.ln1.bias, hf_block.ln_1.bias)
        c_attn = hf_block.attn.c_attn        # weight (d, 3d): output columns [q | k | v]
        for i, linear in enumerate((block.attn.q, block.attn.k, block.attn.v)):
            copy_conv1d(linear, c_attn.weight[:, i * d:(i + 1) * d], c_attn.bias[i * d:(i + 1) * d])
        copy_conv1d(block.attn.o, hf_block.attn.c_proj.weight, hf_block.attn.c_proj.bias)
        copy(block.ln2.weight, hf_block.ln_2.weight)
        copy(block.ln2.bias, hf_block.ln_2.bias)
        copy_conv1d(block.ffn.w1, hf_block.mlp.c_fc.weight, hf_block.mlp.c_fc.bias)
        copy_conv1d(block.ffn.w2, hf_block.mlp.c_proj.weight, hf_block.mlp.c_proj.bias)
    copy(model.ln_f.weight, body.ln_f.weight)
    copy(model.ln_f.bias, body.ln_f.bias)
    if not tied:
        copy(model.lm_head.weight, hf_head.weight)
    return model.eval()


@torch.no_grad()
def to_hf_gpt2(model: Transformer, attn_implementation: str | None = None):
    """Convert a causal minift Transformer with its LM head into a transformers ``GPT2LMHeadModel``
    with the same logits (the inverse of from_hf_gpt2). Returned in eval mode, same dtype and device.

    attn_implementation: HF's ("sdpa", "eager", ...); defaults to "eager" for a minift model with
    attention="explicit", else "sdpa". bos/eos token ids are left unset (minift has no tokenizer).
    LoRA adapters: the active one is merged into the exported weights (on a copy: ``model`` itself is
    not changed), so the GPT-2 model gives the adapted model's logits, never the base model's.
    """
    transformers = _import_transformers()
    config = model.config
    if not config.causal:
        raise ValueError("to_hf_gpt2 needs a causal model (config.causal=True); GPT-2 is a decoder")
    if model.head is not None or model.lm_head is None:
        raise ValueError("to_hf_gpt2 exports the LM head only; this model has a task head "
                         "(model.head) or no lm_head")
    if model.prefix is not None or model.prompt is not None:
        raise ValueError("to_hf_gpt2 cannot export prefix/prompt modules; merge or remove them first")
    if lora.lora_layers(model):       # bake dW into plain linears of a copy; the caller's model is untouched
        model = lora.remove(copy.deepcopy(model), merge=True)
    if attn_implementation is None:
        attn_implementation = "eager" if config.attention == "explicit" else "sdpa"
    tied = model.lm_head.weight is model.tok_emb.weight
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.max_len, n_embd=config.d_model,
        n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff,
        activation_function=MINIFT_TO_HF_ACTIVATION[config.activation],
        resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
        layer_norm_epsilon=config.layer_norm_eps, tie_word_embeddings=tied,
        bos_token_id=None, eos_token_id=None,
    )
    hf_config._attn_implementation = attn_implementation
    hf = transformers.GPT2LMHeadModel(hf_config)
    reference = model.tok_emb.weight
    hf = hf.to(device=reference.device, dtype=reference.dtype)
    body = hf.transformer

    def copy_linear(conv, linear: nn.Linear):
        conv.weight.copy_(linear.weight.t())   # Linear (out, in) -> Conv1D (in, out)
        conv.bias.copy_(linear.bias)

    body.wte.weight.copy_(model.tok_emb.weight)
    body.wpe.weight.copy_(model.pos_emb.weight)
    for block, hf_block in zip(model.blocks, body.h):
        hf_block.ln_1.weight.copy_(block.ln1.weight)
        hf_block.ln_1.bias.copy_(block.ln1.bias)
        attn = block.attn
        hf_block.attn.c_attn.weight.copy_(torch.cat([attn.q.weight, attn.k.weight, attn.v.weight]).t())
        hf_block.attn.c_attn.bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        copy_linear(hf_block.attn.c_proj, attn.o)
        hf_block.ln_2.weight.copy_(block.ln2.weight)
        hf_block.ln_2.bias.copy_(block.ln2.bias)
        copy_linear(hf_block.mlp.c_fc, block.ffn.w1)
        copy_linear(hf_block.mlp.c_proj, block.ffn.w2)
    body.ln_f.weight.copy_(model.ln_f.weight)
    body.ln_f.bias.copy_(model.ln_f.bias)
    if tied:
        if hf.lm_head.weight.data_ptr() != body.wte.weight.data_ptr():
            hf.lm_head.weight = body.wte.weight
    else:
        hf.lm_head.weight.copy_(model.lm_head.weight)
    return hf.eval()
