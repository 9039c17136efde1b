"""P-tuning (Liu et al. 2021, "GPT Understands, Too") and prompt tuning (Lester et al. 2021, "The
Power of Scale for Parameter-Efficient Prompt Tuning").

Freeze the whole model and learn a few continuous "prompt" vectors h_0..h_{m-1} that are inserted
into the input embedding sequence, around the embedded input e(x):

    [h_0, ..., h_{i-1}, e(x_1), ..., e(x_n), h_i, ..., h_{m-1}]   ->   frozen Transformer

P-tuning produces the h_i with a prompt encoder, h = MLP(BiLSTM([p_0, ..., p_{m-1}])), so that the
prompts depend on each other; encoder="mlp" drops the LSTM. encoder=None trains the vectors p_i
directly: that is prompt tuning (Lester et al.), initialised from embeddings of random vocabulary words.
Only the input layer changes (unlike prefix-tuning / P-tuning v2, which touch every layer).

What apply freezes: every pre-trained weight. Trainable: the prompt vectors (with their encoder) and
the task head; what an earlier method added (a LoRA adapter, a prefix) keeps its state. A second
prompt is refused (the model has one prompt hook). In a causal model the tokens only see what is in
front of them, so prompts placed after the input have no effect: all of them there is refused, some
of them there is warned about.
"""

from __future__ import annotations

import numbers
import warnings

import torch
import torch.nn as nn

from ..validate import choice, int_in_range, positive_int
from .freeze import freeze_all_but_head

ENCODERS = ("lstm", "mlp", None)


class PromptEncoder(nn.Module):
    """The ``model.prompt`` hook: inserts ``length`` prompt vectors before and after the input.

    ``before`` vectors go in front of the input and ``after`` behind it (behind the padded batch, so
    every sequence of a batch has its real tokens at the same positions). In a causal model a token
    only sees the prompts in front of it; the ones behind matter for bidirectional models.
    """

    def __init__(self, d_model: int, length: int, encoder: str | None = "lstm",
                 hidden: int | None = None, before: int | None = None, init: torch.Tensor | None = None):
        super().__init__()
        self.length, self.encoder = length, encoder
        self.before = length if before is None else before
        self.after = length - self.before
        start = init.detach().clone() if init is not None else torch.randn(length, d_model)
        self.embedding = nn.Parameter(start)                     # p_0 .. p_{m-1}: (length, d_model)
        self.lstm, self.mlp = None, None
        if encoder == "lstm":       # the paper: 2-layer bidirectional LSTM, then a 2-layer ReLU MLP
            self.hidden = hidden if hidden is not None else max(1, d_model // 2)
            self.lstm = nn.LSTM(d_model, self.hidden, num_layers=2, bidirectional=True, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(2 * self.hidden, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        elif encoder == "mlp":
            self.hidden = hidden if hidden is not None else d_model
            self.mlp = nn.Sequential(nn.Linear(d_model, self.hidden), nn.ReLU(), nn.Linear(self.hidden, d_model))
        else:
            self.hidden = None

    def prompt_embeddings(self) -> torch.Tensor:
        """h_0 .. h_{m-1}: (length, d_model), what actually enters the Transformer."""
        h = self.embedding
        if self.lstm is not None:
            h = self.lstm(h.unsqueeze(0))[0].squeeze(0)          # each h_i now sees all p_j
        if self.mlp is not None:
            h = self.mlp(h)
        return h

    def forward(self, embeddings: torch.Tensor, attention_mask: torch.Tensor):
        """(B, T, d), (B, T) -> (B, length + T, d), (B, length + T), positions of the T real tokens."""
        batch, length = embeddings.shape[:2]
        prompts = self.prompt_embeddings().to(embeddings.dtype).unsqueeze(0).expand(batch, -1, -1)
        x = torch.cat([prompts[:, :self.before], embeddings, prompts[:, self.before:]], dim=1)
        ones = attention_mask.new_ones(batch, self.length)      # prompts are never padding
        mask = torch.cat([ones[:, :self.before], attention_mask, ones[:, self.before:]], dim=1)
        real_positions = torch.arange(self.before, self.before + length, device=embeddings.device)
        return x, mask, real_positions

    def extra_repr(self) -> str:
        return f"length={self.length}, encoder={self.encoder!r}, before={self.before}, after={self.after}"


def _check_positions(positions, length: int) -> int | None:
    """(before, after) -> before; None -> None (every prompt in front)."""
    if positions is None:
        return None
    if (not isinstance(positions, (tuple, list)) or len(positions) != 2
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in positions)):
        raise ValueError(f"positions must be (before, after), two integers >= 0, got {positions!r}")
    before, after = (int(n) for n in positions)
    if before + after != length:
        raise ValueError(f"positions={(before, after)} puts {before + after} prompt vectors, but "
                         f"length={length}: before + after must equal length")
    return before


def _check_visible(before: int, length: int, causal: bool) -> None:
    """In a causal model a prompt after the input is seen by no real token: no effect, no gradient."""
    if not causal or before == length:
        return
    if before == 0:
        raise ValueError(f"positions=(0, {length}) puts every prompt vector after the input, where a causal "
                         "model's tokens cannot see it (each token attends only to what is in front of it): "
                         "the prompt would have no effect and never train. Put some or all of it in "
                         f"front, e.g. positions=({length}, 0) or the default positions=None")
    warnings.warn(f"positions=({before}, {length - before}): in a causal model the {length - before} prompt "
                  "vector(s) after the input are seen by no real token, so they have no effect on the "
                  f"output; only the {before} in front count", UserWarning, stacklevel=3)


def apply(model, length: int = 8, encoder: str | None = "lstm", positions=None, hidden: int | None = None):
    """Insert ``length`` trainable prompt vectors into the input; freeze the pre-trained weights.

    positions: None puts all prompts in front; (before, after) with before + after = length gives the
    template h_0..h_{before-1}, e(x), h_before..h_{length-1}, e.g. (4, 4) for a bidirectional model.
    hidden: LSTM size per direction (default d_model // 2) or MLP width (default d_model).
    The prompt, its encoder and the task head train; an earlier method's additions keep their state.
    """
    config = model.config
    if model.prompt is not None:
        raise ValueError("model.prompt is already set (a prompt encoder is attached); apply P-tuning "
                         "or prompt tuning only once")
    taken = getattr(model.prefix, "length", 0) if model.prefix is not None else 0
    length = int_in_range("prompt length", length, 1, config.max_len - 1 - taken,
                          hint=f"length + at least one token{' + the prefix' if taken else ''} must fit "
                               f"in max_len={config.max_len}")
    encoder = choice("encoder", encoder, ENCODERS, hint="None = prompt tuning")
    hidden = positive_int("hidden", hidden, allow_none=True)
    before = _check_positions(positions, length)
    _check_visible(length if before is None else before, length, config.causal)

    reference = model.tok_emb.weight                       # same device and dtype as the model
    init = None
    if encoder is None:            # prompt tuning: start from the embeddings of random vocabulary words
        words = torch.randint(0, config.vocab_size, (length,))
        init = reference[words.to(reference.device)]
    prompt = PromptEncoder(config.d_model, length, encoder, hidden, before, init).to(
        device=reference.device, dtype=reference.dtype)
    freeze_all_but_head(model)
    model.prompt = prompt.requires_grad_(True)
    return model


def prompt_embeddings(model) -> torch.Tensor:
    """The prompt vectors the model currently inserts, after the encoder: (length, d_model)."""
    if not isinstance(model.prompt, PromptEncoder):
        raise ValueError("this model has no prompt encoder: call ptuning.apply(model) first")
    with torch.no_grad():
        return model.prompt.prompt_embeddings().detach().clone()
