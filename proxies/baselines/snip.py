"""SNIP as a zero-cost proxy (Lee et al., ICLR 2019; Abdelfattah et al., ICLR 2021,
"Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from proxies.baselines._common import batch_gradient
from proxies.registry import register


@register("snip")
def snip(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    params: str | Sequence[str] = "weights",
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """snip = Σ_θ |θ ⊙ ∂L/∂θ|, L = loss_fn on the whole batch (mean reduction).

    SNIP's connection sensitivity is |∂L/∂c| for a multiplicative mask c = 1 on each
    weight, which equals |θ ∂L/∂θ|. Summed over every entry of the Conv/Linear weights
    (params="weights", the foresight selection). BatchNorm in training mode when
    `train_mode`; the model is left as it was. Higher = better.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> snip(model, torch.randn(8, 4), torch.randint(0, 3, (8,))) > 0
        True
    """
    theta, g = batch_gradient(
        model, inputs, targets, loss_fn, params=params, output_selector=output_selector,
        train_mode=train_mode,
    )
    return float(sum((theta[n] * g[n]).abs().sum() for n in theta))
