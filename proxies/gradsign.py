"""GradSign (Zhang & Jia, ICLR 2022, Algorithm 1) and its squared sibling.

With g_{i,k} = sign([∇_θ l(f_θ(x_i), y_i)]_k at θ_0) and s_k = Σ_i g_{i,k}:

    GradSign    = Σ_k |s_k|        (paper, Algorithm 1)
    gradsign_sq = Σ_k s_k²         (theory.md §5: the form Proposition 3 suggests)

Reference semantics (theory.md §5): k runs over the weights of Conv2d and Linear layers
only; each sample's forward pass runs alone with BatchNorm in training mode; sign(0) = 0.
The counts s_k are accumulated as exact integers.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from proxies.engine import iter_per_sample_grads, training_mode
from proxies.registry import register


def sign_counts(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    params: str | Sequence[str] = "weights",
    chunk_size: int | None = None,
    output_selector=None,
    train_mode: bool = True,
) -> dict[str, Tensor]:
    """s_k = Σ_i sign(∂_k l_i(θ_0)) per parameter tensor, as int64 tensors."""
    counts: dict[str, Tensor] = {}
    with training_mode(model, train_mode):
        for _, grads in iter_per_sample_grads(
            model, inputs, targets, loss_fn,
            params=params, chunk_size=chunk_size, output_selector=output_selector,
        ):
            for name, g in grads.items():
                # Summing ±1/0 in float is exact while the chunk has < 2**24 samples
                # (float32's integer range), and 3x faster than summing integer signs.
                if g.shape[0] >= 2**24 or g.dtype not in (torch.float32, torch.float64):
                    g = g.double()
                chunk_counts = torch.sign(g).sum(dim=0).to(torch.int64)
                counts[name] = counts[name] + chunk_counts if name in counts else chunk_counts
    return counts


def _reduce(values: list[Tensor], reduction: str) -> float:
    total = sum(int(v.sum()) for v in values)
    if reduction == "sum":
        return float(total)
    if reduction == "mean":
        return total / sum(v.numel() for v in values)
    raise ValueError(f'reduction must be "sum" or "mean", got {reduction!r}')


@register("gradsign")
def gradsign(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    params: str | Sequence[str] = "weights",
    reduction: str = "sum",
    chunk_size: int | None = None,
    output_selector=None,
    train_mode: bool = True,
) -> float:
    """GradSign = Σ_k |Σ_i sign(∂_k l_i(θ_0))| (paper, Algorithm 1).

    params: "weights" (Conv/Linear weights, the reference set), "all", or names.
    reduction: "sum" (the paper) or "mean" (the sum divided by the number of
    coordinates k, a value in [0, n]).
    train_mode: run with BatchNorm in training mode, as the reference does; the model's
    own train/eval flags are restored afterwards.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> 0 <= gradsign(model, x, y) <= 8 * 12
        True
    """
    counts = sign_counts(
        model, inputs, targets, loss_fn, params=params, chunk_size=chunk_size,
        output_selector=output_selector, train_mode=train_mode,
    )
    return _reduce([c.abs() for c in counts.values()], reduction)


@register("gradsign_sq")
def gradsign_sq(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    reduction: str = "sum",
    **options,
) -> float:
    """gradsign_sq = Σ_k (Σ_i sign(∂_k l_i(θ_0)))²: theory.md §5, Proposition 3.

    Since 2 p_k q_k = (n² − s_k²)/2 counts the ordered pairs of samples whose optima lie on
    opposite sides of θ_0 along k, a larger Σ_k s_k² means fewer split pairs. Options as
    for `gradsign` (`params`, `chunk_size`, `output_selector`, `train_mode`).
    """
    counts = sign_counts(model, inputs, targets, loss_fn, **options)
    return _reduce([c * c for c in counts.values()], reduction)
