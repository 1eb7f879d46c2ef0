"""Experiment configuration: TOML files checked against a declarative schema.

A schema is a tree of `Schema` (a table) and `Field` (a value) objects. `validate`
walks a config dict against it and either returns a normalised copy (defaults filled
in, keys in schema order, ints widened to floats where a float is asked for, grid
values wrapped in `Grid`) or raises one `ValueError` that names every offending key by
its full dotted path, e.g. ``model.widths[1]: must be a positive integer, got -3``.

Grid keys: a field declared with ``grid=True`` accepts either one value or a list of
values; a list is a grid axis, and `grid_points` expands all axes of a config as a
Cartesian product (last axis fastest, axes in schema order). Cross-field rules
(`Rule`, `requires`) are checked on every grid point, so a grid cannot smuggle in an
impossible combination.

Example::

    schema = Schema({
        "kind": Field(str, choices=("toy",)),
        "seeds": seeds_field(),
        "model": Schema({"widths": Field(list, items=Field(int, ge=1), min_len=1)}),
        "optim": Schema(
            {"solver": Field(str, choices=("gauss_newton", "gd"), grid=True),
             "loss": Field(str, choices=("mse", "ce"), default="mse")},
            rules=(requires("solver", "gauss_newton", "loss", ("mse",)),),
        ),
    })
    config = load_config("experiment.toml", schema)
"""
from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = [
    "MISSING",
    "Field",
    "Grid",
    "Rule",
    "Schema",
    "get",
    "grid_points",
    "load_config",
    "load_toml",
    "requires",
    "run_section",
    "seeds_field",
    "validate",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Default of a required field."""


class Grid(list):
    """A list of alternative values for one key: one axis of the experiment grid."""

    def __repr__(self) -> str:
        return f"Grid({list.__repr__(self)})"


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", list: "a list"}


@dataclass(frozen=True)
class Field:
    """One value of a config.

    type: int, float, str, bool or list (a list's elements are checked by `items`).
    default: value used when the key is absent; `MISSING` makes the key required;
        None makes it optional (absent means "not set").
    choices: allowed values.  ge / gt / le / lt: numeric bounds (inclusive / exclusive).
    items: `Field` of each element of a list.  min_len / max_len: list length bounds.
    grid: the key may hold a list of alternatives, expanded by `grid_points`.
    check: extra test ``check(value) -> None | str``; a string is the problem in words.
    doc: what the value means (shown nowhere automatically; for readers of the schema).
    """

    type: type
    default: Any = MISSING
    choices: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    items: "Field | None" = None
    min_len: int | None = None
    max_len: int | None = None
    grid: bool = False
    check: Callable[[Any], str | None] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPE_WORDS:
            raise ValueError(f"Field.type must be one of int, float, str, bool, list; got {self.type!r}")
        if self.items is not None and self.type is not list:
            raise ValueError("Field.items is only meaningful for type=list")
        if self.type is list and self.items is None:
            raise ValueError("a list Field needs items=Field(...) describing its elements")

    def describe(self) -> str:
        """The requirement in words, e.g. 'a positive integer' or 'a number in (0, 1]'."""
        noun = _TYPE_WORDS[self.type]
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type in (int, float):
            kind = "integer" if self.type is int else "number"
            lower = self.ge if self.ge is not None else self.gt
            upper = self.le if self.le is not None else self.lt
            if upper is None and lower == 0 and self.gt is not None:
                return f"a positive {kind}"
            if upper is None and lower == 0:
                return f"a non-negative {kind}"
            if upper is None and self.type is int and self.ge == 1:
                return "a positive integer"
            if lower is None and upper is None:
                return noun
            lo = "(-inf" if lower is None else ("[" if self.ge is not None else "(") + repr(lower)
            hi = "inf)" if upper is None else repr(upper) + ("]" if self.le is not None else ")")
            return f"{noun} in {lo}, {hi}"
        if self.type is list:
            length = ""
            if self.min_len is not None and self.max_len is not None:
                length = f" of {self.min_len} to {self.max_len} elements"
            elif self.min_len is not None:
                length = f" of at least {self.min_len} element{'s' if self.min_len != 1 else ''}"
            elif self.max_len is not None:
                length = f" of at most {self.max_len} elements"
            return f"a list{length} of {self.items.describe()}"
        return noun


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, checked on every grid point after all fields passed.

    key: dotted key (relative to the `Schema` the rule is attached to) that the error
        message names.
    check: ``check(section) -> None | str`` gets the validated table the rule is attached
        to (one grid point: grid keys hold single values) and returns the problem in
        words, or None when the combination is fine.
    """

    key: str
    check: Callable[[Mapping[str, Any]], str | None]


def requires(key: str, value: Any, other_key: str, allowed: tuple, why: str = "") -> Rule:
    """Rule: when `key` equals `value`, `other_key` must be one of `allowed`.

    >>> rule = requires("solver", "gauss_newton", "loss", ("mse",))
    >>> rule.check({"solver": "gauss_newton", "loss": "ce"})
    "'gauss_newton' requires loss in ('mse',), got 'ce'"
    """
    allowed = tuple(allowed)

    def check(section: Mapping[str, Any]) -> str | None:
        if get(section, key) != value:
            return None
        other = get(section, other_key)
        if other in allowed:
            return None
        reason = f" ({why})" if why else ""
        return f"{value!r} requires {other_key} in {allowed!r}, got {other!r}{reason}"

    return Rule(key, check)


@dataclass(frozen=True)
class Schema:
    """A table of named `Field`s and sub-`Schema`s, plus cross-field `Rule`s.

    A sub-table that is absent from the config is filled from its fields' defaults
    (and reported as missing if one of them is required).
    """

    fields: Mapping[str, "Field | Schema"]
    rules: tuple[Rule, ...] = ()
    doc: str = ""


def get(config: Mapping[str, Any], dotted_key: str) -> Any:
    """Value at a dotted key: ``get(cfg, "model.width") == cfg["model"]["width"]``."""
    node: Any = config
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted_key)
        node = node[part]
    return node


def seeds_field(default: Any = MISSING) -> Field:
    """The conventional top-level ``seeds`` key: a list of non-negative integer seeds."""
    return Field(list, default=default, items=Field(int, ge=0), min_len=1,
                 doc="one job per seed and grid point; each seed is recorded in its row")


def run_section() -> Schema:
    """The conventional ``[run]`` table: how to execute, never part of a job's params."""
    return Schema({
        "executor": Field(str, default="local", choices=("local", "ray")),
        "workers": Field(int, default=1, ge=1),
        "ray_address": Field(str, default=None, doc="address of an existing Ray cluster"),
        "threads_per_job": Field(int, default=None, ge=1, doc="default: cores // workers"),
    })


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_scalar(value: Any, spec: Field, path: str, errors: list[str]) -> Any:
    """Check one non-grid value against `spec`; return the normalised value."""
    got = f"got {value!r}"
    expected = spec.type
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list)
    if not ok:
        errors.append(f"{path}: must be {spec.describe()}, {got} ({type(value).__name__})")
        return value
    if expected is float:
        value = float(value)
        if not math.isfinite(value):
            errors.append(f"{path}: must be a finite number, {got}")
            return value
    if expected is list:
        out = []
        n_errors = len(errors)
        for i, item in enumerate(value):
            out.append(_check_scalar(item, spec.items, f"{path}[{i}]", errors))
        if len(errors) > n_errors:
            return out
        if (spec.min_len is not None and len(out) < spec.min_len) or (
            spec.max_len is not None and len(out) > spec.max_len
        ):
            errors.append(f"{path}: must be {spec.describe()}, got {len(out)} elements")
        value = out
    if spec.choices is not None and value not in spec.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        errors.append(f"{path}: must be {spec.describe()}, {got}{extra}")
        return value
    if expected in (int, float):
        bad = (
            (spec.ge is not None and value < spec.ge)
            or (spec.gt is not None and value <= spec.gt)
            or (spec.le is not None and value > spec.le)
            or (spec.lt is not None and value >= spec.lt)
        )
        if bad:
            errors.append(f"{path}: must be {spec.describe()}, {got}")
            return value
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            errors.append(f"{path}: {problem}, {got}")
    return value


def _check_field(value: Any, spec: Field, path: str, errors: list[str]) -> Any:
    if not spec.grid:
        return _check_scalar(value, spec, path, errors)
    # A grid key holds one value or a list of alternatives; for a list-typed field
    # the alternatives are themselves lists, so a flat list is a single value.
    is_axis = isinstance(value, list) and (
        spec.type is not list or (len(value) > 0 and all(isinstance(v, list) for v in value))
    )
    if not is_axis:
        return Grid([_check_scalar(value, spec, path, errors)])
    if not value:
        errors.append(f"{path}: a grid must list at least one value, got []")
        return Grid()
    points = Grid(_check_scalar(v, spec, f"{path}[{i}]", errors) for i, v in enumerate(value))
    if len({_freeze(p) for p in points}) != len(points):
        errors.append(f"{path}: grid values must be distinct, got {value!r}")
    return points


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _check_table(config: Any, schema: Schema, path: str, errors: list[str]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        errors.append(f"{path or '<root>'}: must be a table, got {config!r} ({type(config).__name__})")
        return {}
    for key in config:
        if key not in schema.fields:
            allowed = list(schema.fields)
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            errors.append(f"{_join(path, key)}: unknown key{extra}; allowed keys: {', '.join(allowed)}")
    out: dict[str, Any] = {}
    for key, spec in schema.fields.items():
        sub = _join(path, key)
        if isinstance(spec, Schema):
            out[key] = _check_table(config.get(key, {}), spec, sub, errors)
        elif key in config:
            out[key] = _check_field(config[key], spec, sub, errors)
        elif spec.default is MISSING:
            errors.append(f"{sub}: required key missing; expected {spec.describe()}")
        elif spec.grid and spec.default is not None:
            out[key] = Grid([spec.default])
        else:
            out[key] = spec.default
    return out


def _check_rules(point: Mapping[str, Any], schema: Schema, path: str, label: str, errors: list[str]) -> None:
    for key, spec in schema.fields.items():
        if isinstance(spec, Schema):
            _check_rules(point[key], spec, _join(path, key), label, errors)
    for rule in schema.rules:
        problem = rule.check(point)
        if problem:
            errors.append(f"{_join(path, rule.key)}: {problem}{label}")


def _grid_axes(config: Mapping[str, Any], path: tuple = ()) -> list[tuple[tuple, Grid]]:
    axes = []
    for key, value in config.items():
        if isinstance(value, Grid):
            axes.append((path + (key,), value))
        elif isinstance(value, Mapping):
            axes.extend(_grid_axes(value, path + (key,)))
    return axes


def _set(config: dict, path: tuple, value: Any) -> dict:
    out = dict(config)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _set(out[path[0]], path[1:], value)
    return out


def grid_points(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Expand every `Grid` of a validated config: one plain dict per Cartesian point.

    Axes are taken in the config's key order (schema order after `validate`), the last
    axis varying fastest.  A config without grids gives a one-element list.

    >>> grid_points({"a": Grid([1, 2]), "b": {"c": Grid(["x", "y"])}})[1]
    {'a': 1, 'b': {'c': 'y'}}
    """
    axes = _grid_axes(config)
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        point = dict(config)
        for (path, _), value in zip(axes, combo):
            point = _set(point, path, value)
        points.append(point)
    return points


def validate(config: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """Check `config` against `schema` and return its normalised copy.

    Raises ValueError listing every problem, each prefixed by its full dotted key:
    unknown keys, missing required keys, wrong types, values out of range or not among
    the choices, and violated cross-field rules (checked on each grid point).
    """
    errors: list[str] = []
    normalised = _check_table(config, schema, "", errors)
    if not errors:
        axes = _grid_axes(normalised)
        for point in grid_points(normalised):
            label = ""
            if any(len(values) > 1 for _, values in axes):
                coords = ", ".join(f"{'.'.join(p)}={get(point, '.'.join(p))!r}" for p, _ in axes)
                label = f" (grid point {coords})"
            _check_rules(point, schema, "", label, errors)
    if errors:
        unique = list(dict.fromkeys(errors))
        if len(unique) == 1:
            raise ValueError(unique[0])
        raise ValueError(f"{len(unique)} problems in the config:\n  " + "\n  ".join(unique))
    return normalised


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a ValueError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"config file {str(path)!r} does not exist; check the path") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {err}") from None


def load_config(path: str | Path, schema: Schema) -> dict[str, Any]:
    """`load_toml` then `validate`; errors are prefixed by the file name."""
    raw = load_toml(path)
    try:
        return validate(raw, schema)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
