"""The minift Transformer: small enough to read in one sitting, shaped like GPT-2 / BERT.

    tokens -> token embedding + position embedding -> dropout
           -> n_layers x Block( x + Attention(LN(x)) ; x + FFN(LN(x)) )     (pre-LayerNorm)
           -> final LayerNorm -> output layer (LM head, or a task head after SFT)

Two hook points let fine-tuning methods plug in without monkey-patching:

* ``model.prefix``: a module called as ``prefix(batch_size)`` that returns, for every layer, a pair
  (keys, values) of shape (batch, P, d_model). Attention treats them exactly like a cache of past keys
  and values: every position may attend to them, padding never masks them, and the real tokens'
  positions start at P. Prefix-tuning and P-tuning v2 use this.
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
ATTENTION_TARGETS = ("q", "k", "v", "o")   # block.attn.q ... block.attn.o, each d -> d
FFN_TARGETS = ("w1", "w2")                 # block.ffn.w1: d -> d_ff, block.ffn.w2: d_ff -> d
TARGETS = ATTENTION_TARGETS + FFN_TARGETS


def target_parent(block: "Block", target: str) -> nn.Module:
    """The sub-module of ``block`` that owns the linear called ``target`` (its attention or its FFN)."""
    if target in ATTENTION_TARGETS:
        return block.attn
    if target in FFN_TARGETS:
        return block.ffn
    raise ValueError(f"unknown target {target!r}; valid targets: {TARGETS} "
                     "(q, k, v, o: attention projections; w1, w2: FFN layers)")


def target_linear(block: "Block", target: str) -> nn.Module:
    """The linear layer (or the LoRA layer wrapping it) that ``target`` names in ``block``."""
    return getattr(target_parent(block, target), target)


def target_shape(config: ModelConfig, target: str) -> tuple[int, int]:
    """(in_features, out_features) of the linear that ``target`` names, from the config alone."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid targets: {TARGETS}")
    d, d_ff = config.d_model, config.d_ff
    return {"w1": (d, d_ff), "w2": (d_ff, d)}.get(target, (d, d))


@dataclass
class TransformerOutput:
    """What forward() returns. hidden_states[0] is the embedding output, hidden_states[i] block i's."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, o projections (the LoRA target names)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.d_model
        self.n_heads = config.n_heads
        self.d_head = config.d_head
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.dropout = config.dropout
        self.implementation = config.attention

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, heads, T, d_head)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x, allowed=None, is_causal=False, prefix=None):
        """x: (B, T, d). allowed: bool (B, 1, T, P + T), True where a query may look at a key, or
        None with is_causal saying whether to apply the plain causal mask. prefix: (keys, values),
        each (B, P, d), put in front of this layer's own keys and values."""
        q, k, v = self.q(x), self.k(x), self.v(x)
        if prefix is not None:
            prefix_keys, prefix_values = prefix
            k = torch.cat([prefix_keys, k], dim=1)
            v = torch.cat([prefix_values, v], dim=1)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
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
    """Position-wise FFN: w2(act(w1(x))). w1: d -> d_ff, w2: d_ff -> d (weights stored as (out, in))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.d_ff)
        self.w2 = nn.Linear(config.d_ff, config.d_model)
        self.activation = config.activation
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.w1(x)
        if self.activation == "gelu":
            h = F.gelu(h)
        elif self.activation == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        else:
            h = F.relu(h)
        return self.dropout(self.w2(h))


class Block(nn.Module):
    """One pre-LayerNorm Transformer layer: attention then FFN, each added back to the residual."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.ln2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, allowed=None, is_causal=False, prefix=None):
        x = x + self.resid_dropout(self.attn(self.ln1(x), allowed, is_causal, prefix))
        return x + self.ffn(self.ln2(x))


class Transformer(nn.Module):
    """A GPT-style (causal) or BERT-style (bidirectional) Transformer with an LM head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_len, config.d_model)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
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

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False) -> TransformerOutput:
        """input_ids: (B, T) token ids; attention_mask: (B, T), 1 for real tokens, 0 for padding."""
        self.check_input_ids(input_ids)
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, "
                             f"input_ids has {tuple(input_ids.shape)}: they must match")
        batch = input_ids.shape[0]
        x = self.tok_emb(input_ids)

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
        x = self.emb_dropout(x + self.pos_emb(positions))

        has_padding = attention_mask is not None and not bool(attention_mask.all())
        if has_padding or n_prefix:
            real = attention_mask.bool() if attention_mask is not None else \
                torch.ones(batch, length, dtype=torch.bool, device=x.device)
            allowed, is_causal = self.attention_pattern(real, n_prefix, self.config.causal), False
        else:
            allowed, is_causal = None, self.config.causal

        hidden_states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, is_causal, prefix[i] if prefix is not None else None)
            hidden_states.append(x)
        x = self.ln_f(x)

        if real_positions is not None:   # drop the prompt positions: one output per input token
            x = x[:, real_positions]
            hidden_states = [h[:, real_positions] for h in hidden_states]
            attention_mask = attention_mask[:, real_positions]
        if self.head is not None:
            logits = self.head(x, attention_mask)
        elif self.lm_head is not None:
            logits = self.lm_head(x)
        else:
            raise ValueError("this model has neither a task head nor an LM head")
        return TransformerOutput(logits, tuple(hidden_states) if output_hidden_states else None)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count; shared (tied) tensors are counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
