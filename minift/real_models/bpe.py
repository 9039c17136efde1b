"""GPT-2-style byte-level BPE, the tokenizer of SmolLM2 (and of GPT-2, LLaMA 3, Qwen...), written out.

A byte-level BPE never meets an unknown character: it works on the UTF-8 bytes of the text, so any
string, in any script, with emoji or control characters, becomes ids and comes back unchanged.
Encoding has four steps:

1. special tokens: control tokens such as ``<|im_start|>`` written in the text are found first and
   kept whole (the chat format is built from them);
2. pre-tokenisation (``split_digits``, ``split_words``): cut the text into words so that no token
   ever spans two words. SmolLM2 first makes each digit a word of its own (so "2026" is 2, 0, 2, 6:
   arithmetic sees every digit), then applies GPT-2's rule: a word is an optional space followed by
   letters, or by digits, or by other symbols; common English endings "'s 't 're 've 'm 'll 'd" are
   words; runs of spaces stay apart from the next word except for its own leading space;
3. bytes to characters (``bytes_to_unicode``): each UTF-8 byte of a word is written as one printable
   character ("Ġ" is the space, "Ċ" the newline), so that tokens are ordinary strings;
4. merges (``ByteLevelBPETokenizer.bpe``): starting from single bytes, repeatedly glue together the
   adjacent pair that was learnt earliest (lowest rank in the merge list), until no pair is in it.

Decoding is the way back: ids -> token strings -> bytes -> UTF-8 text.

Everything the tokenizer needs sits in the GGUF file's header (``tokenizer.ggml.*``): the tokens, their
types, the merges, the special ids and the chat template. ``from_gguf`` reads them.

Which pre-tokeniser? The file says ``tokenizer.ggml.pre = "smollm"``. llama.cpp, and SmolLM2's own
tokenizer.json (``Digits(individual_digits=True)`` then ``ByteLevel``), split digits first; that is
how the model was trained, and what ``from_gguf`` does by default. transformers (5.x) builds its
tokenizer for this file with plain ``ByteLevel`` (it does not know "smollm") and so keeps the digits
together before BPE. The vocabulary has no multi-digit tokens, so both give the same ids except where
two or more whitespace characters come right before a digit: "a  1" is "a", "  ", "1" here and
"a", " ", " ", "1" in transformers.
``from_gguf(path, split_digits=False)`` reproduces transformers exactly; tests check both ways.

Letters, numbers and whitespace are told apart with Python's ``unicodedata``; a scan of every code
point against the reference finds differences only for characters that Unicode assigned after the
version Python knows (Unicode 14 in Python 3.11), e.g. U+1C89.
"""

from __future__ import annotations

import mmap
import numbers
import re
import struct
import unicodedata
from pathlib import Path

import torch

from .wordpiece import as_text_list, check_token_id, pad_batch

CONTROL, USER_DEFINED = 3, 4            # tokenizer.ggml.token_type values (1 is a normal token)
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
CACHE_SIZE = 10_000                     # words whose BPE result is remembered

# Unicode White_Space, what the reference's regex means by \s. (Python's str.isspace would also take
# U+001C..U+001F, which here are "other" symbols.)
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                       "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

# The pre-tokenisers this file implements, by the GGUF's tokenizer.ggml.pre: split digits first?
PRE_TOKENIZERS = {"gpt2": False, "smollm": True}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Bytes that are already printable and not a space (``!`` to ``~``, ``¡`` to ``¬``, ``®`` to ``ÿ``)
    stand for themselves; the 68 others (controls, space, no-break space, soft hyphen...) are given the
    characters from U+0100 on, in order. So the space (byte 32) is "Ġ" (U+0120) and the newline is "Ċ".
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {char: byte for byte, char in BYTE_TO_CHAR.items()}


# ------------------------------------------------------------------------------------------------
# Pre-tokenisation


def char_class(char: str) -> str:
    """"L" letter, "N" number (any script: "٣", "½" too), "S" whitespace, "O" anything else."""
    if char in WHITESPACE:
        return "S"
    category = unicodedata.category(char)[0]
    return category if category in "LN" else "O"


def split_digits(text: str) -> list[str]:
    """Each number character becomes a piece of its own; the text between digits stays whole."""
    pieces, start = [], 0
    for i, char in enumerate(text):
        if unicodedata.category(char)[0] == "N":
            if start < i:
                pieces.append(text[start:i])
            pieces.append(char)
            start = i + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def split_words(text: str) -> list[str]:
    """GPT-2's pre-tokeniser, the regular expression
    ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
    written out as a scan: at each position, the first rule that matches takes the longest word it can.

        split_words("I'll pay  $5!")  ->  ["I", "'ll", " pay", " ", " $", "5", "!"]
    """
    words, i, n = [], 0, len(text)
    classes = [char_class(c) for c in text]
    while i < n:
        # 1. an English ending: 's 't 're 've 'm 'll 'd
        ending = next((e for e in CONTRACTIONS if text.startswith(e, i)), None)
        if ending:
            words.append(ending)
            i += len(ending)
            continue
        # 2-4. an optional space, then a run of letters, or of numbers, or of other symbols
        start = i + 1 if text[i] == " " and i + 1 < n and classes[i + 1] != "S" else i
        kind = classes[start]
        if kind != "S":
            end = start + 1
            while end < n and classes[end] == kind:
                end += 1
            words.append(text[i:end])
            i = end
            continue
        # 5-6. whitespace: the run, but leave its last character to the word that follows
        end = i + 1
        while end < n and classes[end] == "S":
            end += 1
        if end < n and end - i > 1:
            end -= 1                       # \s+(?!\S): the last space goes with the next word
        words.append(text[i:end])
        i = end
    return words


# ------------------------------------------------------------------------------------------------
# Reading the GGUF header

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_gguf_metadata(path, prefix: str = "") -> dict:
    """The key/value header of a GGUF file (the keys starting with ``prefix``), as Python values.

    A GGUF file starts with "GGUF", a version, the number of tensors and the number of key/value pairs;
    then each pair: the key (a length-prefixed UTF-8 string), a type code, and the value (a number, a
    string, or an array: item type, count, items). The tensors come after, and are not read here, so
    this takes a fraction of a second where ``gguf.GGUFReader`` indexes the whole file.
    """
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (it does not start with b'GGUF')")
        version = struct.unpack_from("<I", data, 4)[0]
        if version < 2:
            raise ValueError(f"{path} is a version-{version} GGUF file; only versions 2 and 3 are read")
        n_pairs = struct.unpack_from("<Q", data, 16)[0]
        position, metadata = 24, {}

        def string(at):
            length = struct.unpack_from("<Q", data, at)[0]
            return data[at + 8:at + 8 + length].decode("utf-8"), at + 8 + length

        def value(kind, at):
            if kind == _STRING:
                return string(at)
            if kind == _ARRAY:
                item_kind, count = struct.unpack_from("<IQ", data, at)
                at += 12
                if item_kind in _SCALARS:                    # numbers: one unpack for the whole array
                    fmt = _SCALARS[item_kind]
                    items = list(struct.unpack_from(f"<{count}{fmt[1]}", data, at))
                    return items, at + count * struct.calcsize(fmt)
                items = []
                for _ in range(count):
                    item, at = value(item_kind, at)
                    items.append(item)
                return items, at
            if kind not in _SCALARS:
                raise ValueError(f"{path}: unknown GGUF value type {kind}")
            return struct.unpack_from(_SCALARS[kind], data, at)[0], at + struct.calcsize(_SCALARS[kind])

        for _ in range(n_pairs):
            key, position = string(position)
            kind = struct.unpack_from("<I", data, position)[0]
            item, position = value(kind, position + 4)
            if key.startswith(prefix):
                metadata[key] = item
    return metadata


def _metadata_from_reader(reader, prefix: str) -> dict:
    """The same dict from a ``gguf.GGUFReader`` the caller already opened (the model loader does)."""
    return {key: field.contents() for key, field in reader.fields.items() if key.startswith(prefix)}


# ------------------------------------------------------------------------------------------------
# The tokenizer


class ByteLevelBPETokenizer:
    """SmolLM2's tokenizer: ``encode`` / ``decode``, ``__call__`` for a padded batch of tensors, and
    ``apply_chat_template`` for the chat format the instruct model was tuned on.

        tok = ByteLevelBPETokenizer.from_gguf(locate("smollm2-135m-instruct"))
        tok.tokenize("Hello world!")                        # ['Hello', 'Ġworld', '!']
        prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
        ids = tok.encode(prompt)                            # <|im_start|> ... <|im_start|>assistant\\n
    """

    def __init__(self, tokens: list[str], merges: list[str], token_types: list[int] | None = None, *,
                 bos_id: int | None = None, eos_id: int | None = None, pad_id: int | None = None,
                 unk_id: int | None = None, add_bos_token: bool = False, add_eos_token: bool = False,
                 split_digits: bool = True, chat_template: str | None = None):
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            raise TypeError(f"tokens must be a list of str, got {type(tokens).__name__}")
        token_types = list(token_types) if token_types is not None else [1] * len(tokens)
        if len(token_types) != len(tokens):
            raise ValueError(f"{len(token_types)} token types for {len(tokens)} tokens")
        # Tokens are stored in the byte alphabet ("Ġworld"); a token written in plain text instead is
        # re-spelled byte by byte, as transformers does, so that it can be looked up.
        self.tokens = [t if set(t) <= CHAR_TO_BYTE.keys() else "".join(BYTE_TO_CHAR[b] for b in t.encode("utf-8"))
                       for t in tokens]
        self.vocab = {token: i for i, token in enumerate(self.tokens)}
        # A byte that never occurred in training may have no token. SmolLM2 lacks 21: six rare control
        # bytes (0x04, 0x06, 0x13, 0x14, 0x16, 0x1D) and UTF-8 lead bytes that valid text never uses
        # (0xC0, 0xC1, 0xF5..0xFF) or uses only for unassigned planes (0xF1, 0xF2). Like the
        # reference, such bytes are dropped from the text.
        self.missing_bytes = frozenset(b for b, char in BYTE_TO_CHAR.items() if char not in self.vocab)
        # Merge "Ġ t" learnt first has rank 0: lower rank = merged earlier.
        self.ranks = {}
        for rank, merge in enumerate(merges):
            first, _, second = merge.partition(" ")
            self.ranks[(first, second)] = rank
        # Control tokens (<|im_start|>...) are special: skipped by decode(skip_special_tokens=True).
        # User-defined ones are matched whole in the text too, but decoded like any token.
        # (A "control" token spelled outside the byte alphabet is a mislabel; transformers ignores it.)
        usable = [set(t) <= CHAR_TO_BYTE.keys() for t in tokens]
        self.special_ids = {i for i, kind in enumerate(token_types) if kind == CONTROL and usable[i]}
        added = [t for t, kind, ok in zip(tokens, token_types, usable) if kind in (CONTROL, USER_DEFINED) and ok]
        added.sort(key=len, reverse=True)                      # longest first: "<|im_start|>" before "<"
        self._added_pattern = re.compile("|".join(map(re.escape, added))) if added else None
        for name, index in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id), ("unk_id", unk_id)):
            if index is not None and not 0 <= index < len(self.tokens):
                raise ValueError(f"{name}={index} is outside the vocabulary (0..{len(self.tokens) - 1})")
        self._bos_id, self._eos_id, self._pad_id, self.unk_id = bos_id, eos_id, pad_id, unk_id
        self.add_bos_token, self.add_eos_token = bool(add_bos_token), bool(add_eos_token)
        self.split_digits = bool(split_digits)
        self._chat_template = chat_template
        self._compiled_template = None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_gguf(cls, path, reader=None, split_digits: bool | None = None) -> "ByteLevelBPETokenizer":
        """The tokenizer stored in a GGUF file's ``tokenizer.*`` header fields.

        ``reader``: a ``gguf.GGUFReader`` already opened on ``path`` (then its fields are used);
        without one the header is read directly, which needs no ``gguf`` package.
        ``split_digits``: None follows the file's ``tokenizer.ggml.pre`` ("smollm": True, like
        llama.cpp and SmolLM2's tokenizer.json); False reproduces transformers' GGUF conversion.
        """
        path = Path(path)
        if reader is None and not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {path}")
        meta = (_metadata_from_reader(reader, "tokenizer.") if reader is not None
                else read_gguf_metadata(path, "tokenizer."))
        kind = meta.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"{path.name} holds a {kind!r} tokenizer; ByteLevelBPETokenizer reads 'gpt2' "
                             "(byte-level BPE) ones only")
        pre = meta.get("tokenizer.ggml.pre", "gpt2")
        if split_digits is None:
            if pre not in PRE_TOKENIZERS:
                raise ValueError(f"{path.name} asks for the pre-tokenizer {pre!r}; this file implements "
                                 f"{sorted(PRE_TOKENIZERS)} (or pass split_digits=True/False to choose)")
            split_digits = PRE_TOKENIZERS[pre]
        return cls(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"],
                   meta.get("tokenizer.ggml.token_type"),
                   bos_id=meta.get("tokenizer.ggml.bos_token_id"), eos_id=meta.get("tokenizer.ggml.eos_token_id"),
                   pad_id=meta.get("tokenizer.ggml.padding_token_id"),
                   unk_id=meta.get("tokenizer.ggml.unknown_token_id"),
                   add_bos_token=meta.get("tokenizer.ggml.add_bos_token", False),
                   add_eos_token=meta.get("tokenizer.ggml.add_eos_token", False),
                   split_digits=split_digits, chat_template=meta.get("tokenizer.chat_template"))

    # -------------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def bos_id(self) -> int | None:
        return self._bos_id

    @property
    def eos_id(self) -> int | None:
        return self._eos_id

    @property
    def pad_id(self) -> int | None:
        """The file's padding id (SmolLM2: 2, <|im_end|>), else the end-of-sequence id."""
        return self._pad_id if self._pad_id is not None else self._eos_id

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    # -------------------------------------------------------------------------------- encoding
    def bpe(self, word: str) -> list[str]:
        """Step 4: merge the byte characters of one word into vocabulary tokens.

        Among the adjacent pairs, find the one learnt earliest (lowest rank); glue every occurrence of
        it, left to right; repeat until no adjacent pair is in the merge list.
        """
        parts = list(word)
        while len(parts) > 1:
            rank, first, second = min((self.ranks.get(pair, len(self.ranks)), *pair)
                                      for pair in zip(parts, parts[1:]))
            if rank == len(self.ranks):
                break                                   # no pair left to merge
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def _encode_word(self, word: str) -> list[int]:
        """Steps 3-4 for one word, remembered: the same words come back again and again."""
        ids = self._cache.get(word)
        if ids is None:
            spelled = "".join(BYTE_TO_CHAR[b] for b in word.encode("utf-8") if b not in self.missing_bytes)
            ids = [self.vocab[token] for token in self.bpe(spelled)]
            if len(self._cache) < CACHE_SIZE:
                self._cache[word] = ids
        return ids

    def _pre_tokenize(self, text: str) -> list[str]:
        """Step 2: the words of a stretch of text without special tokens."""
        pieces = split_digits(text) if self.split_digits else [text]
        return [word for piece in pieces for word in split_words(piece)]

    def _segments(self, text: str):
        """Step 1: (text, False) stretches and (special token, True) in order."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}")
        start = 0
        if self._added_pattern is not None:
            for match in self._added_pattern.finditer(text):
                if start < match.start():
                    yield text[start:match.start()], False
                yield match.group(), True
                start = match.end()
        if start < len(text):
            yield text[start:], False

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The ids of ``text``. Special tokens written in it (``<|im_start|>``) become their own id.
        ``add_special_tokens`` adds BOS/EOS where the file asks for them (SmolLM2 asks for neither:
        its chat template writes <|im_start|> itself)."""
        ids = []
        for segment, is_added in self._segments(text):
            if is_added:
                ids.append(self.vocab[segment])
            else:
                for word in self._pre_tokenize(segment):
                    ids += self._encode_word(word)
        if add_special_tokens:
            if self.add_bos_token and self._bos_id is not None:
                ids = [self._bos_id] + ids
            if self.add_eos_token and self._eos_id is not None:
                ids = ids + [self._eos_id]
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text``, in the byte alphabet ("Ġworld" is " world")."""
        return [self.tokens[i] for i in self.encode(text)]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, numbers.Integral) or (isinstance(ids, torch.Tensor) and ids.dim() == 0):
            return self.tokens[self._check_id(ids)]
        return [self.tokens[self._check_id(i)] for i in _id_list(ids)]

    def __call__(self, texts, max_length: int | None = None, padding=True, padding_side: str = "left",
                 add_special_tokens: bool = False) -> dict:
        """A batch for a causal LM: ``input_ids`` and ``attention_mask`` (1 = real token), torch.long.

        ``max_length`` cuts each row to its first ``max_length`` ids (None: no cut). ``padding``: True
        pads to the longest row with the file's pad id, "max_length" to ``max_length``, False not at
        all (rows must then be the same length). ``padding_side`` is "left" by default because a batch
        for generation must end where the new tokens start: every prompt's last token in the last column.
        """
        texts = as_text_list("texts", texts)
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if padding not in (True, False, "longest", "max_length"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 1):
            raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
        if padding == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs a max_length")
        if padding and self.pad_id is None:
            raise ValueError("this tokenizer has no pad id (neither padding_token_id nor eos_token_id in the file)")
        rows = [self.encode(text, add_special_tokens)[:max_length] for text in texts]
        return pad_batch(rows, None, self.pad_id, padding, max_length, side=padding_side)

    # -------------------------------------------------------------------------------- decoding
    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text back from ids: token strings -> bytes -> UTF-8. Bytes that do not form valid UTF-8 (a
        character cut between two ids, e.g. half an emoji) come out as U+FFFD."""
        data = bytearray()
        for index in _id_list(ids):
            index = self._check_id(index)
            if skip_special_tokens and index in self.special_ids:
                continue
            token = self.tokens[index]
            data += bytes(CHAR_TO_BYTE[c] for c in token)
        return data.decode("utf-8", errors="replace")

    # -------------------------------------------------------------------------------- chat
    def apply_chat_template(self, messages, add_generation_prompt: bool = True) -> str:
        """The conversation written in the model's chat format, by the file's own Jinja template.

        ``messages``: a list of {"role": "system" | "user" | "assistant", "content": str}. SmolLM2's
        template is ChatML: each message is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, a default
        system message comes first when the conversation has none, and ``add_generation_prompt`` ends
        with ``<|im_start|>assistant\\n`` so that the model writes the answer next. Rendered with the
        settings transformers uses (sandboxed, trim_blocks, lstrip_blocks), so the text is the same.
        """
        if self._chat_template is None:
            raise ValueError("this tokenizer has no chat template (the file has no tokenizer.chat_template)")
        if not isinstance(messages, (list, tuple)) or not messages:
            raise TypeError(f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}")
        for i, message in enumerate(messages):
            if (not isinstance(message, dict) or not isinstance(message.get("role"), str)
                    or not isinstance(message.get("content"), str)):
                raise ValueError(f"messages[{i}] must be a dict with a str 'role' and a str 'content', "
                                 f"got {message!r:.80}")
        special = {name: (self.tokens[index] if index is not None else None) for name, index in
                   (("bos_token", self._bos_id), ("eos_token", self._eos_id), ("pad_token", self.pad_id),
                    ("unk_token", self.unk_id))}
        return self._template().render(messages=list(messages), add_generation_prompt=bool(add_generation_prompt),
                                       **special)

    def _template(self):
        if self._compiled_template is None:
            import jinja2.ext
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message):
                raise jinja2.exceptions.TemplateError(message)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[jinja2.ext.loopcontrols])
            env.globals["raise_exception"] = raise_exception
            self._compiled_template = env.from_string(self._chat_template)
        return self._compiled_template

    # -------------------------------------------------------------------------------- checks
    def _check_id(self, index) -> int:
        return check_token_id(index, len(self.tokens))

    def _token_id(self, token) -> int:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be strings, got {type(token).__name__}: {token!r:.80}")
        if token not in self.vocab:
            raise ValueError(f"{token!r} is not a token of this vocabulary (tokens are spelled in the byte "
                             "alphabet: ' world' is 'Ġworld'; use encode for text)")
        return self.vocab[token]

    def __repr__(self) -> str:
        return (f"ByteLevelBPETokenizer(vocab_size={self.vocab_size}, merges={len(self.ranks)}, "
                f"split_digits={self.split_digits}, bos_id={self._bos_id}, eos_id={self._eos_id}, "
                f"pad_id={self.pad_id})")


def _id_list(ids) -> list:
    if isinstance(ids, torch.Tensor):
        if ids.dim() > 1:
            raise ValueError(f"expected one sequence of ids, got a tensor of shape {tuple(ids.shape)}")
        return ids.tolist()
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"ids must be a list of ints or a 1-d tensor, got {type(ids).__name__}: {ids!r:.80}")
    return list(ids)
