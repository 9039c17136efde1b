"""Generate exercise notebooks from solution notebooks (what `make exercises` runs).

    python -m minift.course.exercises solutions exercises            # write exercises/NN_*.ipynb
    python -m minift.course.exercises solutions exercises --check    # exit 1 if exercises/ is out of date

In code cells, everything from a `### BEGIN SOLUTION` line to its `### END SOLUTION` line becomes
`raise NotImplementedError("write your code here")`, indented like the BEGIN line (nbgrader's
ClearSolutions uses the same markers, so solutions/ also works as nbgrader source). In markdown cells,
text between `<!-- BEGIN SOLUTION -->` and `<!-- END SOLUTION -->` is removed. Outputs and execution
counts are cleared, so a generated notebook is identical whoever runs the tool.

nbgrader only accepts solution regions in cells marked as solution cells (its ClearSolutions has
enforce_metadata on by default). `--mark-nbgrader` adds that cell metadata to solutions/ in place, and
generating warns about code cells that lack it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from minift.files import atomic_path

CODE_BEGIN, CODE_END = "### BEGIN SOLUTION", "### END SOLUTION"
MARKDOWN_BEGIN, MARKDOWN_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = 'raise NotImplementedError("write your code here")'


class SolutionMarkerError(ValueError):
    """A BEGIN without its END (or the reverse); the message says where."""


def clear_code(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION block (markers included) by the stub, at the BEGIN's indent."""
    lines, inside, begin_line = [], False, 0
    for number, line in enumerate(source.split("\n"), 1):
        marker = line.strip()
        if marker == CODE_BEGIN:
            if inside:
                raise SolutionMarkerError(f"{where}, line {number}: {CODE_BEGIN} inside another solution "
                                          f"block (opened at line {begin_line})")
            inside, begin_line = True, number
            lines.append(line[:len(line) - len(line.lstrip())] + STUB)
        elif marker == CODE_END:
            if not inside:
                raise SolutionMarkerError(f"{where}, line {number}: {CODE_END} without a {CODE_BEGIN}")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}, line {begin_line}: {CODE_BEGIN} is never closed by {CODE_END}")
    return "\n".join(lines)


def clear_markdown(source: str, where: str = "cell") -> str:
    """Remove each <!-- BEGIN SOLUTION --> ... <!-- END SOLUTION --> region, markers included."""
    if MARKDOWN_BEGIN not in source and MARKDOWN_END not in source:
        return source
    kept, rest = [], source
    while True:
        begin, end = rest.find(MARKDOWN_BEGIN), rest.find(MARKDOWN_END)
        if begin < 0 and end < 0:
            kept.append(rest)
            break
        if begin < 0 or (0 <= end < begin):
            raise SolutionMarkerError(f"{where}: {MARKDOWN_END} without a {MARKDOWN_BEGIN}")
        if end < 0:
            raise SolutionMarkerError(f"{where}: {MARKDOWN_BEGIN} is never closed by {MARKDOWN_END}")
        kept.append(rest[:begin])
        rest = rest[end + len(MARKDOWN_END):]
    text = "".join(kept)
    while "\n\n\n" in text:            # removing a paragraph should not leave a gap of blank lines
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") if text.strip() else ""


def make_exercise(notebook, name: str = "notebook"):
    """A cleared copy of a solution notebook (the input is not modified)."""
    exercise = copy.deepcopy(notebook)
    for index, cell in enumerate(exercise.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            cell.source = clear_code(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = clear_markdown(cell.source, where)
    exercise.metadata.pop("widgets", None)     # saved widget state belongs to the cleared outputs
    return exercise


def has_code_solution(cell) -> bool:
    return cell.cell_type == "code" and any(line.strip() == CODE_BEGIN for line in cell.source.split("\n"))


def unmarked_solution_cells(notebook) -> list[int]:
    """Indices of code cells with a solution region but no nbgrader "solution" metadata."""
    return [i for i, cell in enumerate(notebook.cells)
            if has_code_solution(cell) and not cell.metadata.get("nbgrader", {}).get("solution")]


def mark_for_nbgrader(notebook) -> int:
    """Mark every code cell that has a solution region as an nbgrader "autograded answer" cell."""
    marked = 0
    for index in unmarked_solution_cells(notebook):
        cell = notebook.cells[index]
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": f"solution-{cell.get('id', index)}",
                                     "locked": False, "schema_version": 3, "solution": True}
        marked += 1
    return marked


def exercise_text(solution_path: Path) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    notebook = nbformat.read(solution_path, as_version=4)
    exercise = make_exercise(notebook, name=solution_path.name)
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
    written = []
    for solution in solution_notebooks(solutions_dir):
        target = Path(exercises_dir) / solution.name
        text = exercise_text(solution)
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
                        help="first add nbgrader solution-cell metadata to the solution notebooks (in place)")
    args = parser.parse_args(argv)
    if not Path(args.solutions).is_dir():
        parser.error(f"solutions folder {args.solutions!r} does not exist")
    for solution in solution_notebooks(args.solutions):
        notebook = nbformat.read(solution, as_version=4)
        if args.mark_nbgrader and not args.check and mark_for_nbgrader(notebook):
            _write_atomic(solution, nbformat.writes(notebook) + "\n")
            print(f"marked nbgrader solution cells in {solution}")
        elif unmarked_solution_cells(notebook):
            cells = ", ".join(map(str, unmarked_solution_cells(notebook)))
            print(f"warning: {solution}: code cells {cells} have a solution region but no nbgrader "
                  "metadata (nbgrader would refuse them); add it with --mark-nbgrader")
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
    except SolutionMarkerError as error:
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
