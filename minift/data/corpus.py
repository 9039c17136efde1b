"""The source corpus: the sentences the source models are pre-trained on.

Unlike task sentences, every corpus sentence is true of the fact base and states it in several
phrasings ("mia lives in oslo", "oslo is the home of mia"), and every opinion has a reason of the same
polarity ("mia loves the kite because it is wonderful", "nobody likes the drum because it is dull").
A language model that predicts these words must learn which words are people, places and
organisations, who lives and works where, and which words are positive or negative: what fine-tuning
later builds on.

Each sentence is about one person of the fact base. _draw_topic draws that person and an opinion
polarity; then one entry of SENTENCE_KINDS, drawn uniformly, writes the sentence. The corpus uses every
word (held-out words included): pre-training sees the whole world, tasks' training splits do not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..validate import positive_int
from .grammar import (ALL, _entity, _evaluation, _o, _org, _person, _place, _polarity_word, _subject,
                      _thing, _verb, _words, _yes_no_question)
from .world import (BAD_FEELINGS, BAD_QUALITIES, DISLIKE_VERBS, GOOD_FEELINGS, GOOD_QUALITIES, LIKE_VERBS,
                    OBJECT_VERBS, ORGANISATION_FACTS, ORGANISATIONS, PERSON_FACTS, PERSON_NAMES, PLACES,
                    PersonFacts)


@dataclass(frozen=True)
class _Topic:
    """What one corpus sentence is about, drawn before its kind so that every kind sees the same draws."""

    person: list          # the person's name, sometimes with the surname, tagged "PER"
    facts: PersonFacts
    polarity: int         # +1 or -1, for the kinds that state an opinion
    good_or_bad: list     # "[very] wonderful" or "not good": a quality of that polarity

    @property
    def pronoun(self) -> str:
        return self.facts.pronoun

    @property
    def home(self) -> list:
        return _entity(self.facts.home, "LOC")

    @property
    def job(self) -> list:
        return _entity(self.facts.employer, "ORG")

    @property
    def cared_about(self) -> list:
        """The favourite thing for a positive opinion, the hated thing for a negative one."""
        return _entity(self.facts.loves if self.polarity > 0 else self.facts.hates, "THING")


def _draw_topic(rng) -> _Topic:
    name = rng.choice(PERSON_NAMES)
    person = _person(rng, ALL, name)
    polarity = rng.choice((1, -1))
    good_or_bad = _evaluation(rng, GOOD_QUALITIES, BAD_QUALITIES, polarity, 0.2)
    return _Topic(person, PERSON_FACTS[name], polarity, good_or_bad)


# ------------------------------------------------------------------------------ sentence kinds
# Each kind writes one tagged sentence about the topic, without its final "." (see _corpus_sentence).
def _home(rng, t: _Topic) -> list:
    """Where the person lives, in one of three phrasings (one of them says where they do not live)."""
    elsewhere = _entity(rng.choice([p for p in PLACES if p != t.facts.home]), "LOC")
    return rng.choice((t.person + _o("lives in") + t.home, t.home + _o("is the home of") + t.person,
                       t.person + _o("does not live in") + elsewhere))


def _employer(rng, t: _Topic) -> list:
    """Who employs the person, in one of four phrasings (one says who does not)."""
    other_job = _entity(rng.choice([o for o in ORGANISATIONS if o != t.facts.employer]), "ORG")
    return rng.choice((t.person + _o("works for") + t.job, t.job + _o("employs") + t.person,
                       t.person + _o("is employed by") + t.job,
                       t.person + _o("does not work for") + other_job))


def _home_and_employer(rng, t: _Topic) -> list:
    return t.person + _o("lives in") + t.home + _o(f"and {t.pronoun} works for") + t.job


def _relative_clause(rng, t: _Topic) -> list:
    return t.person + _o(", who works for") + t.job + _o(", lives in") + t.home


def _organisation(rng, t: _Topic) -> list:
    """A fact about a random organisation: its city or its product."""
    name = rng.choice(ORGANISATIONS)
    facts = ORGANISATION_FACTS[name]
    org, city, product = _entity(name, "ORG"), _entity(facts.city, "LOC"), _entity(facts.product, "THING")
    return rng.choice((org + _o("is in") + city, org + _o("makes the") + product,
                       _o("the") + product + _o("is made by") + org))


def _opinion(rng, t: _Topic) -> list:
    """The person's opinion of the favourite or hated thing, often with a reason."""
    negated = rng.random() < 0.3
    verb_polarity = -t.polarity if negated else t.polarity
    if rng.random() < 0.5:
        forms = LIKE_VERBS[1] if verb_polarity > 0 else DISLIKE_VERBS[0]   # "loves" / "hates"
    else:
        forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, verb_polarity)
    sentence = t.person + _verb(rng, forms, False, negated) + _o("the") + t.cared_about
    if rng.random() < 0.7:
        sentence += _o("because it is") + t.good_or_bad
    return sentence


def _passive_opinion(rng, t: _Topic) -> list:
    """The same opinion in the passive: "the kite is loved by mia"."""
    forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, t.polarity)
    return _o("the") + t.cared_about + _o(f"is {forms[2]} by") + t.person


def _feeling(rng, t: _Topic) -> list:
    """Feelings follow the facts: "mia is happy when she sees the kite"."""
    return (t.person + _o("is") + _evaluation(rng, GOOD_FEELINGS, BAD_FEELINGS, t.polarity, 0.2)
            + _o(f"when {t.pronoun} sees the") + t.cared_about)


def _contrast(rng, t: _Topic) -> list:
    """"but" and "although" join opposite polarities (the loved and the hated thing)."""
    loved, hated = _entity(t.facts.loves, "THING"), _entity(t.facts.hates, "THING")
    if rng.random() < 0.5:
        return (t.person + _o(rng.choice(LIKE_VERBS)[1] + " the") + loved
                + _o(f", but {t.pronoun} " + rng.choice(DISLIKE_VERBS)[1] + " the") + hated)
    return (_o("although the") + hated + _o("is")
            + _evaluation(rng, GOOD_QUALITIES, BAD_QUALITIES, 1, 0.0) + _o(",") + t.person
            + _o(rng.choice(DISLIKE_VERBS)[1] + " it"))


def _generic_opinion(rng, t: _Topic) -> list:
    """An opinion of two people, everybody or nobody about any thing; the reason agrees with the
    (possibly negated, possibly "nobody"-flipped) verb."""
    subject, plural, flip = _subject(rng, ALL)
    while subject[0][1] == "B-PER" and not plural:   # one person's likes are facts (see _opinion)
        subject, plural, flip = _subject(rng, ALL)
    negated = flip > 0 and rng.random() < 0.3
    verb_polarity = t.polarity * flip * (-1 if negated else 1)
    forms = _polarity_word(rng, LIKE_VERBS, DISLIKE_VERBS, verb_polarity)
    return (subject + _verb(rng, forms, plural, negated) + _thing(rng, ALL)
            + _o("because it is") + t.good_or_bad)


def _quality_causes_feeling(rng, t: _Topic) -> list:
    """A quality causes a feeling of the same polarity, told in either order."""
    subject, plural, _ = _subject(rng, ALL, quantifiers=False)
    feeling = (_o("are" if plural else "is")
               + _evaluation(rng, GOOD_FEELINGS, BAD_FEELINGS, t.polarity, 0.2))
    if rng.random() < 0.5:
        return _thing(rng, ALL) + _o("is") + t.good_or_bad + _o(", so") + subject + feeling
    return subject + feeling + _o("because") + _thing(rng, ALL) + _o("is") + t.good_or_bad


def _neutral_event(rng, t: _Topic) -> list:
    """Owning, buying, visiting: events without an opinion."""
    forms, event = rng.choice(OBJECT_VERBS), rng.randrange(4)
    thing = _thing(rng, ALL, rng.choice(("the", "a")))     # drawn for every event (fixes the stream)
    if event == 0:
        subject, plural, _ = _subject(rng, ALL, quantifiers=False)
        return subject + _o(forms[0] if plural else forms[1]) + thing + _o("in") + _place(rng, ALL)
    if event == 1:
        return _thing(rng, ALL) + _o(f"is {forms[2]} by") + t.person
    if event == 2:
        return t.person + _o("buys") + _thing(rng, ALL, "a") + _o("from") + _org(rng, ALL)
    return rng.choice((t.person + _o("visits") + _place(rng, ALL),
                       _place(rng, ALL) + _o("is visited by") + t.person))


def _question(rng, t: _Topic) -> list:
    """Questions, asked or reported, that claim nothing."""
    other, form = _person(rng, ALL), rng.randrange(4)
    if form == 0:
        return (t.person + _o(rng.choice(("asks where", "wonders where"))) + other
                + _o(rng.choice(("lives", "works"))))
    if form == 1:
        return t.person + _o("asks what") + other + _o(rng.choice(("loves", "hates")))
    if form == 2:
        return (t.person + _o(rng.choice(("asks whether", "wonders if"))) + _thing(rng, ALL)
                + _o("is " + rng.choice(GOOD_QUALITIES + BAD_QUALITIES)))
    return _yes_no_question(rng, ALL)          # ends with its own "?"


# Drawn uniformly. _opinion is listed twice, so opinions about the favourite or hated thing are twice
# as common as each other kind. The order is part of the corpus: the same seed picks the same kinds.
SENTENCE_KINDS = (_home, _employer, _home_and_employer, _relative_clause, _organisation,
                  _opinion, _opinion, _passive_opinion, _feeling, _contrast, _generic_opinion,
                  _quality_causes_feeling, _neutral_event, _question)


def _corpus_sentence(rng) -> list:
    """One sentence of the pre-training corpus, as words: true of the fact base, opinions with reasons."""
    topic = _draw_topic(rng)
    write = SENTENCE_KINDS[rng.randrange(len(SENTENCE_KINDS))]
    sentence = write(rng, topic)
    if sentence[-1][0] != "?":                 # a question already ends with its mark
        sentence = sentence + _o(".")
    return _words(sentence)


def source_corpus(n_sentences: int, seed: int = 0) -> list[str]:
    """n_sentences pre-training sentences (any number; the same seed gives the same list)."""
    n_sentences = positive_int("n_sentences", n_sentences)
    rng = random.Random(f"corpus/{seed}")
    return [" ".join(_corpus_sentence(rng)) for _ in range(n_sentences)]
