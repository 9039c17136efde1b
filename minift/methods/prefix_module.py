"""The machinery prefix-tuning and P-tuning v2 share: trainable keys and values for every layer.

A PrefixKeyValues module plugs into the model's ``model.prefix`` hook. Called with a batch size, it
returns for each layer l a pair (K_l, V_l), each (batch, P, d_model), that attention puts in front of
the layer's own keys and values:

    head_l(x) = softmax(Q [K_l ; W_k x]^T / sqrt(d_head)) [V_l ; W_v x]

Every real token can attend to the P prefix positions (padding never masks them), so the prefix
steers every layer without changing any pre-trained weight.

Two ways to hold the numbers:

* directly, a table of shape (n_layers, 2, P, d_model) (P-tuning v2's default);
* reparameterised, as in Li & Liang (2021): a small embedding P' (P, d_model) goes through an MLP
  Linear(d, hidden) -> tanh -> Linear(hidden, n_layers * 2 * d) that produces all layers' K and V.
  The paper found that optimising the table directly was unstable; the MLP is only a training aid,
  and afterwards ``freeze_to_table`` keeps the computed table and drops the MLP.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..validate import boolean, int_in_range, positive_int
from .freeze import freeze_all_but_head

# A stored table starts as N(0, INIT_STD^2), independently for every layer, key and value. A middle
# ground: P-tuning v2's code uses nn.Embedding's N(0, 1); with much smaller values all prefix positions
# look alike at the start. (Li & Liang also initialise from activations of real words.)
INIT_STD = 0.5


class PrefixKeyValues(nn.Module):
    """Per-layer prefix keys and values for ``model.prefix``, stored or reparameterised."""

    def __init__(self, n_layers: int, d_model: int, length: int, reparam: bool = False,
                 hidden: int | None = None, method: str = "prefix-tuning"):
        super().__init__()
        self.n_layers, self.d_model, self.length = n_layers, d_model, length
        self.method = method                     # who attached it, for error messages
        self.hidden = hidden if hidden is not None else d_model
        if reparam:
            self.register_parameter("table", None)
            self.embedding = nn.Embedding(length, d_model)                    # P'
            self.mlp = nn.Sequential(nn.Linear(d_model, self.hidden), nn.Tanh(),
                                     nn.Linear(self.hidden, n_layers * 2 * d_model))
        else:
            self.table = nn.Parameter(torch.randn(n_layers, 2, length, d_model) * INIT_STD)
            self.embedding, self.mlp = None, None

    @property
    def reparam(self) -> bool:
        return self.mlp is not None

    def key_value_table(self) -> torch.Tensor:
        """All prefix keys and values: (n_layers, 2, P, d_model); [:, 0] keys, [:, 1] values."""
        if not self.reparam:
            return self.table
        flat = self.mlp(self.embedding.weight)                                 # (P, L * 2 * d)
        return flat.view(self.length, self.n_layers, 2, self.d_model).permute(1, 2, 0, 3)

    def forward(self, batch_size: int):
        table = self.key_value_table()
        return [(table[i, 0].expand(batch_size, -1, -1), table[i, 1].expand(batch_size, -1, -1))
                for i in range(self.n_layers)]

    @torch.no_grad()
    def freeze_to_table(self) -> None:
        """Replace the reparameterisation by the table it computes now (same outputs, fewer params)."""
        if self.reparam:
            table = self.key_value_table().detach().clone().contiguous()
            trainable = self.embedding.weight.requires_grad
            self.embedding, self.mlp = None, None
            self.table = nn.Parameter(table, requires_grad=trainable)

    def extra_repr(self) -> str:
        return (f"method={self.method!r}, length={self.length}, n_layers={self.n_layers}, "
                f"reparam={self.reparam}" + (f", hidden={self.hidden}" if self.reparam else ""))


def positions_taken(model) -> int:
    """How many of max_len positions the prompt hook (P-tuning v1) already adds, if any."""
    return getattr(model.prompt, "length", 0) if model.prompt is not None else 0


def check_length(model, length, method: str) -> int:
    """length must be a positive integer and leave room for at least one real token."""
    max_len = model.config.max_len
    taken = positions_taken(model)
    room = max_len - 1 - taken
    why = f"length + at least one token must fit in max_len={max_len}"
    if taken:
        why += f", and a prompt of {taken} is already attached"
    return int_in_range(f"{method} length", length, 1, room, hint=why)


def add_prefix(model, length: int, reparam: bool, hidden, method: str):
    """Validate, attach a PrefixKeyValues to ``model.prefix``, and make it trainable.

    Freezes the pre-trained weights; keeps the task head and what an earlier method added (a LoRA
    adapter, an input prompt) as they were. A second prefix is refused: the model has one prefix hook,
    and replacing a prefix would silently throw away the first one (and its training).
    """
    if model.prefix is not None:
        other = getattr(model.prefix, "method", type(model.prefix).__name__)
        raise ValueError(f"model.prefix is already set (by {other}); {method} would replace it. "
                         "Prefix-tuning and P-tuning v2 both use this one hook: apply only one of them, "
                         "once (LoRA, P-tuning v1 and prompt tuning combine with either)")
    length = check_length(model, length, method)
    reparam = boolean("reparam", reparam)
    hidden = positive_int("hidden", hidden, allow_none=True, hint="None: d_model")
    config = model.config
    reference = model.tok_emb.weight                       # same device and dtype as the model
    module = PrefixKeyValues(config.n_layers, config.d_kv, length, reparam, hidden,
                             method).to(device=reference.device, dtype=reference.dtype)
    freeze_all_but_head(model)
    model.prefix = module.requires_grad_(True)
    return model


def prefix_module(model) -> PrefixKeyValues:
    """The model's PrefixKeyValues, or a ValueError saying that there is none."""
    if not isinstance(model.prefix, PrefixKeyValues):
        raise ValueError("this model has no prefix: call prefix.apply(model) or ptuning_v2.apply(model) first")
    return model.prefix


def key_values(model):
    """For each layer, (keys, values), each (length, d_model): the prefix after reparameterisation."""
    table = prefix_module(model).key_value_table().detach()
    return [(table[i, 0].clone(), table[i, 1].clone()) for i in range(table.shape[0])]
