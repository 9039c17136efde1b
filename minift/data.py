"""The mini-world: a tiny invented language, its tokenizer, and every data set minift uses.

Nothing can be downloaded, so minift generates its own language. It is small enough to pre-train a
Transformer on a laptop, yet has real structure for pre-training to discover and fine-tuning to use.

What the world contains
-----------------------
* A fixed LEXICON (339 words, the same for every seed, so one tokenizer serves every
  checkpoint): 40 first names plus 6 that are also city names ("paris", "jordan"), 15 surnames,
  32 places (some multi-word: "new harbor"), 18 organisations ("acme", "blue river company"),
  33 things ("lamp", "coffee machine"), attributes (colours, sizes, materials), 32 quality
  adjectives and 16 feelings with a fixed polarity ("wonderful", "awful", "happy", "sad"),
  16 sentiment verbs ("loves", "hates"), neutral verbs ("lives", "works", "buys"), negation
  ("not", "never", "nobody"), intensifiers ("very") and connectives ("but", "because", "although").
* A hidden FACT BASE drawn once from WORLD_SEED: every person has a surname, a pronoun, a home,
  an employer, a favourite thing and a hated thing; every organisation has a city and a product.
* Grammar with agreement: "mia likes" / "mia and leo like" / "mia does not like",
  "she" / "he" follow the name, "a lamp" / "an umbrella".
* HELD_OUT_WORDS: some names, places, organisations, things and sentiment words never appear in a
  training split of any task (they do appear in the source corpus and in validation and test).

Why each task needs what it needs
---------------------------------
* source_corpus (pre-training): states the fact base consistently and in several phrasings
  ("mia lives in oslo", "oslo is the home of mia"), and gives every opinion a reason of the same
  polarity ("mia loves the kite because it is wonderful", "nobody likes the drum because it is
  dull"). A language model that predicts these words must learn which words are people, places
  and organisations, who lives and works where, and which words are positive or negative.
* classification_task: sentiment (negative / neutral / positive) that needs composition. Negation
  and "nobody" flip polarity, after "but" and "although" the second clause decides; facts,
  questions, "asks whether ..." and "and" between opposite opinions are neutral. No single word
  predicts the label. Many rare sentiment words (a quarter of them only in validation and test)
  make word meaning - learnt in pre-training - matter.
* tagging_task: BIO entity tags (PER, LOC, ORG, THING). Names like "paris" (person or city),
  "apple" (thing or company), "north bay" (city) vs "north bay group" (company) need context.
* generation_task: "question_answering" asks about the fact base, whose answers only pre-training
  can teach for held-out people; "paraphrase" and "negation" rewrite a sentence (for LoRA task
  switching: the same input, different outputs per adapter).
* probe_dataset: per-token labels from the lexicon (context-free) and in context, for probing.

Labels use -100 for positions that must be ignored (special tokens, padding, prompts).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]")
IGNORE_INDEX = -100
WORLD_SEED = 2024          # fixes the fact base; task seeds never change it
MIN_TASK_LEN = 16          # the shortest max_len a task accepts

# ---------------------------------------------------------------------------------------- lexicon
FEMALE_NAMES = ("mia", "anna", "sofia", "emma", "lena", "nora", "ruth", "clara", "ines", "yuki",
                "amara", "zoe", "hana", "lucy", "maya", "ella", "iris", "vera", "nadia", "rosa")
MALE_NAMES = ("leo", "omar", "ivan", "noah", "hugo", "felix", "kai", "luca", "sam", "theo",
              "ravi", "tomas", "elias", "marco", "jonas", "ben", "adam", "oscar", "kenji", "pablo")
PERSON_PLACE_NAMES = {"jordan": "he", "paris": "she", "sydney": "she", "austin": "he",
                      "florence": "she", "victoria": "she"}   # a person or a city: context decides
PRONOUN = {**{n: "she" for n in FEMALE_NAMES}, **{n: "he" for n in MALE_NAMES}, **PERSON_PLACE_NAMES}
PERSON_NAMES = FEMALE_NAMES + MALE_NAMES + tuple(PERSON_PLACE_NAMES)
SURNAMES = ("chen", "smith", "garcia", "novak", "okafor", "berg", "costa", "kim", "silva", "rossi",
            "khan", "meyer", "dubois", "tanaka", "ford")
CITIES = ("oslo", "lima", "cairo", "quito", "delhi", "rome", "tokyo", "nairobi", "lagos", "dublin",
          "vienna", "prague", "seoul", "perth", "accra", "porto", "riga", "kyoto", "bergen", "malmo")
PLACES = (tuple((c,) for c in CITIES) + tuple((n,) for n in PERSON_PLACE_NAMES)
          + (("new", "harbor"), ("north", "bay"), ("stone", "hill"), ("green", "valley"),
             ("port", "luna"), ("east", "field")))
ORGANISATIONS = (("acme",), ("zenith",), ("nimbus",), ("vertex",), ("orbit",), ("helix",),
                 ("quanta",), ("ford",), ("apple",), ("blue", "river", "company"),
                 ("red", "star", "bank"), ("north", "bay", "group"), ("silver", "oak", "studio"),
                 ("iron", "bridge", "works"), ("stone", "hill", "farm"), ("bright", "path", "school"),
                 ("delta", "motors"), ("summit", "labs"))
THINGS = tuple((t,) for t in (
    "lamp", "chair", "guitar", "bicycle", "kettle", "camera", "book", "piano", "clock", "mirror",
    "sofa", "table", "radio", "phone", "jacket", "umbrella", "blanket", "painting", "violin",
    "telescope", "backpack", "kite", "boat", "teapot", "drum", "map", "helmet", "candle", "apple")
) + (("coffee", "machine"), ("music", "box"), ("sewing", "machine"), ("rocking", "chair"))
ATTRIBUTES = ("red", "blue", "green", "black", "white", "yellow", "silver", "brown", "orange",
              "small", "big", "tiny", "huge", "old", "new", "wooden", "metal", "glass", "plastic",
              "leather", "iron")
GOOD_QUALITIES = ("good", "great", "wonderful", "excellent", "lovely", "superb", "brilliant",
                  "fantastic", "delightful", "perfect", "charming", "splendid", "marvelous",
                  "pleasant", "beautiful", "amazing")
BAD_QUALITIES = ("bad", "terrible", "awful", "horrible", "dreadful", "boring", "ugly", "poor",
                 "nasty", "useless", "disappointing", "dull", "shabby", "lousy", "annoying", "broken")
GOOD_FEELINGS = ("happy", "glad", "proud", "cheerful", "delighted", "thrilled", "pleased", "content")
BAD_FEELINGS = ("sad", "angry", "upset", "unhappy", "bored", "annoyed", "furious", "gloomy")
# verbs as (base, third person singular, past participle)
LIKE_VERBS = (("like", "likes", "liked"), ("love", "loves", "loved"), ("enjoy", "enjoys", "enjoyed"),
              ("admire", "admires", "admired"), ("adore", "adores", "adored"),
              ("praise", "praises", "praised"), ("value", "values", "valued"),
              ("recommend", "recommends", "recommended"))
DISLIKE_VERBS = (("hate", "hates", "hated"), ("dislike", "dislikes", "disliked"),
                 ("despise", "despises", "despised"), ("avoid", "avoids", "avoided"),
                 ("resent", "resents", "resented"), ("mock", "mocks", "mocked"),
                 ("detest", "detests", "detested"), ("criticize", "criticizes", "criticized"))
OBJECT_VERBS = (("own", "owns", "owned"), ("buy", "buys", "bought"), ("sell", "sells", "sold"),
                ("build", "builds", "built"), ("paint", "paints", "painted"),
                ("find", "finds", "found"), ("see", "sees", "seen"), ("make", "makes", "made"))
OTHER_VERBS = ("live", "lives", "work", "works", "visits", "visited", "employs", "employed", "asks",
               "wonders")
INTENSIFIERS = ("very", "really", "truly", "quite", "extremely")
NEGATIONS = ("not", "never", "nobody")
CONNECTIVES = ("and", "but", "because", "although", "so", "when", "whether", "if")
FUNCTION_WORDS = ("the", "a", "an", "is", "are", "does", "do", "it", "he", "she", "who", "where",
                  "what", "in", "for", "of", "from", "by", "home", "everybody")
PUNCTUATION = (".", ",", "?")


def _flat(groups):
    return tuple(w for group in groups for w in group)


# The lexicon class of every word (context-free; the probes compare it with the class in context).
WORD_GROUPS = (
    ("ambiguous", tuple(PERSON_PLACE_NAMES) + ("ford", "apple")),
    ("person", FEMALE_NAMES + MALE_NAMES + SURNAMES),
    ("attribute", ATTRIBUTES),
    ("place", _flat(PLACES)),
    ("organisation", _flat(ORGANISATIONS)),
    ("thing", _flat(THINGS)),
    ("sentiment", GOOD_QUALITIES + BAD_QUALITIES + GOOD_FEELINGS + BAD_FEELINGS),
    ("verb", _flat(LIKE_VERBS + DISLIKE_VERBS + OBJECT_VERBS) + OTHER_VERBS),
    ("negation", NEGATIONS),
    ("intensifier", INTENSIFIERS),
    ("connective", CONNECTIVES),
    ("function", FUNCTION_WORDS),
    ("punctuation", PUNCTUATION),
)


def _classify_words() -> dict:
    """word -> lexicon class; a word listed in two groups keeps the first (hence their order)."""
    classes = {}
    for word_class, words in WORD_GROUPS:
        for word in words:
            classes.setdefault(word, word_class)
    return classes


WORD_CLASS = _classify_words()
LEXICON = tuple(WORD_CLASS)          # every word, in a fixed order: the tokenizer's vocabulary
TOKEN_CLASSES = tuple(cls for cls, _ in WORD_GROUPS)
WORD_POLARITY = {**{w: "positive" for w in GOOD_QUALITIES + GOOD_FEELINGS + _flat(LIKE_VERBS)},
                 **{w: "negative" for w in BAD_QUALITIES + BAD_FEELINGS + _flat(DISLIKE_VERBS)}}

# Never in a training split; whole entities are held out, so their words are unique to them.
HELD_OUT_WORDS = frozenset(
    ("hana", "vera", "rosa", "iris", "kenji", "pablo", "oscar", "adam",       # people
     "riga", "kyoto", "malmo", "east", "field",                               # places
     "helix", "summit", "labs",                                               # organisations
     "telescope", "violin", "candle", "helmet", "music", "box",               # things
     "splendid", "marvelous", "superb", "delightful", "dreadful", "shabby", "lousy", "nasty",
     "thrilled", "content", "furious", "gloomy")
    + _flat((LIKE_VERBS[4], LIKE_VERBS[6], DISLIKE_VERBS[4], DISLIKE_VERBS[6])))

SENTIMENT_LABELS = ("negative", "neutral", "positive")        # label = polarity + 1
ENTITY_TYPES = ("PER", "LOC", "ORG", "THING")
TAG_NAMES = ("O",) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in "BI")
GENERATION_TASKS = ("question_answering", "paraphrase", "negation")


# -------------------------------------------------------------------------------------- tokenizer
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


# ------------------------------------------------------------------------------- data containers
def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


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
        _check_positive("batch_size", batch_size)
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
        _check_positive("n", n)
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


# ----------------------------------------------------------------------------- the fact base
@dataclass(frozen=True)
class PersonFacts:
    surname: str
    pronoun: str
    home: tuple
    employer: tuple
    loves: tuple
    hates: tuple


@dataclass(frozen=True)
class OrganisationFacts:
    city: tuple
    product: tuple


def _build_facts():
    rng = random.Random(WORLD_SEED)
    surnames = [SURNAMES[i % len(SURNAMES)] for i in range(len(PERSON_NAMES))]   # each one used
    rng.shuffle(surnames)
    people = {}
    for name, surname in zip(PERSON_NAMES, surnames):
        loves, hates = rng.sample(THINGS, 2)
        home = rng.choice([p for p in PLACES if p != (name,)])
        people[name] = PersonFacts(surname, PRONOUN[name], home, rng.choice(ORGANISATIONS), loves, hates)
    organisations = {org: OrganisationFacts(rng.choice(PLACES), rng.choice(THINGS))
                     for org in ORGANISATIONS}
    return people, organisations


PERSON_FACTS, ORGANISATION_FACTS = _build_facts()


# ------------------------------------------------------------------ sentence building blocks
# A sentence is built as a list of (word, BIO tag) pairs, so every task can read off what it needs.
def _o(text: str) -> list:
    """Words outside any entity."""
    return [(w, "O") for w in text.split()]


def _entity(words, entity_type: str) -> list:
    return [(w, ("B-" if i == 0 else "I-") + entity_type) for i, w in enumerate(words)]


def _words(tagged) -> list:
    return [w for w, _ in tagged]


@dataclass(frozen=True)
class _Pools:
    """What a sentence may be built from (training splits leave out the held-out words)."""

    persons: tuple
    places: tuple
    orgs: tuple
    things: tuple
    good: tuple
    bad: tuple
    happy: tuple
    unhappy: tuple
    likes: tuple
    dislikes: tuple


def _make_pools(banned) -> _Pools:
    def keep(items):
        return tuple(i for i in items if not set(i if isinstance(i, tuple) else (i,)) & banned)
    return _Pools(keep(PERSON_NAMES), keep(PLACES), keep(ORGANISATIONS), keep(THINGS),
                  keep(GOOD_QUALITIES), keep(BAD_QUALITIES), keep(GOOD_FEELINGS),
                  keep(BAD_FEELINGS), keep(LIKE_VERBS), keep(DISLIKE_VERBS))


SEEN = _make_pools(HELD_OUT_WORDS)
ALL = _make_pools(frozenset())


def _pools(train: bool) -> _Pools:
    return SEEN if train else ALL


def _person(rng, pools, name=None):
    """A person, sometimes with the surname from the fact base ("mia chen")."""
    name = name or rng.choice(pools.persons)
    if rng.random() < 0.25:
        return _entity((name, PERSON_FACTS[name].surname), "PER")
    return _entity((name,), "PER")


def _place(rng, pools):
    return _entity(rng.choice(pools.places), "LOC")


def _org(rng, pools):
    return _entity(rng.choice(pools.orgs), "ORG")


def _thing(rng, pools, article="the", thing=None):
    """"the lamp", "the old lamp", "an old lamp": attributes are not part of the entity."""
    thing = thing or rng.choice(pools.things)
    words = [rng.choice(ATTRIBUTES)] if rng.random() < 0.4 else []
    if article == "a":
        next_word = words[0] if words else thing[0]
        article = "an" if next_word[0] in "aeiou" else "a"
    return _o(" ".join([article] + words)) + _entity(thing, "THING")


def _object(rng, pools):
    r = rng.random()
    return _thing(rng, pools) if r < 0.6 else _place(rng, pools) if r < 0.8 else _org(rng, pools)


def _polarity_word(rng, positive, negative, polarity):
    return rng.choice(positive if polarity > 0 else negative)


def _subject(rng, pools, quantifiers=True):
    """(words, plural?, flip): "nobody" flips the polarity of whatever it does."""
    r = rng.random() if quantifiers else rng.random() * 0.75
    if r < 0.6:
        return _person(rng, pools), False, 1
    if r < 0.75:
        first, second = rng.sample(pools.persons, 2)
        return _person(rng, pools, first) + _o("and") + _person(rng, pools, second), True, 1
    if r < 0.87:
        return _o("everybody"), False, 1
    return _o("nobody"), False, -1


def _verb(rng, forms, plural, negated):
    """Agreement: "likes" / "like", "does not like" / "do not like", "never likes"."""
    base, third = forms[:2]
    if not negated:
        return _o(base if plural else third)
    if rng.random() < 0.6:
        return _o(("do not " if plural else "does not ") + base)
    return _o("never " + (base if plural else third))


def _evaluation(rng, positive, negative, polarity, negation_prob):
    """"[not | very] ADJ" whose overall polarity is `polarity` (negation flips the adjective)."""
    if rng.random() < negation_prob:
        return _o("not " + _polarity_word(rng, positive, negative, -polarity))
    intensifier = rng.choice(INTENSIFIERS) + " " if rng.random() < 0.4 else ""
    return _o(intensifier + _polarity_word(rng, positive, negative, polarity))


def _polar_clause(rng, pools, polarity):
    """A clause with overall polarity +1 or -1: a quality, a feeling or a sentiment verb."""
    kind = rng.random()
    if kind < 0.3:
        topic = _object(rng, pools)
        return topic + _o("is") + _evaluation(rng, pools.good, pools.bad, polarity, 0.25)
    subject, plural, flip = _subject(rng, pools)
    polarity *= flip
    if kind < 0.5:
        negation_prob = 0.25 if flip > 0 else 0.0
        return (subject + _o("are" if plural else "is")
                + _evaluation(rng, pools.happy, pools.unhappy, polarity, negation_prob))
    negated = flip > 0 and rng.random() < 0.3
    verb_polarity = -polarity if negated else polarity
    forms = _polarity_word(rng, pools.likes, pools.dislikes, verb_polarity)
    return subject + _verb(rng, forms, plural, negated) + _object(rng, pools)


def _fact_clause(rng, pools):
    """A neutral statement of fact (random, not necessarily true in the fact base)."""
    r = rng.random()
    if r < 0.7:
        person = _person(rng, pools)
        kind = rng.randrange(4)
        if kind == 0:
            return person + _o("lives in") + _place(rng, pools)
        if kind == 1:
            return person + _o("works for") + _org(rng, pools)
        if kind == 2:
            return person + _o("visits") + _place(rng, pools)
        return person + _o(rng.choice(OBJECT_VERBS)[1]) + _thing(rng, pools, rng.choice(("the", "a")))
    if r < 0.8:
        return _org(rng, pools) + _o("makes") + _thing(rng, pools)
    if r < 0.9:
        return _org(rng, pools) + _o("employs") + _person(rng, pools)
    return _place(rng, pools) + _o("is the home of") + _person(rng, pools)


def _yes_no_question(rng, pools):
    """"does mia like the lamp ?", "is the lamp very good ?": a question claims nothing."""
    if rng.random() < 0.6:
        subject, plural, _ = _subject(rng, pools, quantifiers=False)
        forms = rng.choice(pools.likes + pools.dislikes)
        return _o("do" if plural else "does") + subject + _o(forms[0]) + _object(rng, pools) + _o("?")
    return (_o("is") + _object(rng, pools)
            + _evaluation(rng, pools.good, pools.bad, rng.choice((1, -1)), 0.0) + _o("?"))


def _neutral_sentence(rng, pools):
    """No overall opinion: a fact, a question, a reported question, or "and" joining two opposite
    opinions (only composition tells "a and not-a" from "a and a" or "not-a but a")."""
    r = rng.random()
    if r < 0.3:
        body = _fact_clause(rng, pools)
        if rng.random() < 0.4:
            body += _o(rng.choice(("and", ", but"))) + _fact_clause(rng, pools)
        return body + _o(".")
    if r < 0.55:
        return _yes_no_question(rng, pools)
    if r < 0.75:
        asker = _person(rng, pools) + _o(rng.choice(("asks whether", "wonders if")))
        return asker + _polar_clause(rng, pools, rng.choice((1, -1))) + _o(".")
    polarity = rng.choice((1, -1))
    return _polar_clause(rng, pools, polarity) + _o("and") + _polar_clause(rng, pools, -polarity) + _o(".")


def _sentiment_sentence(rng, pools, polarity):
    """A sentence whose label is `polarity`: -1 negative, 0 neutral, +1 positive. After "but" /
    "although" the second clause decides; "and" / "because" join clauses that agree (see
    _neutral_sentence for "and" joining clauses that disagree)."""
    if polarity == 0:
        return _neutral_sentence(rng, pools)
    r = rng.random()
    if r < 0.55:
        body = _polar_clause(rng, pools, polarity)
    elif r < 0.7:
        body = _polar_clause(rng, pools, -polarity) + _o(", but") + _polar_clause(rng, pools, polarity)
    elif r < 0.8:
        body = (_o("although") + _polar_clause(rng, pools, -polarity) + _o(",")
                + _polar_clause(rng, pools, polarity))
    else:
        body = (_polar_clause(rng, pools, polarity) + _o(rng.choice(("and", "because")))
                + _polar_clause(rng, pools, polarity))
    return body + _o(".")


# ------------------------------------------------------------------------------ source corpus
def _corpus_sentence(rng):
    """One sentence of the pre-training corpus: true of the fact base, opinions with reasons."""
    pools = ALL
    name = rng.choice(PERSON_NAMES)
    facts = PERSON_FACTS[name]
    person, pronoun = _person(rng, pools, name), facts.pronoun
    home, job = _entity(facts.home, "LOC"), _entity(facts.employer, "ORG")
    polarity = rng.choice((1, -1))
    cared_about = _entity(facts.loves if polarity > 0 else facts.hates, "THING")
    good_or_bad = _evaluation(rng, GOOD_QUALITIES, BAD_QUALITIES, polarity, 0.2)
    kind = rng.randrange(14)
    if kind == 0:
        elsewhere = _entity(rng.choice([p for p in PLACES if p != facts.home]), "LOC")
        s = rng.choice((person + _o("lives in") + home, home + _o("is the home of") + person,
                        person + _o("does not live in") + elsewhere))
    elif kind == 1:
        other_job = _entity(rng.choice([o for o in ORGANISATIONS if o != facts.employer]), "ORG")
        s = rng.choice((person + _o("works for") + job, job + _o("employs") + person,
                        person + _o("is employed by") + job, person + _o("does not work for") + other_job))
    elif kind == 2:
        s = person + _o("lives in") + home + _o(f"and {pronoun} works for") + job
    elif kind == 3:
        s = person + _o(", who works for") + job + _o(", lives in") + home
    elif kind == 4:
        org = rng.choice(ORGANISATIONS)
        city, product = ORGANISATION_FACTS[org].city, ORGANISATION_FACTS[org].product
        s = rng.choice((_entity(org, "ORG") + _o("is in") + _entity(city, "LOC"),
                        _entity(org, "ORG") + _o("makes the") + _entity(product, "THING"),
                        _o("the") + _entity(product, "THING") + _o("is made by") + _entity(org, "ORG")))
    elif kind in (5, 6):    # an opinion about the favourite or hated thing, often with a reason
        negated = rng.random() < 0.3
        verb_polarity = -polarity if negated else polarity
        if rng.random() < 0.5:
            forms = LIKE_VERBS[1] if verb_polarity > 0 else DISLIKE_VERBS[0]   # "loves" / "hates"
        else:
            forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, verb_polarity)
        s = person + _verb(rng, forms, False, negated) + _o("the") + cared_about
        if rng.random() < 0.7:
            s += _o("because it is") + good_or_bad
    elif kind == 7:         # the same opinion in the passive
        forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, polarity)
        s = _o("the") + cared_about + _o(f"is {forms[2]} by") + person
    elif kind == 8:         # feelings follow the facts
        s = (person + _o("is") + _evaluation(rng, GOOD_FEELINGS, BAD_FEELINGS, polarity, 0.2)
             + _o(f"when {pronoun} sees the") + cared_about)
    elif kind == 9:         # contrast: "but" and "although" join opposite polarities
        if rng.random() < 0.5:
            s = (person + _o(rng.choice(LIKE_VERBS)[1] + " the") + _entity(facts.loves, "THING")
                 + _o(f", but {pronoun} " + rng.choice(DISLIKE_VERBS)[1] + " the")
                 + _entity(facts.hates, "THING"))
        else:
            s = (_o("although the") + _entity(facts.hates, "THING") + _o("is")
                 + _evaluation(rng, GOOD_QUALITIES, BAD_QUALITIES, 1, 0.0) + _o(",") + person
                 + _o(rng.choice(DISLIKE_VERBS)[1] + " it"))
    elif kind == 10:        # generic opinions: the reason agrees with the (possibly flipped) verb
        subject, plural, flip = _subject(rng, pools)
        while subject[0][1] == "B-PER" and not plural:   # one person's likes are facts (above)
            subject, plural, flip = _subject(rng, pools)
        negated = flip > 0 and rng.random() < 0.3
        verb_polarity = polarity * flip * (-1 if negated else 1)
        forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, verb_polarity)
        s = (subject + _verb(rng, forms, plural, negated) + _thing(rng, pools)
             + _o("because it is") + good_or_bad)
    elif kind == 11:        # a quality causes a feeling of the same polarity
        subject, plural, _ = _subject(rng, pools, quantifiers=False)
        feeling = (_o("are" if plural else "is")
                   + _evaluation(rng, GOOD_FEELINGS, BAD_FEELINGS, polarity, 0.2))
        if rng.random() < 0.5:
            s = _thing(rng, pools) + _o("is") + good_or_bad + _o(", so") + subject + feeling
        else:
            s = subject + feeling + _o("because") + _thing(rng, pools) + _o("is") + good_or_bad
    elif kind == 12:        # neutral events
        forms, r = rng.choice(OBJECT_VERBS), rng.randrange(4)
        thing = _thing(rng, pools, rng.choice(("the", "a")))
        if r == 0:
            subject, plural, _ = _subject(rng, pools, quantifiers=False)
            s = subject + _o(forms[0] if plural else forms[1]) + thing + _o("in") + _place(rng, pools)
        elif r == 1:
            s = _thing(rng, pools) + _o(f"is {forms[2]} by") + person
        elif r == 2:
            s = person + _o("buys") + _thing(rng, pools, "a") + _o("from") + _org(rng, pools)
        else:
            s = rng.choice((person + _o("visits") + _place(rng, pools),
                            _place(rng, pools) + _o("is visited by") + person))
    else:                   # questions, asked or reported, that claim nothing
        other, r = _person(rng, pools), rng.randrange(4)
        if r == 0:
            s = person + _o(rng.choice(("asks where", "wonders where"))) + other + _o(
                rng.choice(("lives", "works")))
        elif r == 1:
            s = person + _o("asks what") + other + _o(rng.choice(("loves", "hates")))
        elif r == 2:
            s = person + _o(rng.choice(("asks whether", "wonders if"))) + _thing(rng, pools) + _o(
                "is " + rng.choice(GOOD_QUALITIES + BAD_QUALITIES))
        else:
            return _words(_yes_no_question(rng, pools))
    return _words(s + _o("."))


def source_corpus(n_sentences: int, seed: int = 0) -> list[str]:
    """n_sentences pre-training sentences (any number; the same seed gives the same list)."""
    _check_positive("n_sentences", n_sentences)
    rng = random.Random(f"corpus/{seed}")
    return [" ".join(_corpus_sentence(rng)) for _ in range(n_sentences)]


def _pad(rows, max_len):
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
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
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
    ids, mask = _pad(rows, max_len)
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
    if not 0 < mask_prob <= 1:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob!r}")
    tokenizer = get_tokenizer()
    rows, row_texts = _rows(texts, max_len, [tokenizer.cls_id], [tokenizer.sep_id], pack, False)
    ids, mask = _pad(rows, max_len)
    generator = torch.Generator().manual_seed(seed)
    words = ids >= len(SPECIAL_TOKENS)
    chosen = (torch.rand(ids.shape, generator=generator) < mask_prob) & words
    action = torch.rand(ids.shape, generator=generator)
    random_words = torch.randint(len(SPECIAL_TOKENS), tokenizer.vocab_size, ids.shape, generator=generator)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, tokenizer.mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_words, inputs)
    return Split(inputs, mask, labels, row_texts)


# -------------------------------------------------------------------------------- target tasks
def _check_task_args(max_len, **sizes):
    for name, value in {**sizes, "max_len": max_len}.items():
        _check_positive(name, value)
    if max_len < MIN_TASK_LEN:
        raise ValueError(f"max_len must be at least {MIN_TASK_LEN} for task sentences, got {max_len}")


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


def _classification_example(rng, train):
    label = rng.randrange(len(SENTIMENT_LABELS))
    tagged = _sentiment_sentence(rng, _pools(train), label - 1)
    return _words(tagged), [t for _, t in tagged], label


def _sequence_split(examples, max_len):
    tokenizer = get_tokenizer()
    rows = [tokenizer.encode(words, add_cls=True, add_sep=True) for words, _, _ in examples]
    ids, mask = _pad(rows, max_len)
    labels = torch.tensor([label for _, _, label in examples], dtype=torch.long)
    return Split(ids, mask, labels, [" ".join(words) for words, _, _ in examples])


def _token_split(examples, max_len):
    split = _sequence_split([(words, tags, 0) for words, tags, _ in examples], max_len)
    split.labels = torch.full_like(split.input_ids, IGNORE_INDEX)
    for i, (_, tags, _) in enumerate(examples):      # position 0 is [CLS]
        split.labels[i, 1:len(tags) + 1] = torch.tensor([TAG_NAMES.index(t) for t in tags])
    return split


def classification_task(n_train=2000, n_val=500, n_test=1000, seed=0, max_len=32) -> Task:
    """Sentence sentiment that needs composition. Input: [CLS] words [SEP]; label per sentence."""
    _check_task_args(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits("classification", (n_train, n_val, n_test), seed, max_len,
                           _classification_example)
    return Task("classification", "sequence", *[_sequence_split(s, max_len) for s in splits],
                list(SENTIMENT_LABELS),
                "Is the sentence negative, neutral or positive? Negation and 'nobody' flip "
                "polarity; after 'but'/'although' the second clause decides; facts, questions and "
                "'and' between opposite opinions are neutral.")


def _tagging_example(rng, train):
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
    _check_task_args(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits("tagging", (n_train, n_val, n_test), seed, max_len, _tagging_example)
    return Task("tagging", "token", *[_token_split(s, max_len) for s in splits], list(TAG_NAMES),
                "Tag every word with its entity type (PER, LOC, ORG, THING) in BIO form. "
                "'paris', 'apple', 'ford', 'north bay' change type with context.")


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


def _negation_example(rng, train):
    """A statement and its negation, in a random direction."""
    pools = _pools(train)
    r = rng.random()
    if r < 0.6:
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
    else:
        if r < 0.8:
            subject, plural, _ = _subject(rng, pools, quantifiers=False)
            subject += _o("are" if plural else "is")
            adjective = _o(rng.choice(pools.happy + pools.unhappy))
        else:
            subject = _object(rng, pools) + _o("is")
            adjective = _o(rng.choice(pools.good + pools.bad))
        yes, no = subject + adjective, subject + _o("not") + adjective
    source, target = (yes, no) if rng.random() < 0.5 else (no, yes)
    return _words(source) + [".", "[SEP]"] + _words(target) + ["."], None, None


def _paraphrase_example(rng, train):
    """The same fact in two phrasings, in a random direction."""
    pools = _pools(train)
    kind = rng.randrange(4)
    if kind == 0:
        person, place = _person(rng, pools), _place(rng, pools)
        one, other = person + _o("lives in") + place, place + _o("is the home of") + person
    elif kind == 1:
        person, org = _person(rng, pools), _org(rng, pools)
        one, other = person + _o("works for") + org, org + _o("employs") + person
    elif kind == 2:
        subject, plural, _ = _subject(rng, pools, quantifiers=False)
        forms, thing = rng.choice(pools.likes + pools.dislikes + OBJECT_VERBS), _thing(rng, pools)
        one = subject + _o(forms[0] if plural else forms[1]) + thing
        other = thing + _o(f"is {forms[2]} by") + subject
    else:
        org, thing = _org(rng, pools), _thing(rng, pools)
        one, other = org + _o("makes") + thing, thing + _o("is made by") + org
    source, target = (one, other) if rng.random() < 0.5 else (other, one)
    return _words(source) + [".", "[SEP]"] + _words(target) + ["."], None, None


def _generation_split(examples, max_len):
    """[BOS] prompt [SEP] answer [EOS]; labels are the next token from [SEP] on, -100 before."""
    tokenizer = get_tokenizer()
    rows = [tokenizer.encode(words, add_bos=True, add_eos=True) for words, _, _ in examples]
    ids, mask = _pad(rows, max_len)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, row in enumerate(rows):
        sep = row.index(tokenizer.sep_id)
        labels[i, sep:len(row) - 1] = torch.tensor(row[sep + 1:])
    return Split(ids, mask, labels, [" ".join(words) for words, _, _ in examples])


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
    makers = {"question_answering": _qa_example, "paraphrase": _paraphrase_example,
              "negation": _negation_example}
    if name not in makers:
        raise ValueError(f"unknown generation task {name!r}; choose from {GENERATION_TASKS}")
    _check_task_args(max_len, n_train=n_train, n_val=n_val, n_test=n_test)
    splits = _three_splits(name, (n_train, n_val, n_test), seed, max_len, makers[name])
    return Task(name, "lm", *[_generation_split(s, max_len) for s in splits],
                list(get_tokenizer().tokens), GENERATION_DESCRIPTIONS[name])


def prompt_and_answer(text: str) -> tuple[str, str]:
    """Split a generation text "prompt [SEP] answer" into its two parts."""
    prompt, _, answer = text.partition(" [SEP] ")
    return prompt, answer


# ------------------------------------------------------------------------------------ probing
POSITION_BUCKETS = ("0-3", "4-7", "8-11", "12-15", "16+")
WORD_SHAPES = ("short", "medium", "long")    # at most 4 letters, 5-7, 8 or more
POLARITIES = ("none", "positive", "negative")


def probe_dataset(n=1000, seed=0, max_len=32) -> dict:
    """Classification-style sentences ([CLS] words [SEP]) with labels for probing each layer.

    Per token (N, T), -100 on special tokens and padding: token_class (lexicon class, context-free),
    word_shape (word length, purely surface), position (bucket of the word index), entity_type
    (BIO tag in context) and word_polarity (lexicon polarity). Per sentence (N,): sentence_label.
    """
    _check_task_args(max_len, n=n)
    examples = _sample("probe", "test", n, seed, max_len, _classification_example)
    split = _token_split(examples, max_len)
    per_word = {
        "token_class": lambda w, i: TOKEN_CLASSES.index(WORD_CLASS[w]),
        "word_shape": lambda w, i: 0 if len(w) <= 4 else 1 if len(w) <= 7 else 2,
        "position": lambda w, i: min(i // 4, len(POSITION_BUCKETS) - 1),
        "word_polarity": lambda w, i: POLARITIES.index(WORD_POLARITY.get(w, "none")),
    }
    result = {"input_ids": split.input_ids, "attention_mask": split.attention_mask,
              "entity_type": split.labels, "texts": split.texts,
              "sentence_label": torch.tensor([label for _, _, label in examples])}
    for key, label_of in per_word.items():
        labels = torch.full_like(split.input_ids, IGNORE_INDEX)
        for row, (words, _, _) in enumerate(examples):
            labels[row, 1:len(words) + 1] = torch.tensor([label_of(w, i) for i, w in enumerate(words)])
        result[key] = labels
    result["label_names"] = {"token_class": list(TOKEN_CLASSES), "word_shape": list(WORD_SHAPES),
                             "position": list(POSITION_BUCKETS), "entity_type": list(TAG_NAMES),
                             "word_polarity": list(POLARITIES),
                             "sentence_label": list(SENTIMENT_LABELS)}
    return result
