"""Time to learn: how long each chapter takes, from results/course_times.json, as a table.

    python benchmarks/course_times.py                 # print the table
    python benchmarks/course_times.py --readme        # also rewrite the README's "Time to learn" section
    python benchmarks/course_times.py --time-tests    # run `make test`, record its time, print the table

Each notebook's last cell, ``minift.course.report_time("NN")``, measures the chapter from
``minift.course.setup()`` (wall seconds, and CPU seconds of the notebook's own process); with
MINIFT_RECORD_TIMES=1 it adds that record to results/course_times.json under [chapter][mode]: "fast",
"full", or "fast_gpu"/"full_gpu" on a CUDA card. `make course` runs every chapter in full mode, then in
fast mode on a copy, both with that variable, and then this script with --readme. The test suite's time
is kept under "test_suite" (written by --time-tests). Nothing here invents a number: a chapter or a
mode without a record says "not measured yet".

The README section lies between the lines ``<!-- course-times:start -->`` and
``<!-- course-times:end -->``; only what is between them is replaced, and a second run with the same
records changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / "results" / "course_times.json"
README = ROOT / "README.md"
NOTEBOOKS = ROOT / "notebooks"
START, END = "<!-- course-times:start -->", "<!-- course-times:end -->"
TEST_SUITE = "test_suite"
FULL_BUDGET_S = 300.0          # full mode, per chapter, 2 CPU cores (CONTRIBUTING.md)
FAST_BUDGET_S = 90.0           # fast mode, per notebook (CONTRIBUTING.md, conftest.py)
TESTS_BUDGET_S = 600.0         # the whole test suite, `make test`
MODES = (("fast", "fast"), ("full", "full"), ("fast_gpu", "fast on GPU"), ("full_gpu", "full on GPU"))
NOT_MEASURED = "not measured yet"


def load_times(path=TIMES) -> dict:
    """The records in ``path`` ({} when there is no file yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def chapters(times: dict, notebooks=NOTEBOOKS) -> list[tuple[str, str]]:
    """(number, name) of every chapter: the notebooks NN_name.ipynb, and any chapter with a record."""
    found = {}
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        match = re.match(r"(\d\d)_(.+)\.ipynb$", path.name)
        if match:
            found[match.group(1)] = match.group(2).replace("_", " ")
    for key in times:
        if re.fullmatch(r"\d\d", key):
            found.setdefault(key, "")
    return sorted(found.items())


def seconds(value: float) -> str:
    """"137 s", or "4.2 s" below 10 s."""
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def _record_cell(record: dict | None, budget: float | None) -> str:
    if not record:
        return NOT_MEASURED
    text = f"{seconds(record['wall_s'])} / {seconds(record['cpu_s'])}"
    if budget is not None and record["wall_s"] > budget:
        text += f" (over {seconds(budget)})"
    return text


def _when(record: dict) -> str:
    date = str(record.get("date", "?"))[:10]
    commit = str(record.get("git_commit", "unknown"))[:7]
    return f"{date}, {commit}"


def _machine(record: dict) -> str:
    threads = record.get("threads")
    name = record.get("device_name", "?")
    if threads is None:
        return name
    return f"{name}, {threads} thread{'' if threads == 1 else 's'}"


def _joined(records: dict, describe) -> str:
    """describe(record) for every mode's record, said once when they all agree."""
    values = {mode: describe(record) for mode, record in records.items()}
    if len(set(values.values())) <= 1:
        return next(iter(values.values()), "")
    return "; ".join(f"{mode}: {value}" for mode, value in values.items())


def _modes_shown(times: dict, rows) -> list[tuple[str, str]]:
    """fast and full always; the GPU columns only when some chapter has such a record."""
    shown = []
    for key, label in MODES:
        if key in ("fast", "full") or any(isinstance(times.get(number), dict) and times[number].get(key)
                                          for number, _ in rows):
            shown.append((key, label))
    return shown


def table_rows(times: dict, notebooks=NOTEBOOKS) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows (chapter, each mode's wall / CPU, measured when, machine)."""
    rows = chapters(times, notebooks)
    modes = _modes_shown(times, rows)
    header = ["chapter"] + [f"{label}: wall / CPU" for _, label in modes] + ["measured (date, commit)",
                                                                             "machine"]
    out = []
    for number, name in rows:
        entry = times.get(number) if isinstance(times.get(number), dict) else {}
        records = {key: entry[key] for key, _ in modes if entry.get(key)}
        budgets = {"fast": FAST_BUDGET_S, "full": FULL_BUDGET_S}
        out.append([f"{number} {name}".strip()]
                   + [_record_cell(entry.get(key), budgets.get(key)) for key, _ in modes]
                   + [_joined(records, _when) or "-", _joined(records, _machine) or "-"])
    return header, out


def suite_line(times: dict) -> str:
    """One sentence on the test suite's time, from its record (never a made-up number)."""
    record = times.get(TEST_SUITE)
    if not isinstance(record, dict) or "wall_s" not in record:
        return (f"Test suite (`make test`): {NOT_MEASURED} (`python benchmarks/course_times.py --time-tests` "
                "runs it and records the time here).")
    wall = record["wall_s"]
    over = f", over the {TESTS_BUDGET_S / 60:.0f}-minute budget" if wall > TESTS_BUDGET_S else ""
    outcome = "passed" if record.get("passed") else f"failed (exit status {record.get('returncode')})"
    cpu = f", {seconds(record['cpu_s'])} CPU summed over all its processes" if "cpu_s" in record else ""
    cores = record.get("cpus")
    return (f"Test suite (`make test`): {seconds(wall)} wall ({wall / 60:.1f} min{over}){cpu}; {outcome}; "
            f"{_when(record)}, {record.get('device_name', '?')}"
            + (f", {cores} CPU{'' if cores == 1 else 's'} available." if cores else "."))


def markdown_table(header, rows) -> list[str]:
    aligns = ["---"] + ["---:" if "wall / CPU" in name else "---" for name in header[1:]]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"] + \
           ["| " + " | ".join(row) + " |" for row in rows]


def readme_section(times: dict, notebooks=NOTEBOOKS) -> str:
    """What goes between the README's two markers (without them)."""
    header, rows = table_rows(times, notebooks)
    lines = [
        "Each notebook times itself from `minift.course.setup()` to its last cell "
        "(`minift.course.report_time(\"NN\")`): wall-clock seconds, and CPU seconds of the notebook's own "
        "process (`time.process_time()`, all its threads; other jobs on a shared machine disturb it less "
        "than wall time). Kernel start-up and the imports before `setup()` are not counted. Mode: *fast* is "
        "the test suite's sizes, *full* the course run whose outputs are committed. `make course` runs "
        "every chapter in full mode, then in fast mode on a copy, with `MINIFT_RECORD_TIMES=1`, so that "
        "each notebook adds its record (date, commit, machine, CPU thread count) to "
        "`results/course_times.json`; this section is generated from that file "
        "(`python benchmarks/course_times.py --readme`). Budget: full mode <= 5 min per chapter on 2 CPU "
        f"cores, fast mode <= {FAST_BUDGET_S:.0f} s per notebook, the whole test suite (`make test`) "
        "<= 10 min.",
        "",
        *markdown_table(header, rows),
        "",
        suite_line(times),
    ]
    return "\n".join(lines)


def rewrite_readme(readme=README, section: str = "") -> bool:
    """Replace what lies between the markers in ``readme`` with ``section``. True if the file changed."""
    from minift.files import atomic_path

    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{readme} must hold the line {START} once, followed by {END} once; "
                         "the table goes between them")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{START}\n{section.strip()}\n{END}{after}"
    if new == text:
        return False
    with atomic_path(readme) as temporary:
        Path(temporary).write_text(new, encoding="utf-8")
    return True


def print_table(times: dict, notebooks=NOTEBOOKS) -> None:
    header, rows = table_rows(times, notebooks)
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i])
              for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(suite_line(times).replace("`", ""))


def time_tests(path=TIMES, command=("make", "test")) -> dict:
    """Run the test suite, time it (wall, and CPU of all its processes) and record it under "test_suite"."""
    import resource

    from minift._version import __version__
    from minift.course.setup import available_cpus, cpu_name, git_commit, update_json_file

    def children_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu0, wall0 = children_cpu(), time.perf_counter()
    done = subprocess.run(list(command), cwd=ROOT)
    wall_s, cpu_s = time.perf_counter() - wall0, children_cpu() - cpu0
    record = {"command": " ".join(command), "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1),
              "returncode": done.returncode, "passed": done.returncode == 0,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": "cpu",
              "device_name": cpu_name(), "cpus": available_cpus(), "git_commit": git_commit(),
              "minift_version": __version__}
    update_json_file(path, lambda data: data.__setitem__(TEST_SUITE, record))
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=Path, default=TIMES, help="the records (default results/course_times.json)")
    parser.add_argument("--readme", nargs="?", type=Path, const=README, default=None, metavar="README",
                        help="rewrite the marked section of this README (default README.md)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="where the chapters are")
    parser.add_argument("--time-tests", action="store_true", help="run `make test` first and record its time")
    args = parser.parse_args(argv)
    status = 0
    if args.time_tests:
        status = 0 if time_tests(args.times)["passed"] else 1
    times = load_times(args.times)
    print_table(times, args.notebooks)
    if args.readme is not None:
        changed = rewrite_readme(args.readme, readme_section(times, args.notebooks))
        print(f"{args.readme}: {'section rewritten' if changed else 'already up to date'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
