"""Ψ, the spread of the sample-wise optima (docs/theory.md §3).

- ``Ψ_2 = (1/n²) Σ_{i,j} ‖θ*_i − θ*_j‖²₂ = (2/n) Σ_i ‖θ*_i − θ̄*‖²₂`` (the variance form is
  what is computed: O(nm), no n × n matrix).
- ``Ψ_1 = (1/n²) Σ_{i,j} ‖θ*_i − θ*_j‖₁ = (2/n²) Σ_k Σ_{i<j} |a_{ik} − a_{jk}|``, computed
  exactly per coordinate k by sorting: with a_(0) ≤ … ≤ a_(n−1) the sorted column,
  ``Σ_{i<j} (a_(j) − a_(i)) = Σ_j (2j − n + 1) a_(j)``. O(nm log n), no n × n × m tensor.
"""
from __future__ import annotations

import torch
from torch import Tensor

from proxies.checks import check_choice
from theory.optima import SampleWiseOptima

# Columns handled at once: bounds the temporary (n, block) copies.
_PSI1_BLOCK_VALUES = 2**24
_PSI2_BLOCK_VALUES = 2**20


def psi(
    optima: SampleWiseOptima | Tensor,
    norm: int = 2,
    *,
    on_unconverged: str = "raise",
) -> float:
    """Ψ_norm of the sample-wise optima (theory.md §3), as a Python float.

    Args:
        optima: a `SampleWiseOptima`, or a raw (n, m) tensor of θ*_i (taken as converged).
        norm: 2 (Ψ_2, squared Euclidean; default) or 1 (Ψ_1, coordinate-wise).
        on_unconverged: "raise" (default) refuses optima with unconverged samples;
            "exclude" drops them with a logged warning giving the count
            (`SampleWiseOptima.kept`).

    Example:
        >>> theta = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
        >>> psi(theta)            # (1/4)(0 + 8 + 8 + 0)
        4.0
        >>> psi(theta, norm=1)    # (1/4)(0 + 4 + 4 + 0)
        2.0
    """
    check_choice("norm", norm, (1, 2))
    check_choice("on_unconverged", on_unconverged, ("raise", "exclude"))
    if isinstance(optima, SampleWiseOptima):
        theta = optima.theta[optima.kept(on_unconverged)]
    elif isinstance(optima, Tensor):
        theta = optima
        if theta.ndim != 2:
            raise ValueError(f"optima: a raw tensor must have shape (n, m), got {tuple(theta.shape)}")
    else:
        raise ValueError(f"optima must be a SampleWiseOptima or an (n, m) tensor, got {type(optima).__name__}")
    if theta.shape[0] == 0:
        raise ValueError("optima: no samples left to compute Ψ from")
    theta = theta.detach().to(torch.float64)
    return _psi2(theta) if norm == 2 else _psi1(theta)


def _psi2(theta: Tensor) -> float:
    n, m = theta.shape
    block = max(1, _PSI2_BLOCK_VALUES // n)
    total = theta.new_zeros(())
    for start in range(0, m, block):  # column blocks: small temporaries
        columns = theta[:, start:start + block]
        total = total + torch.linalg.vector_norm(columns - columns.mean(dim=0, keepdim=True)).square()
    return float(2.0 / n * total)


def _psi1(theta: Tensor) -> float:
    n, m = theta.shape
    weights = (2 * torch.arange(n, dtype=theta.dtype, device=theta.device) - (n - 1)).unsqueeze(1)
    block = max(1, _PSI1_BLOCK_VALUES // n)
    total = theta.new_zeros(())
    for start in range(0, m, block):
        ordered = torch.sort(theta[:, start:start + block], dim=0).values
        total = total + (weights * ordered).sum()
    return float(2.0 / n**2 * total)
