"""Repository-wide pytest hooks.

At the end of a run that executed notebooks with nbval, print how long each notebook took (the sum of
its cells' run times), so a notebook that breaks the fast-mode budget (90 s per notebook on 2 CPU
cores, the limit that keeps `make test` usable on a laptop) is visible in every CI log, not only when
someone times it by hand.
"""

from __future__ import annotations

from collections import defaultdict

NOTEBOOK_BUDGET_S = 90.0        # fast mode, 2 CPU cores

_notebook_seconds: dict[str, float] = defaultdict(float)
_notebook_cells: dict[str, int] = defaultdict(int)


def _notebook_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def pytest_runtest_logreport(report):
    """Add each nbval cell's run time to its notebook's total."""
    notebook = _notebook_of(report.nodeid)
    if notebook is not None and report.when == "call":
        _notebook_seconds[notebook] += report.duration
        _notebook_cells[notebook] += 1


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "notebook wall time (sum of cell run times)")
    width = max(len("notebook"), *(len(name) for name in _notebook_seconds))
    write(f"{'notebook':<{width}}  {'cells':>5}  {'seconds':>8}")
    slow = 0
    for name in sorted(_notebook_seconds):
        seconds = _notebook_seconds[name]
        flag = f"  SLOW: over the {NOTEBOOK_BUDGET_S:.0f} s budget" if seconds > NOTEBOOK_BUDGET_S else ""
        slow += bool(flag)
        write(f"{name:<{width}}  {_notebook_cells[name]:>5}  {seconds:>8.1f}{flag}")
    total = sum(_notebook_seconds.values())
    write(f"{'total':<{width}}  {sum(_notebook_cells.values()):>5}  {total:>8.1f}"
          + (f"  ({slow} notebook{'s' if slow > 1 else ''} over budget)" if slow else ""))
