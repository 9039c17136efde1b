"""Task heads, and SFT's first step: turn a source model into a target model.

The source model's output layer (the LM head) predicts the source "labels" - the next or the masked
word - so it is of no use for a new task. The target model copies everything else and gets a new,
randomly initialised output layer sized for the target classes (article section 1.1).
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn as nn

from .validate import choice, positive_int, probability

POOLING = ("cls", "last", "mean")


class SequenceClassificationHead(nn.Module):
    """One label per sequence: pool the final hidden states to one vector, then a linear layer.

    pool="cls": the first real token (BERT's [CLS]); "last": the last real token (GPT-style, the only
    position that has seen the whole sentence in a causal model); "mean": average of real tokens.
    "Real" follows the attention mask, so right- and left-padded batches pool the same tokens.
    """

    def __init__(self, d_model: int, num_classes: int, pool: str = "cls", dropout: float = 0.0):
        super().__init__()
        self.pool = choice("pool", pool, POOLING)
        num_classes = positive_int("num_classes", num_classes, minimum=2)
        self.dropout = nn.Dropout(probability("dropout", dropout))
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, hidden, attention_mask=None):
        if attention_mask is None:
            pooled = {"cls": hidden[:, 0], "last": hidden[:, -1], "mean": hidden.mean(dim=1)}[self.pool]
        elif self.pool == "mean":
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        else:
            index = real_token_index(attention_mask, "first" if self.pool == "cls" else "last")
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
        return self.classifier(self.dropout(pooled))


def real_token_index(attention_mask: torch.Tensor, which: str = "last") -> torch.Tensor:
    """(B,) index of the first or last real token (mask 1) of each row, wherever the padding is.

    Counting real tokens (mask.sum() - 1) is right only for right padding: with padding on the left
    it points into the middle of the sentence. The largest index whose mask is 1 is right for both.
    """
    length = attention_mask.shape[1]
    index = torch.arange(length, device=attention_mask.device)
    real = attention_mask.bool()
    if which == "last":
        return torch.where(real, index, -1).amax(dim=1).clamp(min=0)
    return torch.where(real, index, length).amin(dim=1).clamp(max=length - 1)


class TokenClassificationHead(nn.Module):
    """One label per token (tagging, e.g. BIO entity types): a linear layer on every position."""

    def __init__(self, d_model: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        num_classes = positive_int("num_classes", num_classes, minimum=2)
        self.dropout = nn.Dropout(probability("dropout", dropout))
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, hidden, attention_mask=None):
        return self.classifier(self.dropout(hidden))


TASKS = ("sequence", "token")


def make_target_model(source, task: str = "sequence", num_classes: int = 2, pool: str | None = None,
                      dropout: float = 0.0, seed: int | None = None):
    """Copy every parameter of ``source`` except its output layer, and add a new random task head.

    pool (sequence heads): None picks "last" for a causal model - its first position ([CLS]) sees
    only itself, so it cannot summarise the sentence - and "cls" for a bidirectional encoder.
    The source model is left untouched (the copy shares no tensors with it). ``seed`` makes the head's
    random initialisation reproducible without touching the global random state.
    """
    task = choice("task", task, TASKS)
    seed = positive_int("seed", seed, minimum=0, allow_none=True)
    target = copy.deepcopy(source)
    target.lm_head = None      # the source output layer is not copied (with tied embeddings the
    target.head = None         # embedding table itself is kept: it is an input layer too)
    target.lm_transform = None # a BERT-style LM head's transform belongs to the output layer too
    d_model = source.config.d_model
    if pool is None:
        pool = "last" if source.config.causal else "cls"
    # with a seed, the head draws from a private random stream and the global one is left untouched
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        if task == "sequence":
            head = SequenceClassificationHead(d_model, num_classes, pool, dropout)
        else:
            head = TokenClassificationHead(d_model, num_classes, dropout)
        nn.init.normal_(head.classifier.weight, mean=0.0, std=0.02)
        nn.init.zeros_(head.classifier.bias)
    target.head = head.to(next(source.parameters()).device)
    return target
