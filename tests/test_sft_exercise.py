"""Chapter 01's exercises: the solutions pass their checkers, and typical wrong answers a student
might write are reported with the specific mistake (the checkers themselves are in test_checks.py)."""

import copy
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift import checks
from minift.heads import SequenceClassificationHead

ROOT = Path(__file__).resolve().parent.parent


def solution_functions():
    """Execute the solution notebook's function cells (not the set-up or demo cells)."""
    notebook = nbformat.read(str(ROOT / "solutions" / "01_sft.ipynb"), as_version=4)
    namespace = {"copy": copy, "torch": torch, "nn": nn, "F": F,
                 "SequenceClassificationHead": SequenceClassificationHead}
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("def "):
            exec(cell.source, namespace)
    return namespace


def test_solutions_pass_their_checkers():
    functions = solution_functions()
    assert checks.check_target_model(functions["build_target_model"], quiet=True).passed
    assert checks.check_training_step(functions["training_step"], quiet=True).passed


def keeps_lm_head(source_model, num_classes):
    target = copy.deepcopy(source_model)
    target.head = SequenceClassificationHead(source_model.config.d_model, num_classes, pool="last")
    return target


def no_copy(source_model, num_classes):
    source_model.lm_head = None
    source_model.head = SequenceClassificationHead(source_model.config.d_model, num_classes, pool="last")
    return source_model


def reinitialises_body(source_model, num_classes):
    target = copy.deepcopy(source_model)
    target.lm_head = None
    for module in target.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()
    target.head = SequenceClassificationHead(source_model.config.d_model, num_classes, pool="last")
    return target


def wrong_classes(source_model, num_classes):
    target = copy.deepcopy(source_model)
    target.lm_head = None
    target.head = SequenceClassificationHead(source_model.config.d_model, 2, pool="last")
    return target


@pytest.mark.parametrize("fn, fragment", [
    (keeps_lm_head, "LM head"), (no_copy, "source model itself"),
    (reinitialises_body, "copied weights changed"), (wrong_classes, "wrong number of classes")])
def test_target_model_mistakes_are_named(fn, fragment):
    verdict = checks.check_target_model(fn, quiet=True)
    assert verdict.status == "mistake" and fragment in verdict.message, verdict


def no_zero_grad(model, batch, optimizer):
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_step(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100)
    loss.backward()
    return loss.item()


def summed_loss(model, batch, optimizer):
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100, reduction="sum")
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("fn, fragment", [
    (no_zero_grad, "zero_grad"), (no_step, "optimizer.step()"), (summed_loss, "summed")])
def test_training_step_mistakes_are_named(fn, fragment):
    verdict = checks.check_training_step(fn, quiet=True)
    assert verdict.status == "mistake" and fragment in verdict.message, verdict
