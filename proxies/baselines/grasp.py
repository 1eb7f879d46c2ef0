"""GraSP as a zero-cost proxy (Wang et al., ICLR 2020; Abdelfattah et al., ICLR 2021,
"Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad

from proxies.baselines._common import batch_loss, training_mode
from proxies.registry import register


@register("grasp")
def grasp(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    params: str | Sequence[str] = "weights",
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """grasp = −Σ_θ θ ⊙ (H g), g = ∂L/∂θ, H = ∂²L/∂θ², L = loss_fn on the whole batch.

    θ runs over the Conv/Linear weights (params="weights", the foresight selection); H is
    the Hessian with respect to those weights only, the rest held fixed. H g is the
    gradient of ⟨∂L/∂θ, stop_grad(g)⟩ (reverse over reverse, as the foresight code does).
    Sign: foresight's, −θ ⊙ Hg summed (their code adds the minus because accuracy
    correlated negatively with +θ ⊙ Hg); so higher = better. BatchNorm in training mode when
    `train_mode`; the model is left as it was.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        >>> isinstance(grasp(model, torch.randn(8, 4), torch.randint(0, 3, (8,))), float)
        True
    """
    with training_mode(model, train_mode):
        loss, theta = batch_loss(
            model, inputs, targets, loss_fn, params=params, output_selector=output_selector
        )
        g = {n: v.detach() for n, v in grad(loss)(theta).items()}

        def gradient_dot_g(p):
            gp = grad(loss)(p)
            return sum((gp[n] * g[n]).sum() for n in p)

        hg = grad(gradient_dot_g)(theta)
    return float(-sum((theta[n] * hg[n]).sum() for n in theta)) + 0.0  # no "-0.0"
