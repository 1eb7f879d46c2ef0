"""The result object of the sample-wise solvers (docs/theory.md §2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from torch import Tensor


@dataclass(frozen=True)
class SampleWiseOptima:
    """Per-sample optima θ*_i of l_i reached from θ_0 by a named solver.

    Attributes
    ----------
    theta : (n, m) θ*_i, flattened over ``param_names`` in that order.
    loss : (n,) l*_i = l_i(θ*_i).
    grad_norm : (n,) ‖∇l_i(θ*_i)‖ of l_i alone (for ``proximal`` the stationarity residual
        of the proximal objective is in ``extra["prox_grad_norm"]``).
    iterations : (n,) number of solver steps taken per sample.
    converged : (n,) whether the solver's stopping criterion was met.
    theta0 : (m,) the starting point θ_0.
    param_names, param_shapes : the parameters the flat vectors cover, in order.
    solver : solver name; options : the options actually used (defaults included);
    loss_name : "mse" | "ce" | the callable's ``__name__``; extra : solver diagnostics.

    Example
    -------
    >>> opt.unflatten(opt.theta[0])["0.weight"].shape   # doctest: +SKIP
    torch.Size([64, 64])
    """

    theta: Tensor
    loss: Tensor
    grad_norm: Tensor
    iterations: Tensor
    converged: Tensor
    theta0: Tensor
    param_names: tuple[str, ...]
    param_shapes: tuple[tuple[int, ...], ...]
    solver: str
    options: dict
    loss_name: str
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.theta.shape[0]

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a flat vector (m,) or a batch (..., m) into ``name -> (..., *shape)`` views."""
        m = sum(prod(s) for s in self.param_shapes)
        if flat.shape[-1] != m:
            raise ValueError(
                f"flat: last dimension is {flat.shape[-1]}, expected m={m} "
                f"(the number of entries in {self.param_names}); pass opt.theta or opt.theta[i]."
            )
        lead = flat.shape[:-1]
        out, start = {}, 0
        for name, shape in zip(self.param_names, self.param_shapes):
            size = prod(shape)
            out[name] = flat[..., start:start + size].reshape(*lead, *shape)
            start += size
        return out
