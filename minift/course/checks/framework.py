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

import contextlib
import functools
import math
import numbers
import os
import random
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

    def assert_passed(self) -> None:
        """Raise CheckFailed unless the check passed: what an exercise's test cell ends with, because
        nbgrader's autograde gives a test cell its points only when it runs without an error."""
        if not self.printed:
            print(self)
            self.printed = True
        if not self.passed:
            raise CheckFailed("not implemented yet" if self.status == NOT_IMPLEMENTED
                              else "not passed yet, see the message above")


class CheckFailed(AssertionError):
    """A check did not pass (raised by Verdict.assert_passed). nbgrader records it as the test cell's
    error and scores the cell 0; in a notebook IPython shows this one line instead of a traceback,
    since the verdict printed above it already says what is wrong."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


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
    """A NotImplementedError from the student's code; ``where`` names the function that raised it."""

    def __init__(self, where: str | None = None, called: str | None = None):
        super().__init__(where or "")
        self.where, self.called = where, called


class Rejected(Exception):
    """Raised inside a checker body (or a helper it calls) to return ``verdict`` at once."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.message)
        self.verdict = verdict


def _raiser(error: BaseException) -> str | None:
    """The qualified name of the student's function that raised ``error`` (its deepest frame), or
    None when the error was raised in library code (then it is not a blank exercise)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_LIBRARY_DIRS):
        return None
    code = tb.tb_frame.f_code
    return getattr(code, "co_qualname", code.co_name)


def call(fn, *args, what: str | None = None, **kwargs):
    """Call the student's ``fn``. Exceptions are wrapped so the checker can tell "your code raised"
    apart from a bug in the checker itself. A NotImplementedError raised by another blank function of
    the student's (a helper ``fn`` calls) is reported as that helper not being implemented."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        where = _raiser(error)
        if where is None:            # raised by a library (e.g. an operation torch lacks): a real error
            raise _StudentRaised(error, what or name_of(fn)) from None
        raise _NotImplementedYet(where, what or name_of(fn)) from None
    except Exception as error:   # noqa: BLE001 - anything the student's code raises is reported
        raise _StudentRaised(error, what or name_of(fn)) from None


def as_number(value):
    """``value`` as a float if it is one number of any type (int, float, numpy scalar, 0-d or
    one-element tensor or array), else None. bool is not a number here (True is no count)."""
    if isinstance(value, bool) or value is None:
        return None
    if hasattr(value, "numel") and callable(value.numel):            # torch tensor
        if value.numel() != 1 or value.dtype == getattr(__import__("torch"), "bool"):
            return None
        value = value.detach().cpu().reshape(()).item()
    elif hasattr(value, "dtype") and hasattr(value, "size") and hasattr(value, "item"):   # numpy
        if getattr(value, "size", 0) != 1 or getattr(value.dtype, "kind", "") == "b":
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def same_number(a: float, b: float, tolerance: float = 1e-6) -> bool:
    """a and b are equal up to ``tolerance`` (absolute for small numbers, relative for large)."""
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def snapshot(value):
    """A deep copy of the tensors in ``value`` (a tensor, a dict, list or tuple of them), taken before
    the student's code runs, to see afterwards whether it changed its inputs in place."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value) if isinstance(value, list) else tuple(snapshot(v) for v in value)
    return value


def changed(before, after, name: str = "input") -> list[str]:
    """The names of the parts of ``after`` that differ from their ``snapshot`` ``before``."""
    import torch

    if isinstance(before, torch.Tensor):
        same = isinstance(after, torch.Tensor) and after.shape == before.shape and \
            torch.equal(after.detach(), before)
        return [] if same else [name]
    if isinstance(before, dict):
        if not isinstance(after, dict) or set(after) != set(before):
            return [name]
        return [n for k in before for n in changed(before[k], after[k], f"{name}[{k!r}]")]
    if isinstance(before, (list, tuple)):
        if len(after) != len(before):
            return [name]
        return [n for i, (b, a) in enumerate(zip(before, after)) for n in changed(b, a, f"{name}[{i}]")]
    return []


def call_keeping_inputs(fn, *args, names=None, what: str | None = None):
    """call(fn, *args), then reject the answer if fn changed any of its arguments in place (compared
    with copies of the very objects it was given, made before the call)."""
    before = [snapshot(a) for a in args]
    result = call(fn, *args, what=what)
    names = names or [f"argument {i + 1}" for i in range(len(args))]
    for name, b, a in zip(names, before, args):
        differs = changed(b, a, name)
        if differs:
            raise Rejected(mistake(f"{what or name_of(fn)} changed its input {differs[0]} in place",
                                   "work on a copy (x = x.clone()) or use out-of-place operations "
                                   "(x = x * mask, not x *= mask or x[...] = ...): the caller still "
                                   "needs its data"))
    return result


@contextlib.contextmanager
def keep_random_state():
    """Run a block and put the global random generators (torch CPU and CUDA, numpy, Python's
    random) back as they were: checking an exercise must not change the numbers a student's notebook
    draws next, nor re-seed them."""
    import torch

    python_state = random.getstate()
    try:
        import numpy
        numpy_state = numpy.random.get_state()
    except ImportError:        # pragma: no cover - numpy comes with torch's usual installs
        numpy, numpy_state = None, None
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy is not None:
                numpy.random.set_state(numpy_state)


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


def _blank_message(blank: _NotImplementedYet, name: str) -> str:
    """Name the function that is still blank: the one checked (or one of its methods), or a helper of
    the student's that it calls."""
    where = (blank.where or name).rsplit("<locals>.", 1)[-1]
    if "<" in where or where == name:
        return f"{name} still raises NotImplementedError; replace that line with your code"
    if where.split(".")[0] == name:          # a method of the checked class: MyLoRALinear.merge
        return f"{where} still raises NotImplementedError; replace that line with your code"
    return (f"{where} still raises NotImplementedError, and {name} calls it: write {where} first "
            f"(replace its `raise NotImplementedError` line), then check {name} again")


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
                with keep_random_state():
                    verdict = body(student, *args, **kwargs)
        except Rejected as rejected:
            verdict = rejected.verdict
        except _NotImplementedYet as blank:
            verdict = Verdict(NOT_IMPLEMENTED, _blank_message(blank, name))
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


__all__ = ["Verdict", "CheckFailed", "PASSED", "NOT_IMPLEMENTED", "MISTAKE", "STATUSES", "passed", "mistake", "call",
           "checker", "name_of", "Rejected", "as_number", "same_number", "snapshot", "changed",
           "call_keeping_inputs", "keep_random_state"]
