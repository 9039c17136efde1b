"""Data containers (Split, Task) and the language-model splits built from raw text.

A Split is what fit() and evaluate() consume: right-padded token ids, an attention mask and labels,
with IGNORE_INDEX (-100) wherever a position must not count (special tokens, padding, prompts).
causal_lm_split and masked_lm_split turn sentences (e.g. the source corpus) into the two pre-training
objectives: predict the next word, or fill in masked words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..validate import boolean, positive_int, positive_number
from .tokenizer import SPECIAL_TOKENS, get_tokenizer

# The label of a position that no loss or metric counts. It is PyTorch's cross-entropy default, and
# the one definition in minift: everything else imports it from here.
IGNORE_INDEX = -100


@dataclass
class Split:
    """One split of a task: tokenised, right-padded with [PAD], labels -100 where ignored."""

    input_ids: torch.Tensor        # (N, T) long
    attention_mask: torch.Tensor   # (N, T) long, 1 = real token
    labels: torch.Tensor           # (N,) per sequence, or (N, T) per token / next token
    texts: list

    def __post_init__(self):
        n = self.input_ids.shape[0]
        if n == 0:
            raise ValueError("this data set has 0 examples")
        if (self.attention_mask.shape != self.input_ids.shape or self.labels.shape[0] != n
                or len(self.texts) != n):
            raise ValueError("input_ids, attention_mask, labels and texts must have the same length")

    def __len__(self):
        return self.input_ids.shape[0]

    def __repr__(self):
        return (f"Split({len(self)} examples, input_ids {tuple(self.input_ids.shape)}, "
                f"labels {tuple(self.labels.shape)})")

    def __getitem__(self, idx) -> Split:
        """A Split of the chosen examples (an int keeps a batch dimension of 1)."""
        positions = range(len(self))
        if isinstance(idx, int):
            chosen = [positions[idx]]
        elif isinstance(idx, slice):
            chosen = list(positions[idx])
        else:
            idx = torch.as_tensor(idx)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().flatten()
            chosen = [positions[int(i)] for i in idx.flatten()]
        rows = torch.tensor(chosen, dtype=torch.long, device=self.input_ids.device)
        return Split(self.input_ids[rows], self.attention_mask[rows], self.labels[rows],
                     [self.texts[i] for i in chosen])

    def to(self, device) -> Split:
        return Split(self.input_ids.to(device), self.attention_mask.to(device),
                     self.labels.to(device), self.texts)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0):
        """Yield dicts of tensors; the order is fixed by the seed when shuffling."""
        batch_size = positive_int("batch_size", batch_size)
        if shuffle:
            order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(len(self))
        order = order.to(self.input_ids.device)
        for start in range(0, len(self), batch_size):
            rows = order[start:start + batch_size]
            yield {"input_ids": self.input_ids[rows], "attention_mask": self.attention_mask[rows],
                   "labels": self.labels[rows]}

    def subset(self, n: int, seed: int = 0) -> Split:
        """n random examples. With one label per sequence the classes take turns, so the subset is
        balanced; subset(100) is always the start of subset(1000) for the same seed."""
        n = positive_int("n", n)
        if n > len(self):
            raise ValueError(f"n={n} is larger than the split ({len(self)} examples)")
        order = random.Random(seed).sample(range(len(self)), len(self))     # a shuffled order
        if self.labels.dim() != 1:
            return self[order[:n]]
        labels, by_class = self.labels.tolist(), {}
        for i in order:
            by_class.setdefault(labels[i], []).append(i)
        queues = [by_class[label] for label in sorted(by_class)]
        chosen = []
        while len(chosen) < n:
            for queue in queues:
                if queue and len(chosen) < n:
                    chosen.append(queue.pop(0))
        return self[chosen]


@dataclass
class Task:
    """A target task: three splits plus what the labels mean."""

    name: str
    kind: str                 # "sequence", "token" or "lm"
    train: Split
    val: Split
    test: Split
    label_names: list
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def pad_rows(rows, max_len):
    """Right-pad id lists to max_len: (input_ids, attention_mask)."""
    pad = get_tokenizer().pad_id
    ids = torch.full((len(rows), max_len), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), max_len), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return ids, mask


def _rows(texts, max_len, start, end, pack, repeat_start):
    """Encode each text as start + words + end, truncated to max_len. Packing appends whole
    sentences to the current row while they fit (without their start token unless repeat_start).
    Returns (rows of ids, the texts of each row)."""
    if len(texts) == 0:
        raise ValueError("the text list has 0 examples")
    max_len = positive_int("max_len", max_len, minimum=2)
    pack = boolean("pack", pack)
    tokenizer = get_tokenizer()
    rows, row_texts = [], []
    for text in texts:
        ids = (start + tokenizer.encode(text) + end)[:max_len]
        continuation = ids if repeat_start else ids[len(start):]
        if pack and rows and len(rows[-1]) + len(continuation) <= max_len:
            rows[-1] += continuation
            row_texts[-1] += " " + text
        else:
            rows.append(ids)
            row_texts.append(text)
    return rows, row_texts


def causal_lm_split(texts, max_len: int = 64, pack: bool = False) -> Split:
    """[BOS] w1 .. wn [EOS] per sentence; labels[t] = input_ids[t + 1] (already shifted), -100 at
    the last position, on padding, and where the next token is a new sentence's [BOS]."""
    tokenizer = get_tokenizer()
    rows, row_texts = _rows(texts, max_len, [tokenizer.bos_id], [tokenizer.eos_id], pack, True)
    ids, mask = pad_rows(rows, max_len)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, row in enumerate(rows):
        targets = torch.tensor(row[1:], dtype=torch.long)
        labels[i, :len(row) - 1] = torch.where(targets == tokenizer.bos_id, IGNORE_INDEX, targets)
    return Split(ids, mask, labels, row_texts)


def masked_lm_split(texts, max_len: int = 64, mask_prob: float = 0.15, seed: int = 0,
                    pack: bool = False) -> Split:
    """[CLS] s1 [SEP] (s2 [SEP] ...) with BERT masking: each word is chosen with mask_prob; a
    chosen word becomes [MASK] 80%, a random word 10%, itself 10% of the time. labels hold the
    original id at chosen positions, -100 elsewhere. Special tokens and padding are never chosen."""
    mask_prob = positive_number("mask_prob", mask_prob)
    if mask_prob > 1:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob!r}")
    tokenizer = get_tokenizer()
    rows, row_texts = _rows(texts, max_len, [tokenizer.cls_id], [tokenizer.sep_id], pack, False)
    ids, mask = pad_rows(rows, max_len)
    generator = torch.Generator().manual_seed(seed)
    words = ids >= len(SPECIAL_TOKENS)
    chosen = (torch.rand(ids.shape, generator=generator) < mask_prob) & words
    action = torch.rand(ids.shape, generator=generator)
    random_words = torch.randint(len(SPECIAL_TOKENS), tokenizer.vocab_size, ids.shape, generator=generator)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, tokenizer.mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_words, inputs)
    return Split(inputs, mask, labels, row_texts)
