"""BERT's WordPiece tokenizer, written out so that it can be read in one sitting.

all-MiniLM-L6-v2 (chapter 10) is a BERT, and a BERT only understands text cut the way it was cut
during pre-training. That cut has three steps, each a short function below:

1. normalise (``normalize``): drop control characters, turn every whitespace into " ", put spaces
   around CJK ideographs (Chinese has no spaces, so each character is a word), and for an uncased
   model remove accents (NFD, then drop the combining marks: "café" -> "cafe") and lower-case;
2. pre-tokenise (``split_words``): split on whitespace and make every punctuation character a word
   of its own ("don't" -> "don", "'", "t");
3. WordPiece (``wordpiece``): cut each word greedily, longest match first, into vocabulary pieces;
   pieces after the first carry the "##" prefix ("tokenizer" -> "token", "##izer"). A word that
   cannot be cut, or that is longer than 100 characters, becomes [UNK] as a whole.

Then ``encode`` frames the pieces as ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``. Special tokens
written in the text ("[MASK]") are found first, on the raw text, and kept whole, as transformers does.

The reference is the tokenizer transformers builds from the same folder (the Rust ``tokenizers``
BertNormalizer + BertPreTokenizer + WordPiece); tests/core/test_real_tokenizers.py checks that both
give the same ids on a few hundred strings. Where the old Python BertTokenizer and the Rust one
differ, this file follows the Rust one (which is what ``AutoTokenizer`` returns): format characters
(Cf, like the zero-width space) are dropped like control ones, accents are stripped before
lower-casing, and lower-casing maps one character at a time (so a final "Σ" becomes "σ", not "ς").
The only differences left are rare characters that Unicode added or reclassified after the Rust
crate's tables were made (a few hundred of 300,000 code points, e.g. U+061D, U+2E55, U+1734): Python's
newer ``unicodedata`` files them under another category.
"""

from __future__ import annotations

import json
import numbers
import re
import unicodedata
from pathlib import Path

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_CHARS_PER_WORD = 100          # longer words become [UNK] without being looked at


# ------------------------------------------------------------------------------------------------
# Step 1: normalisation


def is_whitespace(char: str) -> bool:
    """Unicode White_Space (as Rust's ``char::is_whitespace``): " ", tab, newline, no-break space,
    the ideographic space U+3000... Python's ``str.isspace`` would also count U+001C..U+001F."""
    return char in "\t\n\r" or (char.isspace() and char not in "\x1c\x1d\x1e\x1f")


def is_control(char: str) -> bool:
    """Characters BERT drops: Unicode "others" (Cc control like NUL or BEL, Cf format like the zero-width
    space U+200B, Co private use, Cs surrogate). Tab, newline and carriage return are whitespace instead.
    Unassigned code points (Cn) are kept, as the Rust reference keeps them (and they become [UNK])."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def is_cjk(char: str) -> bool:
    """A CJK Unified Ideograph (the blocks BERT's authors listed). Japanese kana and Korean hangul are
    not in them: they are written with spaces or cut by WordPiece like any other letters."""
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B920 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def is_punctuation(char: str) -> bool:
    """BERT's punctuation: any ASCII symbol that is not a letter, digit or space (so $ ^ ` + < = > |
    count, though Unicode files them as symbols, not punctuation), and every Unicode punctuation (P*)."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def strip_accents(text: str) -> str:
    """Decompose each character (NFD: "é" -> "e" + U+0301) and drop the combining marks (Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def normalize(text: str, lowercase: bool = True) -> str:
    """Step 1: clean the text the way BERT saw it during pre-training (see the module docstring)."""
    cleaned = []
    for char in text:
        if char in ("\x00", "\ufffd") or is_control(char):
            continue                                    # dropped
        if is_whitespace(char):
            cleaned.append(" ")                         # every kind of space becomes " "
        elif is_cjk(char):
            cleaned.append(f" {char} ")                 # an ideograph is a word of its own
        else:
            cleaned.append(char)
    text = "".join(cleaned)
    if lowercase:
        # One character at a time, like the Rust reference: "ΟΔΟΣ" -> "οδοσ" (str.lower gives "οδος").
        text = "".join(char.lower() for char in strip_accents(text))
    return text


# ------------------------------------------------------------------------------------------------
# Step 2: pre-tokenisation


def split_words(text: str) -> list[str]:
    """Step 2: split on whitespace, and make each punctuation character a word of its own."""
    words, current = [], []
    for char in text:
        if is_whitespace(char) or is_punctuation(char):
            if current:
                words.append("".join(current))
                current = []
            if not is_whitespace(char):
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


# ------------------------------------------------------------------------------------------------
# Step 3: WordPiece


def wordpiece(word: str, vocab, unk_token: str = "[UNK]", prefix: str = "##",
              max_chars: int = MAX_CHARS_PER_WORD) -> list[str]:
    """Step 3: cut one word into vocabulary pieces, greedily, longest match first.

    From the start of the word, take the longest prefix that is in the vocabulary; then from where
    it ended, the longest "##"-prefixed piece; and so on. If at some point no piece fits, the whole
    word becomes ``unk_token`` (not just the part that failed): that is how BERT was trained.
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:                                # not even one character matched
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


# ------------------------------------------------------------------------------------------------
# Decoding


def _cleanup(token: str) -> str:
    """The clean-up the reference decoder applies to each token (with its leading space)."""
    for dirty, clean in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        token = token.replace(dirty, clean)
    return token


def check_token_id(index, vocab_size: int) -> int:
    """An int id in [0, vocab_size) from an int, a NumPy integer or a 0-d tensor; a clear error otherwise
    (bool is refused: True would silently be id 1). Shared by both tokenizers."""
    if isinstance(index, torch.Tensor) and index.dim() == 0:
        index = index.item()
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"token ids must be integers, got {type(index).__name__}: {index!r:.80}")
    if not 0 <= index < vocab_size:
        raise ValueError(f"token id {index!r} is not in the vocabulary: ids go from 0 to {vocab_size - 1}")
    return int(index)


class WordPieceTokenizer:
    """BERT's tokenizer: ``tokenize`` (steps 1-3), ``encode`` (ids with [CLS]/[SEP]), ``__call__``
    (a padded batch of tensors, what a BERT model takes) and ``decode``.

        tok = WordPieceTokenizer.from_folder(locate("all-minilm-l6-v2"))
        tok.tokenize("Tokenizers aren't hard!")   # ['token', '##izer', '##s', 'aren', "'", 't', 'hard', '!']
        batch = tok(["a sentence", "another, longer sentence"])   # input_ids, attention_mask, token_type_ids
    """

    def __init__(self, vocab: list[str], do_lower_case: bool = True, model_max_length: int = 512,
                 clean_up_tokenization_spaces: bool = True):
        if not isinstance(vocab, (list, tuple)) or not all(isinstance(t, str) for t in vocab):
            raise TypeError(f"vocab must be a list of token strings, got {type(vocab).__name__}")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        self.tokens = list(vocab)
        self.vocab = {token: i for i, token in enumerate(self.tokens)}
        self.do_lower_case = bool(do_lower_case)
        self.model_max_length = int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        # Special tokens typed in the text are matched whole, before normalisation ("[MASK]" stays one
        # token although lower-casing would turn it into "[mask]"). Longest first: leftmost-longest.
        alternatives = sorted(SPECIAL_TOKENS, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(re.escape(t) for t in alternatives))

    @classmethod
    def from_folder(cls, folder) -> "WordPieceTokenizer":
        """Read a transformers BERT folder: vocab.txt (one token a line, the line number is the id) and
        tokenizer_config.json (do_lower_case, model_max_length, clean_up_tokenization_spaces).
        tokenizer.json, when present, has the last word on whether decode removes the space before
        punctuation: its decoder's "cleanup" (true for all-MiniLM-L6-v2)."""
        folder = Path(folder)
        if not (folder / "vocab.txt").is_file():
            raise FileNotFoundError(f"{folder} has no vocab.txt: not a BERT tokenizer folder")
        vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()                                 # the file ends with a newline
        config = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        cleanup = bool(config.get("clean_up_tokenization_spaces", True))
        if (folder / "tokenizer.json").is_file():                # what the Rust decoder actually does
            decoder = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("decoder") or {}
            cleanup = bool(decoder.get("cleanup", True))
        max_length = config.get("model_max_length", 512)
        if not isinstance(max_length, int) or max_length > 1_000_000:    # transformers writes 1e30 for "none"
            max_length = 512
        return cls(vocab, do_lower_case=config.get("do_lower_case", True), model_max_length=max_length,
                   clean_up_tokenization_spaces=cleanup)

    # -------------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self.vocab["[PAD]"]

    @property
    def unk_id(self) -> int:
        return self.vocab["[UNK]"]

    @property
    def cls_id(self) -> int:
        return self.vocab["[CLS]"]

    @property
    def sep_id(self) -> int:
        return self.vocab["[SEP]"]

    @property
    def mask_id(self) -> int:
        return self.vocab["[MASK]"]

    # -------------------------------------------------------------------------------- text -> tokens
    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``, without [CLS]/[SEP]."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}")
        tokens, start = [], 0
        for match in self._special_pattern.finditer(text):           # "[MASK]" typed in the text
            tokens += self._tokenize_plain(text[start:match.start()])
            tokens.append(match.group())
            start = match.end()
        return tokens + self._tokenize_plain(text[start:])

    def _tokenize_plain(self, text: str) -> list[str]:
        words = split_words(normalize(text, self.do_lower_case))
        return [piece for word in words for piece in wordpiece(word, self.vocab)]

    def convert_tokens_to_ids(self, tokens):
        """One id per token; a token outside the vocabulary gets the [UNK] id. A str gives one id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_id)
        return [self.vocab.get(self._check_token(t), self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        """The token of each id (an int gives one token). Unknown ids raise ValueError."""
        if isinstance(ids, numbers.Integral) or (isinstance(ids, torch.Tensor) and ids.dim() == 0):
            return self.tokens[self._check_id(ids)]
        return [self.tokens[self._check_id(i)] for i in self._id_list(ids)]

    # -------------------------------------------------------------------------------- ids
    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None) -> list[int]:
        """``[CLS] text [SEP]`` or ``[CLS] text [SEP] text_pair [SEP]`` as ids, cut to ``max_length``
        tokens in all (specials included) when it is given; see ``_truncate`` for how a pair is cut."""
        first, second = self._encode_pair(text, text_pair, max_length)
        return first if second is None else first + second

    def _encode_pair(self, text, text_pair, max_length):
        """The ids of the first segment ([CLS] A [SEP]) and of the second (B [SEP]) or None."""
        first = self.convert_tokens_to_ids(self.tokenize(text))
        second = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        if max_length is not None:
            n_special = 2 if second is None else 3
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < n_special:
                raise ValueError(f"max_length must be an integer >= {n_special} (room for the special "
                                 f"tokens), got {max_length!r}")
            first, second = _truncate(first, second, max_length - n_special)
        first = [self.cls_id] + first + [self.sep_id]
        return first, (None if second is None else second + [self.sep_id])

    def __call__(self, texts, text_pairs=None, max_length: int | None = 128, padding=True) -> dict:
        """A batch for a BERT model: ``input_ids``, ``attention_mask`` (1 = real token, 0 = padding) and
        ``token_type_ids`` (0 for the first text and its [CLS]/[SEP], 1 for the pair), all torch.long of
        shape (batch, length). Each row is cut to ``max_length`` (None: the model's 512).

        ``padding``: True pads with [PAD] on the right to the longest row; "max_length" pads every row
        to ``max_length``; False pads nothing, so the rows must come out the same length.
        """
        texts = as_text_list("texts", texts)
        if text_pairs is not None:
            text_pairs = as_text_list("text_pairs", text_pairs)
            if len(text_pairs) != len(texts):
                raise ValueError(f"text_pairs has {len(text_pairs)} texts but texts has {len(texts)}")
        if padding not in (True, False, "longest", "max_length"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        if max_length is None:
            max_length = self.model_max_length
        rows, types = [], []
        for i, text in enumerate(texts):
            first, second = self._encode_pair(text, None if text_pairs is None else text_pairs[i], max_length)
            rows.append(first + (second or []))
            types.append([0] * len(first) + [1] * len(second or []))
        return pad_batch(rows, types, self.pad_id, padding, max_length)

    # -------------------------------------------------------------------------------- ids -> text
    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text back from ids: "##" pieces glued to the piece before, other tokens joined by a space,
        and (when the model's tokenizer says so) the space before . , ! ? removed. Lower-casing and
        accent stripping are not undone: decode(encode("Café")) is "cafe"."""
        tokens = self.convert_ids_to_tokens(self._id_list(ids))
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        pieces = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[2:] if token.startswith("##") else " " + token
            pieces.append(_cleanup(token) if self.clean_up_tokenization_spaces else token)
        return "".join(pieces)

    # -------------------------------------------------------------------------------- checks
    def _check_id(self, index) -> int:
        return check_token_id(index, len(self.tokens))

    @staticmethod
    def _check_token(token) -> str:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be strings, got {type(token).__name__}: {token!r:.80}")
        return token

    @staticmethod
    def _id_list(ids) -> list:
        if isinstance(ids, torch.Tensor):
            if ids.dim() > 1:
                raise ValueError(f"decode takes one sequence of ids, got a tensor of shape {tuple(ids.shape)}")
            return ids.tolist()
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise TypeError(f"ids must be a list of ints or a 1-d tensor, got {type(ids).__name__}: {ids!r:.80}")
        return list(ids)

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"model_max_length={self.model_max_length})")


# ------------------------------------------------------------------------------------------------
# Helpers shared by encode and __call__


def _truncate(first: list, second: list | None, budget: int):
    """Cut ids to ``budget`` tokens in all, as transformers' "longest_first" does.

    One text: keep its first ``budget`` tokens. A pair: if the shorter one fits in half the budget,
    keep it whole and give the rest to the longer one; otherwise each gets half (the longer one gets
    the odd token). Either way the end of each text is what gets cut.
    """
    if second is None:
        return first[:budget], None
    if len(first) + len(second) <= budget:
        return first, second
    short, long = sorted((len(first), len(second)))
    keep_short, keep_long = short, max(short, budget - short)
    if keep_short + keep_long > budget:
        keep_short = budget // 2
        keep_long = keep_short + budget % 2
    if len(first) <= len(second):
        return first[:keep_short], second[:keep_long]
    return first[:keep_long], second[:keep_short]


def as_text_list(name: str, texts) -> list[str]:
    """A str is a batch of one; otherwise a list (or tuple) of str. (Also used by bpe.py.)"""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)) or not texts:
        raise TypeError(f"{name} must be a str or a non-empty list of str, got {type(texts).__name__}: {texts!r:.80}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}: {text!r:.80}")
    return list(texts)


def pad_batch(rows: list, types: list | None, pad_id: int, padding, max_length, side: str = "right") -> dict:
    """Pad ids (with ``pad_id``), masks (with 0) and token types (with 0) into torch.long tensors, on
    the right or on the ``side="left"``. (Also used by bpe.py.)"""
    if padding == "max_length":
        width = max_length
    elif padding:
        width = max(len(row) for row in rows)
    else:
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise ValueError(f"padding=False but the rows have different lengths {sorted({len(r) for r in rows})}; "
                             "pass padding=True to pad them to the longest")

    def pad(values, fill):
        filler = [fill] * (width - len(values))
        return filler + values if side == "left" else values + filler

    batch = {"input_ids": torch.tensor([pad(row, pad_id) for row in rows], dtype=torch.long),
             "attention_mask": torch.tensor([pad([1] * len(row), 0) for row in rows], dtype=torch.long)}
    if types is not None:
        batch["token_type_ids"] = torch.tensor([pad(t, 0) for t in types], dtype=torch.long)
    return batch
