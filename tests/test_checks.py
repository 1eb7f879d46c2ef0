"""The shared scalar checks and the one Registry class."""
import numpy as np
import pytest

from proxies.checks import check_choice, check_int, check_number
from proxies.registry import Registry


@pytest.mark.parametrize("value, minimum, maximum, message", [
    (0, 1, None, "n must be a positive integer, got 0"),
    (-1, 0, None, "n must be a non-negative integer, got -1"),
    (True, 0, None, "n must be a non-negative integer, got True"),
    (2.0, 1, None, "n must be a positive integer, got 2.0"),
    ("3", None, None, "n must be an integer, got '3'"),
    (3, 4, None, "n must be an integer >= 4, got 3"),
    (11, 2, 10, "n must be an integer in [2, 10], got 11"),
])
def test_check_int_refuses_with_a_message_naming_the_argument(value, minimum, maximum, message):
    with pytest.raises(ValueError) as err:
        check_int("n", value, minimum=minimum, maximum=maximum)
    assert str(err.value) == message


def test_check_int_accepts_numpy_integers_and_returns_python_int():
    out = check_int("n", np.int64(5), minimum=1)
    assert out == 5 and type(out) is int


@pytest.mark.parametrize("value, kwargs, message", [
    (0.0, dict(minimum=0, strict=True), "lr must be a positive number, got 0.0"),
    (-1, dict(minimum=0), "lr must be a non-negative number, got -1"),
    (float("nan"), {}, "lr must be a finite number, got nan"),
    (False, {}, "lr must be a finite number, got False"),
    (1.5, dict(minimum=0, maximum=1), "lr must be a finite number >= 0 and <= 1, got 1.5"),
])
def test_check_number_refuses(value, kwargs, message):
    with pytest.raises(ValueError) as err:
        check_number("lr", value, **kwargs)
    assert str(err.value) == message


def test_check_choice():
    assert check_choice("loss", "ce", ("ce", "mse")) == "ce"
    with pytest.raises(ValueError, match="loss must be one of 'ce', 'mse', got 'l1'"):
        check_choice("loss", "l1", ("ce", "mse"))


def test_registry_order_duplicates_and_replace():
    table = Registry("thing")
    a, b = object(), object()
    table.add("b", b)
    table.add("a", a)
    assert table.names() == ["b", "a"] and "a" in table and len(table) == 2
    assert table.add("a", a) is a  # the same object again: a no-op
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        table.add("a", b)
    table.add("a", b, replace=True)
    assert table.get("a") is b
    with pytest.raises(ValueError, match="unknown thing 'c'; known: b, a"):
        table.get("c")
    with pytest.raises(ValueError, match="non-empty string name"):
        table.add("", a)
