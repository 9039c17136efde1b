"""Argument checks shared by the whole library, so that every function fails the same clear way.

Each helper returns the value it checked (converted where that is harmless, e.g. a numpy integer to
``int``) or raises ``ValueError`` with a message that names the argument, the bad value and what is
allowed. Functions then read as what they do, not as a wall of guards:

    r = positive_int("r", r)
    dropout = probability("dropout", dropout)          # [0, 1)
    encoder = choice("encoder", encoder, ("lstm", "mlp", None))
"""

from __future__ import annotations

import math
import numbers


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value, *, allow_none: bool = False, minimum: int = 1):
    """An integer >= ``minimum`` (1 by default); ``None`` passes through when ``allow_none``."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def int_in_range(name: str, value, low: int, high: int):
    """An integer in [low, high]."""
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def finite_number(name: str, value, *, minimum: float | None = None, strict: bool = False):
    """A finite real number; with ``minimum``, >= minimum (or > minimum when ``strict``)."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def positive_number(name: str, value):
    """A finite number > 0 (learning rates, alpha, epsilons)."""
    return finite_number(name, value, minimum=0.0, strict=True)


def probability(name: str, value, *, include_one: bool = False):
    """A number in [0, 1) (dropout), or [0, 1] with ``include_one``."""
    if not _is_real(value) or not (0.0 <= value <= 1.0 if include_one else 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if include_one else ')'}, got {value!r}")
    return float(value)


def boolean(name: str, value) -> bool:
    """A real bool: True or False. Strings such as "no" are truthy in Python, so they are refused."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def choice(name: str, value, allowed):
    """One of ``allowed``; the message lists them."""
    allowed = tuple(allowed)
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        raise ValueError(f"{name}={value!r} is not allowed; choose from {allowed}")
    return value


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
    for value in values:
        choice(f"{name} item", value, allowed)
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated items: {values!r}")
    return values
