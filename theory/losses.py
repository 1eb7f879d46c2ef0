"""Per-sample losses of the sample-wise solvers (docs/theory.md §1–§2).

Each loss takes the output of one sample's forward pass, shape ``(1, ...)``, and that
sample's target, shape ``(1, ...)``, and returns a scalar.

- ``"mse"``: ``l_i = ½‖f(x_i) − y_i‖²`` (sum over outputs, factor ½): the residual loss
  of the Gauss–Newton row in the table of §2. Targets are floats of the output's shape; a
  1-D target for a 1-output model is accepted and reshaped.
- ``"ce"``: cross-entropy with integer class targets.
- a callable ``loss(output (1, ...), target (1, ...)) -> scalar``, named by ``__name__``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


def half_squared_error(output: Tensor, target: Tensor) -> Tensor:
    """½‖output − target‖² summed over every entry (one sample: ½‖r_i‖²)."""
    return 0.5 * (output - target.reshape(output.shape)).square().sum()


def residual(output: Tensor, target: Tensor) -> Tensor:
    """r_i = f(x_i) − y_i, flattened: the residual whose ½‖·‖² is the "mse" loss."""
    return (output - target.reshape(output.shape)).reshape(-1)


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of one sample's logits (1, C) against its class index (1,)."""
    return F.cross_entropy(output, target)


@dataclass(frozen=True)
class ResolvedLoss:
    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    is_squared: bool  # the Gauss–Newton solver needs the residual form


def resolve_loss(loss: str | Callable) -> ResolvedLoss:
    """Map the ``loss`` argument of `sample_wise_optima` to a per-sample loss function."""
    if loss == "mse":
        return ResolvedLoss("mse", half_squared_error, True)
    if loss == "ce":
        return ResolvedLoss("ce", cross_entropy, False)
    if callable(loss):
        return ResolvedLoss(getattr(loss, "__name__", type(loss).__name__), loss, False)
    raise ValueError(
        f'loss must be "mse", "ce" or a callable loss(output, target) -> scalar, got {loss!r}'
    )


def check_targets(loss: ResolvedLoss, output: Tensor, targets: Tensor) -> Tensor:
    """Validate targets against one sample's output shape (1, ...); return them reshaped.

    For "mse", a (n,) target for a model with one output becomes (n, 1).
    """
    n = targets.shape[0]
    if loss.name == "mse":
        if not targets.is_floating_point():
            raise ValueError(
                'targets: loss="mse" needs float targets of the output\'s shape; '
                'for class indices use loss="ce" or one-hot encode them (F.one_hot(y).double())'
            )
        per_sample = output.shape[1:]
        if targets.ndim == 1 and per_sample.numel() == 1:
            return targets.reshape(n, *per_sample)
        if targets.shape[1:] != per_sample:
            raise ValueError(
                f"targets: shape {tuple(targets.shape)} does not match the model output "
                f"({n}, {', '.join(map(str, per_sample))}) for loss=\"mse\""
            )
        return targets
    if loss.name == "ce":
        if targets.is_floating_point() or targets.ndim != 1:
            raise ValueError(
                f'targets: loss="ce" needs integer class indices of shape (n,), got '
                f"{targets.dtype} of shape {tuple(targets.shape)}"
            )
        classes = output.shape[-1]
        if int(targets.min()) < 0 or int(targets.max()) >= classes:
            raise ValueError(
                f"targets: class indices must lie in 0..{classes - 1} for a model with "
                f"{classes} outputs, got range {int(targets.min())}..{int(targets.max())}"
            )
    return targets
