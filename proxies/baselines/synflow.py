"""SynFlow as a zero-cost proxy (Tanaka et al., NeurIPS 2020; Abdelfattah et al.,
ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value
from torch.nn.modules.batchnorm import _BatchNorm

from proxies.baselines._common import forward_hooks, training_mode, undefined, weight_layers
from proxies.engine import functional_view, select_output, validate_batch
from proxies.registry import register


def _identity_output(i, module):
    def hook(mod, args, output):
        return args[0]
    return hook


@register("synflow")
def synflow(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    output_selector=None,
) -> float:
    """synflow = Σ_θ |θ ⊙ ∂R/∂θ|,  R = 1ᵀ f_{|θ|}(1), in float64.

    R is the sum of the outputs of the network with every parameter replaced by its
    absolute value, fed one all-ones input of the shape of one sample, BatchNorm layers
    acting as the identity and every module in eval mode (foresight's `bn=False` copy of
    the network, `linearize`, and `.double()`). The sum runs over every entry of the
    Conv/Linear weights. Done functionally: the |θ| are given to `functional_call`, the
    BatchNorm layers are bypassed by forward hooks that return their input (removed
    afterwards), and the model's flags are restored. `targets` and `loss_fn` are unused;
    only the shape of `inputs` is. Higher = better.

    NaN with a logged reason if R overflows float64 (very deep or wide networks).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        >>> synflow(model, torch.randn(4, 2), torch.zeros(4))   # |1·1| + |−2·1|
        3.0
    """
    validate_batch(inputs, targets)
    params, buffers = functional_view(model)
    abs_params = {n: p.abs().double() for n, p in params.items()}
    buffers = {n: b.double() if b.is_floating_point() else b.clone() for n, b in buffers.items()}
    weights = [f"{name}.weight" if name else "weight" for name, _ in weight_layers(model)]
    weights = [n for n in weights if n in abs_params]
    if not weights:
        raise ValueError("synflow scores Conv/Linear weights, and this model has none")
    theta = {n: abs_params[n] for n in weights}
    fixed = {n: p for n, p in abs_params.items() if n not in theta}
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)

    def total_output(diff):
        out = functional_call(model, ({**fixed, **diff}, buffers), (ones,))
        return select_output(out, output_selector).sum()

    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with training_mode(model, False), forward_hooks(norms, _identity_output):
        g, r_value = grad_and_value(total_output)(theta)
    if not math.isfinite(float(r_value)):
        return undefined("synflow", f"R = 1ᵀf(1) is {float(r_value)} in float64 (overflow)")
    return float(sum((theta[n] * g[n]).abs().sum() for n in theta))
