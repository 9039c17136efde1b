"""Argument checks shared by the whole library, so that every function fails the same clear way.

Each helper returns the value it checked (converted where that is harmless, e.g. a numpy integer to
``int``) or raises ``ValueError`` with a message that names the argument, the bad value and what is
allowed. Functions then read as what they do, not as a wall of guards:

    r = positive_int("r", r)
    dropout = probability("dropout", dropout)          # [0, 1)
    encoder = choice("encoder", encoder, ("lstm", "mlp", None))

Numbers: numpy integers and floats are accepted like Python's (they come out of data pipelines and
sweeps); ``True``/``False`` are refused where a number is wanted (``r=True`` is a bug, not 1), and NaN
and infinities are refused everywhere. ``hint`` adds a short explanation of what is allowed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:          # an int too large for a float
        return False


def _with(hint: str | None) -> str:
    return f" ({hint})" if hint else ""


def positive_int(name: str, value, *, allow_none: bool = False, minimum: int = 1, hint: str | None = None):
    """An integer >= ``minimum`` (1 by default); ``None`` passes through when ``allow_none``."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}{' or None' if allow_none else ''}{_with(hint)}, "
                         f"got {value!r}")
    return int(value)


def int_in_range(name: str, value, low: int, high: int, *, hint: str | None = None):
    """An integer in [low, high]."""
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]{_with(hint)}, got {value!r}")
    return int(value)


def finite_number(name: str, value, *, minimum: float | None = None, strict: bool = False,
                  hint: str | None = None):
    """A finite real number; with ``minimum``, >= minimum (or > minimum when ``strict``)."""
    if not _is_real(value) or not _is_finite(value):
        raise ValueError(f"{name} must be a finite number{_with(hint)}, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}{_with(hint)}, got {value!r}")
    return float(value)


def positive_number(name: str, value, *, hint: str | None = None):
    """A finite number > 0 (learning rates, alpha, epsilons)."""
    return finite_number(name, value, minimum=0.0, strict=True, hint=hint)


def probability(name: str, value, *, include_one: bool = False, hint: str | None = None):
    """A number in [0, 1) (dropout), or [0, 1] with ``include_one``."""
    if not _is_real(value) or not (0.0 <= value <= 1.0 if include_one else 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if include_one else ')'}{_with(hint)}, got {value!r}")
    return float(value)


def boolean(name: str, value) -> bool:
    """A real bool: True or False. Strings such as "no" are truthy in Python, so they are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _same(value, option) -> bool:
    """value names ``option``: the same object, or an equal value of the same kind (a numpy string
    or integer matches a str or int; True never matches 1, nor 1.0 the integer 1)."""
    if value is option:
        return True
    if option is None or isinstance(value, (bool, np.bool_)) != isinstance(option, bool):
        return False
    if isinstance(option, bool):
        return bool(value) == option
    if isinstance(option, numbers.Integral):
        return _is_int(value) and value == option
    if isinstance(option, numbers.Real):
        return _is_real(value) and value == option
    return isinstance(value, type(option)) and value == option


def choice(name: str, value, allowed, *, hint: str | None = None):
    """One of ``allowed``; the message lists them. Returns the allowed item itself."""
    allowed = tuple(allowed)
    for option in allowed:
        if _same(value, option):
            return option
    raise ValueError(f"{name}={value!r} is not allowed; choose from {allowed}{_with(hint)}")


def choices(name: str, values, allowed, *, allow_empty: bool = False) -> tuple:
    """A non-empty collection (a single string counts as one item) of distinct items from ``allowed``."""
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a list of names from {tuple(allowed)}, got {values!r}") from None
    if not values and not allow_empty:
        raise ValueError(f"{name} is empty; choose from {tuple(allowed)}")
    values = tuple(choice(f"{name} item", value, allowed) for value in values)
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated items: {values!r}")
    return values
