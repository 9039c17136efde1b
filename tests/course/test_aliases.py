"""The old names of the course modules still work for this release (the committed notebooks use them):
each is the course wing's module itself, not a copy."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALIASES = [
    ("minift.quiz", "minift.course.quiz"),
    ("minift.checks", "minift.course.checks"),
    ("minift.checks_lora", "minift.course.checks.ch04_lora"),
    ("minift.checks_lowrank", "minift.course.checks.ch03_lowrank"),
    ("minift.viz", "minift.course.viz"),
    ("minift.exercises", "minift.course.exercises"),
    ("minift.widgets.params_explorer", "minift.course.widgets.params_explorer"),
    ("minift.widgets.rank_explorer", "minift.course.widgets.rank_explorer"),
]

# what ``from minift import checks`` offered before the course wing was split into chapters
OLD_CHECKS_NAMES = ["Verdict", "checker", "call", "passed", "mistake", "check_count_attention_params",
                    "check_count_ffn_params", "check_count_block_params", "check_lora_param_count",
                    "check_prefix_param_count", "check_target_model", "check_training_step",
                    "reference_training_step", "attention_params", "ffn_params", "block_params",
                    "lora_params", "prefix_params", "check_accuracy", "reference_accuracy"]


@pytest.mark.parametrize("old, new", ALIASES, ids=[old for old, _ in ALIASES])
def test_old_name_is_the_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_imports_the_committed_notebooks_use():
    import minift
    import minift.course
    import minift.quiz
    from minift import checks, viz
    from minift import checks_lora, checks_lowrank
    from minift.checks_lora import ReferenceLoRALinear
    from minift.widgets import params_explorer, rank_explorer

    assert callable(minift.course.setup) and callable(minift.course.save_results)
    assert callable(minift.quiz.show) and callable(minift.quiz.check)
    for name in OLD_CHECKS_NAMES:
        assert callable(getattr(checks, name)), name
    assert callable(checks_lora.check_lora_linear) and isinstance(ReferenceLoRALinear, type)
    assert callable(checks_lowrank.check_rank_r_approximation)
    assert callable(viz.plot_history)
    assert callable(params_explorer.explore) and callable(rank_explorer.rank_view)
    assert minift.quiz is sys.modules["minift.course.quiz"]


def test_python_m_minift_exercises_still_runs():
    done = subprocess.run([sys.executable, "-m", "minift.exercises", "solutions", "exercises", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout
