"""Name -> object registries for assumptions and bounds (docs/theory.md §6).

An experiment asks for bounds by name; a bound names the assumptions it needs, and those
are looked up here too. Both tables are `proxies.registry.Registry` objects: names in
registration order, a taken name refused unless ``replace=True``, an unknown name
answered with the known ones. This module imports nothing of `theory`: the built-in
assumptions (A1, A2, A3, lipschitz) and bounds (theorem1_per_sample, theorem1_uniform,
theorem1_first_order, theorem2, lipschitz_per_sample, lipschitz_psi1) register
themselves when `theory.assumptions` and `theory.bounds` are imported, which importing
`theory` (or any of its modules) does.

Example:
    >>> from theory.registry import bound_names, get_bound
    >>> bound_names()[:3]
    ['theorem1_per_sample', 'theorem1_uniform', 'theorem1_first_order']
    >>> get_bound("theorem1_uniform").assumptions
    ('A1', 'A2')
"""
from __future__ import annotations

from proxies.registry import Registry

ASSUMPTIONS: Registry = Registry("assumption")
BOUNDS: Registry = Registry("bound")


def _name_of(kind: str, obj) -> str:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} needs a non-empty string `name`, got {obj!r}")
    return name


def register_assumption(assumption, *, replace: bool = False):
    """Register an `Assumption` under its name (returns it, so it can wrap a definition)."""
    return ASSUMPTIONS.add(_name_of("assumption", assumption), assumption, replace=replace)


def register_bound(bound, *, replace: bool = False):
    """Register a `Bound` under its name; every assumption it names must be registered."""
    name = _name_of("bound", bound)
    unknown = [a for a in (*bound.assumptions, *bound.uses) if a not in ASSUMPTIONS]
    if unknown:
        raise ValueError(
            f"bound {name!r} needs assumptions {unknown} that are not registered; "
            "register them first with register_assumption"
        )
    return BOUNDS.add(name, bound, replace=replace)


def get_assumption(name: str):
    """The registered `Assumption` called ``name``."""
    return ASSUMPTIONS.get(name)


def get_bound(name: str):
    """The registered `Bound` called ``name``."""
    return BOUNDS.get(name)


def assumption_names() -> list[str]:
    """Registered assumption names, in registration order."""
    return ASSUMPTIONS.names()


def bound_names() -> list[str]:
    """Registered bound names, in registration order."""
    return BOUNDS.names()
