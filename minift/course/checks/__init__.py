"""Exercise checkers: one file per chapter, over a small shared framework (framework.py).

    from minift.course.checks import ch04_lora as checks       # one chapter's checkers
    checks.check_lora_linear(MyLoRALinear)
    ✅ passed: MyLoRALinear starts at the base layer, ...

    framework.py        Verdict, @checker, call(), passed(), mistake(): what every checker shares
    chNN_name.py        chapter NN's checkers, named like its notebook (ch01_sft.py for 01_sft.ipynb)

This package also gathers every chapter's public names (its ``__all__``), so ``from minift.course
import checks`` (and the old ``from minift import checks``) reaches every checker. Chapter files are
found by their name, so a new chapter only adds its file; two chapters exporting the same name is an
error at import time rather than one checker silently hiding the other.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from . import framework
from .framework import *             # noqa: F401,F403 - Verdict, checker, call, passed, mistake, ...

CHAPTER_FILE = re.compile(r"ch(\d\d)_\w+")


def _chapter_modules() -> dict:
    """{"01": the ch01_*.py module, ...} for every chapter file of this folder, in chapter order."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if CHAPTER_FILE.fullmatch(info.name))
    return {CHAPTER_FILE.fullmatch(name).group(1): importlib.import_module(f"{__name__}.{name}") for name in names}


CHAPTERS = _chapter_modules()


def _gather() -> list[str]:
    """Put every chapter's public names into this package's namespace; return them."""
    owner = {name: framework.__name__ for name in framework.__all__}
    for module in CHAPTERS.values():
        for name in module.__all__:
            if name in owner:
                raise ImportError(f"{name!r} is exported by both {owner[name]} and {module.__name__}; "
                                  "rename one of them (checker names must be unique across chapters)")
            owner[name] = module.__name__
            globals()[name] = getattr(module, name)
    return sorted(owner)


__all__ = ["CHAPTERS", *_gather()]
