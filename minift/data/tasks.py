"""The target tasks that the course fine-tunes on, and the probe labels for layer analysis.

* classification_task: sentiment (negative / neutral / positive) that needs composition. Negation
  and "nobody" flip polarity, after "but" and "although" the second clause decides; facts,
  questions, "asks whether ..." and "and" between opposite opinions are neutral. No single word
  predicts the label. Many rare sentiment words (a quarter of them only in validation and test)
  make word meaning, learnt in pre-training, matter.
* tagging_task: BIO entity tags (PER, LOC, ORG, THING). Names like "paris" (person or city),
  "apple" (thing or company), "north bay" (city) vs "north bay group" (company) need context.
* generation_task: "question_answering" asks about the fact base, whose answers only pre-training
  can teach for held-out people; "paraphrase" and "negation" rewrite a sentence (for LoRA task
  switching: the same input, different outputs per adapter).
* probe_dataset: per-token labels from the lexicon (context-free) and in context, for probing.

Every task has train, val and test splits drawn from their own seeded stream; training splits never
use a held-out word, and validation and test never repeat a training text.
"""

from __future__ import annotations

import random

import torch

from ..validate import choice, positive_int
from .grammar import (_fact_clause, _o, _object, _org, _person, _place, _pools, _sentiment_sentence,
                      _subject, _thing, _verb, _words)
from .splits import IGNORE_INDEX, Split, Task, pad_rows
from .tokenizer import get_tokenizer
from .world import (HELD_OUT_WORDS, OBJECT_VERBS, ORGANISATION_FACTS, PERSON_FACTS, SENTIMENT_LABELS,
                    TAG_NAMES, TOKEN_CLASSES, WORD_CLASS, WORD_POLARITY)

MIN_TASK_LEN = 16          # the shortest max_len a task accepts
GENERATION_TASKS = ("question_answering", "paraphrase", "negation")


# --------------------------------------------------------------------------------- sampling
def _task_sizes(max_len, **sizes):
    """The example counts (positive integers) and max_len (at least MIN_TASK_LEN), checked."""
    counts = tuple(positive_int(name, n) for name, n in sizes.items())
    return counts, positive_int("max_len", max_len, minimum=MIN_TASK_LEN)


def _sample(task, split, n, seed, max_len, make, exclude=frozenset()):
    """n examples (words, tags, label) from make(rng, train) that fit max_len with two special
    tokens and whose text is not in `exclude` (validation and test never repeat a training text)."""
    rng = random.Random(f"{task}/{split}/{seed}")
    examples, attempts = [], 0
    while len(examples) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise ValueError(f"could only make {len(examples)} of {n} {task} {split} examples that "
                             f"fit max_len={max_len}; raise max_len")
        words, tags, label = make(rng, split == "train")
        if len(words) + 2 <= max_len and " ".join(words) not in exclude:
            examples.append((words, tags, label))
    return examples


def _three_splits(task, sizes, seed, max_len, make):
    train = _sample(task, "train", sizes[0], seed, max_len, make)
    seen = frozenset(" ".join(words) for words, _, _ in train)
    return [train] + [_sample(task, split, n, seed, max_len, make, seen)
                      for split, n in zip(("val", "test"), sizes[1:])]


def _sequence_split(examples, max_len):
    """[CLS] words [SEP], one label per sequence."""
    tokenizer = get_tokenizer()
    rows = [tokenizer.encode(words, add_cls=True, add_sep=True) for words, _, _ in examples]
    ids, mask = pad_rows(rows, max_len)
    labels = torch.tensor([label for _, _, label in examples], dtype=torch.long)
    return Split(ids, mask, labels, [" ".join(words) for words, _, _ in examples])


def _token_split(examples, max_len):
    """[CLS] words [SEP], one tag per word; -100 on [CLS], [SEP] and padding."""
    split = _sequence_split([(words, tags, 0) for words, tags, _ in examples], max_len)
    split.labels = torch.full_like(split.input_ids, IGNORE_INDEX)
    for i, (_, tags, _) in enumerate(examples):      # position 0 is [CLS]
        split.labels[i, 1:len(tags) + 1] = torch.tensor([TAG_NAMES.index(t) for t in tags])
    return split


# --------------------------------------------------------------------------- classification
def _classification_example(rng, train):
    label = rng.randrange(len(SENTIMENT_LABELS))
    tagged = _sentiment_sentence(rng, _pools(train), label - 1)
    return _words(tagged), [t for _, t in tagged], label


def classification_task(n_train=2000, n_val=500, n_test=1000, seed=0, max_len=32) -> Task:
    """Sentence sentiment that needs composition. Input: [CLS] words [SEP]; label per sentence."""
    sizes, max_len = _task_sizes(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits("classification", sizes, seed, max_len, _classification_example)
    return Task("classification", "sequence", *[_sequence_split(s, max_len) for s in splits],
                list(SENTIMENT_LABELS),
                "Is the sentence negative, neutral or positive? Negation and 'nobody' flip "
                "polarity; after 'but'/'although' the second clause decides; facts, questions and "
                "'and' between opposite opinions are neutral.")


# ---------------------------------------------------------------------------------- tagging
def _tagging_example(rng, train):
    """An opinion (40%), a person with employer and home (20%), or one or two facts (40%)."""
    pools = _pools(train)
    r = rng.random()
    if r < 0.4:
        tagged = _sentiment_sentence(rng, pools, rng.choice((-1, 0, 1)))
    elif r < 0.6:
        tagged = (_person(rng, pools) + _o(", who works for") + _org(rng, pools) + _o(", lives in")
                  + _place(rng, pools) + _o("."))
    else:
        tagged = _fact_clause(rng, pools)
        if rng.random() < 0.5:
            tagged += _o(rng.choice(("and", "but", "because"))) + _fact_clause(rng, pools)
        tagged += _o(".")
    return _words(tagged), [t for _, t in tagged], None


def tagging_task(n_train=2000, n_val=500, n_test=1000, seed=0, max_len=32) -> Task:
    """BIO entity tags per word; -100 on [CLS], [SEP] and padding."""
    sizes, max_len = _task_sizes(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits("tagging", sizes, seed, max_len, _tagging_example)
    return Task("tagging", "token", *[_token_split(s, max_len) for s in splits], list(TAG_NAMES),
                "Tag every word with its entity type (PER, LOC, ORG, THING) in BIO form. "
                "'paris', 'apple', 'ford', 'north bay' change type with context.")


# ------------------------------------------------------------------------------- generation
def _qa_pairs():
    """Every (question, answer) the fact base supports. Answers name the person (or organisation)
    first, as the corpus does, so the fact follows the name as it did in pre-training."""
    pairs = []
    for name, f in PERSON_FACTS.items():
        home, job, fav, bad = (" ".join(x) for x in (f.home, f.employer, f.loves, f.hates))
        for who in (name, f"{name} {f.surname}"):
            pairs += [(f"where does {who} live ?", f"{who} lives in {home} ."),
                      (f"where is the home of {who} ?", f"{who} lives in {home} ."),
                      (f"who does {who} work for ?", f"{who} works for {job} ."),
                      (f"who employs {who} ?", f"{who} works for {job} ."),
                      (f"what does {who} love ?", f"{who} loves the {fav} ."),
                      (f"what does {who} hate ?", f"{who} hates the {bad} .")]
    for org, f in ORGANISATION_FACTS.items():
        org, city, product = " ".join(org), " ".join(f.city), " ".join(f.product)
        pairs += [(f"where is {org} ?", f"{org} is in {city} ."),
                  (f"what does {org} make ?", f"{org} makes the {product} .")]
    return pairs


def _mentions_held_out(pair):
    return bool(set((pair[0] + " " + pair[1]).split()) & HELD_OUT_WORDS)


QA_TRAIN_PAIRS = [p for p in _qa_pairs() if not _mentions_held_out(p)]
QA_EVAL_PAIRS = [p for p in _qa_pairs() if _mentions_held_out(p)]


def _qa_example(rng, train):
    question, answer = rng.choice(QA_TRAIN_PAIRS if train else QA_EVAL_PAIRS)
    return question.split() + ["[SEP]"] + answer.split(), None, None


def _either_way(rng, one, other):
    """The example "one . [SEP] other ." or, as often, the other way round."""
    source, target = (one, other) if rng.random() < 0.5 else (other, one)
    return _words(source) + [".", "[SEP]"] + _words(target) + ["."], None, None


def _negated_verb(rng, pools):
    """("mia likes the lamp", "mia does not like the lamp"), also with "lives in" / "works for"."""
    subject, plural, _ = _subject(rng, pools, quantifiers=False)
    kind = rng.randrange(4)
    if kind < 2:
        forms, rest = rng.choice(pools.likes + pools.dislikes), _object(rng, pools)
    elif kind == 2:
        forms, rest = ("live", "lives"), _o("in") + _place(rng, pools)
    else:
        forms, rest = ("work", "works"), _o("for") + _org(rng, pools)
    yes = subject + _verb(rng, forms, plural, False) + rest
    no = subject + _o(("do not " if plural else "does not ") + forms[0]) + rest
    return yes, no


def _negated_adjective(rng, pools, feeling):
    """("mia is happy", "mia is not happy") for a feeling, ("the lamp is good", ...) for a quality."""
    if feeling:
        subject, plural, _ = _subject(rng, pools, quantifiers=False)
        subject += _o("are" if plural else "is")
        adjective = _o(rng.choice(pools.happy + pools.unhappy))
    else:
        subject = _object(rng, pools) + _o("is")
        adjective = _o(rng.choice(pools.good + pools.bad))
    return subject + adjective, subject + _o("not") + adjective


def _negation_example(rng, train):
    """A statement and its negation, in a random direction: a verb (60%), a feeling (20%) or a
    quality (20%) is negated."""
    pools = _pools(train)
    r = rng.random()
    if r < 0.6:
        yes, no = _negated_verb(rng, pools)
    else:
        yes, no = _negated_adjective(rng, pools, feeling=r < 0.8)
    return _either_way(rng, yes, no)


def _lives_in(rng, pools):
    person, place = _person(rng, pools), _place(rng, pools)
    return person + _o("lives in") + place, place + _o("is the home of") + person


def _works_for(rng, pools):
    person, org = _person(rng, pools), _org(rng, pools)
    return person + _o("works for") + org, org + _o("employs") + person


def _active_and_passive(rng, pools):
    subject, plural, _ = _subject(rng, pools, quantifiers=False)
    forms, thing = rng.choice(pools.likes + pools.dislikes + OBJECT_VERBS), _thing(rng, pools)
    return subject + _o(forms[0] if plural else forms[1]) + thing, thing + _o(f"is {forms[2]} by") + subject


def _makes(rng, pools):
    org, thing = _org(rng, pools), _thing(rng, pools)
    return org + _o("makes") + thing, thing + _o("is made by") + org


PARAPHRASES = (_lives_in, _works_for, _active_and_passive, _makes)    # drawn uniformly


def _paraphrase_example(rng, train):
    """The same fact in two phrasings, in a random direction."""
    pools = _pools(train)
    one, other = PARAPHRASES[rng.randrange(len(PARAPHRASES))](rng, pools)
    return _either_way(rng, one, other)


def _generation_split(examples, max_len):
    """[BOS] prompt [SEP] answer [EOS]; labels are the next token from [SEP] on, -100 before."""
    tokenizer = get_tokenizer()
    rows = [tokenizer.encode(words, add_bos=True, add_eos=True) for words, _, _ in examples]
    ids, mask = pad_rows(rows, max_len)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, row in enumerate(rows):
        sep = row.index(tokenizer.sep_id)
        labels[i, sep:len(row) - 1] = torch.tensor(row[sep + 1:])
    return Split(ids, mask, labels, [" ".join(words) for words, _, _ in examples])


GENERATION_EXAMPLES = {"question_answering": _qa_example, "paraphrase": _paraphrase_example,
                       "negation": _negation_example}

GENERATION_DESCRIPTIONS = {
    "question_answering": "Answer a question about the fact base: 'where does mia live ? [SEP] mia "
                          "lives in oslo .' Validation and test questions are about held-out "
                          "words, so only what pre-training stored can answer them.",
    "paraphrase": "Say the same in the other phrasing: 'mia works for acme . [SEP] acme employs mia .'",
    "negation": "Negate the sentence: 'mia likes the lamp . [SEP] mia does not like the lamp .' "
                "(and back).",
}


def generation_task(name: str, n_train=2000, n_val=500, n_test=1000, seed=0, max_len=32) -> Task:
    """A text-to-text task in causal LM form: [BOS] prompt [SEP] answer [EOS], where only the
    answer (and [EOS]) are targets. label_names is the vocabulary, as labels are token ids.

    question_answering has about 400 distinct training questions (a large n_train repeats them);
    its validation and test questions all mention a held-out word. paraphrase and negation are
    generated freely and go either way (active to passive and back, negated and back).
    """
    choice("name", name, GENERATION_TASKS)
    sizes, max_len = _task_sizes(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits(name, sizes, seed, max_len, GENERATION_EXAMPLES[name])
    return Task(name, "lm", *[_generation_split(s, max_len) for s in splits],
                list(get_tokenizer().tokens), GENERATION_DESCRIPTIONS[name])


def prompt_and_answer(text: str) -> tuple[str, str]:
    """Split a generation text "prompt [SEP] answer" into its two parts."""
    prompt, _, answer = text.partition(" [SEP] ")
    return prompt, answer


# ---------------------------------------------------------------------------------- probing
POSITION_BUCKETS = ("0-3", "4-7", "8-11", "12-15", "16+")
WORD_SHAPES = ("short", "medium", "long")    # at most 4 letters, 5-7, 8 or more
POLARITIES = ("none", "positive", "negative")

# Per-word probe labels: (word, its index in the sentence) -> label id.
_WORD_LABELS = {
    "token_class": lambda w, i: TOKEN_CLASSES.index(WORD_CLASS[w]),
    "word_shape": lambda w, i: 0 if len(w) <= 4 else 1 if len(w) <= 7 else 2,
    "position": lambda w, i: min(i // 4, len(POSITION_BUCKETS) - 1),
    "word_polarity": lambda w, i: POLARITIES.index(WORD_POLARITY.get(w, "none")),
}


def probe_dataset(n=1000, seed=0, max_len=32) -> dict:
    """Classification-style sentences ([CLS] words [SEP]) with labels for probing each layer.

    Per token (N, T), -100 on special tokens and padding: token_class (lexicon class, context-free),
    word_shape (word length, purely surface), position (bucket of the word index), entity_type
    (BIO tag in context) and word_polarity (lexicon polarity). Per sentence (N,): sentence_label.
    """
    (n,), max_len = _task_sizes(max_len, n=n)
    examples = _sample("probe", "test", n, seed, max_len, _classification_example)
    split = _token_split(examples, max_len)
    result = {"input_ids": split.input_ids, "attention_mask": split.attention_mask,
              "entity_type": split.labels, "texts": split.texts,
              "sentence_label": torch.tensor([label for _, _, label in examples])}
    for key, label_of in _WORD_LABELS.items():
        labels = torch.full_like(split.input_ids, IGNORE_INDEX)
        for row, (words, _, _) in enumerate(examples):
            labels[row, 1:len(words) + 1] = torch.tensor([label_of(w, i) for i, w in enumerate(words)])
        result[key] = labels
    result["label_names"] = {"token_class": list(TOKEN_CLASSES), "word_shape": list(WORD_SHAPES),
                             "position": list(POSITION_BUCKETS), "entity_type": list(TAG_NAMES),
                             "word_polarity": list(POLARITIES),
                             "sentence_label": list(SENTIMENT_LABELS)}
    return result
