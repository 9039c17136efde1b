"""Chapter 01's exercises: the solution notebook's functions pass their checkers. (Wrong answers a
student might write, each reported with its specific mistake, are tested in test_checks.py.)"""

import copy
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.course.checks import ch01_sft as checks
from minift.heads import SequenceClassificationHead

pytestmark = pytest.mark.usefixtures("one_thread")   # checkers set no threads (see conftest.py)

ROOT = Path(__file__).resolve().parents[2]


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
