"""Parameter count, the size baseline of the zero-cost-proxy literature (Abdelfattah et
al., ICLR 2021; NAS-Bench-201 reports it as "params")."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from proxies.registry import register


@register("params")
def params(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn=F.cross_entropy) -> float:
    """params = Σ numel(θ) over the trainable parameters (requires_grad), shared ones once.

    `inputs`, `targets` and `loss_fn` are unused (the uniform proxy signature).
    Higher = better (larger networks of a search space tend to train to higher accuracy).

    Example:
        >>> import torch
        >>> params(torch.nn.Linear(4, 3), torch.randn(2, 4), torch.zeros(2, dtype=torch.long))
        15.0
    """
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))
