"""The mini-world: a tiny invented language, its tokenizer, and every data set minift uses.

Nothing can be downloaded, so minift generates its own language. It is small enough to pre-train a
Transformer on a laptop, yet has real structure for pre-training to discover and fine-tuning to use.

    from minift import data
    task = data.classification_task(n_train=1000)        # negative / neutral / positive
    task.train.input_ids, task.train.labels              # a Split: ids, mask, labels, texts
    data.get_tokenizer().decode(task.train.input_ids[0])

The package, one file per part of the world:

* world.py      the words (a fixed LEXICON of 339 words with their classes and polarities) and the
                hidden FACT BASE (who lives and works where, who loves and hates what), drawn once
                from WORLD_SEED; HELD_OUT_WORDS, never in a training split.
* grammar.py    how sentences are built, as (word, BIO tag) pairs, with agreement and composed
                sentiment (negation, "nobody", "but", "although").
* corpus.py     source_corpus: the pre-training sentences, true of the fact base, opinions with reasons.
* tokenizer.py  the word-level Tokenizer (special tokens first) and get_tokenizer().
* splits.py     Split and Task (what fit() consumes), IGNORE_INDEX, causal_lm_split, masked_lm_split.
* tasks.py      classification_task, tagging_task, generation_task, probe_dataset.

Everything is deterministic: the same seed gives the same data, bit for bit. Labels use IGNORE_INDEX
(-100) for positions that must be ignored (special tokens, padding, prompts).
"""

from __future__ import annotations

from .world import (ATTRIBUTES, BAD_FEELINGS, BAD_QUALITIES, CITIES, CONNECTIVES, DISLIKE_VERBS,
                    ENTITY_TYPES, FEMALE_NAMES, FUNCTION_WORDS, GOOD_FEELINGS, GOOD_QUALITIES,
                    HELD_OUT_WORDS, INTENSIFIERS, LEXICON, LIKE_VERBS, MALE_NAMES, NEGATIONS,
                    OBJECT_VERBS, ORGANISATION_FACTS, ORGANISATIONS, OTHER_VERBS, PERSON_FACTS,
                    PERSON_NAMES, PERSON_PLACE_NAMES, PLACES, PRONOUN, PUNCTUATION, SENTIMENT_LABELS,
                    SURNAMES, TAG_NAMES, THINGS, TOKEN_CLASSES, WORD_CLASS, WORD_GROUPS, WORD_POLARITY,
                    WORLD_SEED, OrganisationFacts, PersonFacts)
from .tokenizer import SPECIAL_TOKENS, Tokenizer, get_tokenizer
from .splits import IGNORE_INDEX, Split, Task, causal_lm_split, masked_lm_split
from .grammar import ALL, SEEN
from .corpus import source_corpus
from .tasks import (GENERATION_DESCRIPTIONS, GENERATION_TASKS, MIN_TASK_LEN, POLARITIES,
                    POSITION_BUCKETS, QA_EVAL_PAIRS, QA_TRAIN_PAIRS, WORD_SHAPES, classification_task,
                    generation_task, probe_dataset, prompt_and_answer, tagging_task)

__all__ = [
    # the world
    "WORLD_SEED", "FEMALE_NAMES", "MALE_NAMES", "PERSON_PLACE_NAMES", "PRONOUN", "PERSON_NAMES",
    "SURNAMES", "CITIES", "PLACES", "ORGANISATIONS", "THINGS", "ATTRIBUTES", "GOOD_QUALITIES",
    "BAD_QUALITIES", "GOOD_FEELINGS", "BAD_FEELINGS", "LIKE_VERBS", "DISLIKE_VERBS", "OBJECT_VERBS",
    "OTHER_VERBS", "INTENSIFIERS", "NEGATIONS", "CONNECTIVES", "FUNCTION_WORDS", "PUNCTUATION",
    "WORD_GROUPS", "WORD_CLASS", "LEXICON", "TOKEN_CLASSES", "WORD_POLARITY", "HELD_OUT_WORDS",
    "SENTIMENT_LABELS", "ENTITY_TYPES", "TAG_NAMES", "PersonFacts", "OrganisationFacts",
    "PERSON_FACTS", "ORGANISATION_FACTS",
    # grammar and corpus
    "SEEN", "ALL", "source_corpus",
    # tokenizer and containers
    "SPECIAL_TOKENS", "Tokenizer", "get_tokenizer", "IGNORE_INDEX", "Split", "Task",
    "causal_lm_split", "masked_lm_split",
    # tasks and probes
    "MIN_TASK_LEN", "GENERATION_TASKS", "GENERATION_DESCRIPTIONS", "QA_TRAIN_PAIRS", "QA_EVAL_PAIRS",
    "classification_task", "tagging_task", "generation_task", "prompt_and_answer",
    "POSITION_BUCKETS", "WORD_SHAPES", "POLARITIES", "probe_dataset",
]
