"""The course wing: what turns the library into a course. The library core never imports it.

    import minift.course
    env = minift.course.setup(seed=0)          # seed, device, mode, CPU threads; one summary line
    minift.quiz.show("01")                     # or minift.course.quiz.show("01")
    from minift.course.checks import ch04_lora as checks

Files:

    setup.py        notebook set-up: setup(), pick(), timer, save_results()/load_results(), report_time()
    quiz.py         the quiz engine; quizzes/NN.json are the question banks
    checks/         exercise checkers: framework.py (Verdict, @checker) and one file per chapter
    widgets/        interactive explorers, one file per chapter that needs one
    viz.py          small plotting helpers shared by the notebooks
    exercises.py    the exercise generator: python -m minift.course.exercises solutions exercises

Only setup.py is loaded with the package (so ``minift.course.setup(seed=0)`` works after
``import minift.course``); the others load on first use (``minift.course.quiz``, ``from minift.course
import viz``), so a notebook that never plots does not pay for matplotlib.
Note that ``minift.course.setup`` is the function: to reach the module's other names, import them
from it (``from minift.course.setup import choose_threads``).
"""

from __future__ import annotations

import importlib

# ``setup`` here is the function: binding it replaces the attribute that importing the submodule
# setup.py gave the package (the module stays reachable as sys.modules["minift.course.setup"]).
from .setup import (CourseEnv, MODES, available_cpus, choose_threads, cpu_name, describe_device,
                    git_commit, load_results, parse_mode, report_time, results_dir, run_metadata,
                    save_results, seed_everything, set_threads, setup, synchronize, timer)

__all__ = ["setup", "CourseEnv", "MODES", "available_cpus", "choose_threads", "cpu_name", "describe_device",
           "git_commit", "load_results", "parse_mode", "results_dir", "run_metadata", "save_results",
           "seed_everything", "set_threads", "synchronize", "timer", "report_time"]

_SUBMODULES = ("quiz", "checks", "widgets", "viz", "exercises")


def __getattr__(name: str):
    """Load a course module on first access: ``minift.course.quiz.show("01")`` after ``import minift.course``."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
