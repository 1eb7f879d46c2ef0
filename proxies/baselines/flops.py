"""FLOPs (multiply-accumulates) of one forward pass, the compute baseline of the
zero-cost-proxy literature (Abdelfattah et al., ICLR 2021; NAS-Bench-201's "flops")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from proxies.baselines._common import forward_hooks, private_buffers, training_mode
from proxies.engine import functional_view, validate_batch
from proxies.registry import register

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_ADAPTIVE_POOL = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
COUNTED = _CONV + (nn.Linear,) + _POOL + _ADAPTIVE_POOL + (_BatchNorm,)


def module_macs(module: nn.Module, x: Tensor, y: Tensor) -> int:
    """Multiply-accumulates of one call, input `x` and output `y` for ONE sample.

    Conv:   |y| · (C_in/groups · Πkernel)   [+ |y| with a bias]
    Linear: |y| · in_features               [+ |y| with a bias]
    Pool:   |y| · Πkernel (padding counted as if present, like NAS-Bench-201's counter)
    Adaptive pool: |x| (every input element accumulated once)
    BatchNorm: |y| (one fused multiply-add per element, its inference form)
    """
    if isinstance(module, _CONV + (nn.Linear,)):
        per_output = module.weight[0].numel()  # C_in/groups · Πkernel, or in_features
        return y.numel() * per_output + (y.numel() if module.bias is not None else 0)
    if isinstance(module, _POOL):
        spatial = x.ndim - 1  # one sample: (C, *spatial)
        kernel = module.kernel_size
        kernel = (kernel,) * spatial if isinstance(kernel, int) else tuple(kernel)
        return y.numel() * math.prod(kernel)
    if isinstance(module, _ADAPTIVE_POOL):
        return x.numel()
    return y.numel()  # BatchNorm


@register("flops")
def flops(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn=F.cross_entropy) -> float:
    """flops = Σ over module calls of `module_macs`, one forward pass of ONE sample.

    Counted by forward hooks (removed afterwards) on Conv, Linear, pooling and BatchNorm
    modules during a `functional_call` on `inputs[:1]` in eval mode (flags restored after);
    activations, additions of branches, and functional ops are not counted. Reported as
    multiply-accumulates (NAS-Bench-201 reports the same convention in millions).
    `targets` and `loss_fn` are unused. Higher = better.

    Example:
        >>> import torch
        >>> flops(torch.nn.Linear(4, 3), torch.randn(2, 4), torch.zeros(2, dtype=torch.long))  # 12 + 3 bias
        15.0
    """
    validate_batch(inputs, targets)
    total = [0]

    def count(i, module):
        def hook(mod, args, output):
            total[0] += module_macs(mod, args[0][0], output[0])
        return hook

    modules = [m for m in model.modules() if isinstance(m, COUNTED)]
    params, buffers = functional_view(model)
    with torch.no_grad(), training_mode(model, False), forward_hooks(modules, count):
        functional_call(model, (params, private_buffers(buffers)), (inputs[:1],))
    return float(total[0])
