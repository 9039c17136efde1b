"""The checkers' shared framework: run a student's code on small known cases and say what, specifically,
went wrong. Each chapter's checkers (ch00_welcome.py, ch01_sft.py, ...) are built on it:

    @checker
    def check_something(fn) -> Verdict:
        result = call(fn, 3)                       # the student's code: its exceptions are reported
        if result != 9:
            return mistake("you returned ...", "hint: ...")
        return passed("fn gives x**2 on 1 case")

Every checker prints one verdict and returns it (a ``Verdict``), and never lets an exception escape
into your notebook:

* your function still raises NotImplementedError  ->  "⏳ not implemented yet"
* it raises anything else                          ->  "❌ your code raised <Type>: <message>" + a hint
* it returns a wrong result                        ->  "❌ <the specific mistake>. Hint: ..."

Each checker compares with a reference computed here, and recognises the usual wrong answers so it
can name the mistake rather than just say "wrong".
"""

from __future__ import annotations

import functools
import os
import reprlib
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path

PASSED, NOT_IMPLEMENTED, MISTAKE = "passed", "not implemented", "mistake"
STATUSES = (PASSED, NOT_IMPLEMENTED, MISTAKE)


@dataclass
class Verdict:
    """The outcome of a check: status is "passed", "not implemented" or "mistake"."""

    status: str
    message: str
    hint: str = ""
    printed: bool = field(default=False, repr=False, compare=False)   # already shown by the checker

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is unknown; allowed: {STATUSES}")

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self):
        if self.status == PASSED:
            return f"✅ passed: {self.message}"
        if self.status == NOT_IMPLEMENTED:
            return f"⏳ not implemented yet: {self.message}"
        text = f"❌ {self.message.rstrip('.')}."
        return f"{text} Hint: {self.hint}" if self.hint else text

    def _ipython_display_(self):
        # the checker already printed the verdict; showing it again as the cell's value would repeat it
        if not self.printed:
            print(self)


def passed(message: str) -> Verdict:
    return Verdict(PASSED, message)


def mistake(message: str, hint: str = "") -> Verdict:
    return Verdict(MISTAKE, message, hint)


class _StudentRaised(Exception):
    """Your code raised: carries the original exception out of the checker's body."""

    def __init__(self, error: BaseException, what: str):
        super().__init__(str(error))
        self.error, self.what = error, what


class _NotImplementedYet(Exception):
    pass


def call(fn, *args, what: str | None = None, **kwargs):
    """Call the student's ``fn``. Exceptions are wrapped so the checker can tell "your code raised"
    apart from a bug in the checker itself."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotImplementedYet() from None
    except Exception as error:   # noqa: BLE001 - anything the student's code raises is reported
        raise _StudentRaised(error, what or name_of(fn)) from None


def name_of(fn) -> str:
    """How a verdict calls the student's function or class: its name, else its type's name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


# Frames from these folders are not the student's code: minift itself, the standard library, packages.
_LIBRARY_DIRS = tuple(str(Path(p).resolve()) + os.sep for p in
                      {Path(__file__).parents[2], sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                       sysconfig.get_paths()["platlib"]})


def _where(error: BaseException) -> str:
    """"(in f, line 3: ...)" for the deepest frame of the student's own code, if there is one."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_LIBRARY_DIRS)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno}{code})"


def checker(body):
    """Turn a checker body into a safe checker: it prints its verdict, returns it, never raises.

    ``quiet=True`` skips the printing (for tests and for code that uses the Verdict itself). The
    checker runs with the CPU threads the notebook's minift.course.setup() chose; it sets none itself.
    """

    @functools.wraps(body)
    def safe_checker(student, *args, quiet: bool = False, **kwargs) -> Verdict:
        name = name_of(student)
        try:
            if student is None or not callable(student):
                verdict = mistake(f"expected your function or class, got {reprlib.repr(student)}",
                                  "pass the function itself (without calling it): check_x(my_function)")
            else:
                verdict = body(student, *args, **kwargs)
        except _NotImplementedYet:
            verdict = Verdict(NOT_IMPLEMENTED, f"{name} still raises NotImplementedError; "
                                               "replace that line with your code")
        except _StudentRaised as raised:
            error = raised.error
            verdict = mistake(f"your code raised {type(error).__name__}: {error}{_where(error)}",
                              f"{raised.what} must run on these inputs without an error; call it "
                              "yourself on a small example and read the traceback")
        except Exception as error:   # noqa: BLE001 - a checker must never crash a notebook
            verdict = mistake(f"checking {name} failed with {type(error).__name__}: {error}",
                              "this usually means your code returned something of an unexpected type; "
                              "if you think your code is right, please report it as a minift bug")
        if not quiet:
            print(verdict)
            verdict.printed = True
        return verdict

    return safe_checker


__all__ = ["Verdict", "PASSED", "NOT_IMPLEMENTED", "MISTAKE", "STATUSES", "passed", "mistake", "call",
           "checker", "name_of"]
