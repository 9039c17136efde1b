"""Entity-level scores for sequence labelling (BIO tags): what a tagger is judged by.

Token accuracy flatters a tagger: most words are "O", so a model that tags everything "O" is right on
most tokens and finds no entity at all. The standard score (CoNLL's conlleval, seqeval) counts whole
entities instead: a predicted entity is correct only if its type, first word and last word all match a
gold entity.

    spans(["B-PER", "I-PER", "O", "B-LOC"])   ->  {("PER", 0, 1), ("LOC", 3, 3)}
    entity_scores(gold_rows, predicted_rows)  ->  {"precision", "recall", "f1", "tp", "fp", "fn"}
    entity_f1(model, split, tag_names)        ->  the same, for a token-tagging model on a minift Split

How spans are read (as conlleval and seqeval's default mode do): an entity starts at B-X, or at an I-X
that does not continue an entity of type X (after O, or after an entity of another type); it goes on
while the next tag is I-X. Scores are micro-averaged over every entity of every sentence: precision =
tp / (tp + fp), recall = tp / (tp + fn), F1 their harmonic mean; a ratio whose denominator is 0 is 0
(no predicted entities gives precision 0, as in seqeval).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import IGNORE_INDEX

__all__ = ["spans", "entity_scores", "ids_to_tags", "entity_f1", "predict_tags", "T95", "t95"]


def _split_tag(tag: str) -> tuple[str, str]:
    """"B-PER" -> ("B", "PER"); "O" -> ("O", ""). Anything else is refused, naming the tag."""
    if not isinstance(tag, str):
        raise TypeError(f"a BIO tag must be a string such as 'O', 'B-PER' or 'I-LOC', got {tag!r}")
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if dash != "-" or prefix not in ("B", "I") or not kind:
        raise ValueError(f"{tag!r} is not a BIO tag: allowed are 'O', 'B-<type>' and 'I-<type>'")
    return prefix, kind


def spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entities of one tagged sentence as (type, first index, last index), both ends included."""
    found, current = set(), None                   # current: [type, start, end] of the open entity
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag)
        continues = prefix == "I" and current is not None and current[0] == kind
        if continues:
            current[2] = i
            continue
        if current is not None:
            found.add(tuple(current))
            current = None
        if prefix in ("B", "I"):                   # B-X, or an I-X that continues nothing: a new entity
            current = [kind, i, i]
    if current is not None:
        found.add(tuple(current))
    return found


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged entity precision, recall and F1 over sentences (lists of BIO tags), with the
    counts behind them. The two lists must pair up sentence by sentence, with equal lengths."""
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} sentences but predicted has {len(predicted)}: "
                         "they must pair up one to one")
    tp = fp = fn = 0
    for number, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if isinstance(gold_tags, str) or isinstance(predicted_tags, str):
            raise TypeError("each sentence must be a list of tags, not one string "
                            f"(sentence {number}: {gold_tags!r} / {predicted_tags!r})")
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {number} has {len(gold_tags)} gold tags but {len(predicted_tags)} "
                             "predicted ones: one prediction per word")
        gold_spans, predicted_spans = spans(gold_tags), spans(predicted_tags)
        hits = len(gold_spans & predicted_spans)
        tp, fp, fn = tp + hits, fp + len(predicted_spans) - hits, fn + len(gold_spans) - hits
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def ids_to_tags(label_ids: torch.Tensor, predicted_ids: torch.Tensor, tag_names: Sequence[str],
                ignore_index: int = IGNORE_INDEX) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) tag lists from (N, T) id tensors, keeping only positions whose label is not
    ``ignore_index`` ([CLS], [SEP], padding): the words of each sentence, in order."""
    if label_ids.shape != predicted_ids.shape or label_ids.dim() != 2:
        raise ValueError(f"labels {tuple(label_ids.shape)} and predictions {tuple(predicted_ids.shape)} "
                         "must both be (sentences, positions)")
    names = list(tag_names)
    kept = label_ids != ignore_index
    bad = kept & ((label_ids < 0) | (label_ids >= len(names)) | (predicted_ids < 0)
                  | (predicted_ids >= len(names)))
    if bool(bad.any()):
        raise ValueError(f"tag ids must be 0..{len(names) - 1} (there are {len(names)} tag names)")
    gold, predicted = [], []
    for labels, guesses, keep in zip(label_ids.tolist(), predicted_ids.tolist(), kept.tolist()):
        gold.append([names[t] for t, k in zip(labels, keep) if k])
        predicted.append([names[t] for t, k in zip(guesses, keep) if k])
    return gold, predicted


@torch.no_grad()
def predict_tags(model, split, batch_size: int = 256) -> torch.Tensor:
    """The arg-max tag id of every position of ``split`` (N, T), in eval mode (the mode is given back)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    try:
        for batch in split.batches(batch_size, shuffle=False):
            logits = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            if logits.dim() != 3:
                raise ValueError(f"entity F1 needs one prediction per token, logits (B, T, tags); the model "
                                 f"returned {tuple(logits.shape)} (a sequence head?)")
            rows.append(logits.argmax(dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(rows)


def entity_f1(model, split, tag_names: Sequence[str], batch_size: int = 256) -> dict:
    """Entity precision, recall and F1 of a token-tagging ``model`` on ``split`` (a minift Split with
    per-token labels, -100 where ignored): entity_scores on the model's arg-max tags."""
    predicted = predict_tags(model, split, batch_size)
    gold_tags, predicted_tags = ids_to_tags(split.labels.cpu(), predicted, tag_names)
    return entity_scores(gold_tags, predicted_tags)


# Two-sided 95% quantiles of Student's t by degrees of freedom, for intervals over a few seeds (the
# benchmarks' paired differences). Between table entries the next smaller df is used (a slightly wider,
# conservative interval); beyond 29 degrees of freedom the normal quantile 1.96.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 29: 2.045}


def t95(df: int) -> float:
    """The 95% two-sided t quantile for ``df`` degrees of freedom (see T95)."""
    if df in T95:
        return T95[df]
    smaller = [k for k in T95 if k <= df]
    return T95[max(smaller)] if df <= 29 else 1.96
