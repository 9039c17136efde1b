"""minift.validate: the argument checks every function of the library shares.

Each helper accepts good values (numpy numbers included) and returns them as plain Python values, and
refuses the rest - bools where a number is wanted, NaN, infinities, wrong types - with a ValueError
whose message names the argument, the bad value and what is allowed.
"""

import numpy as np
import pytest

from minift.validate import (boolean, choice, choices, finite_number, int_in_range, positive_int,
                             positive_number, probability)


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(2), np.uint8(5), 10**30])
def test_positive_int_accepts_integers_and_returns_plain_ints(value):
    result = positive_int("r", value)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value, shown", [
    (0, "0"), (-3, "-3"), (True, "True"), (False, "False"), (np.bool_(True), "True"), (2.0, "2.0"),
    (np.float64(2.0), "2.0"), (float("nan"), "nan"), (float("inf"), "inf"), ("8", "'8'"), (None, "None"),
    ([1], r"\[1\]"),
])
def test_positive_int_refuses_the_rest_naming_argument_value_and_what_is_allowed(value, shown):
    with pytest.raises(ValueError, match=rf"^r must be a positive integer, got .*{shown}"):
        positive_int("r", value)


def test_positive_int_options():
    assert positive_int("hidden", None, allow_none=True) is None
    assert positive_int("seed", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        positive_int("seed", -1, minimum=0)
    with pytest.raises(ValueError, match=r"^hidden must be a positive integer or None \(None: d_model\), got 0$"):
        positive_int("hidden", 0, allow_none=True, hint="None: d_model")


def test_int_in_range():
    assert int_in_range("layers", -3, -3, 3) == -3 and int_in_range("layers", np.int64(3), -3, 3) == 3
    assert type(int_in_range("layers", np.int16(1), -3, 3)) is int
    for bad in (4, -4, 1.0, True, "1", float("nan"), None):
        with pytest.raises(ValueError, match=rf"^layers must be an integer in \[-3, 3\] \(N: layers\), got "):
            int_in_range("layers", bad, -3, 3, hint="N: layers")


@pytest.mark.parametrize("value", [0, 0.5, -2, np.float32(0.25), np.float64(1e-8), np.int64(4), 10**20])
def test_finite_number_accepts_reals_and_returns_floats(value):
    result = finite_number("x", value)
    assert type(result) is float and result == pytest.approx(float(value))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"), 10**400,
                                   True, "1.0", None, 1j])
def test_finite_number_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"^x must be a finite number, got "):
        finite_number("x", value)


def test_finite_number_bounds():
    assert finite_number("weight_decay", 0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"^weight_decay must be >= 0, got -0.01$"):
        finite_number("weight_decay", -0.01, minimum=0.0)
    with pytest.raises(ValueError, match=r"^lr must be > 0, got 0$"):
        finite_number("lr", 0, minimum=0.0, strict=True)


@pytest.mark.parametrize("value", [1e-3, 16, np.float32(0.5), np.int64(2)])
def test_positive_number_accepts(value):
    assert positive_number("alpha", value) == pytest.approx(float(value))


@pytest.mark.parametrize("value, message", [
    (0, r"^alpha must be > 0, got 0$"), (-1.5, r"^alpha must be > 0, got -1.5$"),
    (float("nan"), r"^alpha must be a finite number, got nan$"),
    (float("inf"), r"^alpha must be a finite number, got inf$"),
    (True, r"^alpha must be a finite number, got True$"), ("16", r"^alpha must be a finite number, got '16'$"),
])
def test_positive_number_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        positive_number("alpha", value)


def test_probability():
    assert probability("dropout", 0) == 0.0 and probability("dropout", np.float32(0.5)) == 0.5
    assert probability("ratio", 1, include_one=True) == 1.0
    for bad in (1.0, -0.1, 1.5, float("nan"), float("inf"), True, "0.1", None):
        with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\), got "):
            probability("dropout", bad)
    with pytest.raises(ValueError, match=r"^ratio must be in \[0, 1\] \(a fraction\), got 1.5$"):
        probability("ratio", 1.5, include_one=True, hint="a fraction")


def test_boolean():
    assert boolean("causal", True) is True and boolean("causal", np.bool_(False)) is False
    for bad, shown in (("no", "'no'"), ("False", "'False'"), (0, "0"), (1, "1"), (None, "None"),
                       (1.0, "1.0")):
        with pytest.raises(ValueError, match=rf"^causal must be True or False, got {shown}$"):
            boolean("causal", bad)


def test_choice():
    encoders = ("lstm", "mlp", None)
    assert choice("encoder", "mlp", encoders) == "mlp" and choice("encoder", None, encoders) is None
    assert type(choice("encoder", np.str_("lstm"), encoders)) is str       # a numpy string is a str
    assert choice("n", np.int64(2), (1, 2)) == 2
    for bad in ("gru", "LSTM", "", 0, False):
        with pytest.raises(ValueError, match=r"^encoder=.* is not allowed; choose from \('lstm', 'mlp', None\)$"):
            choice("encoder", bad, encoders)
    for bad in (True, 1.0, "1"):                       # True is not 1, nor 1.0 the integer 1
        with pytest.raises(ValueError, match=r"^n=.* is not allowed; choose from \(1, 2\)$"):
            choice("n", bad, (1, 2))


def test_choices():
    assert choices("modules", "ffn", ("ffn", "attn")) == ("ffn",)        # one name counts as a list of one
    assert choices("modules", ["attn", "ffn"], ("ffn", "attn")) == ("attn", "ffn")
    assert choices("targets", [], ("q",), allow_empty=True) == ()
    with pytest.raises(ValueError, match=r"^modules is empty; choose from \('ffn', 'attn'\)$"):
        choices("modules", (), ("ffn", "attn"))
    with pytest.raises(ValueError, match=r"^modules item='mlp' is not allowed; choose from \('ffn', 'attn'\)$"):
        choices("modules", ("ffn", "mlp"), ("ffn", "attn"))
    with pytest.raises(ValueError, match=r"^modules has repeated items: \('ffn', 'ffn'\)$"):
        choices("modules", ("ffn", "ffn"), ("ffn", "attn"))
    with pytest.raises(ValueError, match=r"^modules must be a list of names from \('ffn', 'attn'\), got 3$"):
        choices("modules", 3, ("ffn", "attn"))

