"""The word-level tokenizer of the mini-world: one id per word, special tokens first.

The vocabulary is the fixed lexicon, so it never depends on a seed and one tokenizer serves every
checkpoint. Text is words joined by single spaces, so encode and decode round-trip exactly.
"""

from __future__ import annotations

import functools
import re

import torch

from .world import LEXICON

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]")


class Tokenizer:
    """Word-level tokenizer: one id per word. Text is tokens joined by single spaces."""

    _PATTERN = re.compile(r"\[[A-Z]+\]|[^\s.,?]+|[.,?]")   # "[SEP]", words, punctuation

    def __init__(self, words):
        self.tokens = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self._ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ValueError("the word list contains duplicates")
        (self.pad_id, self.unk_id, self.cls_id, self.sep_id,
         self.mask_id, self.bos_id, self.eos_id) = range(len(SPECIAL_TOKENS))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def tokenize(self, text) -> list[str]:
        """Split on whitespace; ". , ?" become tokens of their own. A list is taken as tokens."""
        if isinstance(text, (list, tuple)):
            return list(text)
        return self._PATTERN.findall(text)

    def token_to_id(self, token: str) -> int:
        return self._ids.get(token, self.unk_id)

    def id_to_token(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is out of range; allowed ids are 0..{self.vocab_size - 1}")
        return self.tokens[i]

    def encode(self, text, add_cls=False, add_bos=False, add_eos=False, add_sep=False) -> list[int]:
        """Ids of [CLS]? [BOS]? words [SEP]? [EOS]? (unknown words become [UNK])."""
        ids = [self.token_to_id(t) for t in self.tokenize(text)]
        start = [self.cls_id] * add_cls + [self.bos_id] * add_bos
        return start + ids + [self.sep_id] * add_sep + [self.eos_id] * add_eos

    def decode(self, ids, skip_special=False) -> str:
        """Tokens joined by spaces; skip_special drops every special token except [UNK]."""
        if isinstance(ids, torch.Tensor):
            ids = ids.flatten().tolist()
        tokens = [self.id_to_token(i) for i in ids]
        if skip_special:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS or t == "[UNK]"]
        return " ".join(tokens)


@functools.lru_cache(maxsize=None)
def get_tokenizer() -> Tokenizer:
    """The one tokenizer of the mini-world (its vocabulary never depends on a seed)."""
    return Tokenizer(LEXICON)
