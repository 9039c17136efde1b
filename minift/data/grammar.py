"""The sentence grammar: how the mini-world's sentences are built, word by word, with their entity tags.

A sentence is built as a list of (word, BIO tag) pairs, so every task can read off what it needs: the
words, the entity tags (tagging), and, from how it was built, its sentiment (classification). The
builders take a random.Random and a _Pools (what a sentence may use: training splits leave out the
held-out words) and draw from the random stream in a fixed order, so the same seed gives the same
sentence. They are internal to the data package (tasks.py and corpus.py use them).

Grammar with agreement: "mia likes" / "mia and leo like" / "mia does not like"; "she" / "he" follow
the name; "a lamp" / "an umbrella". Sentiment needs composition: negation and "nobody" flip polarity,
after "but" and "although" the second clause decides, "and" between opposite opinions is neutral.
"""

from __future__ import annotations

from dataclasses import dataclass

from .world import (ATTRIBUTES, BAD_FEELINGS, BAD_QUALITIES, DISLIKE_VERBS, GOOD_FEELINGS, GOOD_QUALITIES,
                    HELD_OUT_WORDS, INTENSIFIERS, LIKE_VERBS, OBJECT_VERBS, ORGANISATIONS, PERSON_FACTS,
                    PERSON_NAMES, PLACES, THINGS)


def _o(text: str) -> list:
    """Words outside any entity."""
    return [(w, "O") for w in text.split()]


def _entity(words, entity_type: str) -> list:
    """An entity of one or more words: "B-LOC" on the first, "I-LOC" on the others."""
    return [(w, ("B-" if i == 0 else "I-") + entity_type) for i, w in enumerate(words)]


def _words(tagged) -> list:
    """The words of a tagged sentence, without their tags."""
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


SEEN = _make_pools(HELD_OUT_WORDS)      # training splits of every task
ALL = _make_pools(frozenset())          # validation, test, and the source corpus


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


