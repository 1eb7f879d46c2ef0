"""jacob_cov (Mellor et al., 2020, "Neural Architecture Search without Training", v1;
Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

from proxies.baselines._common import private_buffers, training_mode, undefined
from proxies.engine import functional_view, select_output, validate_batch
from proxies.registry import register


def input_jacobians(model: nn.Module, inputs: Tensor, *, output_selector=None) -> Tensor:
    """J (n, d): row i is ∂(Σ_{j,c} f_c(x_j))/∂x_i, flattened; the whole batch in one pass.

    With BatchNorm in training mode the samples interact through the batch statistics
    and row i also carries those cross terms, exactly as the foresight code's
    `y.backward(ones_like(y))` on the batch.
    """
    params, buffers = functional_view(model)

    def total_output(x):
        out = functional_call(model, (params, private_buffers(buffers)), (x,))
        return select_output(out, output_selector).sum()

    return grad(total_output)(inputs).reshape(inputs.shape[0], -1)


def jacobian_covariance_score(jacobians: np.ndarray, k: float) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)], λ the eigenvalues of corrcoef(J); NaN if undefined."""
    if jacobians.shape[0] < 2:
        return undefined("jacob_cov", "the correlation matrix needs at least 2 samples")
    constant = np.ptp(jacobians, axis=1) == 0
    if constant.any():
        return undefined(
            "jacob_cov",
            f"{int(constant.sum())} of {len(constant)} input Jacobians are constant "
            "(zero variance: no path from the input to the output?), so their correlation "
            "is undefined",
        )
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(jacobians))
    score = -np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k))
    if not np.isfinite(score):
        return undefined(
            "jacob_cov",
            f"the correlation matrix has eigenvalue {eigenvalues.min():.3g} <= -k "
            "(numerically singular beyond the regulariser k)",
        )
    return float(score)


@register("jacob_cov")
def jacob_cov(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    k: float = 1e-5,
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """jacob_cov = −Σ_i [log(λ_i + k) + 1/(λ_i + k)], λ_i the eigenvalues of Σ_J.

    Σ_J is the correlation matrix (numpy `corrcoef`) of the n per-sample input gradients
    J_i = ∂(Σ_c f_c)/∂x_i, flattened (see `input_jacobians`); k = 1e-5 is the regulariser
    of the foresight code. Eigenvalues by `eigvalsh` (Σ_J is symmetric) in float64.
    Higher = better (less correlated Jacobians). `targets` and `loss_fn` are unused.
    BatchNorm in training mode when `train_mode`; the model is left as it was.

    Undefined, NaN with a logged reason: fewer than 2 samples; a Jacobian with zero
    variance across its entries (e.g. an all-zero Jacobian when no path joins input and
    output), whose correlation coefficients are 0/0. A singular Σ_J is *not* undefined:
    the regulariser k keeps the score finite, as in the reference.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        >>> isinstance(jacob_cov(model, torch.randn(3, 4), torch.zeros(3, dtype=torch.long)), float)
        True
    """
    validate_batch(inputs, targets)
    if k <= 0:
        raise ValueError(f"k must be positive (it regularises log(λ + k)), got {k}")
    with training_mode(model, train_mode):
        jacobians = input_jacobians(model, inputs, output_selector=output_selector)
    return jacobian_covariance_score(jacobians.detach().double().cpu().numpy(), k)
