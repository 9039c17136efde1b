"""ModelConfig: every number that fixes the shape of a minift Transformer.

One dataclass, validated on creation, so that a typo (d_model not divisible by n_heads, a negative
dropout) fails at once with a message that names the bad value instead of deep inside a matmul.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

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
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"ModelConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(allowed n_heads: divisors of {self.d_model})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ModelConfig.activation={self.activation!r} is unknown; allowed: {ACTIVATIONS}")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"ModelConfig.attention={self.attention!r} is unknown; allowed: {ATTENTION_IMPLS}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"ModelConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")

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
