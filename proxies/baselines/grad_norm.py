"""grad_norm (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from proxies.baselines._common import batch_gradient
from proxies.registry import register


@register("grad_norm")
def grad_norm(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    params: str | Sequence[str] = "weights",
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """grad_norm = Σ_l ‖∂L/∂W_l‖₂, L = loss_fn on the whole batch (mean reduction).

    As in the foresight code: one Euclidean norm per Conv/Linear weight tensor W_l
    (params="weights"; "all" or a list of names widen the set, one norm per tensor),
    summed over layers. The batch runs through the network in one pass, with BatchNorm in
    training mode (batch statistics) when `train_mode`; the model's flags and buffers are
    left as they were. Higher = better.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> grad_norm(model, torch.randn(8, 4), torch.randint(0, 3, (8,))) > 0
        True
    """
    theta, g = batch_gradient(
        model, inputs, targets, loss_fn, params=params, output_selector=output_selector,
        train_mode=train_mode,
    )
    return float(sum(v.norm() for v in g.values()))
