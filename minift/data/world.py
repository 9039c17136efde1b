"""The world of the mini-language: its words (the lexicon) and what is true in it (the fact base).

Everything here is fixed, the same for every seed: one tokenizer serves every checkpoint, and the fact
base that pre-training stores is the one that question answering later asks about.

* The LEXICON (339 words): 40 first names plus 6 that are also city names ("paris", "jordan"),
  15 surnames, 32 places (some multi-word: "new harbor"), 18 organisations ("acme",
  "blue river company"), 33 things ("lamp", "coffee machine"), attributes (colours, sizes,
  materials), 32 quality adjectives and 16 feelings with a fixed polarity ("wonderful", "awful",
  "happy", "sad"), 16 sentiment verbs ("loves", "hates"), neutral verbs ("lives", "works", "buys"),
  negation ("not", "never", "nobody"), intensifiers ("very") and connectives ("but", "because").
  Every word has a lexicon class (WORD_CLASS, context-free: the probes compare it with its role in
  context) and sentiment words a polarity (WORD_POLARITY).
* The FACT BASE, drawn once from WORLD_SEED: every person has a surname, a pronoun, a home, an
  employer, a favourite thing and a hated thing; every organisation has a city and a product.
* HELD_OUT_WORDS: whole entities and sentiment words that never appear in a training split of any
  task (they do appear in the source corpus and in validation and test), so that evaluation measures
  what pre-training taught, not what the task's training set showed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

WORLD_SEED = 2024          # fixes the fact base; task seeds never change it

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
    """Draw the fact base from WORLD_SEED (the order of the draws is part of the world: keep it)."""
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
