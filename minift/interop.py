"""Bridges to Hugging Face ``transformers``: GPT-2, BERT and LLaMA weights in (GPT-2 also back out).

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

BERT and LLaMA (chapter 10)
---------------------------
``from_hf_bert`` (BertModel, BertForMaskedLM, BertForSequenceClassification) and ``from_hf_llama``
(LlamaForCausalLM, LlamaModel) use ModelConfig's options for real architectures (see minift.model):

* BERT: norm_position="post" (x = LN(x + Attention(x)); a LayerNorm on the embeddings, none at the
  end), n_token_types (segment embeddings), activation "gelu" (exact, erf). BertForMaskedLM's head is
  lm_head_transform (dense, GELU, LayerNorm) + lm_head (tied to the word embeddings) + lm_head_bias;
  BertForSequenceClassification's pooler (dense + tanh on [CLS]) and classifier become a
  ``BertClassificationHead`` in ``model.head``. Names: embeddings.word_embeddings -> tok_emb,
  position_embeddings -> pos_emb, token_type_embeddings -> type_emb, embeddings.LayerNorm -> ln_emb;
  per layer attention.self.query/key/value -> attn.q/k/v, attention.output.dense -> attn.o,
  attention.output.LayerNorm -> ln1, intermediate.dense -> ffn.w1, output.dense -> ffn.w2,
  output.LayerNorm -> ln2. nn.Linear on both sides: nothing is transposed.
* LLaMA: norm="rmsnorm", positions="rotary" (transformers' rotate_half convention: the two halves of
  each head are the rotated pairs, so q_proj and k_proj are copied as they are; GGUF files store them
  permuted), ffn="gated" with activation "silu" (gate_proj -> w1, up_proj -> w3, down_proj -> w2),
  n_kv_heads = num_key_value_heads, bias = attention_bias, rope_theta from the config's rope
  parameters. input_layernorm -> ln1, post_attention_layernorm -> ln2, model.norm -> ln_f; a tied or
  untied LM head, read from the model itself.
* Padding: transformers numbers BERT's positions 0..T-1 whatever the mask, minift numbers the real
  tokens only; for right-padded batches (minift's) the two agree on every real token. Rotary
  attention depends only on differences of positions, so left padding gives the same outputs too.
  Outputs at padding positions are never compared (neither library defines them usefully).
* Refused with a ValueError naming the field: BERT position_embedding_type other than "absolute",
  is_decoder, add_cross_attention, activations other than gelu / gelu_new / relu / silu; LLaMA rope
  types other than "default" (scaled RoPE), head_dim != hidden_size / num_attention_heads,
  attention_bias != mlp_bias, activations other than silu.

Every importer records where the model came from in ``model.hf_origin`` (an ``HFOrigin``: the
transformers class, PEFT's task type and, for every linear LoRA can adapt, the name of the module it
came from), so ``lora.export_peft`` writes an adapter that PEFT loads onto the original model.

``transformers`` is only needed for this module (a bridge/test dependency): it is imported inside the
functions, so ``import minift`` works without it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .config import ModelConfig
from .methods import lora
from .model import Transformer

# Hugging Face activation_function -> minift activation (same function, same numbers).
HF_TO_MINIFT_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                           "gelu": "gelu", "relu": "relu", "silu": "silu"}
# minift activation -> the Hugging Face name used when exporting.
MINIFT_TO_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}


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
    model.hf_origin = _origin(hf_model, "CAUSAL_LM" if hf_head is not None else "FEATURE_EXTRACTION",
                              GPT2_MODULES, "transformer." if hf_head is not None else "", config.n_layers,
                              fan_in_fan_out=True)
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
    gpt2_shape = {"norm": "layernorm", "norm_position": "pre", "positions": "learned", "ffn": "mlp",
                  "n_kv_heads": None, "bias": True, "n_token_types": 0, "lm_head_transform": False,
                  "lm_head_bias": False}
    for option, value in gpt2_shape.items():
        if getattr(config, option) != value and not (option == "n_kv_heads" and config.kv_heads == config.n_heads):
            raise ValueError(f"to_hf_gpt2 exports GPT-2-shaped models only; this one has "
                             f"ModelConfig.{option}={getattr(config, option)!r} (GPT-2: {value!r})")
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


# ----------------------------------------------------------------------------------------------------
# Where an imported model came from (read by lora.export_peft / import_peft)

@dataclass
class HFOrigin:
    """The transformers model a minift model was imported from, as PEFT names it.

    architecture: the transformers class ("GPT2LMHeadModel", "BertForSequenceClassification", ...);
    task_type: PEFT's task type for it ("CAUSAL_LM", "SEQ_CLS", "FEATURE_EXTRACTION", or None);
    modules: minift linear ("blocks.0.attn.q") -> (transformers module name, part, parts): the module
    that linear came from, and which of its ``parts`` equal slices of output rows it is (GPT-2's fused
    c_attn holds q, k, v as parts 0, 1, 2 of 3; every other module is part 0 of 1);
    fan_in_fan_out: the modules store weights (in, out), as GPT-2's Conv1D does;
    head: minift parameter name ("head.classifier.weight") -> its name in transformers, for the
    trainable task head that PEFT saves next to the adapter ("modules_to_save", e.g. "classifier").
    """

    architecture: str
    task_type: str | None
    modules: dict = field(default_factory=dict)
    fan_in_fan_out: bool = False
    head: dict = field(default_factory=dict)
    modules_to_save: list = field(default_factory=list)


def origin_modules(names_per_block: dict, prefix: str, n_layers: int) -> dict:
    """HFOrigin.modules for n_layers blocks. names_per_block: minift target -> (module name inside
    block i with "{i}", part, parts); prefix: the body's name in the transformers model ("model.")."""
    modules = {}
    for i in range(n_layers):
        for target, (name, part, parts) in names_per_block.items():
            where = "attn" if target in ("q", "k", "v", "o") else "ffn"
            modules[f"blocks.{i}.{where}.{target}"] = (prefix + name.format(i=i), part, parts)
    return modules


def _origin(hf_model, task_type, names_per_block: dict, prefix: str, n_layers: int, fan_in_fan_out=False):
    return HFOrigin(type(hf_model).__name__, task_type, origin_modules(names_per_block, prefix, n_layers),
                    fan_in_fan_out)


GPT2_MODULES = {"q": ("h.{i}.attn.c_attn", 0, 3), "k": ("h.{i}.attn.c_attn", 1, 3),
                "v": ("h.{i}.attn.c_attn", 2, 3), "o": ("h.{i}.attn.c_proj", 0, 1),
                "w1": ("h.{i}.mlp.c_fc", 0, 1), "w2": ("h.{i}.mlp.c_proj", 0, 1)}
BERT_MODULES = {"q": ("encoder.layer.{i}.attention.self.query", 0, 1),
                "k": ("encoder.layer.{i}.attention.self.key", 0, 1),
                "v": ("encoder.layer.{i}.attention.self.value", 0, 1),
                "o": ("encoder.layer.{i}.attention.output.dense", 0, 1),
                "w1": ("encoder.layer.{i}.intermediate.dense", 0, 1),
                "w2": ("encoder.layer.{i}.output.dense", 0, 1)}
LLAMA_MODULES = {"q": ("layers.{i}.self_attn.q_proj", 0, 1), "k": ("layers.{i}.self_attn.k_proj", 0, 1),
                 "v": ("layers.{i}.self_attn.v_proj", 0, 1), "o": ("layers.{i}.self_attn.o_proj", 0, 1),
                 "w1": ("layers.{i}.mlp.gate_proj", 0, 1), "w3": ("layers.{i}.mlp.up_proj", 0, 1),
                 "w2": ("layers.{i}.mlp.down_proj", 0, 1)}


def _copy(target: torch.Tensor, source: torch.Tensor, name: str = ""):
    if target.shape != source.shape:   # a hand-edited model whose config no longer fits its weights
        raise ValueError(f"shape mismatch while converting {name}: minift {tuple(target.shape)} "
                         f"vs transformers {tuple(source.shape)}")
    target.copy_(source)


def _copy_linear(linear: nn.Linear, hf_linear: nn.Linear):
    _copy(linear.weight, hf_linear.weight)
    if (linear.bias is None) != (hf_linear.bias is None):
        raise ValueError("bias mismatch while converting: one side has a bias, the other has none")
    if linear.bias is not None:
        _copy(linear.bias, hf_linear.bias)


def _copy_norm(norm: nn.Module, hf_norm: nn.Module):
    _copy(norm.weight, hf_norm.weight)
    if getattr(norm, "bias", None) is not None:
        _copy(norm.bias, hf_norm.bias)


def _refuse(family: str, problems: list[str]) -> None:
    if problems:
        raise ValueError(f"this {family} config cannot be represented exactly by minift: " + "; ".join(problems))


# ----------------------------------------------------------------------------------------------------
# BERT

class BertClassificationHead(nn.Module):
    """BertForSequenceClassification's head: pooler (dense d -> d, tanh) on the first token ([CLS]),
    dropout, classifier. Like minift's SequenceClassificationHead (pool="cls", a ``classifier``), plus
    BERT's pre-trained pooler. The first *real* token is pooled, which is [CLS] in any right-padded batch."""

    def __init__(self, d_model: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.pool = "cls"
        self.pooler = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, hidden, attention_mask=None):
        from .heads import real_token_index

        if attention_mask is None:
            first = hidden[:, 0]
        else:
            first = hidden[torch.arange(hidden.shape[0], device=hidden.device),
                           real_token_index(attention_mask, "first")]
        return self.classifier(self.dropout(torch.tanh(self.pooler(first))))


def _check_bert_config(config) -> str:
    problems = []
    position_type = getattr(config, "position_embedding_type", "absolute")
    if position_type not in (None, "absolute"):
        problems.append(f"position_embedding_type={position_type!r} (minift has absolute positions only)")
    if getattr(config, "is_decoder", False):
        problems.append("is_decoder=True (a causal BERT; minift imports BERT as an encoder)")
    if getattr(config, "add_cross_attention", False):
        problems.append("add_cross_attention=True (minift blocks have no cross-attention)")
    activation = config.hidden_act
    if activation not in HF_TO_MINIFT_ACTIVATION:
        problems.append(f"hidden_act={activation!r} (supported: {sorted(HF_TO_MINIFT_ACTIVATION)})")
    _refuse("BERT", problems)
    return HF_TO_MINIFT_ACTIVATION[activation]


@torch.no_grad()
def from_hf_bert(hf_model, attention: str = "sdpa", dropout: float | None = None) -> Transformer:
    """Convert a transformers ``BertModel``, ``BertForMaskedLM`` or ``BertForSequenceClassification``
    into a minift Transformer (bidirectional, post-LayerNorm, token types) with the same outputs:

    * BertModel: hidden states (minift's ``hidden_states[-1]`` == ``last_hidden_state``); the pooler,
      if any, is not used (minift's LM head is tied to the word embeddings, as BertForMaskedLM's is);
    * BertForMaskedLM: the masked-LM logits (transform, tied decoder, bias);
    * BertForSequenceClassification: the class logits (``model.head`` is a BertClassificationHead).

    Returned in eval mode with the HF model's dtype and device; ``model(ids, mask, token_type_ids=...)``.
    dropout defaults to the config's hidden_dropout_prob. Unsupported configs raise ValueError.
    """
    transformers = _import_transformers()
    if isinstance(hf_model, transformers.BertForMaskedLM):
        body, kind, task_type, prefix = hf_model.bert, "mlm", None, "bert."
    elif isinstance(hf_model, transformers.BertForSequenceClassification):
        body, kind, task_type, prefix = hf_model.bert, "seq", "SEQ_CLS", "bert."
    elif isinstance(hf_model, transformers.BertModel):
        body, kind, task_type, prefix = hf_model, "body", "FEATURE_EXTRACTION", ""
    else:
        raise TypeError(f"from_hf_bert expects a transformers BertModel, BertForMaskedLM or "
                        f"BertForSequenceClassification, got {type(hf_model).__name__}")
    hf_config = hf_model.config
    activation = _check_bert_config(hf_config)
    emb = body.embeddings
    config = ModelConfig(
        vocab_size=hf_config.vocab_size, d_model=hf_config.hidden_size, n_layers=hf_config.num_hidden_layers,
        n_heads=hf_config.num_attention_heads, d_ff=hf_config.intermediate_size,
        max_len=hf_config.max_position_embeddings, causal=False,
        dropout=float(hf_config.hidden_dropout_prob if dropout is None else dropout),
        tie_embeddings=True, activation=activation, layer_norm_eps=float(hf_config.layer_norm_eps),
        attention=attention, norm_position="post", n_token_types=hf_config.type_vocab_size,
        lm_head_transform=kind == "mlm", lm_head_bias=kind == "mlm",
    )
    reference = emb.word_embeddings.weight
    model = Transformer(config).to(device=reference.device, dtype=reference.dtype)
    _copy(model.tok_emb.weight, emb.word_embeddings.weight, "word_embeddings")
    _copy(model.pos_emb.weight, emb.position_embeddings.weight, "position_embeddings")
    _copy(model.type_emb.weight, emb.token_type_embeddings.weight, "token_type_embeddings")
    _copy_norm(model.ln_emb, emb.LayerNorm)
    for block, layer in zip(model.blocks, body.encoder.layer):
        attn = layer.attention
        for linear, hf_linear in ((block.attn.q, attn.self.query), (block.attn.k, attn.self.key),
                                  (block.attn.v, attn.self.value), (block.attn.o, attn.output.dense),
                                  (block.ffn.w1, layer.intermediate.dense), (block.ffn.w2, layer.output.dense)):
            _copy_linear(linear, hf_linear)
        _copy_norm(block.ln1, attn.output.LayerNorm)
        _copy_norm(block.ln2, layer.output.LayerNorm)
    if kind == "mlm":
        predictions = hf_model.cls.predictions
        _copy_linear(model.lm_transform.dense, predictions.transform.dense)
        _copy_norm(model.lm_transform.norm, predictions.transform.LayerNorm)
        decoder = predictions.decoder
        if decoder.weight.data_ptr() != emb.word_embeddings.weight.data_ptr():
            raise ValueError("this BertForMaskedLM's decoder is not tied to its word embeddings "
                             "(tie_word_embeddings=False); minift imports the tied BERT head only")
        bias = decoder.bias if decoder.bias is not None else predictions.bias
        _copy(model.lm_head.bias, bias, "cls.predictions.bias")
    elif kind == "seq":
        classifier = hf_model.classifier
        if body.pooler is None:
            raise ValueError("this BertForSequenceClassification has no pooler; minift's BERT head pools [CLS] with it")
        head = BertClassificationHead(config.d_model, classifier.out_features, config.dropout)
        model.head = head.to(device=reference.device, dtype=reference.dtype)
        _copy_linear(model.head.pooler, body.pooler.dense)
        _copy_linear(model.head.classifier, classifier)
        model.lm_head = None          # as make_target_model leaves a fine-tuned model
    model.hf_origin = _origin(hf_model, task_type, BERT_MODULES, prefix, config.n_layers)
    if kind == "seq":      # PEFT saves a sequence classifier's head (and here BERT's pooler) with the adapter
        model.hf_origin.head = {"head.pooler.weight": "bert.pooler.dense.weight", "head.pooler.bias": "bert.pooler.dense.bias",
                                "head.classifier.weight": "classifier.weight", "head.classifier.bias": "classifier.bias"}
        model.hf_origin.modules_to_save = ["classifier", "pooler"]
    return model.eval()


# ----------------------------------------------------------------------------------------------------
# LLaMA

def _rope_settings(config) -> tuple[str, float]:
    """(rope type, theta) from transformers 5's rope_parameters or 4's rope_theta / rope_scaling."""
    parameters = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    rope_type = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    theta = parameters.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    return rope_type, float(theta)


def _check_llama_config(config) -> float:
    problems = []
    rope_type, theta = _rope_settings(config)
    if rope_type != "default":
        problems.append(f"rope type {rope_type!r} (scaled RoPE; minift computes the default rotary angles)")
    d_head = config.hidden_size // config.num_attention_heads
    head_dim = getattr(config, "head_dim", None)
    if head_dim is not None and head_dim != d_head:
        problems.append(f"head_dim={head_dim} (minift's d_head is hidden_size / num_attention_heads = {d_head})")
    if bool(getattr(config, "attention_bias", False)) != bool(getattr(config, "mlp_bias", False)):
        problems.append(f"attention_bias={config.attention_bias} with mlp_bias={config.mlp_bias} "
                        "(minift's bias option covers every linear of a block)")
    if config.hidden_act != "silu":
        problems.append(f"hidden_act={config.hidden_act!r} (LLaMA's SwiGLU uses 'silu')")
    _refuse("LLaMA", problems)
    return theta


@torch.no_grad()
def from_hf_llama(hf_model, attention: str = "sdpa", dropout: float | None = None) -> Transformer:
    """Convert a transformers ``LlamaForCausalLM`` (or a bare ``LlamaModel``) into a minift Transformer
    with the same logits: RMSNorm, rotary positions, SwiGLU, grouped-query attention, no biases
    (unless the config has them), tied or untied LM head. Returned in eval mode, same dtype and device.

    dropout defaults to the config's attention_dropout (LLaMA has no other). For a LlamaModel the LM
    head is tied to the token embedding. Unsupported configs raise ValueError naming the field.
    """
    transformers = _import_transformers()
    if isinstance(hf_model, transformers.LlamaForCausalLM):
        body, hf_head, task_type, prefix = hf_model.model, hf_model.lm_head, "CAUSAL_LM", "model."
    elif isinstance(hf_model, transformers.LlamaModel):
        body, hf_head, task_type, prefix = hf_model, None, "FEATURE_EXTRACTION", ""
    else:
        raise TypeError(f"from_hf_llama expects a transformers LlamaForCausalLM or LlamaModel, "
                        f"got {type(hf_model).__name__}")
    hf_config = hf_model.config
    theta = _check_llama_config(hf_config)
    tied = hf_head is None or hf_head.weight.data_ptr() == body.embed_tokens.weight.data_ptr()
    if hf_head is not None and hf_head.bias is not None:
        raise ValueError("this LlamaForCausalLM's lm_head has a bias; minift's LM head has none")
    config = ModelConfig(
        vocab_size=hf_config.vocab_size, d_model=hf_config.hidden_size, n_layers=hf_config.num_hidden_layers,
        n_heads=hf_config.num_attention_heads, n_kv_heads=hf_config.num_key_value_heads,
        d_ff=hf_config.intermediate_size, max_len=hf_config.max_position_embeddings, causal=True,
        dropout=float(getattr(hf_config, "attention_dropout", 0.0) if dropout is None else dropout),
        tie_embeddings=tied, activation="silu", layer_norm_eps=float(hf_config.rms_norm_eps),
        attention=attention, norm="rmsnorm", positions="rotary", rope_theta=theta, ffn="gated",
        bias=bool(getattr(hf_config, "attention_bias", False)),
    )
    reference = body.embed_tokens.weight
    model = Transformer(config).to(device=reference.device, dtype=reference.dtype)
    _copy(model.tok_emb.weight, body.embed_tokens.weight, "embed_tokens")
    for block, layer in zip(model.blocks, body.layers):
        attn, mlp = layer.self_attn, layer.mlp
        for linear, hf_linear in ((block.attn.q, attn.q_proj), (block.attn.k, attn.k_proj),
                                  (block.attn.v, attn.v_proj), (block.attn.o, attn.o_proj),
                                  (block.ffn.w1, mlp.gate_proj), (block.ffn.w3, mlp.up_proj),
                                  (block.ffn.w2, mlp.down_proj)):
            _copy_linear(linear, hf_linear)
        _copy_norm(block.ln1, layer.input_layernorm)
        _copy_norm(block.ln2, layer.post_attention_layernorm)
    _copy_norm(model.ln_f, body.norm)
    if not tied:
        _copy(model.lm_head.weight, hf_head.weight, "lm_head")
    model.hf_origin = _origin(hf_model, task_type, LLAMA_MODULES, prefix, config.n_layers)
    return model.eval()
