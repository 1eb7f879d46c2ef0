"""The result object of the sample-wise solvers (docs/theory.md §2)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from math import prod

import torch
from torch import Tensor

from proxies.checks import check_choice

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
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    >>> X, Y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    >>> opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton")
    >>> opt.n, opt.param_names
    (5, ('0.weight', '0.bias', '2.weight', '2.bias'))
    >>> opt.unflatten(opt.theta[0])["0.weight"].shape
    torch.Size([3, 4])
    >>> opt.kept().tolist()
    [True, True, True, True, True]
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

    def kept(self, on_unconverged: str = "raise") -> Tensor:
        """(n,) bool mask of the samples that consumers (Ψ, assumptions, bounds, agreement)
        use: all of them, or only the converged ones.

        ``on_unconverged="raise"`` refuses optima with unconverged samples; ``"exclude"``
        keeps the converged ones, with a logged warning giving the count, and refuses
        optima with none.
        """
        check_choice("on_unconverged", on_unconverged, ("raise", "exclude"))
        converged = self.converged.bool()
        bad = int((~converged).sum())
        if bad and on_unconverged == "raise":
            raise ValueError(
                f"optima: {bad} of {self.n} samples did not converge ({self.solver}, options "
                f"{self.options}); rerun the solver with more iterations or pass "
                'on_unconverged="exclude" to drop them'
            )
        if bad:
            logger.warning("excluding %d of %d unconverged samples", bad, self.n)
            if bad == self.n:
                raise ValueError("optima: no sample converged; nothing to measure")
            return converged
        return torch.ones_like(converged)

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
