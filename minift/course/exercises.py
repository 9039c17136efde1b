"""Generate exercise notebooks from solution notebooks (what `make exercises` runs).

    python -m minift.course.exercises solutions exercises            # write exercises/NN_*.ipynb
    python -m minift.course.exercises solutions exercises --check    # exit 1 if exercises/ is out of date

solutions/ is also an nbgrader source folder. This tool writes what nbgrader's ``generate_assignment``
releases from it (tests/course/test_nbgrader.py compares the two), so a self-learner without nbgrader
and a student of an nbgrader course get the same notebook:

* Solution regions, as nbgrader's ClearSolutions finds them: a line containing "BEGIN SOLUTION" opens
  one and a line containing "END SOLUTION" closes it (``### BEGIN SOLUTION`` in code,
  ``<!-- BEGIN SOLUTION -->`` in markdown, where the comment keeps the marker invisible in solutions/).
  A region becomes nbgrader's stub, indented like its BEGIN line: ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` in code, ``YOUR ANSWER HERE`` in markdown. A solution cell without a
  region becomes the stub as a whole.
* Cell kinds are nbgrader's (cell metadata "nbgrader", schema 3): a solution cell (solution: true) is
  where the student writes; an autograder test cell (code, grade: true, points) is scored by
  ``nbgrader autograde``; a manually graded answer (markdown, grade and solution true, points) is scored
  by the instructor; a read-only cell (locked: true) is put back as it was before autograding. Cells are
  locked as nbgrader's LockCells does: solution cells are not deletable, test and read-only cells are
  neither deletable nor editable.
* Like nbgrader's ComputeChecksums, every nbgrader cell records its cell_type and checksum (autograde
  scores a manually graded answer whose checksum did not change, i.e. a blank answer, 0).
* Outputs, execution counts and output display settings (collapsed, scrolled) are cleared and saved
  widget state is dropped, so a generated notebook is identical whoever runs the tool.

What nbgrader refuses stops generation with a message saying where: unbalanced or nested markers, a
region in a cell not marked as a solution cell (``--mark-nbgrader`` marks code cells), a grade cell
without points, a duplicate grade_id, metadata of an older nbgrader schema.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import numbers
import sys
from pathlib import Path

import nbformat

from minift.files import atomic_path

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
CODE_BEGIN, CODE_END = "### BEGIN SOLUTION", "### END SOLUTION"            # how solutions/ writes them
MARKDOWN_BEGIN, MARKDOWN_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"                 # nbgrader's defaults (Python)
TEXT_STUB = "YOUR ANSWER HERE"
SCHEMA_VERSION = 3                                                         # nbgrader 0.6 and later


class SolutionMarkerError(ValueError):
    """A BEGIN without its END (or the reverse), or a region outside a solution cell; says where."""


class NbgraderMetadataError(ValueError):
    """Cell metadata that nbgrader would refuse (no points, duplicate grade_id, ...); says where."""


# --- nbgrader's cell kinds (the same rules as nbgrader.utils) ------------------------------------------

def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(_nbgrader(cell).get("solution", False))


def is_grade(cell) -> bool:
    return bool(_nbgrader(cell).get("grade", False))


def is_locked(cell) -> bool:
    """Read-only: restored by autograde. Test cells are always locked, solution cells never."""
    if is_solution(cell):
        return False
    return is_grade(cell) or bool(_nbgrader(cell).get("locked", False))


def checksum(cell) -> str:
    """nbgrader's cell checksum (nbgrader.utils.compute_checksum): what autograde compares with to see
    whether a student changed a cell."""
    digest = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade(cell)), str(is_solution(cell)),
                 str(is_locked(cell)), _nbgrader(cell)["grade_id"]):
        digest.update(part.encode("utf-8"))
    if is_grade(cell):
        digest.update(str(float(_nbgrader(cell)["points"])).encode("utf-8"))
    return digest.hexdigest()


def check_metadata(notebook, name: str = "notebook") -> None:
    """Raise NbgraderMetadataError where nbgrader's generate_assignment would refuse the notebook."""
    seen = {}
    for index, cell in enumerate(notebook.cells):
        if "nbgrader" not in cell.get("metadata", {}):
            continue
        meta, where = _nbgrader(cell), f"{name}, cell {index}"
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise NbgraderMetadataError(f"{where}: nbgrader schema_version is {meta.get('schema_version')!r}, "
                                        f"expected {SCHEMA_VERSION} (run `nbgrader update` on the notebook)")
        if not (is_grade(cell) or is_solution(cell) or meta.get("locked")):
            continue
        grade_id = meta.get("grade_id")
        if not grade_id or not isinstance(grade_id, str):
            raise NbgraderMetadataError(f"{where}: an nbgrader cell needs a grade_id (got {grade_id!r})")
        if grade_id in seen:
            raise NbgraderMetadataError(f"{where}: grade_id {grade_id!r} is already used by cell {seen[grade_id]}")
        seen[grade_id] = index
        points = meta.get("points")
        if is_grade(cell) and (isinstance(points, bool) or not isinstance(points, numbers.Real) or points < 0):
            raise NbgraderMetadataError(f"{where}: grade cell {grade_id!r} needs points, a number >= 0 "
                                        f"(got {points!r})")
        if cell.cell_type == "markdown" and not meta.get("task") and is_grade(cell) != is_solution(cell):
            raise NbgraderMetadataError(f"{where}: a markdown answer cell ({grade_id!r}) must be marked both "
                                        "grade and solution (a manually graded answer)")


# --- solution regions ------------------------------------------------------------------------------------

def clear_region(source: str, stub: str, where: str = "cell") -> tuple[str, bool]:
    """Replace each solution region (marker lines included) by ``stub``, at the BEGIN line's indent.
    Returns the new source and whether a region was found."""
    lines, inside, begin_line, found = [], False, 0, False
    for number, line in enumerate(source.split("\n"), 1):
        if BEGIN in line:
            if inside:
                raise SolutionMarkerError(f"{where}, line {number}: {BEGIN} inside another solution "
                                          f"region (opened at line {begin_line})")
            inside, begin_line, found = True, number, True
            indent = line[:len(line) - len(line.lstrip())]
            lines.extend(indent + stub_line for stub_line in stub.split("\n"))
        elif END in line:
            if not inside:          # nbgrader silently drops such a line; here it is a mistake to fix
                raise SolutionMarkerError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}, line {begin_line}: {BEGIN} is never closed by {END}")
    return "\n".join(lines), found


def clear_code(source: str, where: str = "cell") -> str:
    """A code cell's source with each solution region replaced by nbgrader's code stub."""
    return clear_region(source, CODE_STUB, where)[0]


def clear_markdown(source: str, where: str = "cell") -> str:
    """A markdown cell's source with each solution region replaced by nbgrader's text stub."""
    return clear_region(source, TEXT_STUB, where)[0]


def _lock(cell) -> None:
    """nbgrader's LockCells (default settings)."""
    if is_solution(cell):
        cell.metadata["deletable"] = False
    elif is_grade(cell) or is_locked(cell):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def make_exercise(notebook, name: str = "notebook"):
    """The released copy of a solution notebook (the input is not modified)."""
    check_metadata(notebook, name)
    exercise = copy.deepcopy(notebook)
    for index, cell in enumerate(exercise.cells):
        where = f"{name}, cell {index}"
        _lock(cell)
        source, found = clear_region(cell.source, CODE_STUB if cell.cell_type == "code" else TEXT_STUB, where)
        if found and not is_solution(cell):
            raise SolutionMarkerError(
                f"{where}: a solution region in a cell that is not marked as a solution cell (nbgrader "
                "refuses it): mark code cells with --mark-nbgrader; a written answer needs the metadata of a "
                "manually graded answer (nbgrader: grade and solution true, a grade_id and points)")
        if is_solution(cell) and not found:
            source = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("collapsed", None)
            cell.metadata.pop("scrolled", None)
        if is_grade(cell) or is_solution(cell) or is_locked(cell):
            cell.metadata["nbgrader"]["checksum"] = checksum(cell)
            cell.metadata["nbgrader"]["cell_type"] = cell.cell_type
    exercise.metadata.pop("widgets", None)        # saved widget state belongs to the cleared outputs
    exercise.metadata.pop("celltoolbar", None)
    return exercise


def has_code_solution(cell) -> bool:
    return cell.cell_type == "code" and any(BEGIN in line for line in cell.source.split("\n"))


def unmarked_solution_cells(notebook) -> list[int]:
    """Indices of code cells with a solution region but no nbgrader "solution" metadata."""
    return [i for i, cell in enumerate(notebook.cells) if has_code_solution(cell) and not is_solution(cell)]


def mark_for_nbgrader(notebook) -> int:
    """Mark every code cell that has a solution region as an nbgrader "autograded answer" cell."""
    marked = 0
    for index in unmarked_solution_cells(notebook):
        cell = notebook.cells[index]
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": f"solution-{cell.get('id', index)}",
                                     "locked": False, "schema_version": SCHEMA_VERSION, "solution": True}
        marked += 1
    return marked


def exercise_text(solution_path: Path) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    notebook = nbformat.read(solution_path, as_version=4)
    exercise = make_exercise(notebook, name=Path(solution_path).name)
    nbformat.validate(exercise)
    return nbformat.writes(exercise) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)


def solution_notebooks(solutions_dir) -> list[Path]:
    return sorted(Path(solutions_dir).glob("*.ipynb"))


def out_of_sync(solutions_dir, exercises_dir) -> list[str]:
    """Exercise files that differ from what would be generated, are missing, or have no solution."""
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    problems = []
    for solution in solution_notebooks(solutions_dir):
        target = exercises_dir / solution.name
        if not target.is_file():
            problems.append(f"{target} (missing)")
        elif target.read_text(encoding="utf-8") != exercise_text(solution):
            problems.append(f"{target} (differs from {solution})")
    names = {p.name for p in solution_notebooks(solutions_dir)}
    for exercise in sorted(exercises_dir.glob("*.ipynb")):
        if exercise.name not in names:
            problems.append(f"{exercise} (no {solutions_dir / exercise.name})")
    return problems


def generate(solutions_dir, exercises_dir) -> list[Path]:
    """Write every exercise notebook whose content changed; return the paths written."""
    texts = {solution: exercise_text(solution) for solution in solution_notebooks(solutions_dir)}
    written = []                                     # (all generated first: one bad notebook writes none)
    for solution, text in texts.items():
        target = Path(exercises_dir) / solution.name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            _write_atomic(target, text)
            written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minift.course.exercises", description=__doc__.split("\n")[0])
    parser.add_argument("solutions", help="folder of solution notebooks (the source)")
    parser.add_argument("exercises", help="folder to write the exercise notebooks to")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files if exercises/ is out of date")
    parser.add_argument("--mark-nbgrader", action="store_true",
                        help="first add nbgrader solution-cell metadata to the solution notebooks' code cells "
                             "that have a solution region (in place)")
    args = parser.parse_args(argv)
    if not Path(args.solutions).is_dir():
        parser.error(f"solutions folder {args.solutions!r} does not exist")
    if args.mark_nbgrader and not args.check:
        for solution in solution_notebooks(args.solutions):
            notebook = nbformat.read(solution, as_version=4)
            if mark_for_nbgrader(notebook):
                _write_atomic(solution, nbformat.writes(notebook) + "\n")
                print(f"marked nbgrader solution cells in {solution}")
    try:
        if args.check:
            problems = out_of_sync(args.solutions, args.exercises)
            for problem in problems:
                print(f"out of sync: {problem}")
            if problems:
                print(f"run: python -m minift.course.exercises {args.solutions} {args.exercises}")
                return 1
            print(f"{args.exercises}: {len(solution_notebooks(args.solutions))} exercise notebooks up to date")
            return 0
        written = generate(args.solutions, args.exercises)
    except (SolutionMarkerError, NbgraderMetadataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for problem in out_of_sync(args.solutions, args.exercises):
        print(f"warning: {problem}; delete it or add its solution notebook")
    print(f"{len(written)} written, {len(solution_notebooks(args.solutions)) - len(written)} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
