"""ModelConfig: every number that fixes the shape of a minift Transformer.

One dataclass, validated on creation, so that a typo (d_model not divisible by n_heads, a negative
dropout, causal="no") fails at once with a message that names the bad value instead of deep inside a
matmul - or, worse, silently: "no" is a true value in Python.

The first block of fields is the GPT-2-shaped model every chapter uses. The second block (chapter 10)
holds the options real models need - BERT's post-LayerNorm blocks and token types, LLaMA's RMSNorm,
rotary positions, gated (SwiGLU) FFN, grouped-query attention and bias-free linears. Their defaults
are today's behaviour, so a config that does not mention them builds exactly the model it always did
(same parameters, same random initialisation, same outputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .validate import boolean, choice, positive_int, positive_number, probability

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
ATTENTION_IMPLS = ("sdpa", "explicit")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("learned", "rotary")
FFNS = ("mlp", "gated")


@dataclass
class ModelConfig:
    """Shape and behaviour of a Transformer.

    d_ff defaults to 4 * d_model, the ratio of GPT-2 and BERT (and of the article's 8 d^2 FFN count).
    ``causal=True`` gives a GPT-style decoder, ``causal=False`` a BERT-style bidirectional encoder.
    ``attention="explicit"`` computes softmax(QK^T / sqrt(d_head)) V step by step (for reading);
    ``"sdpa"`` calls torch's fused kernel, which gives the same numbers within float tolerance.

    Options for real architectures (defaults: GPT-2's choices, i.e. the minift model of chapters 00-09):

    * ``norm``: "layernorm" (GPT-2, BERT) or "rmsnorm" (LLaMA: no mean subtraction, no bias).
      ``layer_norm_eps`` is the epsilon of every norm, whichever kind.
    * ``norm_position``: "pre" (GPT-2, LLaMA: x + f(norm(x)), and a final norm) or "post" (BERT:
      norm(x + f(x)), a norm on the embeddings, no final norm).
    * ``positions``: "learned" (a max_len x d table added to the embeddings) or "rotary" (RoPE: queries
      and keys are rotated by their position inside attention; no table). ``rope_theta``: RoPE's base.
    * ``ffn``: "mlp" (w2(act(w1 x))) or "gated" (w2(act(w1 x) * w3 x); with activation="silu" this is
      LLaMA's SwiGLU, w1 the gate, w3 the up projection, w2 the down projection).
    * ``n_kv_heads``: grouped-query attention, fewer key/value heads than query heads (None: n_heads,
      plain multi-head attention). Each key/value head serves n_heads / n_kv_heads query heads.
    * ``bias``: whether the block's linears (q, k, v, o, w1, w2, w3) have biases (LLaMA: no).
    * ``n_token_types``: BERT's segment ("token type") embeddings, added to the token embeddings
      (0: none; BERT: 2).
    * ``lm_head_transform``: BERT's masked-LM head, dense d -> d, activation, norm, before the output
      layer; ``lm_head_bias``: a bias on the output layer (BERT's decoder has one).
    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int | None = None
    max_len: int = 128
    causal: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5
    attention: str = "sdpa"
    # options for real architectures (chapter 10); the defaults are the model above
    norm: str = "layernorm"
    norm_position: str = "pre"
    positions: str = "learned"
    rope_theta: float = 10000.0
    ffn: str = "mlp"
    n_kv_heads: int | None = None
    bias: bool = True
    n_token_types: int = 0
    lm_head_transform: bool = False
    lm_head_bias: bool = False

    def __post_init__(self):
        # Validated values are stored back: a numpy integer becomes an int, so the config stays JSON-able.
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len"):
            setattr(self, name, positive_int(f"ModelConfig.{name}", getattr(self, name)))
        self.d_ff = positive_int("ModelConfig.d_ff", self.d_ff, allow_none=True)
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"ModelConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(allowed n_heads: divisors of {self.d_model})"
            )
        # "no" or 0 would be read as a truth value: causal="no" is truthy and would build a decoder
        self.causal = boolean("ModelConfig.causal", self.causal)
        self.tie_embeddings = boolean("ModelConfig.tie_embeddings", self.tie_embeddings)
        self.dropout = probability("ModelConfig.dropout", self.dropout)
        self.activation = choice("ModelConfig.activation", self.activation, ACTIVATIONS)
        self.attention = choice("ModelConfig.attention", self.attention, ATTENTION_IMPLS)
        self.layer_norm_eps = positive_number("ModelConfig.layer_norm_eps", self.layer_norm_eps)

        self.norm = choice("ModelConfig.norm", self.norm, NORMS)
        self.norm_position = choice("ModelConfig.norm_position", self.norm_position, NORM_POSITIONS)
        self.positions = choice("ModelConfig.positions", self.positions, POSITIONS)
        self.rope_theta = positive_number("ModelConfig.rope_theta", self.rope_theta)
        if self.positions == "rotary" and self.d_head % 2:
            raise ValueError(f"ModelConfig.positions='rotary' rotates pairs of dimensions, so d_head = "
                             f"d_model / n_heads must be even; got d_head={self.d_head}")
        self.ffn = choice("ModelConfig.ffn", self.ffn, FFNS, hint="'gated' with activation='silu' is SwiGLU")
        self.n_kv_heads = positive_int("ModelConfig.n_kv_heads", self.n_kv_heads, allow_none=True,
                                       hint="None: n_heads")
        # None is kept (not replaced by n_heads), so dataclasses.replace(config, n_heads=...) still means MHA
        if self.n_heads % self.kv_heads != 0:
            raise ValueError(f"ModelConfig.n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} "
                             "(each key/value head serves the same number of query heads)")
        self.bias = boolean("ModelConfig.bias", self.bias)
        self.n_token_types = positive_int("ModelConfig.n_token_types", self.n_token_types, minimum=0,
                                          hint="0: no token-type embeddings; BERT: 2")
        self.lm_head_transform = boolean("ModelConfig.lm_head_transform", self.lm_head_transform)
        self.lm_head_bias = boolean("ModelConfig.lm_head_bias", self.lm_head_bias)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads: n_kv_heads, or n_heads when it is None (no grouped-query attention)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def d_kv(self) -> int:
        """Width of the keys and of the values: kv_heads * d_head (d_model without grouped-query attention)."""
        return self.kv_heads * self.d_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**values)

