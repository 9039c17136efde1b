"""Torch helpers that several chapters' checkers share: tiny models, padding masks, tensor comparison,
a seeded call and watches on a model. They live here, not in framework.py, because the framework knows
nothing of models (chapter 00 checks plain numbers); one copy each keeps the chapters' checks alike.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

ATOL, RTOL = 1e-5, 1e-4


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL, rtol: float = RTOL) -> bool:
    """Same shape and equal up to float32 round-off. Compared in float64, so that a student's float32
    answer and a float64 reference meet on equal terms."""
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol))


def padding_mask(batch: int, length: int, pad: dict) -> torch.Tensor:
    """(B, T) of ones, with row i's last pad[i] positions 0 (right padding): the checkers' padded rows,
    written as {row: how many pads}."""
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, n in pad.items():
        mask[row, length - n:] = 0
    return mask


def tiny_model(seed: int, causal: bool, d_model: int = 12, n_layers: int = 2, n_heads: int = 3, vocab: int = 23,
               max_len: int = 24, num_tags: int | None = None):
    """A minift Transformer with O(0.3) random weights (LayerNorm weights near 1), so that every mistake
    changes the output visibly, built without touching the caller's random state. With ``num_tags`` it
    also gets a token head (its LM head is kept, so that using it instead of the task head gives logits
    of another width)."""
    from minift.config import ModelConfig
    from minift.heads import TokenClassificationHead
    from minift.model import Transformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                        d_ff=2 * d_model, max_len=max_len, causal=causal, dropout=0.0,
                                        attention="explicit"))
        if num_tags is not None:
            model.head = TokenClassificationHead(d_model, num_tags)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "ln" in name and name.endswith("weight"):
                    parameter.copy_(1.0 + 0.2 * torch.randn_like(parameter))
                else:
                    parameter.copy_(0.3 * torch.randn_like(parameter))
    return model


class FixedPrefix(nn.Module):
    """A ``model.prefix`` hook with given per-layer (keys, values), each (P, d), expanded to the batch:
    what prefix.apply or ptuning_v2.apply attach, with numbers the checker chose (not the student's)."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = [(k, v) for k, v in pairs]
        self.length = self.pairs[0][0].shape[0]

    def forward(self, batch_size):
        return [(k.expand(batch_size, -1, -1), v.expand(batch_size, -1, -1)) for k, v in self.pairs]


def seeded(seed: int, fn, *args, **kwargs):
    """fn(*args, **kwargs) with the global torch generator seeded (dropout masks, initial weights), and
    the caller's random state restored afterwards: the student's code and the reference draw the same
    numbers, and the notebook's own stream is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(*args, **kwargs)


def state_copy(model) -> dict:
    """A copy of the model's state_dict, taken before the student's code runs, for same_state."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(before: dict, model) -> bool:
    """The model still has exactly the tensors of ``before`` (a state_copy): same names, equal values."""
    after = model.state_dict()
    return set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


@contextlib.contextmanager
def watch_model_calls(model):
    """Yield a list that gets one entry per call of model(...) (its forward) inside the block: a student's
    forward pass that delegates to the model, with a hook attached for the call, writes none of its own."""
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


__all__ = ["ATOL", "RTOL", "close", "padding_mask", "tiny_model", "FixedPrefix", "seeded", "state_copy",
           "same_state", "watch_model_calls"]
