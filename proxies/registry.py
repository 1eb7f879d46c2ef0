"""Proxy registry: every proxy is one function registered by name with one signature.

    proxy(model, inputs, targets, loss_fn=F.cross_entropy, **options) -> float

Higher scores predict better networks for every registered proxy.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

ProxyFn = Callable[..., float]
_REGISTRY: dict[str, ProxyFn] = {}


def register(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: register `fn` as proxy `name` (names are unique)."""

    def decorator(fn: ProxyFn) -> ProxyFn:
        if name in _REGISTRY:
            raise ValueError(f"proxy {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def names() -> list[str]:
    """Registered proxy names, in registration order (gradsign first).

    Example:
        >>> import proxies
        >>> "gradsign" in proxies.names()
        True
    """
    return list(_REGISTRY)


def get(name: str) -> ProxyFn:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; registered proxies: {', '.join(_REGISTRY)}") from None


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
