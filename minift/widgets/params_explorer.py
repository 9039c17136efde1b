"""Alias kept for this release; use minift.course.widgets.params_explorer."""

import importlib
import sys

# the old name and the new one are the same module object, so every name (and any state) is shared
sys.modules[__name__] = importlib.import_module("minift.course.widgets.params_explorer")
