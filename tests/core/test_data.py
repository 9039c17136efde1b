"""Tests of the mini-world data: tokenizer, containers, corpus, tasks, probes."""

import collections
import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from minift import data

SMALL = dict(n_train=300, n_val=100, n_test=200)


@pytest.fixture(scope="module")
def tok():
    return data.get_tokenizer()


@pytest.fixture(scope="module")
def cls_task():
    return data.classification_task(seed=0)


@pytest.fixture(scope="module")
def tag_task():
    return data.tagging_task(seed=0)


@pytest.fixture(scope="module")
def gen_tasks():
    return {name: data.generation_task(name, seed=0, **SMALL) for name in data.GENERATION_TASKS}


@pytest.fixture(scope="module")
def all_texts(cls_task, tag_task, gen_tasks):
    """1000 sentences of every kind the module generates."""
    texts = {"corpus": data.source_corpus(1000, seed=0),
             "classification": cls_task.train.texts[:500] + cls_task.test.texts[:500],
             "tagging": tag_task.train.texts[:500] + tag_task.test.texts[:500],
             "probe": data.probe_dataset(n=1000, seed=0)["texts"]}
    for name, task in gen_tasks.items():
        texts[name] = task.train.texts + task.val.texts + task.test.texts
    return texts


def best_single_word_rule(texts, labels):
    """Accuracy of the best rule "if word w occurs predict class a, else class b"."""
    n, overall = len(labels), collections.Counter(labels)
    with_word = collections.defaultdict(collections.Counter)
    for text, label in zip(texts, labels):
        for word in set(text.split()):
            with_word[word][label] += 1
    best = max(overall.values()) / n
    for counts in with_word.values():
        without = overall - counts
        correct = max(counts.values()) + (max(without.values()) if without else 0)
        best = max(best, correct / n)
    return best


# ------------------------------------------------------------------------------------- tokenizer
def test_special_tokens_and_vocab_size(tok):
    assert tok.tokens[:7] == list(data.SPECIAL_TOKENS)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.bos_id, tok.eos_id) == tuple(range(7))
    assert 300 <= tok.vocab_size <= 800
    assert tok.vocab_size == len(data.SPECIAL_TOKENS) + len(data.LEXICON)
    assert data.get_tokenizer() is tok


def test_round_trip_every_kind_of_sentence(tok, all_texts):
    for kind, texts in all_texts.items():
        assert len(texts) >= 500, kind
        for text in texts:
            ids = tok.encode(text)
            assert tok.unk_id not in ids, (kind, text)
            assert tok.decode(ids) == text, (kind, text)


def test_tokenize_punctuation_and_unknown_words(tok):
    assert tok.tokenize("mia likes oslo, but not rome.") == ["mia", "likes", "oslo", ",", "but", "not", "rome", "."]
    assert tok.tokenize("where ? [SEP] here") == ["where", "?", "[SEP]", "here"]
    ids = tok.encode("mia likes zanzibar", add_cls=True, add_sep=True)
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and ids[3] == tok.unk_id
    assert tok.encode(["mia"], add_bos=True, add_eos=True) == [tok.bos_id, tok.token_to_id("mia"), tok.eos_id]
    assert tok.decode([tok.cls_id, tok.token_to_id("mia"), tok.pad_id], skip_special=True) == "mia"
    assert tok.id_to_token(tok.token_to_id("oslo")) == "oslo"


def test_decode_rejects_bad_ids(tok):
    for bad in (tok.vocab_size, -1, 10_000):
        with pytest.raises(ValueError, match=rf"{bad}.*0\.\.{tok.vocab_size - 1}"):
            tok.decode([5, bad])
    with pytest.raises(ValueError, match="duplicates"):
        data.Tokenizer(["a", "a"])


# ------------------------------------------------------------------------------------ containers
def test_split_indexing_batches_and_subsets(cls_task):
    split = cls_task.train
    assert len(split[3]) == 1 and split[3].texts == [split.texts[3]]
    assert split[-1].texts == [split.texts[-1]]
    assert len(split[10:20]) == 10
    assert split[torch.tensor([0, 5])].texts == [split.texts[0], split.texts[5]]
    mask = split.labels == 0
    assert len(split[mask]) == int(mask.sum())
    assert split.to("cpu").input_ids.equal(split.input_ids)

    first = list(split.batches(64, shuffle=True, seed=3))
    again = list(split.batches(64, shuffle=True, seed=3))
    other = list(split.batches(64, shuffle=True, seed=4))
    assert all(a["input_ids"].equal(b["input_ids"]) for a, b in zip(first, again))
    assert not first[0]["input_ids"].equal(other[0]["input_ids"])
    assert sum(len(b["labels"]) for b in first) == len(split)
    assert set(first[0]) == {"input_ids", "attention_mask", "labels"}

    small, large = split.subset(10, seed=1), split.subset(100, seed=1)
    assert small.texts == large.texts[:10] == split.subset(10, seed=1).texts
    assert small.texts != split.subset(10, seed=2).texts
    counts = collections.Counter(large.labels.tolist())
    assert max(counts.values()) - min(counts.values()) <= 1


def test_empty_and_invalid_sizes_raise(cls_task):
    for bad in (0, -5):
        with pytest.raises(ValueError, match=str(bad)):
            data.classification_task(n_train=bad)
        with pytest.raises(ValueError, match=str(bad)):
            data.tagging_task(n_test=bad)
        with pytest.raises(ValueError, match=str(bad)):
            data.generation_task("negation", n_val=bad)
        with pytest.raises(ValueError, match=str(bad)):
            data.source_corpus(bad)
        with pytest.raises(ValueError, match=str(bad)):
            data.probe_dataset(n=bad)
        with pytest.raises(ValueError, match=str(bad)):
            cls_task.train.subset(bad)
        with pytest.raises(ValueError, match=str(bad)):
            next(cls_task.train.batches(bad))
    with pytest.raises(ValueError, match="0 examples"):
        data.causal_lm_split([])
    with pytest.raises(ValueError, match="0 examples"):
        data.masked_lm_split([])
    with pytest.raises(ValueError, match="0 examples"):
        cls_task.train[0:0]
    with pytest.raises(ValueError, match="5000"):
        cls_task.train.subset(5000)
    with pytest.raises(ValueError, match="8"):
        data.classification_task(max_len=8)
    with pytest.raises(ValueError, match="'translation'"):
        data.generation_task("translation")
    with pytest.raises(ValueError, match="1.5"):
        data.masked_lm_split(["mia is happy ."], mask_prob=1.5)


# -------------------------------------------------------------------------------- determinism
def test_same_seed_same_data_other_seed_other_data():
    assert data.source_corpus(200, seed=1) == data.source_corpus(200, seed=1)
    assert data.source_corpus(200, seed=1) != data.source_corpus(200, seed=2)
    assert data.source_corpus(300, seed=1)[:200] == data.source_corpus(200, seed=1)
    makers = [lambda s: data.classification_task(seed=s, **SMALL),
              lambda s: data.tagging_task(seed=s, **SMALL)]
    makers += [lambda s, n=name: data.generation_task(n, seed=s, **SMALL) for name in data.GENERATION_TASKS]
    for make in makers:
        a, b, c = make(0), make(0), make(1)
        for split in ("train", "val", "test"):
            x, y, z = getattr(a, split), getattr(b, split), getattr(c, split)
            assert x.texts == y.texts and x.input_ids.equal(y.input_ids) and x.labels.equal(y.labels)
            assert x.texts != z.texts
    p, q, r = data.probe_dataset(200, seed=0), data.probe_dataset(200, seed=0), data.probe_dataset(200, seed=1)
    assert all(p[k].equal(q[k]) for k in p if isinstance(p[k], torch.Tensor))
    assert p["texts"] == q["texts"] != r["texts"]


# ------------------------------------------------------------------------------ source corpus
def test_corpus_states_the_fact_base_consistently():
    lives = re.compile(r"^(\w+)(?: (\w+))? lives in ([\w ]+?)(?: and| \.)")
    checked = 0
    for text in data.source_corpus(3000, seed=5):
        match = lives.match(text)
        if match and match.group(1) in data.PERSON_FACTS:
            facts = data.PERSON_FACTS[match.group(1)]
            assert match.group(3) == " ".join(facts.home), text
            assert match.group(2) in (None, facts.surname), text
            checked += 1
        words = text.split()
        facts = data.PERSON_FACTS.get(words[0])
        verb = 2 if facts and words[1] == facts.surname else 1
        if facts and words[verb] == "loves":           # "mia loves ..." / "mia chen loves ..."
            thing = words[verb + 2:]
            thing = thing[1:] if thing[0] in data.ATTRIBUTES else thing
            assert tuple(thing[:len(facts.loves)]) == facts.loves, text
            checked += 1
    assert checked > 100
    words = set(" ".join(data.source_corpus(5000, seed=0)).split())
    assert data.HELD_OUT_WORDS <= words     # pre-training sees every word


def test_causal_lm_split_labels_are_shifted_inputs(tok):
    texts = data.source_corpus(300, seed=0)
    for pack in (False, True):
        split = data.causal_lm_split(texts, max_len=64, pack=pack)
        assert split.input_ids.shape[1] == 64 and split.labels.shape == split.input_ids.shape
        for i in range(len(split)):
            ids, labels, n = split.input_ids[i], split.labels[i], int(split.attention_mask[i].sum())
            assert ids[0] == tok.bos_id and ids[n - 1] == tok.eos_id and (ids[n:] == tok.pad_id).all()
            assert (labels[n - 1:] == -100).all()
            for t in range(n - 1):
                expected = -100 if ids[t + 1] == tok.bos_id else ids[t + 1]
                assert labels[t] == expected
        if not pack:
            first = split.input_ids[0][1:int(split.attention_mask[0].sum()) - 1]
            assert len(split) == 300 and tok.decode(first) == texts[0]
    packed = data.causal_lm_split(texts, max_len=64, pack=True)
    assert len(packed) < 300 / 2
    assert " ".join(packed.texts) == " ".join(texts)
    short = data.causal_lm_split(["mia lives in oslo and she works for acme ."], max_len=5)
    assert short.input_ids.shape == (1, 5) and short.attention_mask.all()


def test_masked_lm_split_masks_about_15_percent_never_specials(tok):
    texts = data.source_corpus(2000, seed=0)
    plain = data.masked_lm_split(texts, max_len=64, mask_prob=1e-9, seed=0, pack=True)
    split = data.masked_lm_split(texts, max_len=64, seed=0, pack=True)
    assert split.texts == plain.texts
    original = plain.input_ids
    words = original >= len(data.SPECIAL_TOKENS)
    chosen = split.labels != -100
    assert not (chosen & ~words).any()                       # never specials or padding
    assert (split.labels[chosen] == original[chosen]).all()
    assert abs(chosen.sum() / words.sum() - 0.15) < 0.01
    masked = split.input_ids == tok.mask_id
    assert not (masked & ~chosen).any()
    assert abs(masked.sum() / chosen.sum() - 0.8) < 0.03
    assert (split.input_ids[~chosen] == original[~chosen]).all()
    assert (original[:, 0] == tok.cls_id).all()
    again = data.masked_lm_split(texts, max_len=64, seed=0, pack=True)
    assert again.input_ids.equal(split.input_ids)
    assert not data.masked_lm_split(texts, max_len=64, seed=1, pack=True).input_ids.equal(split.input_ids)


# -------------------------------------------------------------------------------- classification
def test_classification_format_and_balance(tok, cls_task):
    assert cls_task.kind == "sequence" and cls_task.label_names == ["negative", "neutral", "positive"]
    assert cls_task.num_classes == 3
    for split, n in ((cls_task.train, 2000), (cls_task.val, 500), (cls_task.test, 1000)):
        assert split.input_ids.shape == (n, 32) and split.labels.shape == (n,)
        lengths = split.attention_mask.sum(1)
        assert (split.input_ids[:, 0] == tok.cls_id).all()
        assert (split.input_ids[torch.arange(n), lengths - 1] == tok.sep_id).all()
        shares = torch.bincount(split.labels, minlength=3) / n
        assert shares.min() > 0.27 and shares.max() < 0.40


def test_classification_labels_are_a_function_of_the_sentence(cls_task):
    seen = {}
    for split in (cls_task.train, cls_task.val, cls_task.test):
        for text, label in zip(split.texts, split.labels.tolist()):
            assert seen.setdefault(text, label) == label, text
    assert len(set(cls_task.train.texts) & set(cls_task.test.texts)) == 0


def test_no_single_word_solves_classification(cls_task):
    accuracy = best_single_word_rule(cls_task.train.texts, cls_task.train.labels.tolist())
    assert accuracy < 0.6, accuracy
    # composition matters: "but" sentences and negated sentences come in every polarity
    for word in ("but", "not", "nobody", "although"):
        labels = {l for t, l in zip(cls_task.train.texts, cls_task.train.labels.tolist()) if word in t.split()}
        assert {0, 2} <= labels, word


def test_held_out_words_only_in_val_and_test(cls_task, tag_task, gen_tasks):
    for task in [cls_task, tag_task, *gen_tasks.values()]:
        train_words = set(" ".join(task.train.texts).split())
        assert not train_words & data.HELD_OUT_WORDS, task.name
        eval_words = set(" ".join(task.val.texts + task.test.texts).split())
        assert eval_words & data.HELD_OUT_WORDS, task.name
    test_words = set(" ".join(cls_task.test.texts).split())
    assert len(test_words & data.HELD_OUT_WORDS) > 20
    held = sum(bool(set(t.split()) & data.HELD_OUT_WORDS) for t in cls_task.test.texts)
    assert 0.2 < held / len(cls_task.test) < 0.7


# ------------------------------------------------------------------------------------- tagging
def test_tagging_labels_and_ambiguous_words(tok, tag_task):
    assert tag_task.kind == "token" and tag_task.label_names[0] == "O" and tag_task.num_classes == 9
    split = tag_task.train
    assert split.labels.shape == split.input_ids.shape
    special = split.input_ids < len(data.SPECIAL_TOKENS)
    assert (split.labels[special] == -100).all()
    assert (split.labels[~special] >= 0).all() and (split.labels[~special] < 9).all()
    types = collections.defaultdict(set)
    for ids, labels in zip(split.input_ids, split.labels):
        previous = "O"
        for i, label in zip(ids.tolist(), labels.tolist()):
            if label == -100:
                continue
            name = tag_task.label_names[label]
            if name.startswith("I-"):
                assert previous[2:] == name[2:], "I- must continue an entity of the same type"
            types[tok.id_to_token(i)].add(name[2:] if name != "O" else "O")
            previous = name
    for word in ("paris", "jordan", "apple", "ford", "north", "blue"):
        assert len(types[word]) >= 2, (word, types[word])
    assert {"PER", "LOC"} <= types["paris"] and {"THING", "ORG"} <= types["apple"]
    assert any(n.startswith("I-") for n in (tag_task.label_names[l] for l in split.labels[~special].tolist()))


# ---------------------------------------------------------------------------------- generation
def test_generation_format(tok, gen_tasks):
    for name, task in gen_tasks.items():
        assert task.kind == "lm" and task.num_classes == tok.vocab_size
        split = task.train
        for i in range(len(split)):
            ids, labels, n = split.input_ids[i], split.labels[i], int(split.attention_mask[i].sum())
            prompt, answer = data.prompt_and_answer(split.texts[i])
            sep = ids.tolist().index(tok.sep_id)
            assert ids[0] == tok.bos_id and ids[n - 1] == tok.eos_id
            assert (labels[:sep] == -100).all() and (labels[n - 1:] == -100).all()
            assert labels[sep:n - 1].tolist() == ids[sep + 1:n].tolist()
            assert tok.decode(labels[sep:n - 2]) == answer and tok.decode(ids[1:sep]) == prompt
            if name == "negation":
                assert (" not " in f" {prompt} ") != (" not " in f" {answer} "), split.texts[i]


def test_question_answering_uses_the_fact_base(gen_tasks):
    task = gen_tasks["question_answering"]
    for text in task.train.texts + task.test.texts:
        prompt, answer = data.prompt_and_answer(text)
        words = answer.split()
        if words[0] in data.PERSON_FACTS and " lives in " in answer:
            assert answer.endswith(" ".join(data.PERSON_FACTS[words[0]].home) + " .")
    assert all(set(t.split()) & data.HELD_OUT_WORDS for t in task.test.texts)


# -------------------------------------------------------------------------------------- probing
def test_probe_dataset(tok):
    probe = data.probe_dataset(n=300, seed=0)
    ids = probe["input_ids"]
    assert ids.shape == (300, 32) and probe["attention_mask"].shape == ids.shape
    assert probe["sentence_label"].shape == (300,)
    special = ids < len(data.SPECIAL_TOKENS)
    for key in ("token_class", "word_shape", "position", "entity_type", "word_polarity"):
        labels = probe[key]
        assert labels.shape == ids.shape, key
        assert (labels[special] == -100).all() and (labels[~special] >= 0).all(), key
        assert labels.max() < len(probe["label_names"][key]), key
        assert len(labels[~special].unique()) > 1, key
    assert set(probe["label_names"]) == {"token_class", "word_shape", "position", "entity_type",
                                         "word_polarity", "sentence_label"}
    # the same word can have one lexicon class but several entity types in context
    paris = ids == tok.token_to_id("paris")
    if paris.any():
        assert len(probe["token_class"][paris].unique()) == 1


# ----------------------------------------------------------------- the package and its old names
def _plain(x):
    """x as plain JSON data (tensors as lists), so that its hash does not depend on the platform."""
    if isinstance(x, torch.Tensor):
        return [str(x.dtype), x.tolist()]
    if isinstance(x, data.Task):
        return [x.name, x.kind, _plain(x.label_names), x.description, _plain(x.train), _plain(x.val),
                _plain(x.test)]
    if isinstance(x, data.Split):
        return [_plain(x.input_ids), _plain(x.attention_mask), _plain(x.labels), x.texts]
    if dataclasses.is_dataclass(x):
        return repr(x)
    if isinstance(x, dict):
        return [[_plain(k), _plain(v)] for k, v in sorted(x.items(), key=lambda kv: repr(kv[0]))]
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, frozenset):
        return sorted(x)
    return x


def _digest(x) -> str:
    return hashlib.sha256(json.dumps(_plain(x)).encode()).hexdigest()[:16]


# Hashes of what the single-file minift/data.py generated before it became a package. The package must
# generate the same data bit for bit: the shipped checkpoints were pre-trained on this corpus, and
# results in the notebooks were measured on these tasks. A change here changes every seed's data.
GENERATED_DATA = {
    "world": ("8e8e2c6c2a28d0d9", lambda: [
        data.get_tokenizer().tokens, data.WORD_CLASS, data.WORD_POLARITY, data.HELD_OUT_WORDS,
        data.PERSON_FACTS, data.ORGANISATION_FACTS, data.QA_TRAIN_PAIRS, data.QA_EVAL_PAIRS]),
    "corpus": ("6dd3fce931ca0235", lambda: [data.source_corpus(2000, seed=0), data.source_corpus(300, seed=7)]),
    "causal_lm": ("dfcb62b5f08fafbe", lambda: [
        data.causal_lm_split(data.source_corpus(200, seed=3), max_len=64, pack=p) for p in (False, True)]),
    "masked_lm": ("1d67afbea372d5fe", lambda: [
        data.masked_lm_split(data.source_corpus(200, seed=3), max_len=64, seed=2, pack=p) for p in (False, True)]),
    "classification": ("6625714ac9132d4b", lambda: data.classification_task(seed=0)),
    "tagging": ("d389124a6e48ad5b", lambda: data.tagging_task(seed=0)),
    "question_answering": ("10d312a8c4ccf3c7", lambda: data.generation_task("question_answering", seed=0, **SMALL)),
    "paraphrase": ("a05d313df3d3f011", lambda: data.generation_task("paraphrase", seed=0, **SMALL)),
    "negation": ("3797ed7e5b9a3922", lambda: data.generation_task("negation", seed=0, **SMALL)),
    "probe": ("20df92760eb3eba4", lambda: data.probe_dataset(n=300, seed=1)),
}


@pytest.mark.parametrize("name", list(GENERATED_DATA))
def test_generated_data_is_bit_identical_to_the_single_file_version(name):
    expected, generate = GENERATED_DATA[name]
    assert _digest(generate()) == expected, f"the {name} data changed"


def test_every_sentence_kind_of_the_corpus_is_used():
    from minift.data import corpus
    used = collections.Counter()
    original = corpus.SENTENCE_KINDS
    counting = tuple(lambda rng, t, f=f: used.update([f.__name__]) or f(rng, t) for f in original)
    corpus.SENTENCE_KINDS = counting
    try:
        texts = data.source_corpus(500, seed=0)
    finally:
        corpus.SENTENCE_KINDS = original
    assert set(used) == {f.__name__ for f in original}
    assert all(text.endswith((" .", " ?")) for text in texts)


# Names the notebooks, solutions, tests, benchmarks and the library use as minift.data.<name>.
USED_NAMES = ("classification_task", "tagging_task", "generation_task", "probe_dataset", "source_corpus",
              "causal_lm_split", "masked_lm_split", "prompt_and_answer", "get_tokenizer", "Tokenizer",
              "Split", "Task", "SPECIAL_TOKENS", "IGNORE_INDEX", "LEXICON", "HELD_OUT_WORDS", "PERSON_FACTS",
              "ATTRIBUTES", "GENERATION_TASKS")


def test_the_package_keeps_every_name_of_the_single_module():
    from minift.data import corpus, splits, tasks, tokenizer, world
    for name in USED_NAMES + tuple(data.__all__):
        assert hasattr(data, name), name
    assert data.IGNORE_INDEX == -100 and data.IGNORE_INDEX is splits.IGNORE_INDEX
    assert data.classification_task is tasks.classification_task
    assert data.source_corpus is corpus.source_corpus
    assert data.get_tokenizer is tokenizer.get_tokenizer and data.PERSON_FACTS is world.PERSON_FACTS
    from minift.data import IGNORE_INDEX, classification_task, get_tokenizer  # noqa: F401


def test_ignore_index_is_defined_once():
    root = Path(data.__file__).parents[1]
    definitions = [str(path.relative_to(root)) for path in root.rglob("*.py")
                   if re.search(r"^\s*IGNORE_INDEX\s*(:[^=]*)?=", path.read_text(), re.M)]
    assert definitions == [str(Path("data") / "splits.py")], definitions


def test_pack_and_mask_prob_are_checked():
    texts = ["mia is happy ."] * 3
    # "no" is truthy: it used to pack silently
    with pytest.raises(ValueError, match="pack.*'no'"):
        data.causal_lm_split(texts, pack="no")
    with pytest.raises(ValueError, match="pack"):
        data.masked_lm_split(texts, pack=1)
    for bad in (0, -0.1, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="mask_prob"):
            data.masked_lm_split(texts, mask_prob=bad)
    with pytest.raises(ValueError, match="question_answering"):
        data.generation_task("translation")
