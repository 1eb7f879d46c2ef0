"""Scalar argument checks shared by every layer (the bottom of the import graph).

Each check returns the value (so it can be used inline) and raises ``ValueError`` with a
message that names the argument, the requirement and what was given:

>>> check_int("batch", 64, minimum=1)
64
>>> check_int("batch", 0, minimum=1)
Traceback (most recent call last):
    ...
ValueError: batch must be a positive integer, got 0
>>> check_number("lr", 0.1, minimum=0, strict=True)
0.1
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

__all__ = ["check_int", "check_number", "check_choice"]


def _int_requirement(minimum: int | None, maximum: int | None) -> str:
    if maximum is not None:
        low = "" if minimum is None else f"{minimum}"
        return f"an integer in [{low}, {maximum}]" if minimum is not None else f"an integer <= {maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    if minimum is None:
        return "an integer"
    return f"an integer >= {minimum}"


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer (bool excluded; numpy integers accepted) in
    ``[minimum, maximum]``, else ``ValueError("<name> must be <requirement>, got <value!r>")``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be {_int_requirement(minimum, maximum)}, got {value!r}")
    return int(value)


def check_number(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
                 strict: bool = False) -> float:
    """``value`` as a float if it is a finite real number (bool excluded) at least
    ``minimum`` (above it with ``strict``) and at most ``maximum``, else ``ValueError``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None and (value <= minimum if strict else value < minimum):
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        if minimum == 0 and maximum is None:
            requirement = "a positive number" if strict else "a non-negative number"
        else:
            parts = []
            if minimum is not None:
                parts.append(f"{'>' if strict else '>='} {minimum}")
            if maximum is not None:
                parts.append(f"<= {maximum}")
            requirement = "a finite number" + (" " + " and ".join(parts) if parts else "")
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
