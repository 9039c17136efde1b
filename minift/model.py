"""The minift Transformer: small enough to read in one sitting, shaped like GPT-2 / BERT / LLaMA.

    tokens -> token embedding + position embedding -> dropout
           -> n_layers x Block( x + Attention(LN(x)) ; x + FFN(LN(x)) )     (pre-LayerNorm)
           -> final LayerNorm -> output layer (LM head, or a task head after SFT)

That is the default: GPT-2's architecture, the model of every chapter. A few options of ModelConfig
(chapter 10) give the other two families real models come in; each changes only a few lines below:

    BERT:   post-LayerNorm blocks, x = LN(x + Attention(x)); x = LN(x + FFN(x)), a LayerNorm on the
            embeddings and none at the end (norm_position="post"); token-type embeddings
            (n_token_types=2); a masked-LM head with its own transform and bias.
    LLaMA:  RMSNorm instead of LayerNorm (norm="rmsnorm"); rotary position embeddings instead of a
            position table (positions="rotary"); a gated FFN, w2(silu(w1 x) * w3 x) (ffn="gated",
            activation="silu": SwiGLU); fewer key/value heads than query heads (n_kv_heads: grouped-
            query attention); no biases (bias=False).

Two hook points let fine-tuning methods plug in without monkey-patching:

* ``model.prefix``: a module called as ``prefix(batch_size)`` that returns, for every layer, a pair
  (keys, values) of shape (batch, P, config.d_kv) - d_kv = n_kv_heads * d_head, which is d_model
  unless the model uses grouped-query attention. Attention treats them exactly like a cache of past
  keys and values (which is also kv-width in a GQA model, and is what PEFT's prefix-tuning supplies):
  every position may attend to them, padding never masks them, and the real tokens' positions start
  at P. With rotary positions the prefix keys are used as they are (a cache holds keys that are
  already rotated; a learned prefix has no position to rotate by) and the real tokens are rotated by
  their positions P, P + 1, ... Prefix-tuning and P-tuning v2 use this.
* ``model.prompt``: a module called as ``prompt(embeddings, attention_mask)`` that returns
  (new_embeddings, new_attention_mask, real_positions). It inserts trainable vectors into the input
  sequence; ``real_positions`` says where the real tokens ended up, so outputs can be cut back to one
  per input token. P-tuning v1 and prompt tuning use this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

# The names fine-tuning methods use for a block's linears, and where each one lives. One truth: LoRA,
# Freeze, the parameter formulas and the memory model all read this map instead of repeating names.
ATTENTION_TARGETS = ("q", "k", "v", "o")   # block.attn.q ... block.attn.o: q, o d -> d; k, v d -> d_kv
FFN_TARGETS = ("w1", "w2", "w3")           # block.ffn.w1: d -> d_ff, w2: d_ff -> d, w3 (gated FFN): d -> d_ff
TARGETS = ATTENTION_TARGETS + FFN_TARGETS
GATED_ONLY = ("w3",)                       # exists only with config.ffn="gated"


def model_targets(config: ModelConfig) -> tuple[str, ...]:
    """The targets a model with this config has: every name of TARGETS, w3 only for a gated FFN."""
    return TARGETS if config.ffn == "gated" else tuple(t for t in TARGETS if t not in GATED_ONLY)


def _check_target(target: str, config: ModelConfig | None = None) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid targets: {TARGETS} "
                         "(q, k, v, o: attention projections; w1, w2, w3: FFN layers)")
    if config is not None and target not in model_targets(config):
        raise ValueError(f"target {target!r} exists only in a gated FFN (config.ffn='gated', e.g. LLaMA's "
                         f"SwiGLU); this model's FFN is {config.ffn!r}, its targets are {model_targets(config)}")


def target_parent(block: "Block", target: str) -> nn.Module:
    """The sub-module of ``block`` that owns the linear called ``target`` (its attention or its FFN)."""
    _check_target(target)
    return block.attn if target in ATTENTION_TARGETS else block.ffn


def target_linear(block: "Block", target: str) -> nn.Module:
    """The linear layer (or the LoRA layer wrapping it) that ``target`` names in ``block``."""
    linear = getattr(target_parent(block, target), target)
    if linear is None:              # w3 of a plain (not gated) FFN
        _check_target(target, block.config)
    return linear


def target_shape(config: ModelConfig, target: str) -> tuple[int, int]:
    """(in_features, out_features) of the linear that ``target`` names, from the config alone."""
    _check_target(target, config)
    d, d_ff, d_kv = config.d_model, config.d_ff, config.d_kv
    return {"k": (d, d_kv), "v": (d, d_kv), "w1": (d, d_ff), "w3": (d, d_ff), "w2": (d_ff, d)}.get(target, (d, d))


def make_norm(config: ModelConfig) -> nn.Module:
    """LayerNorm (gain and bias; subtracts the mean) or RMSNorm (gain only: x / rms(x) * g, LLaMA)."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The FFN's non-linearity, by its config name (see config.ACTIVATIONS)."""
    if activation == "gelu":
        return F.gelu(x)
    if activation == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if activation == "silu":
        return F.silu(x)
    return F.relu(x)


def rotary_angles(positions: torch.Tensor, d_head: int, theta: float, dtype: torch.dtype):
    """cos and sin of RoPE's angles, (B or 1, T, 1, d_head): position p turns the pair of dimensions
    (i, i + d_head / 2) by the angle p * theta^(-2i / d_head) (the rotate_half layout of transformers'
    LLaMA, computed in float32 as there)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.float, device=positions.device) / d_head))
    angles = positions[..., None].float() * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    if angles.dim() == 2:                        # (T, d_head): the same positions for every row
        angles = angles[None]
    return angles.cos()[:, :, None].to(dtype), angles.sin()[:, :, None].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, d_head: int) -> torch.Tensor:
    """Rotate every head of x (B, T, heads * d_head) by its position: x cos + rotate_half(x) sin."""
    batch, length, width = x.shape
    x = x.view(batch, length, width // d_head, d_head)
    first, second = x[..., : d_head // 2], x[..., d_head // 2:]
    rotated = torch.cat((-second, first), dim=-1)
    return (x * cos + rotated * sin).reshape(batch, length, width)


@dataclass
class TransformerOutput:
    """What forward() returns. hidden_states[0] is the embedding output, hidden_states[i] block i's."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, o projections (the LoRA target names).

    With grouped-query attention (config.n_kv_heads < n_heads) k and v are narrower (d -> d_kv) and
    each key/value head is shared by n_heads / n_kv_heads consecutive query heads.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        d, d_kv, bias = config.d_model, config.d_kv, config.bias
        self.n_heads = config.n_heads
        self.n_kv_heads = config.kv_heads
        self.d_head = config.d_head
        self.q = nn.Linear(d, d, bias=bias)
        self.k = nn.Linear(d, d_kv, bias=bias)
        self.v = nn.Linear(d, d_kv, bias=bias)
        self.o = nn.Linear(d, d, bias=bias)
        self.dropout = config.dropout
        self.implementation = config.attention

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, heads * d_head) -> (B, heads, T, d_head)."""
        batch, length, _ = x.shape
        return x.view(batch, length, -1, self.d_head).transpose(1, 2)

    def forward(self, x, allowed=None, is_causal=False, prefix=None, rotary=None):
        """x: (B, T, d). allowed: bool (B, 1, T, P + T), True where a query may look at a key, or
        None with is_causal saying whether to apply the plain causal mask. prefix: (keys, values),
        each (B, P, d_kv), put in front of this layer's own keys and values. rotary: (cos, sin) of
        the real tokens' positions (rotary models), applied to queries and keys, not to the prefix."""
        q, k, v = self.q(x), self.k(x), self.v(x)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary, self.d_head), apply_rotary(k, *rotary, self.d_head)
        if prefix is not None:
            prefix_keys, prefix_values = prefix
            if prefix_keys.shape[-1] != k.shape[-1]:
                raise ValueError(f"prefix keys/values have width {prefix_keys.shape[-1]}, this model's keys "
                                 f"have width d_kv = n_kv_heads * d_head = {k.shape[-1]}: a prefix supplies "
                                 "keys and values as a cache holds them")
            k = torch.cat([prefix_keys, k], dim=1)
            v = torch.cat([prefix_values, v], dim=1)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        if self.n_kv_heads != self.n_heads:     # grouped-query: repeat each kv head for its query heads
            group = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        dropout = self.dropout if self.training else 0.0

        if self.implementation == "explicit":
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)   # (B, H, T, P + T)
            if is_causal:
                length = q.shape[-2]
                allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), p=dropout, training=self.training)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout,
                                                 is_causal=is_causal)
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, self.n_heads * self.d_head)
        return self.o(out)


class FeedForward(nn.Module):
    """Position-wise FFN: w2(act(w1(x))). w1: d -> d_ff, w2: d_ff -> d (weights stored as (out, in)).

    Gated (config.ffn="gated"): w2(act(w1(x)) * w3(x)), w3: d -> d_ff. The activation of w1 x opens
    or closes each of the d_ff channels of w3 x; with silu this is SwiGLU (LLaMA's gate_proj = w1,
    up_proj = w3, down_proj = w2). A plain FFN has ``w3 = None``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        d, d_ff, bias = config.d_model, config.d_ff, config.bias
        self.w1 = nn.Linear(d, d_ff, bias=bias)
        self.w2 = nn.Linear(d_ff, d, bias=bias)
        self.w3 = nn.Linear(d, d_ff, bias=bias) if config.ffn == "gated" else None
        self.activation = config.activation
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = activate(self.w1(x), self.activation)
        if self.w3 is not None:
            h = h * self.w3(x)
        return self.dropout(self.w2(h))


class Block(nn.Module):
    """One Transformer layer: attention then FFN, each added back to the residual.

    Pre-norm (GPT-2, LLaMA; the default): x + f(norm(x)), the residual stream itself is never
    normalised. Post-norm (BERT, config.norm_position="post"): norm(x + f(x)), every sub-layer's sum is.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.ln1 = make_norm(config)
        self.attn = Attention(config)
        self.ln2 = make_norm(config)
        self.ffn = FeedForward(config)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.post_norm = config.norm_position == "post"

    def forward(self, x, allowed=None, is_causal=False, prefix=None, rotary=None):
        if self.post_norm:
            x = self.ln1(x + self.resid_dropout(self.attn(x, allowed, is_causal, prefix, rotary)))
            return self.ln2(x + self.ffn(x))
        x = x + self.resid_dropout(self.attn(self.ln1(x), allowed, is_causal, prefix, rotary))
        return x + self.ffn(self.ln2(x))


class LMHeadTransform(nn.Module):
    """BERT's masked-LM head transform before the output layer: dense d -> d, activation, norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.activation = config.activation
        self.norm = make_norm(config)

    def forward(self, x):
        return self.norm(activate(self.dense(x), self.activation))


class Transformer(nn.Module):
    """A GPT-style (causal) or BERT-style (bidirectional) Transformer with an LM head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        post_norm = config.norm_position == "post"
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        # rotary models have no position table: positions act inside attention
        self.pos_emb = nn.Embedding(config.max_len, config.d_model) if config.positions == "learned" else None
        self.type_emb = nn.Embedding(config.n_token_types, config.d_model) if config.n_token_types else None
        self.ln_emb = make_norm(config) if post_norm else None   # post-norm: normalise the embeddings
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = None if post_norm else make_norm(config)     # post-norm: each block already ends in one
        self.lm_transform = LMHeadTransform(config) if config.lm_head_transform else None
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)
        self.head = None      # a task head (see minift.heads) replaces the LM head after SFT
        self.prefix = None    # hook: per-layer prefix keys/values (prefix-tuning, P-tuning v2)
        self.prompt = None    # hook: prompt embeddings inserted at the input (P-tuning v1)
        self.apply(self._init_weights)
        # GPT-2's trick: shrink the layers that write into the residual stream by 1/sqrt(2 L)
        for block in self.blocks:
            for linear in (block.attn.o, block.ffn.w2):
                nn.init.normal_(linear.weight, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def check_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Fail early, and clearly, on inputs the embedding table would reject obscurely.

        Token ids must be int64 (long) or int32, the index types nn.Embedding takes; int32 gives the
        same outputs as int64. Narrower integers (uint8, int8, int16, unsigned) would fail deep inside
        the embedding with a message about "indices", floats and bools are not token ids at all: both
        are refused here with the fix. Returns the ids, unchanged.
        """
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a 2-D tensor (batch, sequence), got {shape}")
        if input_ids.dtype not in (torch.long, torch.int32):
            if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
                raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}; "
                                 "token ids are indices into the vocabulary (use input_ids.long() only "
                                 "if the values really are whole numbers)")
            raise ValueError(f"input_ids has dtype {input_ids.dtype}, which the embedding cannot index with: "
                             "allowed dtypes are torch.int64 (long) and torch.int32; convert with "
                             "input_ids.long()")
        if input_ids.numel() == 0:
            raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)})")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"token id {bad} is outside the vocabulary: allowed ids are 0..{self.config.vocab_size - 1}")
        return input_ids

    def check_token_types(self, token_type_ids, input_ids):
        """Token types (BERT's segment ids) need a model with n_token_types > 0, input_ids' shape and
        integer values 0..n_token_types - 1. None: every token is of type 0, as in transformers."""
        n_types = self.config.n_token_types
        if n_types == 0:
            raise ValueError("token_type_ids given, but this model has no token-type embeddings "
                             "(config.n_token_types=0)")
        if not isinstance(token_type_ids, torch.Tensor) or token_type_ids.shape != input_ids.shape:
            shape = tuple(token_type_ids.shape) if isinstance(token_type_ids, torch.Tensor) else type(token_type_ids).__name__
            raise ValueError(f"token_type_ids has shape {shape}, input_ids has {tuple(input_ids.shape)}: they must match")
        if token_type_ids.dtype not in (torch.long, torch.int32) or int(token_type_ids.min()) < 0 \
                or int(token_type_ids.max()) >= n_types:
            raise ValueError(f"token_type_ids must be integers 0..{n_types - 1} (config.n_token_types={n_types})")

    def attention_pattern(self, real_tokens, n_prefix, causal):
        """Boolean (B, 1, T, P + T): may query i look at key j? Prefix keys: always. Real keys: if not
        padding and (bidirectional, or not in the future). A padding query may always see itself, so
        no softmax row is empty (its output is never used)."""
        batch, length = real_tokens.shape
        device = real_tokens.device
        allowed = real_tokens[:, None, :].expand(batch, length, length)
        if causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=device).tril()
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=device)
        if n_prefix:
            prefix_visible = torch.ones(batch, length, n_prefix, dtype=torch.bool, device=device)
            allowed = torch.cat([prefix_visible, allowed], dim=-1)
        return allowed[:, None]

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False,
                token_type_ids=None) -> TransformerOutput:
        """input_ids: (B, T) token ids; attention_mask: (B, T), 1 for real tokens, 0 for padding;
        token_type_ids: (B, T) segment ids, for models with token-type embeddings (None: all 0)."""
        self.check_input_ids(input_ids)
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, "
                             f"input_ids has {tuple(input_ids.shape)}: they must match")
        batch = input_ids.shape[0]
        x = self.tok_emb(input_ids)
        if self.type_emb is not None:         # BERT: which segment (sentence A or B) each token is in
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            else:
                self.check_token_types(token_type_ids, input_ids)
            x = x + self.type_emb(token_type_ids)
        elif token_type_ids is not None:
            self.check_token_types(token_type_ids, input_ids)

        real_positions = None
        if self.prompt is not None:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            x, attention_mask, real_positions = self.prompt(x, attention_mask)

        prefix = self.prefix(batch) if self.prefix is not None else None
        n_prefix = prefix[0][0].shape[1] if prefix is not None else 0
        length = x.shape[1]
        if n_prefix + length > self.config.max_len:
            raise ValueError(
                f"sequence of {length} positions + prefix of {n_prefix} = {n_prefix + length} exceeds "
                f"max_len={self.config.max_len}; shorten the input or the prompt"
            )
        if attention_mask is not None and not bool(attention_mask.all()):
            # Number only the real tokens, so a left-padded sentence gets the same positions as a
            # right-padded one (padding's own positions are never looked at).
            positions = n_prefix + (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        else:
            positions = torch.arange(n_prefix, n_prefix + length, device=input_ids.device)
        rotary = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        else:                                 # rotary: the positions turn queries and keys in attention
            rotary = rotary_angles(positions, self.config.d_head, self.config.rope_theta, x.dtype)
        if self.ln_emb is not None:
            x = self.ln_emb(x)
        x = self.emb_dropout(x)

        has_padding = attention_mask is not None and not bool(attention_mask.all())
        if has_padding or n_prefix:
            real = attention_mask.bool() if attention_mask is not None else \
                torch.ones(batch, length, dtype=torch.bool, device=x.device)
            allowed, is_causal = self.attention_pattern(real, n_prefix, self.config.causal), False
        else:
            allowed, is_causal = None, self.config.causal

        hidden_states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, is_causal, prefix[i] if prefix is not None else None, rotary)
            hidden_states.append(x)
        if self.ln_f is not None:
            x = self.ln_f(x)

        if real_positions is not None:   # drop the prompt positions: one output per input token
            x = x[:, real_positions]
            hidden_states = [h[:, real_positions] for h in hidden_states]
            attention_mask = attention_mask[:, real_positions]
        if self.head is not None:
            logits = self.head(x, attention_mask)
        elif self.lm_head is not None:
            logits = self.lm_head(x if self.lm_transform is None else self.lm_transform(x))
        else:
            raise ValueError("this model has neither a task head nor an LM head")
        return TransformerOutput(logits, tuple(hidden_states) if output_hidden_states else None)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count; shared (tied) tensors are counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
