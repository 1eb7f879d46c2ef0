"""ZiCo (Li et al., ICLR 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation
on Gradients")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from proxies.baselines._common import training_mode, undefined
from proxies.engine import iter_per_sample_grads, validate_batch
from proxies.registry import register


class _RunningMoments:
    """Per-coordinate mean, M2 (Chan et al.'s pairwise merge), mean |g|, min and max, in float64."""

    def __init__(self):
        self.count = 0

    def update(self, g: Tensor) -> None:
        g = g.double()
        c = g.shape[0]
        chunk_mean = g.mean(dim=0)
        chunk_m2 = (g - chunk_mean).pow(2).sum(dim=0)
        if self.count == 0:
            self.mean, self.m2 = chunk_mean, chunk_m2
            self.abs_sum = g.abs().sum(dim=0)
            self.low, self.high = g.min(dim=0).values, g.max(dim=0).values
        else:
            total = self.count + c
            delta = chunk_mean - self.mean
            self.mean = self.mean + delta * (c / total)
            self.m2 = self.m2 + chunk_m2 + delta.pow(2) * (self.count * c / total)
            self.abs_sum = self.abs_sum + g.abs().sum(dim=0)
            self.low = torch.minimum(self.low, g.min(dim=0).values)
            self.high = torch.maximum(self.high, g.max(dim=0).values)
        self.count += c

    def inverse_variation_sum(self) -> float:
        """Σ_θ mean|g_θ| / std(g_θ) over the coordinates whose gradient varies across samples."""
        varies = self.high > self.low  # exact test: std > 0 iff not all samples are equal
        std = (self.m2[varies] / self.count).sqrt()
        return float((self.abs_sum[varies] / self.count / std).sum())


@register("zico")
def zico(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    train_mode: bool = True,
    chunk_size: int | None = None,
    output_selector=None,
) -> float:
    """zico = Σ_l log( Σ_{θ ∈ W_l} E_n|g_{nθ}| / std_n(g_{nθ}) ),  g_n = ∂l(f(x_n), y_n)/∂θ.

    l runs over the Conv/Linear weight tensors W_l (the authors' code); E_n and std_n
    (population std, numpy's default) over the n per-sample gradients of the engine
    (`proxies.engine`, each sample run alone; the paper uses mini-batch gradients, and
    one-sample batches are its finest case). As in the authors' code, coordinates with
    std = 0 are left out of the inner sum and a layer whose inner sum is 0 contributes
    nothing. Statistics stream over chunks in float64. BatchNorm in training mode when
    `train_mode` (per-sample statistics, as for GradSign); the model is left as it was.
    Higher = better.

    Undefined, NaN with a logged reason: fewer than 2 samples, or no layer with a
    gradient that varies across samples (an empty outer sum).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        >>> isinstance(zico(model, torch.randn(8, 4), torch.randint(0, 3, (8,))), float)
        True
    """
    validate_batch(inputs, targets)
    if inputs.shape[0] < 2:
        return undefined("zico", "the standard deviation over samples needs at least 2 samples")
    moments: dict[str, _RunningMoments] = {}
    with training_mode(model, train_mode):
        for _, grads in iter_per_sample_grads(
            model, inputs, targets, loss_fn,
            params="weights", chunk_size=chunk_size, output_selector=output_selector,
        ):
            for name, g in grads.items():
                moments.setdefault(name, _RunningMoments()).update(g)
    layer_sums = [m.inverse_variation_sum() for m in moments.values()]
    used = [s for s in layer_sums if s != 0]
    if not used:
        return undefined("zico", "no layer's gradient varies across samples")
    return float(sum(math.log(s) for s in used))
