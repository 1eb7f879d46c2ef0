"""Name -> object registries for assumptions and bounds (docs/theory.md §6).

An experiment asks for bounds by name; a bound names the assumptions it needs, and those
are looked up here too. The built-in ones (A1, A2, A3, lipschitz; theorem1_per_sample,
theorem1_uniform, theorem1_first_order, theorem2, lipschitz_per_sample, lipschitz_psi1) are registered when
`theory.assumptions` and `theory.bounds` are imported, which the getters ensure.

Example:
    >>> from theory.registry import bound_names, get_bound
    >>> "theorem1_uniform" in bound_names()
    True
    >>> get_bound("theorem1_uniform").assumptions
    ('A1', 'A2')
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from theory.assumptions import Assumption
    from theory.bounds import Bound

_ASSUMPTIONS: dict[str, Assumption] = {}
_BOUNDS: dict[str, Bound] = {}


def _load_builtins() -> None:
    # Imported here, not at module level: those modules register into this one.
    import theory.assumptions  # noqa: F401
    import theory.bounds  # noqa: F401


def _register(table: dict, kind: str, obj, replace: bool):
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise ValueError(f"a {kind} needs a non-empty string `name`, got {obj!r}")
    if obj.name in table and not replace and table[obj.name] is not obj:
        raise ValueError(f"{kind} {obj.name!r} is already registered; pass replace=True to override it")
    table[obj.name] = obj
    return obj


def register_assumption(assumption: Assumption, *, replace: bool = False) -> Assumption:
    """Register an `Assumption` under its name (returns it, so it can wrap a definition)."""
    return _register(_ASSUMPTIONS, "assumption", assumption, replace)


def register_bound(bound: Bound, *, replace: bool = False) -> Bound:
    """Register a `Bound` under its name; every assumption it names must be registered."""
    _load_builtins()
    unknown = [a for a in (*bound.assumptions, *bound.uses) if a not in _ASSUMPTIONS]
    if unknown:
        raise ValueError(
            f"bound {bound.name!r} needs assumptions {unknown} that are not registered; "
            "register them first with register_assumption"
        )
    return _register(_BOUNDS, "bound", bound, replace)


def get_assumption(name: str) -> Assumption:
    _load_builtins()
    if name not in _ASSUMPTIONS:
        raise ValueError(f"unknown assumption {name!r}; known: {sorted(_ASSUMPTIONS)}")
    return _ASSUMPTIONS[name]


def get_bound(name: str) -> Bound:
    _load_builtins()
    if name not in _BOUNDS:
        raise ValueError(f"unknown bound {name!r}; known: {sorted(_BOUNDS)}")
    return _BOUNDS[name]


def assumption_names() -> list[str]:
    _load_builtins()
    return sorted(_ASSUMPTIONS)


def bound_names() -> list[str]:
    _load_builtins()
    return sorted(_BOUNDS)
