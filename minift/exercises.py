"""Alias kept for this release; use minift.course.exercises (python -m minift.course.exercises ...)."""

import importlib
import sys

if __name__ == "__main__":             # python -m minift.exercises solutions exercises
    from minift.course.exercises import main
    sys.exit(main())

# the old name and the new one are the same module object, so every name (and any state) is shared
sys.modules[__name__] = importlib.import_module("minift.course.exercises")
