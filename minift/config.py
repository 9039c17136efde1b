"""ModelConfig: every number that fixes the shape of a minift Transformer.

One dataclass, validated on creation, so that a typo (d_model not divisible by n_heads, a negative
dropout, causal="no") fails at once with a message that names the bad value instead of deep inside a
matmul - or, worse, silently: "no" is a true value in Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .validate import boolean, choice, positive_int, positive_number, probability

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
ATTENTION_IMPLS = ("sdpa", "explicit")


@dataclass
class ModelConfig:
    """Shape and behaviour of a Transformer.

    d_ff defaults to 4 * d_model, the ratio of GPT-2 and BERT (and of the article's 8 d^2 FFN count).
    ``causal=True`` gives a GPT-style decoder, ``causal=False`` a BERT-style bidirectional encoder.
    ``attention="explicit"`` computes softmax(QK^T / sqrt(d_head)) V step by step (for reading);
    ``"sdpa"`` calls torch's fused kernel, which gives the same numbers within float tolerance.
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

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**values)
