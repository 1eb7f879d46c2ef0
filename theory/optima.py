"""The result object of the sample-wise solvers (docs/theory.md §2), and which of its
samples the consumers use (`kept_samples`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from math import prod

import torch
from torch import Tensor

__all__ = ["SampleWiseOptima", "kept_samples"]

logger = logging.getLogger(__name__)


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
    >>> import theory
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    >>> X, Y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    >>> opt = theory.sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    >>> opt.unflatten(opt.theta[0])["0.weight"].shape, opt.n
    (torch.Size([2, 3]), 4)
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


def kept_samples(optima: SampleWiseOptima, on_unconverged: str = "raise") -> Tensor:
    """Boolean mask of the samples consumers use: all, or only the converged ones.

    ``on_unconverged="raise"`` refuses optima with unconverged samples; ``"exclude"`` drops
    them with a logging warning giving the count (interfaces of docs/theory.md §2).
    """
    if on_unconverged not in ("raise", "exclude"):
        raise ValueError(f'on_unconverged must be "raise" or "exclude", got {on_unconverged!r}')
    converged = optima.converged.bool()
    bad = int((~converged).sum())
    if bad and on_unconverged == "raise":
        raise ValueError(
            f"optima: {bad} of {optima.n} samples did not converge; rerun the solver with more "
            'iterations or pass on_unconverged="exclude" to drop them'
        )
    if bad:
        logger.warning("excluding %d of %d unconverged samples", bad, optima.n)
        if bad == optima.n:
            raise ValueError("optima: no sample converged; nothing to measure")
        return converged
    return torch.ones_like(converged)
