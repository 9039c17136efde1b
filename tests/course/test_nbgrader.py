"""The instructors' workflow, run with nbgrader itself (README, "For instructors"): solutions/ is an
nbgrader source folder. In a temporary course folder we generate every chapter's assignment, release
it, let a student fetch it, fill in the solutions and submit it, collect it, and autograde it next to a
blank submission and a submission with one typical mistake. Then we check the scores.

Autograde executes every submitted notebook (MINIFT_MODE=fast): a kernel start plus the notebook's
cells, 2-10 s of CPU each, about 50 s for the whole test. Every chapter is autograded filled with its
solutions: that proves each solution passes its own test cells (they carry the `raises-exception` tag,
so nbval on solutions/ would not notice a failing one). The blank submission uses two chapters that run
fast (00, 03), the typical mistakes two that run fast and have several test cells, so that one mistake
gives partial marks (02, 03)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeSubmit
from nbgrader.utils import get_username
from traitlets.config import Config

from minift.course import exercises
from test_exercises_tool import solution_notebook          # every kind of cell, and ClearSolutions' corner cases

pytestmark = pytest.mark.filterwarnings("ignore:Object of type:sqlalchemy.exc.SAWarning")   # nbgrader's own

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted(path.stem for path in (ROOT / "solutions").glob("*.ipynb"))
CELL_TIMEOUT_S = 120
COURSE_ID = "minift"
STUDENT = get_username()             # who submits through the exchange: the login name, as for nbgrader
BLANK_CHAPTERS = ["00_welcome", "03_lowrank"]

# one typical mistake per notebook: (solution cell's grade_id, text of the solution, mistaken text,
# what the checker must name, the test cells that must then score 0)
MISTAKES = {
    "02_params_memory": ("solution-c04a355f", "n_layers * 2 * length * d_model", "n_layers * length * d_model",
                         "keys AND values", {"test-prefix_param_count"}),
    "03_lowrank": ("solution-4a6be65e", "(U[:, :r] * S[:r]) @ Vh[:r]", "(U[:, -r:] * S[-r:]) @ Vh[-r:]",
                   "SMALLEST singular values", {"test-rank_r_approximation"}),
}


def nbgrader_cells(notebook, *, grade=None, solution=None):
    """(grade_id, cell) of the cells with nbgrader metadata, filtered by their grade / solution flags."""
    found = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta or (grade is not None and meta.get("grade", False) != grade) \
                or (solution is not None and meta.get("solution", False) != solution):
            continue
        found.append((meta["grade_id"], cell))
    return found


def points(notebook, kind: str) -> dict:
    """grade_id -> points of the autograder test cells ("auto") or manually graded answers ("manual")."""
    cells = nbgrader_cells(notebook, grade=True, solution=(kind == "manual"))
    return {grade_id: float(cell.metadata["nbgrader"]["points"]) for grade_id, cell in cells}


def solution(chapter: str):
    return nbformat.read(str(ROOT / "solutions" / f"{chapter}.ipynb"), as_version=4)


def source(root: Path, chapter: str):
    """The course's copy of a solution notebook: what nbgrader generated the assignment from."""
    return nbformat.read(str(root / "source" / chapter / f"{chapter}.ipynb"), as_version=4)


def answer_text(source: str) -> str:
    """What a student types into a solution cell: the solution region without its marker lines."""
    return "\n".join(line for line in source.split("\n")
                     if exercises.BEGIN not in line and exercises.END not in line)


def fill(released, source, mistake=None):
    """The released notebook with every solution cell answered as in its ``source`` notebook (one of
    them changed by ``mistake``)."""
    answers = {grade_id: answer_text(cell.source) for grade_id, cell in nbgrader_cells(source, solution=True)}
    notebook = nbformat.from_dict(released)
    for grade_id, cell in nbgrader_cells(notebook, solution=True):
        cell.source = answers[grade_id]
        if mistake and grade_id == mistake[0]:
            assert mistake[1] in cell.source, f"the mistake's text is not in {grade_id}"
            cell.source = cell.source.replace(mistake[1], mistake[2])
    return notebook


def scores(root: Path, chapter: str, student: str) -> dict:
    """grade_id -> (score, max_score, needs_manual_grade) of one autograded notebook, and the total."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(chapter, chapter, student)
        cells = {grade.name: (grade.score, grade.max_score, grade.needs_manual_grade) for grade in notebook.grades}
        return {"cells": cells, "total": (notebook.score, notebook.max_score)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder where every chapter was generated, submitted three times and autograded."""
    root = tmp_path_factory.mktemp("course")
    exchange, home = root.parent / "exchange", root.parent / "student-home"
    exchange.mkdir()
    home.mkdir()
    for chapter in CHAPTERS:
        (root / "source" / chapter).mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / f"{chapter}.ipynb", root / "source" / chapter)
    (root / "source" / "corner_cases").mkdir()
    nbformat.write(solution_notebook(), str(root / "source" / "corner_cases" / "corner_cases.ipynb"))

    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.course_id = COURSE_ID
    config.Exchange.root = str(exchange)
    config.Execute.timeout = CELL_TIMEOUT_S
    with pytest.MonkeyPatch.context() as patch:
        # nbgrader's gradebook runs the `alembic` command, installed next to this Python
        patch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        patch.setenv("MINIFT_MODE", "fast")            # the kernels that autograde inherit this environment
        patch.setenv("MPLBACKEND", "Agg")
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        patch.chdir(root)
        api = NbGraderAPI(config=config)
        result = api.generate_assignment("corner_cases")
        assert result["success"], result.get("error") or result.get("log")
        submitted = {}
        for chapter in CHAPTERS:
            result = api.generate_assignment(chapter)
            assert result["success"], result.get("error") or result.get("log")
            release = root / "release" / chapter / f"{chapter}.ipynb"
            released = nbformat.read(str(release), as_version=4)

            # the student: fetch from the exchange, write the solutions, submit; the instructor collects
            assert api.release_assignment(chapter)["success"]
            coursedir = CourseDirectory(config=config, assignment_id=chapter)
            authenticator = Authenticator(config=config)
            fetch = ExchangeFetchAssignment(coursedir=coursedir, authenticator=authenticator, config=config)
            fetch.assignment_dir = str(home)
            fetch.start()
            fetched = home / chapter / f"{chapter}.ipynb"
            nbformat.write(fill(nbformat.read(str(fetched), as_version=4), source(root, chapter)), str(fetched))
            submit = ExchangeSubmit(coursedir=coursedir, authenticator=authenticator, config=config)
            submit.assignment_dir = str(home)
            submit.start()
            assert api.collect(chapter)["success"]
            submitted[chapter] = [STUDENT]

            # submissions handed in another way (e.g. uploaded): the instructor puts them in submitted/
            others = {}
            if chapter in BLANK_CHAPTERS:
                others["blank"] = released
            if chapter in MISTAKES:
                others["mistake"] = fill(released, source(root, chapter), MISTAKES[chapter])
            for student, notebook in others.items():
                folder = root / "submitted" / student / chapter
                folder.mkdir(parents=True)
                nbformat.write(notebook, str(folder / f"{chapter}.ipynb"))
                submitted[chapter].append(student)

            for student in submitted[chapter]:
                result = api.autograde(chapter, student)
                assert result["success"], result.get("error") or result.get("log")
    return root, submitted


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_releases_what_the_project_generator_writes(course, chapter):
    root, _ = course
    released = nbformat.read(str(root / "release" / chapter / f"{chapter}.ipynb"), as_version=4)
    generated = exercises.make_exercise(source(root, chapter), name=chapter)
    for index, (ours, theirs) in enumerate(zip(generated.cells, released.cells)):
        assert (ours.cell_type, ours.source) == (theirs.cell_type, theirs.source), f"{chapter}, cell {index}"
        assert ours.metadata == theirs.metadata, f"{chapter}, cell {index}: metadata"
    assert len(generated.cells) == len(released.cells)
    assert generated == released                      # outputs, counts, ids and notebook metadata too


def test_nbgrader_releases_the_corner_cases_as_the_project_generator(course):
    root, _ = course
    released = nbformat.read(str(root / "release" / "corner_cases" / "corner_cases.ipynb"), as_version=4)
    assert released.metadata.pop("widgets") == {"state": {}}   # the one difference, on purpose: saved widget
    assert exercises.make_exercise(source(root, "corner_cases")) == released  # state goes with the outputs


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_has_autograded_and_written_answers(chapter):
    notebook = solution(chapter)
    assert points(notebook, "auto"), f"{chapter} has no autograder test cell"
    assert points(notebook, "manual"), f"{chapter} has no written answer graded by the instructor"
    for grade_id, cell in nbgrader_cells(notebook, grade=True, solution=False):
        assert cell.cell_type == "code" and cell.metadata["nbgrader"]["locked"], grade_id
        assert "raises-exception" in cell.metadata.get("tags", []), \
            f"{chapter} {grade_id}: without the tag, Run All stops at the first failing test cell"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_score_full_marks(course, chapter):
    root, _ = course
    result = scores(root, chapter, STUDENT)
    auto, manual = points(source(root, chapter), "auto"), points(source(root, chapter), "manual")
    assert {grade_id: cell[:2] for grade_id, cell in result["cells"].items() if grade_id in auto} == \
        {grade_id: (value, value) for grade_id, value in auto.items()}
    assert result["total"] == (sum(auto.values()), sum(auto.values()) + sum(manual.values()))
    assert all(result["cells"][grade_id][2] for grade_id in manual), "written answers await the instructor"

    # the instructor grades the written answers (formgrader does the same); then the notebook has full marks
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for grade_id in manual:
            grade = gradebook.find_grade(grade_id, chapter, chapter, STUDENT)
            grade.manual_score = grade.max_score
        gradebook.db.commit()
    total = scores(root, chapter, STUDENT)["total"]
    assert total[0] == total[1] == sum(auto.values()) + sum(manual.values())


@pytest.mark.parametrize("chapter", BLANK_CHAPTERS)
def test_a_blank_submission_scores_zero(course, chapter):
    root, _ = course
    result = scores(root, chapter, "blank")
    notebook = source(root, chapter)
    assert result["total"] == (0, sum(points(notebook, "auto").values()) + sum(points(notebook, "manual").values()))
    assert not any(needs_manual for _, _, needs_manual in result["cells"].values()), \
        "a blank written answer is scored 0 without the instructor"

    # what the student sees in each test cell: the verdict, then one short line (no traceback)
    graded = nbformat.read(str(root / "autograded" / "blank" / chapter / f"{chapter}.ipynb"), as_version=4)
    for grade_id, cell in nbgrader_cells(graded, grade=True, solution=False):
        text = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
        errors = [output for output in cell.outputs if output.output_type == "error"]
        assert "not implemented yet" in text, f"{grade_id} printed {text!r}"
        assert len(errors) == 1 and errors[0].ename == "CheckFailed", grade_id
        assert len(errors[0].traceback) == 1, f"{grade_id}: {errors[0].traceback}"


@pytest.mark.parametrize("chapter", sorted(MISTAKES))
def test_one_typical_mistake_scores_partial_marks(course, chapter):
    root, _ = course
    _, _, _, named, failing = MISTAKES[chapter]
    auto = points(source(root, chapter), "auto")
    result = scores(root, chapter, "mistake")
    assert {grade_id: result["cells"][grade_id][0] for grade_id in auto} == \
        {grade_id: 0 if grade_id in failing else value for grade_id, value in auto.items()}
    assert 0 < result["total"][0] < sum(auto.values())

    graded = nbformat.read(str(root / "autograded" / "mistake" / chapter / f"{chapter}.ipynb"), as_version=4)
    for grade_id, cell in nbgrader_cells(graded, grade=True, solution=False):
        if grade_id in failing:
            text = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
            assert "❌" in text and named in text, f"{grade_id} printed {text!r}"
