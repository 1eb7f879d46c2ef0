"""Sign–side agreement: how often A3 holds (docs/theory.md §4, A3 and "Checking the assumptions").

    a = P_{i,k} [ sign(θ_{0,k} − θ*_{i,k}) = sign(∂_k l_i(θ_0)) ]

over the (sample, coordinate) pairs that move, |θ*_{i,k} − θ_{0,k}| > tol. A3 is what
turns GradSign's per-sample gradient signs into the sides of the sample-wise optima
(§5, Proposition 3); ``a`` measures how far that holds. sign(0) = 0, so a zero gradient
on a moving coordinate counts as a disagreement.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from proxies.engine import per_sample_grads, select_param_names
from theory.losses import resolve_loss
from theory.optima import SampleWiseOptima, kept_samples


def sign_side_agreement(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    params: str | Sequence[str] | None = None,
    tol: float = 0.0,
    on_unconverged: str = "raise",
    chunk_size: int | None = None,
    output_selector=None,
) -> dict:
    """Rate, counts and a per-parameter-tensor breakdown of sign–side agreement.

    Per-sample gradients ∂_k l_i(θ_0) come from `proxies.engine.per_sample_grads` at
    ``optima.theta0`` (each sample's forward pass run alone; parameters outside the optima
    keep the model's values). `params` restricts the coordinates: None (all of
    ``optima.param_names``), ``"weights"``, ``"all"``, or a list of names, each of which
    must be covered by the optima.

    Returns ``{"rate", "agree", "moved", "total", "per_param": {name: {...same keys}}}``
    with ``rate = agree / moved`` (NaN when nothing moves), ``total`` = kept samples ×
    coordinates.

    Example (a one-output linear model: Gauss–Newton's step from θ_0 is
    −r_i x_i / ‖x_i‖², along −∇l_i(θ_0) = −r_i x_i, so every moving coordinate agrees):
        >>> import theory
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Linear(3, 1, bias=False).double()
        >>> X, Y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
        >>> opt = theory.sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
        >>> result = sign_side_agreement(model, X, Y, opt, loss="mse")
        >>> result["rate"], result["moved"]
        (1.0, 15)
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if inputs.shape[0] != optima.n or targets.shape[0] != optima.n:
        raise ValueError(
            f"inputs/targets have {inputs.shape[0]}/{targets.shape[0]} rows but optima has "
            f"{optima.n} samples: pass the data the optima were computed on"
        )
    names = list(optima.param_names) if params is None else select_param_names(model, params)
    missing = [name for name in names if name not in optima.param_names]
    if missing:
        raise ValueError(
            f"params {missing} are not covered by the optima (computed over {list(optima.param_names)}); "
            "pass params=None or a subset of optima.param_names"
        )
    kept = kept_samples(optima, on_unconverged)
    theta0 = optima.unflatten(optima.theta0)
    grads = per_sample_grads(
        model,
        inputs[kept],
        targets[kept],
        loss_fn=resolve_loss(loss).fn,
        params=names,
        chunk_size=chunk_size,
        output_selector=output_selector,
        at=theta0,
    )
    star = optima.unflatten(optima.theta[kept])

    per_param, agree, moved, total = {}, 0, 0, 0
    for name in names:
        step = theta0[name][None] - star[name]
        moving = step.abs() > tol
        same = (torch.sign(step) == torch.sign(grads[name])) & moving
        a, mv, tot = int(same.sum()), int(moving.sum()), moving.numel()
        per_param[name] = {"rate": a / mv if mv else float("nan"), "agree": a, "moved": mv, "total": tot}
        agree, moved, total = agree + a, moved + mv, total + tot
    return {
        "rate": agree / moved if moved else float("nan"),
        "agree": agree,
        "moved": moved,
        "total": total,
        "per_param": per_param,
        "tol": tol,
    }
