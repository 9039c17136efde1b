"""python -m minift.course.exercises: solution notebooks -> exercise notebooks."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minift.course import exercises

STUB = 'raise NotImplementedError("write your code here")'

SOLUTION_CODE = '''def count_lora_params(d_in, d_out, r):
    """A: r x d_in, B: d_out x r."""
    ### BEGIN SOLUTION
    a = r * d_in
    b = d_out * r
    return a + b
    ### END SOLUTION

checks.check_lora_param_count(count_lora_params)'''

EXERCISE_CODE = f'''def count_lora_params(d_in, d_out, r):
    """A: r x d_in, B: d_out x r."""
    {STUB}

checks.check_lora_param_count(count_lora_params)'''


def solution_notebook():
    code = new_code_cell(SOLUTION_CODE, execution_count=3,
                         outputs=[new_output("stream", name="stdout", text="✅ passed\n")])
    top_level = new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)", execution_count=4)
    text = new_markdown_cell("Why is B zero at the start?\n\n<!-- BEGIN SOLUTION -->\n"
                             "So that dW = BA = 0.\n<!-- END SOLUTION -->\n\nNext question.")
    plain = new_markdown_cell("# Chapter 04\nNo solution here.\n")
    notebook = new_notebook(cells=[plain, code, top_level, text])
    notebook.metadata["widgets"] = {"state": {}}
    return notebook


def write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def test_clear_code_replaces_each_block_keeping_indentation():
    assert exercises.clear_code(SOLUTION_CODE) == EXERCISE_CODE
    two = "def f():\n    ### BEGIN SOLUTION\n    1\n    ### END SOLUTION\n\nclass C:\n    def g(self):\n" \
          "        ### BEGIN SOLUTION\n        2\n        ### END SOLUTION\n"
    assert exercises.clear_code(two) == f"def f():\n    {STUB}\n\nclass C:\n    def g(self):\n        {STUB}\n"


def test_code_without_markers_is_unchanged():
    assert exercises.clear_code("x = 1\nprint(x)\n") == "x = 1\nprint(x)\n"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_code_markers_fail_clearly(source, message):
    with pytest.raises(exercises.SolutionMarkerError, match=message):
        exercises.clear_code(source, where="04_lora.ipynb, cell 2")


def test_clear_markdown():
    source = "Question?\n\n<!-- BEGIN SOLUTION -->\nAnswer.\n<!-- END SOLUTION -->\n\nMore."
    assert exercises.clear_markdown(source) == "Question?\n\nMore."
    assert exercises.clear_markdown("No markers.\n") == "No markers.\n"
    with pytest.raises(exercises.SolutionMarkerError, match="never closed"):
        exercises.clear_markdown("<!-- BEGIN SOLUTION -->\nAnswer.")


def test_make_exercise_clears_solutions_outputs_and_counts():
    solution = solution_notebook()
    exercise = exercises.make_exercise(solution)
    plain, code, top_level, text = exercise.cells
    assert code.source == EXERCISE_CODE and code.outputs == [] and code.execution_count is None
    assert top_level.source == f"{STUB}\nprint(x)"
    assert text.source == "Why is B zero at the start?\n\nNext question."
    assert plain.source == solution.cells[0].source
    assert "widgets" not in exercise.metadata
    assert solution.cells[1].source == SOLUTION_CODE              # the input is not modified
    assert [c.id for c in exercise.cells] == [c.id for c in solution.cells]


def test_command_line_generates_and_checks(tmp_path, capsys):
    solutions, target = tmp_path / "solutions", tmp_path / "exercises"
    write(solutions / "04_lora.ipynb", solution_notebook())

    assert exercises.main([str(solutions), str(target), "--check"]) == 1      # missing
    assert "04_lora.ipynb (missing)" in capsys.readouterr().out

    assert exercises.main([str(solutions), str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    generated = nbformat.read(str(target / "04_lora.ipynb"), as_version=4)
    assert generated.cells[1].source == EXERCISE_CODE
    assert exercises.main([str(solutions), str(target), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out

    before = (target / "04_lora.ipynb").stat().st_mtime_ns
    assert exercises.main([str(solutions), str(target)]) == 0                  # idempotent:
    assert (target / "04_lora.ipynb").stat().st_mtime_ns == before             # nothing rewritten
    assert sorted(p.name for p in target.iterdir()) == ["04_lora.ipynb"]       # no temp files

    edited = solution_notebook()
    edited.cells[0].source = "# Chapter 04, edited"
    write(solutions / "04_lora.ipynb", edited)
    write(target / "99_orphan.ipynb", new_notebook())
    assert exercises.main([str(solutions), str(target), "--check"]) == 1
    out = capsys.readouterr().out
    assert "04_lora.ipynb (differs" in out and "99_orphan.ipynb (no" in out


def test_bad_markers_exit_with_an_error(tmp_path, capsys):
    notebook = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1")])
    write(tmp_path / "solutions" / "01_bad.ipynb", notebook)
    assert exercises.main([str(tmp_path / "solutions"), str(tmp_path / "exercises")]) == 2
    assert "01_bad.ipynb, cell 0" in capsys.readouterr().err
    assert not (tmp_path / "exercises" / "01_bad.ipynb").exists()


def test_missing_solutions_folder(tmp_path):
    with pytest.raises(SystemExit):
        exercises.main([str(tmp_path / "nope"), str(tmp_path / "exercises")])


def test_mark_for_nbgrader(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    write(solutions / "04_lora.ipynb", solution_notebook())
    notebook = nbformat.read(str(solutions / "04_lora.ipynb"), as_version=4)
    assert exercises.unmarked_solution_cells(notebook) == [1, 2]

    assert exercises.main([str(solutions), str(tmp_path / "exercises")]) == 0
    assert "no nbgrader metadata" in capsys.readouterr().out                   # a warning, not an error

    assert exercises.main([str(solutions), str(tmp_path / "exercises"), "--mark-nbgrader"]) == 0
    marked = nbformat.read(str(solutions / "04_lora.ipynb"), as_version=4)
    assert exercises.unmarked_solution_cells(marked) == []
    meta = marked.cells[1].metadata["nbgrader"]
    assert meta["solution"] is True and meta["grade"] is False and meta["grade_id"].startswith("solution-")
    assert "nbgrader" not in marked.cells[0].metadata                          # other cells untouched
    assert [c.source for c in marked.cells] == [c.source for c in notebook.cells]
    assert exercises.main([str(solutions), str(tmp_path / "exercises"), "--check"]) == 0
