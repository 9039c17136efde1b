"""python -m minift.course.exercises: solution notebooks -> exercise notebooks, as nbgrader releases them
(test_nbgrader.py compares with nbgrader itself on the real notebooks and on solution_notebook() below)."""

import hashlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from minift.course import exercises

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

SOLUTION_CODE = '''def count_lora_params(d_in, d_out, r):
    """A: r x d_in, B: d_out x r."""
    ### BEGIN SOLUTION
    a = r * d_in
    b = d_out * r
    return a + b
    ### END SOLUTION

checks.check_lora_param_count(count_lora_params)'''

EXERCISE_CODE = '''def count_lora_params(d_in, d_out, r):
    """A: r x d_in, B: d_out x r."""
    # YOUR CODE HERE
    raise NotImplementedError()

checks.check_lora_param_count(count_lora_params)'''


def nbgrader(grade_id, *, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def solution_notebook():
    """Every kind of cell the course uses, and the corner cases of nbgrader's ClearSolutions."""
    plain = new_markdown_cell("# Chapter 04\nNo solution here.\n")
    setup = new_code_cell("import minift\nfrom minift import checks", metadata=nbgrader("setup", locked=True))
    code = new_code_cell(SOLUTION_CODE, execution_count=3, metadata=nbgrader("solution-lora", solution=True),
                         outputs=[new_output("stream", name="stdout", text="✅ passed\n")])
    top_level = new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)", execution_count=4,
                              metadata=nbgrader("solution-top", solution=True))
    test = new_code_cell("checks.check_lora_param_count(count_lora_params).assert_passed()",
                         metadata={**nbgrader("test-lora", grade=True, locked=True, points=2),
                                   "tags": ["raises-exception"], "scrolled": True})
    question = new_markdown_cell("## Explain in your own words (2 points)\n\nWhy is B zero at the start?")
    answer = new_markdown_cell("<!-- BEGIN SOLUTION -->\n**Model answer.** So that dW = BA = 0.\n"
                               "<!-- END SOLUTION -->",
                               metadata=nbgrader("answer-b-zero", grade=True, solution=True, points=2))
    partial = new_markdown_cell("Your answer:\n\n  <!-- BEGIN SOLUTION -->\n  dW = 0.\n  <!-- END SOLUTION -->\n\nEnd.",
                                metadata=nbgrader("answer-partial", grade=True, solution=True, points=1))
    whole = new_markdown_cell("A model answer without markers.",
                              metadata=nbgrader("answer-whole", grade=True, solution=True, points=1))
    whole_code = new_code_cell("y = 2", metadata=nbgrader("solution-whole", solution=True))
    raw = new_raw_cell("raw text")
    notebook = new_notebook(cells=[plain, setup, code, top_level, test, question, answer, partial, whole,
                                   whole_code, raw])
    notebook.metadata["widgets"] = {"state": {}}
    notebook.metadata["celltoolbar"] = "Create Assignment"
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def test_clear_code_replaces_each_region_with_nbgraders_stub_keeping_indentation():
    assert exercises.clear_code(SOLUTION_CODE) == EXERCISE_CODE
    two = "def f():\n    ### BEGIN SOLUTION\n    1\n    ### END SOLUTION\n\nclass C:\n    def g(self):\n" \
          "        ### BEGIN SOLUTION\n        2\n        ### END SOLUTION\n"
    assert exercises.clear_code(two) == ("def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
                                         "class C:\n    def g(self):\n        # YOUR CODE HERE\n"
                                         "        raise NotImplementedError()\n")


def test_code_without_markers_is_unchanged():
    assert exercises.clear_code("x = 1\nprint(x)\n") == "x = 1\nprint(x)\n"


def test_markers_are_found_anywhere_in_a_line_as_nbgrader_does():
    assert exercises.clear_code("x = 1  # BEGIN SOLUTION here\ny = 2\n# END SOLUTION\nz = 3") == \
        f"{STUB}\nz = 3"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_code_markers_fail_clearly(source, message):
    with pytest.raises(exercises.SolutionMarkerError, match=message):
        exercises.clear_code(source, where="04_lora.ipynb, cell 2")


def test_clear_markdown_writes_nbgraders_text_stub():
    source = "Question?\n\n<!-- BEGIN SOLUTION -->\nAnswer.\n<!-- END SOLUTION -->\n\nMore."
    assert exercises.clear_markdown(source) == "Question?\n\nYOUR ANSWER HERE\n\nMore."
    assert exercises.clear_markdown("No markers.\n") == "No markers.\n"
    with pytest.raises(exercises.SolutionMarkerError, match="never closed"):
        exercises.clear_markdown("<!-- BEGIN SOLUTION -->\nAnswer.")


def test_make_exercise_clears_solutions_and_outputs_and_locks_cells():
    solution = solution_notebook()
    exercise = exercises.make_exercise(solution)
    plain, setup, code, top_level, test, question, answer, partial, whole, whole_code, raw = exercise.cells
    assert code.source == EXERCISE_CODE and code.outputs == [] and code.execution_count is None
    assert top_level.source == f"{STUB}\nprint(x)"
    assert answer.source == "YOUR ANSWER HERE"
    assert partial.source == "Your answer:\n\n  YOUR ANSWER HERE\n\nEnd."
    assert whole.source == "YOUR ANSWER HERE" and whole_code.source == STUB      # a solution cell, no region
    for unchanged in (plain, setup, test, question, raw):
        assert unchanged.source == solution.cells[exercise.cells.index(unchanged)].source

    # nbgrader's LockCells: solution cells cannot be deleted; test and read-only cells cannot be edited
    for cell in (code, top_level, answer, partial, whole, whole_code):
        assert cell.metadata["deletable"] is False and "editable" not in cell.metadata
    for cell in (setup, test):
        assert cell.metadata["deletable"] is False and cell.metadata["editable"] is False
    for cell in (plain, question, raw):
        assert "deletable" not in cell.metadata and "nbgrader" not in cell.metadata
    assert test.metadata["tags"] == ["raises-exception"] and "scrolled" not in test.metadata

    assert "widgets" not in exercise.metadata and "celltoolbar" not in exercise.metadata
    assert solution.cells[2].source == SOLUTION_CODE                          # the input is not modified
    assert "deletable" not in solution.cells[2].metadata
    assert [c.id for c in exercise.cells] == [c.id for c in solution.cells]


def test_checksums_are_nbgraders():
    """The checksum nbgrader.utils.compute_checksum gives (written out here, to fail if ours drifts)."""
    exercise = exercises.make_exercise(solution_notebook())
    test, answer = exercise.cells[4], exercise.cells[6]
    expected = hashlib.md5(("checks.check_lora_param_count(count_lora_params).assert_passed()" "code" "True" "False"
                            "True" "test-lora" "2.0").encode()).hexdigest()
    assert test.metadata["nbgrader"]["checksum"] == expected and test.metadata["nbgrader"]["cell_type"] == "code"
    expected = hashlib.md5(("YOUR ANSWER HERE" "markdown" "True" "True" "False" "answer-b-zero" "2.0").encode()) \
        .hexdigest()
    assert answer.metadata["nbgrader"]["checksum"] == expected


def test_a_region_outside_a_solution_cell_is_refused():
    notebook = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    with pytest.raises(exercises.SolutionMarkerError, match="not marked as a solution cell"):
        exercises.make_exercise(notebook, name="01_x.ipynb")
    notebook = new_notebook(cells=[new_markdown_cell("<!-- BEGIN SOLUTION -->\nx\n<!-- END SOLUTION -->")])
    with pytest.raises(exercises.SolutionMarkerError, match="01_x.ipynb, cell 0.*manually graded answer"):
        exercises.make_exercise(notebook, name="01_x.ipynb")


@pytest.mark.parametrize("metadata, message", [
    (nbgrader("test", grade=True, locked=True), "needs points"),
    (nbgrader("test", grade=True, locked=True, points=-1), "needs points"),
    (nbgrader("test", grade=True, locked=True, points="2"), "needs points"),
    (nbgrader("", grade=True, locked=True, points=1), "needs a grade_id"),
    ({"nbgrader": {**nbgrader("test", locked=True)["nbgrader"], "schema_version": 1}}, "schema_version"),
])
def test_metadata_nbgrader_refuses_is_refused(metadata, message):
    notebook = new_notebook(cells=[new_code_cell("x = 1", metadata=metadata)])
    with pytest.raises(exercises.NbgraderMetadataError, match=message):
        exercises.make_exercise(notebook)


def test_duplicate_grade_ids_and_half_marked_answers_are_refused():
    notebook = new_notebook(cells=[new_code_cell("x = 1", metadata=nbgrader("same", locked=True)),
                                   new_code_cell("y = 1", metadata=nbgrader("same", locked=True))])
    with pytest.raises(exercises.NbgraderMetadataError, match="'same' is already used by cell 0"):
        exercises.make_exercise(notebook)
    notebook = new_notebook(cells=[new_markdown_cell("text", metadata=nbgrader("answer", solution=True))])
    with pytest.raises(exercises.NbgraderMetadataError, match="both grade and solution"):
        exercises.make_exercise(notebook)


def test_command_line_generates_and_checks(tmp_path, capsys):
    solutions, target = tmp_path / "solutions", tmp_path / "exercises"
    write(solutions / "04_lora.ipynb", solution_notebook())

    assert exercises.main([str(solutions), str(target), "--check"]) == 1      # missing
    assert "04_lora.ipynb (missing)" in capsys.readouterr().out

    assert exercises.main([str(solutions), str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    generated = nbformat.read(str(target / "04_lora.ipynb"), as_version=4)
    assert generated.cells[2].source == EXERCISE_CODE
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


def test_bad_markers_exit_with_an_error_and_write_nothing(tmp_path, capsys):
    write(tmp_path / "solutions" / "00_good.ipynb", solution_notebook())
    notebook = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1", metadata=nbgrader("s", solution=True))])
    write(tmp_path / "solutions" / "01_bad.ipynb", notebook)
    assert exercises.main([str(tmp_path / "solutions"), str(tmp_path / "exercises")]) == 2
    assert "01_bad.ipynb, cell 0" in capsys.readouterr().err
    assert not (tmp_path / "exercises").exists()


def test_missing_solutions_folder(tmp_path):
    with pytest.raises(SystemExit):
        exercises.main([str(tmp_path / "nope"), str(tmp_path / "exercises")])


def test_mark_for_nbgrader(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    notebook = solution_notebook()
    for index in (2, 3):                               # two code cells with a region, unmarked
        del notebook.cells[index].metadata["nbgrader"]
    write(solutions / "04_lora.ipynb", notebook)
    assert exercises.unmarked_solution_cells(notebook) == [2, 3]

    assert exercises.main([str(solutions), str(tmp_path / "exercises")]) == 2   # nbgrader would refuse it
    assert "not marked as a solution cell" in capsys.readouterr().err

    assert exercises.main([str(solutions), str(tmp_path / "exercises"), "--mark-nbgrader"]) == 0
    marked = nbformat.read(str(solutions / "04_lora.ipynb"), as_version=4)
    assert exercises.unmarked_solution_cells(marked) == []
    meta = marked.cells[2].metadata["nbgrader"]
    assert meta["solution"] is True and meta["grade"] is False and meta["grade_id"].startswith("solution-")
    assert "nbgrader" not in marked.cells[0].metadata                          # other cells untouched
    assert [c.source for c in marked.cells] == [c.source for c in notebook.cells]
    assert exercises.main([str(solutions), str(tmp_path / "exercises"), "--check"]) == 0
