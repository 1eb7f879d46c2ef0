"""Name -> object registries, and the proxy registry built on one.

`Registry` is the one registry convention of the toolkit (proxies here; assumptions and
bounds in `theory.registry`; paper-reproduction entries through `empirical.registry`):
names are listed in registration order, registering a taken name raises ``ValueError``
unless ``replace=True`` (registering the very same object again is a no-op), and an
unknown name raises ``ValueError`` listing the known ones.

Every proxy is one function registered by name with one signature:

    proxy(model, inputs, targets, loss_fn=F.cross_entropy, **options) -> float

Higher scores predict better networks for every registered proxy.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from torch import Tensor, nn

__all__ = ["Registry", "PROXIES", "register", "names", "get", "compute"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name -> object table for one kind of object.

    >>> shapes = Registry("shape")
    >>> shapes.add("square", 4)
    4
    >>> @shapes.register("triangle")
    ... def triangle(): return 3
    >>> shapes.names()
    ['square', 'triangle']
    >>> shapes.get("circle")
    Traceback (most recent call last):
        ...
    ValueError: unknown shape 'circle'; known: square, triangle
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._table: dict[str, T] = {}

    def add(self, name: str, obj: T, *, replace: bool = False) -> T:
        """Register ``obj`` under ``name`` and return it."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._table and not replace and self._table[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
        self._table[name] = obj
        return obj

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda obj: self.add(name, obj, replace=replace)

    def get(self, name: str) -> T:
        try:
            return self._table[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self._table)}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._table)

    def __contains__(self, name) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


ProxyFn = Callable[..., float]
PROXIES: Registry[ProxyFn] = Registry("proxy")


def register(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: register `fn` as proxy `name` (names are unique)."""
    return PROXIES.register(name)


def names() -> list[str]:
    """Registered proxy names, in registration order (gradsign first).

    Example:
        >>> import proxies
        >>> "gradsign" in proxies.names()
        True
    """
    return PROXIES.names()


def get(name: str) -> ProxyFn:
    return PROXIES.get(name)


def compute(name: str, model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn=None, **options) -> float:
    """Score `model` with proxy `name` on one batch; see each proxy's docstring.

    Example:
        >>> import torch, proxies
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> proxies.compute("gradsign", model, x, y) >= 0
        True
    """
    fn = get(name)
    if loss_fn is not None:
        options["loss_fn"] = loss_fn
    return float(fn(model, inputs, targets, **options))
