"""Entity-level F1 (minift.analysis.metrics) on answers worked out by hand, conlleval's span rules,
and the model-level helper on a tagger whose predictions we control."""

import pytest
import torch
import torch.nn as nn

from minift import data
from minift.analysis import metrics
from minift.analysis.metrics import entity_scores, ids_to_tags, spans


def test_spans_of_a_clean_sentence():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]
    assert spans(tags) == {("PER", 0, 1), ("LOC", 3, 3), ("ORG", 5, 7)}


def test_spans_b_after_b_starts_a_new_entity():
    assert spans(["B-PER", "B-PER", "I-PER"]) == {("PER", 0, 0), ("PER", 1, 2)}


def test_spans_stray_i_starts_an_entity_like_conlleval():
    # an I-X after O, or after an entity of another type, opens a new entity (conlleval / seqeval default)
    assert spans(["O", "I-LOC", "I-LOC"]) == {("LOC", 1, 2)}
    assert spans(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}
    assert spans(["I-THING"]) == {("THING", 0, 0)}


def test_spans_of_no_entity():
    assert spans(["O", "O"]) == set() and spans([]) == set()


def test_perfect_prediction_scores_one():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-THING"]]
    scores = entity_scores(gold, gold)
    assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 3, "fp": 0, "fn": 0}


def test_a_truncated_entity_is_wrong_not_half_right():
    # gold PER spans 0-1; predicting only word 0 is a false positive AND a false negative
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    predicted = [["B-PER", "O", "O", "B-LOC"]]
    scores = entity_scores(gold, predicted)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.5)


def test_wrong_type_counts_as_miss_and_false_alarm():
    scores = entity_scores([["B-PER", "O"]], [["B-ORG", "O"]])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["f1"]) == (0, 1, 1, 0.0)


def test_micro_average_over_sentences_by_hand():
    gold = [["B-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "O", "B-THING"]]
    predicted = [["B-PER", "O", "B-LOC", "O"],     # PER right, LOC truncated
                 ["B-ORG", "I-ORG", "B-PER"],      # ORG right, an extra PER
                 ["O", "O", "O"]]                  # THING missed
    scores = entity_scores(gold, predicted)
    # tp: PER, ORG = 2; fp: LOC(2,2), PER(2,2) = 2; fn: LOC(2,3), THING = 2
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 2)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(0.5)


def test_precision_and_recall_differ():
    gold = [["B-PER", "O", "B-LOC", "O", "B-ORG"]]
    predicted = [["B-PER", "O", "O", "O", "O"]]
    scores = entity_scores(gold, predicted)
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))


def test_all_o_tagger_has_high_token_accuracy_but_zero_f1():
    gold = [["O", "O", "B-PER", "O", "O", "O", "O", "O", "O", "O"]]
    predicted = [["O"] * 10]
    token_accuracy = sum(g == p for g, p in zip(gold[0], predicted[0])) / 10
    assert token_accuracy == 0.9
    scores = entity_scores(gold, predicted)
    assert scores["f1"] == 0.0 and scores["precision"] == 0.0 and scores["recall"] == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="2 sentences but predicted has 1"):
        entity_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="one prediction per word"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="'X-PER' is not a BIO tag"):
        entity_scores([["X-PER"]], [["O"]])
    with pytest.raises(ValueError, match="not a BIO tag"):
        spans(["B-"])
    with pytest.raises(TypeError, match="not one string"):
        entity_scores(["B-PER"], ["B-PER"])


def test_ids_to_tags_drops_ignored_positions():
    names = ["O", "B-PER", "I-PER"]
    labels = torch.tensor([[-100, 1, 2, 0, -100, -100]])
    guesses = torch.tensor([[2, 1, 0, 0, 1, 1]])        # predictions on ignored positions are dropped
    gold, predicted = ids_to_tags(labels, guesses, names)
    assert gold == [["B-PER", "I-PER", "O"]] and predicted == [["B-PER", "O", "O"]]
    with pytest.raises(ValueError, match="tag ids must be 0..2"):
        ids_to_tags(torch.tensor([[0, 5]]), torch.tensor([[0, 0]]), names)


class _Oracle(nn.Module):
    """A 'model' whose logits put all mass on given tags: entity_f1 must score exactly those tags."""

    def __init__(self, tags):
        super().__init__()
        self.tags = tags
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        rows = self.tags[self._start:self._start + input_ids.shape[0]]
        self._start += input_ids.shape[0]
        logits = torch.nn.functional.one_hot(rows.clamp(min=0), 9).float()
        return type("Out", (), {"logits": logits})()


def test_entity_f1_on_a_split_matches_the_tag_level_score():
    task = data.tagging_task(n_train=8, n_val=8, n_test=40, seed=0)
    split = task.test
    gold_ids = split.labels
    # corrupt the predictions: drop every I- tag (all entities of two words or more become wrong)
    predicted = gold_ids.clone()
    names = task.label_names
    for i, name in enumerate(names):
        if name.startswith("I-"):
            predicted[predicted == i] = names.index("O")
    oracle = _Oracle(predicted)
    oracle._start = 0
    result = metrics.entity_f1(oracle, split, names, batch_size=16)
    gold, guessed = ids_to_tags(gold_ids, predicted.clamp(min=0), names)
    assert result == entity_scores(gold, guessed)
    assert 0.0 < result["f1"] < 1.0


def test_entity_f1_of_a_perfect_tagger_is_one():
    task = data.tagging_task(n_train=8, n_val=8, n_test=30, seed=1)
    oracle = _Oracle(task.test.labels)
    oracle._start = 0
    result = metrics.entity_f1(oracle, task.test, task.label_names, batch_size=7)
    assert result["f1"] == 1.0 and result["fp"] == 0 and result["fn"] == 0 and result["tp"] > 20


def test_entity_f1_refuses_a_sequence_head():
    task = data.tagging_task(n_train=8, n_val=8, n_test=8, seed=0)

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None):
            return type("Out", (), {"logits": torch.zeros(input_ids.shape[0], 9)})()

    with pytest.raises(ValueError, match="one prediction per token"):
        metrics.entity_f1(Sequence(), task.test, task.label_names)
