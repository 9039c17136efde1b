"""minift's pure-Python tokenizers for the real models give exactly transformers' ids.

* WordPieceTokenizer (all-MiniLM-L6-v2, a BERT) against ``AutoTokenizer.from_pretrained(folder)``;
* ByteLevelBPETokenizer (SmolLM2-135M-Instruct) against ``AutoTokenizer.from_pretrained(folder,
  gguf_file=...)``. transformers builds that one with plain ByteLevel pre-tokenisation, while SmolLM2
  itself (its tokenizer.json, llama.cpp's "smollm") splits digits first. So minift's default (digits
  split) is checked against the same transformers tokenizer given SmolLM2's own pre-tokenizer, and
  ``split_digits=False`` against transformers unchanged; test_bpe_digit_split_only_changes_spaces_before_digits
  pins down where the two differ.

Strings: the course's own sentences (corpus, tasks, with "[SEP]" in them), the same capitalised with
punctuation, hand-made hard cases (accents, CJK, emoji, numbers, whitespace of every kind, control and
zero-width characters, long words, code, special tokens written in the text) and seeded random mixes.
"""

from __future__ import annotations

import copy
import os
import random
import re

import pytest
from real_weights import real_weights_path
import torch

from minift import data
from minift.real_models.bpe import BYTE_TO_CHAR, ByteLevelBPETokenizer, split_words
from minift.real_models.packages import locate
from minift.real_models.wordpiece import WordPieceTokenizer

transformers = pytest.importorskip("transformers")


# ------------------------------------------------------------------------------------------------ strings

HARD_CASES = [
    # empty and blank
    "", " ", "   ", "\t", "\n", "\n\n\n", " \t\n ",
    # case, accents, other Latin
    "Hello, World!", "HELLO world HeLLo", "café naïve Ångström résumé", "Crème brûlée à la façon",
    "Straße ﬁne Æsir œuvre",
    "ΟΔΟΣ Σ σ ς", "İstanbul ıi", "e\u0301 combining acute", "a\u0300\u0301\u0302",
    # non-Latin scripts
    "中文字符和标点。", "日本語のテキストです", "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "हिन्दी भाषा",
    "mixed中文english日本", "ＦＵＬＬ　ｗｉｄｔｈ",
    # emoji
    "emoji 😀 👍🏽 👨‍👩‍👧 🇫🇷", "🙂🙂🙂", "I ❤️ NY",
    # numbers
    "1234567", "3.14", "2026-11-30", "x = 1,000,000.50", "v2.0.1 and 10x faster", "½ ¾ ² ³ ٣ ४", "1st 2nd 3rd 42nd",
    "a  1", "x\n\n2", "  42", "\t7", "  12  34",
    # punctuation
    "!!!...???", "Wait... what?!", "(a) [b] {c} <d>", "$100 ^ 2 ` ~ @ # % & * _ = + | \\ /", "«quoted» „this” ‘that’",
    "em—dash en–dash", "co-operate e-mail", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    # whitespace of every kind
    "  leading", "trailing  ", "  both  ", "multiple     spaces", "tab\there", "new\nline", "crlf\r\nline",
    "a\u00a0b", "a\u3000b", "a\u2003b\u2009c", "a\u2028b\u2029c", "a\u0085b", "x \t y", " \n x",
    "x \x1c\x1dy \x85\x85z", "a\u00a0 \u00a0b  \u3000c",      # U+001C/D are not whitespace to the reference
    # control and zero-width characters
    "ctl\x00\x07x", "a\x0bb\x0cc", "a\x1cb\x1dc", "zero\u200bwidth\u200cjoin\u200dwj", "bom\ufeffhere",
    "\ufffd replacement", "soft\u00adhyphen", "rtl\u200fmark",
    # long words
    "x" * 100, "y" * 101, "supercalifragilisticexpialidocious" * 3, "antidisestablishmentarianism",
    "a" * 300 + " b",
    # code
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { s += a[i]; }",
    "print(f'{name!r:>10}')", "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id=3;",
    "https://example.com/a?b=1&c=2", "user@example.com", "C:\\Users\\me\\file.txt",
    # contractions
    "don't", "I'll", "we're they've I'm he'd it's", "DON'T I'LL", "'s 't 're", "rock 'n' roll", "o'clock",
    "can't won't",
    # special tokens written in the text
    "<|im_start|>user\nhi<|im_end|>", "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>", "a<|endoftext|>b", "<|im_start|", "<repo_name>x<reponame>y<file_sep>",
    "[CLS] hello [SEP] world [SEP]", "the [MASK] sat", "[mask] [Mask] [MASK][MASK]", "x[UNK]y [PAD]",
    "question ? [SEP] answer .",
]

_FRAGMENTS = ["the", "The", "cat", "UNBELIEVABLE", "tokenizers", "naïve", "東京", "😀", "42", "7", "3.5", "'s", "'ll",
              "n't", "!", "?", ",", ".", "...", "$", "-", "(", ")", " ", "  ", "\t", "\n", "\u00a0", "\u200b", "é",
              "x" * 12, "<|im_end|>", "[SEP]", "[MASK]", "ß", "İ", "\x07"]


def _random_mixes(n: int, seed: int = 0) -> list[str]:
    """Seeded random strings glued from tricky fragments, with and without spaces between them."""
    rng = random.Random(seed)
    return [rng.choice(("", " ")).join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 12)))
            for _ in range(n)]


def _course_sentences() -> list[str]:
    """The course's own text: corpus sentences, task texts (generation ones hold a literal [SEP]),
    and some of them capitalised the way a user would type them."""
    corpus = data.source_corpus(120, seed=0)
    tasks = data.classification_task(n_train=40, n_val=5, n_test=5).train.texts
    generation = [text for name in data.GENERATION_TASKS
                  for text in data.generation_task(name, n_train=15, n_val=5, n_test=5).train.texts]
    typed = [s[:1].upper() + s[1:].replace(" .", ".").replace(" ,", ",").replace(" ?", "?") for s in corpus[:60]]
    return corpus + tasks + generation + typed


STRINGS = _course_sentences() + HARD_CASES + _random_mixes(120)


def _mismatches(strings, ours, theirs):
    """The (string, ours, theirs) triples where the two functions disagree."""
    return [(s, ours(s), theirs(s)) for s in strings if ours(s) != theirs(s)]


# ------------------------------------------------------------------------------------------------ WordPiece


@pytest.fixture(scope="module")
def wordpiece_pair():
    folder = real_weights_path("all-minilm-l6-v2")
    return WordPieceTokenizer.from_folder(folder), transformers.AutoTokenizer.from_pretrained(str(folder))


def test_wordpiece_ids_and_tokens_match_transformers(wordpiece_pair):
    ours, ref = wordpiece_pair
    assert len(STRINGS) >= 400
    assert _mismatches(STRINGS, ours.encode, ref.encode) == []
    assert _mismatches(STRINGS, ours.tokenize, ref.tokenize) == []


def test_wordpiece_decode_matches_transformers(wordpiece_pair):
    ours, ref = wordpiece_pair
    for skip in (True, False):
        for text in STRINGS:
            ids = ref.encode(text)
            assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), text
    # A piece that starts a sequence keeps its "##"; torch tensors are accepted.
    ids = ours.convert_tokens_to_ids(["##s", "token", "##izer", ",", "ok", "!"])
    assert ours.decode(torch.tensor(ids)) == ref.decode(ids) == "##s tokenizer, ok!"
    assert ours.decode(ours.encode("Hello, World!")) == "hello, world!"


def test_wordpiece_pairs_and_truncation_match_transformers(wordpiece_pair):
    ours, ref = wordpiece_pair
    rng = random.Random(1)
    pool = [s for s in STRINGS if s.strip()]
    for _ in range(150):
        first, second = rng.choice(pool), rng.choice(pool + [""])
        max_length = rng.randint(3, 40)
        theirs = ref([first], [second], truncation=True, max_length=max_length)
        assert ours.encode(first, second, max_length=max_length) == theirs["input_ids"][0], (first, second, max_length)
        single = ref(first, truncation=True, max_length=max_length)["input_ids"]
        assert ours.encode(first, max_length=max_length) == single
    assert len(ours.encode("word " * 600)) == 602            # no max_length: no cut, as in transformers


def test_wordpiece_batch_matches_transformers(wordpiece_pair):
    ours, ref = wordpiece_pair
    texts = ["short", "A much longer sentence, with punctuation and numbers 12345!", STRINGS[3], "café", "x" * 120]
    pairs = ["y", "", STRINGS[200], "z z z z z z z z z z z z", "[MASK] there"]
    cases = [(dict(texts=texts), dict(max_length=128, padding=True)),
             (dict(texts=texts, text_pairs=pairs), dict(max_length=12, padding=True)),
             (dict(texts=texts, text_pairs=pairs), dict(max_length=24, padding="max_length")),
             (dict(texts="one text"), dict(max_length=128, padding=True))]
    for inputs, options in cases:
        batch = ours(*inputs.values(), **options)
        theirs = ref(*inputs.values(), truncation=True, return_tensors="pt", **options)
        assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
        for key in batch:
            assert batch[key].dtype == torch.long
            assert torch.equal(batch[key], theirs[key]), (inputs, options, key)
    assert (ours(texts)["input_ids"][0, 3:] == ours.pad_id).all()          # right padding with [PAD]


def test_wordpiece_properties_and_errors(wordpiece_pair):
    ours, ref = wordpiece_pair
    assert ours.vocab_size == ref.vocab_size == 30522
    assert (ours.pad_id, ours.cls_id, ours.sep_id, ours.mask_id, ours.unk_id) == (
        ref.pad_token_id, ref.cls_token_id, ref.sep_token_id, ref.mask_token_id, ref.unk_token_id)
    assert ours.model_max_length == 512 and ours.do_lower_case
    assert ours.convert_ids_to_tokens(ours.convert_tokens_to_ids(["hello", "##s", "nonexistent-token"])) == [
        "hello", "##s", "[UNK]"]
    with pytest.raises(TypeError, match="text must be a str"):
        ours.tokenize(42)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        ours(["fine", None])
    with pytest.raises(ValueError, match="token id 99999 is not in the vocabulary"):
        ours.decode([101, 99999])
    with pytest.raises(ValueError, match="max_length must be an integer >= 3"):
        ours.encode("a", "b", max_length=2)
    with pytest.raises(ValueError, match="padding must be"):
        ours(["a"], padding="left")
    with pytest.raises(ValueError, match="different lengths"):
        ours(["a", "a b c"], padding=False)


# ------------------------------------------------------------------------------------------------ BPE


@pytest.fixture(scope="module")
def bpe_pair():
    """(ours with digits split, ours without, transformers with SmolLM2's own pre-tokenizer,
    transformers as it converts the GGUF). The GGUF conversion takes several seconds: done once."""
    from tokenizers import pre_tokenizers

    path = real_weights_path("smollm2-135m-instruct")
    ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ref_digits = copy.deepcopy(ref)
    ref_digits.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([      # SmolLM2's tokenizer.json
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    ours = ByteLevelBPETokenizer.from_gguf(path)
    ours_plain = ByteLevelBPETokenizer.from_gguf(path, split_digits=False)
    return ours, ours_plain, ref_digits, ref


def test_bpe_ids_match_transformers(bpe_pair):
    ours, ours_plain, ref_digits, ref = bpe_pair
    assert ours.split_digits and not ours_plain.split_digits
    assert _mismatches(STRINGS, ours.encode, ref_digits.encode) == []
    assert _mismatches(STRINGS, ours_plain.encode, ref.encode) == []
    assert _mismatches(STRINGS, ours.tokenize, ref_digits.tokenize) == []
    for text in ("hello world", "<|im_start|>user\nhi<|im_end|>"):      # the file adds no BOS/EOS
        assert ours.encode(text, add_special_tokens=True) == ref.encode(text, add_special_tokens=True)


def test_bpe_pre_tokenizer_matches_reference(bpe_pair):
    """The words themselves (before merges) equal those of the Rust pre-tokenizers, in both modes."""
    ours, ours_plain, ref_digits, ref = bpe_pair
    for mine, theirs in ((ours, ref_digits), (ours_plain, ref)):
        for text in STRINGS + ["x \x1c\x1dy", "a \u2028\u2028b"]:
            words = ["".join(BYTE_TO_CHAR[b] for b in word.encode()) for word in mine._pre_tokenize(text)]
            assert words == [w for w, _ in theirs.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)], text
    assert split_words("I'll pay  $5!") == ["I", "'ll", " pay", " ", " $", "5", "!"]


def test_bpe_digit_split_only_changes_spaces_before_digits(bpe_pair):
    """Both pre-tokenizers cut every digit apart in the end (the vocabulary has no multi-digit
    tokens); for ASCII text they differ only where a run of 2+ whitespace characters precedes a digit."""
    ours, ours_plain, _, _ = bpe_pair
    assert ours.tokenize("2026-11-30") == ours_plain.tokenize("2026-11-30") == list("2026-11-30")
    assert ours.tokenize("a  1") == ["a", "ĠĠ", "1"] and ours_plain.tokenize("a  1") == ["a", "Ġ", "Ġ", "1"]
    differ = [s for s in STRINGS if s.isascii() and ours.encode(s) != ours_plain.encode(s)]
    assert differ and all(re.search(r"\s\s\d", s) for s in differ), differ


def test_bpe_decode_matches_transformers(bpe_pair):
    ours, _, ref_digits, _ = bpe_pair
    for text in STRINGS:
        ids = ours.encode(text)
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == ref_digits.decode(ids, skip_special_tokens=skip), text
        if not any(b in ours.missing_bytes for b in text.encode()):
            assert ours.decode(ids) == text                    # byte-level BPE loses nothing
    ids = ours.encode("emoji 😀👨‍👩‍👧 done")
    for end in range(len(ids)):                                # a character cut between ids: U+FFFD
        assert ours.decode(ids[:end]) == ref_digits.decode(ids[:end])
    assert ours.decode(torch.tensor(ours.encode("<|im_start|>hi<|im_end|>")), skip_special_tokens=True) == "hi"


def test_bpe_batch_matches_transformers(bpe_pair):
    ours, _, ref_digits, _ = bpe_pair
    texts = ["short", "A longer sentence, with 12345 digits!", "<|im_start|>user\nhi<|im_end|>", "😀 emoji", ""]
    for side in ("left", "right"):
        for max_length in (None, 4):
            batch = ours(texts, max_length=max_length, padding_side=side)
            theirs = ref_digits(texts, padding=True, padding_side=side, return_tensors="pt",
                                truncation=max_length is not None, max_length=max_length)
            assert set(batch) == {"input_ids", "attention_mask"}
            for key in batch:
                assert batch[key].dtype == torch.long
                assert torch.equal(batch[key], theirs[key]), (side, max_length, key)
    batch = ours(texts, max_length=10, padding="max_length", padding_side="left")
    assert batch["input_ids"].shape == (5, 10) and batch["attention_mask"][4].sum() == 0
    assert (batch["input_ids"][0, :-1] == ours.pad_id).all()          # left padding: the text ends last


def test_bpe_chat_template_matches_transformers(bpe_pair):
    ours, _, _, ref = bpe_pair
    conversations = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the chicken..."},
         {"role": "user", "content": "Another one, please!\nWith a newline."}],
        [{"role": "system", "content": ""}, {"role": "user", "content": "  spaces  "},
         {"role": "assistant", "content": "ok"}],
        [{"role": "assistant", "content": "I start."}],
    ]
    for messages in conversations:
        for generation_prompt in (True, False):
            text = ours.apply_chat_template(messages, add_generation_prompt=generation_prompt)
            assert text == ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
            assert ours.encode(text) == ref.encode(text)
    text = ours.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "{% for message in messages %}" in ours.chat_template


def test_bpe_properties_and_errors(bpe_pair):
    ours, _, _, ref = bpe_pair
    not_gguf = real_weights_path("all-minilm-l6-v2") / "vocab.txt"
    assert ours.vocab_size == len(ref) == 49152
    assert (ours.bos_id, ours.eos_id, ours.pad_id) == (1, 2, 2)
    assert (ref.bos_token_id, ref.eos_token_id, ref.pad_token_id) == (1, 2, 2)
    assert ours.convert_ids_to_tokens(ours.convert_tokens_to_ids(["Ġworld", "<|im_end|>"])) == ["Ġworld", "<|im_end|>"]
    with pytest.raises(TypeError, match="text must be a str"):
        ours.encode(b"bytes")
    with pytest.raises(ValueError, match="token id -1 is not in the vocabulary"):
        ours.decode([1, -1])
    with pytest.raises(ValueError, match="not a token of this vocabulary"):
        ours.convert_tokens_to_ids(" world")
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right'"):
        ours(["a"], padding_side="middle")
    with pytest.raises(ValueError, match="needs a max_length"):
        ours(["a"], padding="max_length")
    with pytest.raises(ValueError, match=r"messages\[1\] must be a dict"):
        ours.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "user"}])
    with pytest.raises(ValueError, match="is not a GGUF file"):
        ByteLevelBPETokenizer.from_gguf(not_gguf)
