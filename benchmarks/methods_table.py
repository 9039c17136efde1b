"""Retired: the README's methods table now comes from the chapter-08 shoot-out (one source of truth).

    python benchmarks/methods_table.py [results/08_shootout_cpu.json]

is kept as a shortcut for ``python benchmarks/shootout.py --readme results/08_shootout_cpu.json``: it
prints the table from the shoot-out's JSON (run ``python benchmarks/shootout.py --cpu`` to re-make it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    results = argv[0] if argv else str(HERE.parent / "results" / "08_shootout_cpu.json")
    spec = importlib.util.spec_from_file_location("shootout", HERE / "shootout.py")
    shootout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shootout)
    return shootout.main(["--readme", results])


if __name__ == "__main__":
    main()
