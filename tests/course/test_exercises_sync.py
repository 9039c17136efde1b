"""exercises/ is generated from solutions/ and stays in sync; a blank exercise notebook runs top to
bottom without an error and every check cell says "not implemented yet"."""

import os
from pathlib import Path

import nbformat
import pytest

from minift.course import exercises

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
CELL_TIMEOUT_S = 120


def notebooks_or_skip(paths, folder):
    if paths:
        return [pytest.param(p, id=p.name) for p in paths]
    return [pytest.param(None, marks=pytest.mark.skip(reason=f"no notebooks in {folder}/ yet"), id="none")]


def cell_sources(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.mark.parametrize("solution", notebooks_or_skip(SOLUTIONS, "solutions"))
def test_exercise_matches_its_solution(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.is_file(), f"{exercise} is missing: run `make exercises`"
    generated = exercises.make_exercise(nbformat.read(str(solution), as_version=4), name=solution.name)
    committed = nbformat.read(str(exercise), as_version=4)
    assert cell_sources(committed) == cell_sources(generated), \
        f"{exercise.name} is out of date: run `make exercises`"


@pytest.mark.parametrize("exercise", notebooks_or_skip(EXERCISES, "exercises"))
def test_every_exercise_has_a_solution(exercise):
    assert (ROOT / "solutions" / exercise.name).is_file(), \
        f"{exercise.name} has no solutions/{exercise.name}; exercises are generated from solutions"


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and "checks.check_" in cell.source


def output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def run_notebook(path: Path):
    """Execute a notebook in a kernel running this test's own Python (like nbval --nbval-current-env,
    whatever kernel the notebook names); raises CellExecutionError on the first failing cell."""
    from jupyter_client.manager import KernelManager
    from nbconvert.preprocessors import ExecutePreprocessor
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    notebook = nbformat.read(str(path), as_version=4)
    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    runner = ExecutePreprocessor(timeout=CELL_TIMEOUT_S, kernel_name=CURRENT_ENV_KERNEL_NAME)
    runner.preprocess(notebook, {"metadata": {"path": str(path.parent)}}, km=kernel)
    return notebook


@pytest.mark.parametrize("exercise", notebooks_or_skip(EXERCISES, "exercises"))
def test_blank_exercise_runs_and_reports_not_implemented(exercise, monkeypatch):
    monkeypatch.setenv("MINIFT_MODE", "fast")             # the kernel inherits this environment
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = run_notebook(exercise)

    check_cells = [cell for cell in notebook.cells if is_check_cell(cell)]
    assert check_cells, f"{exercise.name} has no check cell (a cell calling checks.check_...)"
    for cell in check_cells:
        text = output_text(cell)
        assert "not implemented yet" in text, \
            f"{exercise.name}: check cell\n{cell.source}\nprinted\n{text or '(nothing)'}"
        assert "Traceback" not in text
