"""exercises/ is generated from solutions/ and stays in sync; every exercise has a test cell with points,
as its notebook states; a blank exercise notebook runs top to bottom, and every test cell says "not
implemented yet" and then stops with one short line, not a traceback."""

import os
import re
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


def cells(notebook):
    return [(cell.cell_type, cell.source, cell.metadata) for cell in notebook.cells]


@pytest.mark.parametrize("solution", notebooks_or_skip(SOLUTIONS, "solutions"))
def test_exercise_matches_its_solution(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.is_file(), f"{exercise} is missing: run `make exercises`"
    generated = exercises.make_exercise(nbformat.read(str(solution), as_version=4), name=solution.name)
    committed = nbformat.read(str(exercise), as_version=4)
    assert cells(committed) == cells(generated), f"{exercise.name} is out of date: run `make exercises`"


def is_test_cell(cell) -> bool:
    """An nbgrader autograder test cell: a code cell with points that is not where students write."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


POINTS = re.compile(r"\((\d+) points?( each)?\)\s*$")


@pytest.mark.parametrize("solution", notebooks_or_skip(SOLUTIONS, "solutions"))
def test_points_stated_in_the_notebook_are_its_nbgrader_points(solution):
    """Each heading that ends with "(N points)" covers the graded cells up to the next heading: their
    points add up to N ("(N points each)": each has N); every graded cell is under such a heading, and
    the first cell states the notebook's total as "Points: ... = total"."""
    notebook = nbformat.read(str(solution), as_version=4)
    stated, section, graded = {}, None, {}
    for index, cell in enumerate(notebook.cells):
        heading = cell.source.split("\n", 1)[0] if cell.cell_type == "markdown" else ""
        if heading.startswith("#"):
            match = POINTS.search(heading)
            section = (index, heading) if match else None
            if match:
                stated[section] = (int(match.group(1)), bool(match.group(2)))
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert section is not None, f"{solution.name}: graded cell {meta['grade_id']!r} is under no " \
                                        "heading that states its points"
            graded.setdefault(section, []).append(meta["points"])
    assert graded, f"{solution.name} has no graded cell"
    for section, (points, each) in stated.items():
        found = graded.get(section, [])
        assert found, f"{solution.name}: {section[1]!r} states points but has no graded cell"
        assert (set(found) == {points}) if each else (sum(found) == points), \
            f"{solution.name}: {section[1]!r} states {points}, the cells have {found}"
    total = re.search(r"Points:?\**:?\**[^=\n]*= (\d+)", notebook.cells[0].source)
    assert total, f"{solution.name}: the first cell does not state the total (Points: ... = total)"
    assert int(total.group(1)) == sum(sum(found) for found in graded.values())


@pytest.mark.parametrize("solution", notebooks_or_skip(SOLUTIONS, "solutions"))
def test_every_test_cell_lets_run_all_continue(solution):
    notebook = nbformat.read(str(solution), as_version=4)
    tests = [cell for cell in notebook.cells if is_test_cell(cell)]
    assert tests, f"{solution.name} has no autograder test cell"
    for cell in tests:
        assert "raises-exception" in cell.metadata.get("tags", []), \
            f"{solution.name}: {cell.source!r} needs the raises-exception tag, or Run All stops at it"


@pytest.mark.parametrize("exercise", notebooks_or_skip(EXERCISES, "exercises"))
def test_every_exercise_has_a_solution(exercise):
    assert (ROOT / "solutions" / exercise.name).is_file(), \
        f"{exercise.name} has no solutions/{exercise.name}; exercises are generated from solutions"


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

    test_cells = [cell for cell in notebook.cells if is_test_cell(cell)]
    assert test_cells, f"{exercise.name} has no test cell"
    for cell in test_cells:
        text = output_text(cell)
        assert "not implemented yet" in text, \
            f"{exercise.name}: test cell\n{cell.source}\nprinted\n{text or '(nothing)'}"
        errors = [output for output in cell.outputs if output.output_type == "error"]
        assert [(error.ename, len(error.traceback)) for error in errors] == [("CheckFailed", 1)], \
            f"{exercise.name}: test cell\n{cell.source}\nshould end with one CheckFailed line, got {errors}"
        assert "Traceback" not in text


def test_assert_passed_shows_the_verdict_once_then_fails_in_one_line(capsys):
    """What every test cell ends with: a passed check returns None (no cell value for nbgrader to read
    as partial credit); any other raises CheckFailed, an AssertionError shown as one line."""
    from minift.course.checks.framework import NOT_IMPLEMENTED, CheckFailed, Verdict, mistake, passed

    assert passed("f works").assert_passed() is None
    assert capsys.readouterr().out == "✅ passed: f works\n"

    wrong = mistake("you forgot the biases", "nn.Linear has a bias")
    wrong.printed = True                              # a checker already printed it: not again
    with pytest.raises(CheckFailed) as raised:
        wrong.assert_passed()
    assert capsys.readouterr().out == ""
    assert isinstance(raised.value, AssertionError)
    assert raised.value._render_traceback_() == ["CheckFailed: not passed yet, see the message above"]

    with pytest.raises(CheckFailed, match="^not implemented yet$"):
        Verdict(NOT_IMPLEMENTED, "f still raises NotImplementedError").assert_passed()
    assert "⏳ not implemented yet" in capsys.readouterr().out
