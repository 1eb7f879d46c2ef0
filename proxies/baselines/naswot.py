"""NASWOT (Mellor et al., ICML 2021, "Neural Architecture Search without Training")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from proxies.baselines._common import forward_hooks, private_buffers, training_mode, undefined
from proxies.engine import functional_view, validate_batch
from proxies.registry import register


def relu_code_kernel(model: nn.Module, inputs: Tensor) -> tuple[Tensor, int]:
    """`(K_H, number of ReLU calls)`: K_H[i, j] = N_A − d_H(c_i, c_j), in float64.

    c_i is sample i's binary code, 1 where the input of a ReLU is > 0, over every unit of
    every `nn.ReLU` module call in one forward pass of the batch; N_A is the code length.
    K_H = C Cᵀ + (1 − C)(1 − C)ᵀ counts the units where two codes agree, accumulated one
    ReLU call at a time. Forward hooks capture the codes and are removed afterwards.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    n = inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)
    calls = [0]

    def capture(i, module):
        def hook(mod, args, output):
            codes = (args[0].detach().reshape(n, -1) > 0).double()
            kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)
            calls[0] += 1
        return hook

    params, buffers = functional_view(model)
    with torch.no_grad(), forward_hooks(relus, capture):
        functional_call(model, (params, private_buffers(buffers)), (inputs,))
    return kernel, calls[0]


@register("naswot")
def naswot(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    train_mode: bool = True,
) -> float:
    """naswot = log |K_H|,  K_H[i, j] = N_A − d_H(c_i, c_j)  (Mellor et al., 2021).

    c_i is the binary activation code of sample i over all ReLU units (see
    `relu_code_kernel`): the authors' code hooks every ReLU module and reads the sign of
    its input. The log-determinant comes from `slogdet` in float64. Higher = better
    (more distinguishable activation patterns). BatchNorm in training mode when
    `train_mode`, as in the authors' scoring; `targets` and `loss_fn` are unused. Only
    `nn.ReLU` modules are seen: a ReLU applied with `F.relu` inside a forward is not.

    Undefined, NaN with a logged reason: a network with no `nn.ReLU` module called in the
    forward pass; a singular K_H (two samples with identical codes, e.g. when no signal
    reaches the ReLUs), where log|K_H| = log 0.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
        >>> naswot(model, torch.randn(5, 4), torch.zeros(5, dtype=torch.long)) > 0
        True
    """
    validate_batch(inputs, targets)
    with training_mode(model, train_mode):
        kernel, calls = relu_code_kernel(model, inputs)
    if calls == 0:
        return undefined("naswot", "the network calls no nn.ReLU module, so there are no codes")
    code_length = kernel[0, 0]
    # Identical codes make identical rows; K is integer-valued, so the test is exact.
    agree = kernel == code_length
    if int(agree.sum()) > kernel.shape[0]:
        return undefined(
            "naswot",
            "two samples share an activation code (e.g. no signal reaches the ReLUs), so "
            "K_H is singular and log|K_H| = log 0",
        )
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0:
        return undefined(
            "naswot",
            "the code kernel K_H is singular, so log|K_H| = log 0",
        )
    return float(logdet)
