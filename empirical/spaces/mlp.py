"""Small model families for the bound-validation experiments: MLPs and a small CNN.

``build`` gives fully connected nets ``x -> W_{L+1} s(W_L ... s(W_1 x + b_1) ... + b_L) + b_{L+1}``
with ``L = depth`` hidden layers of ``width`` units (``depth=0`` is the linear model
``W x + b``, the setting of docs/theory.md §2). ``small_cnn`` is a conv net sized for
the 8x8 ``digits`` images.

Both take their initial weights from PyTorch's default initialisation, drawn from the
global RNG: seed it (``torch.manual_seed``) before building for reproducible weights.
``init_scale`` then multiplies every weight (``W = init_scale * W_default``; biases and
BatchNorm parameters keep their default), the same draws scaled.
Inputs to ``build`` must be flat ``(batch, in_features)`` tensors; use
``empirical.data.load(name, flat=True)`` for images.
"""

from __future__ import annotations

import torch
from torch import nn

from proxies.checks import check_choice, check_int, check_number

__all__ = ["ACTIVATIONS", "build", "small_cnn"]

ACTIVATIONS = ("relu", "tanh", "gelu", "linear")


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "gelu":
        return nn.GELU()
    # "linear": an explicit identity keeps module indices equal across activations.
    return nn.Identity()


def _scale_weights(model: nn.Module, init_scale: float) -> None:
    """Multiply the weight of every Linear and Conv2d layer by ``init_scale`` in place."""
    if init_scale == 1.0:
        return
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(init_scale)


def build(
    in_features: int,
    width: int,
    depth: int,
    num_classes: int,
    activation: str = "relu",
    init_scale: float = 1.0,
    bias: bool = True,
) -> nn.Sequential:
    """Fully connected net with ``depth`` hidden layers of ``width`` units.

    Layout: ``Linear(in, width), act, [Linear(width, width), act] * (depth - 1),
    Linear(width, num_classes)``; ``depth=0`` gives ``Linear(in, num_classes)``.
    Parameter count: ``sum_l (n_{l-1} + bias) * n_l`` with ``n_0 = in_features``,
    ``n_1..n_L = width``, ``n_{L+1} = num_classes``.

    ``init_scale`` multiplies every weight matrix after PyTorch's default initialisation
    (``W = init_scale * W_default``); biases keep their default initialisation.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = build(64, 32, 2, 10)
    >>> sum(p.numel() for p in net.parameters())   # 65*32 + 33*32 + 33*10
    3466
    """
    check_int("in_features", in_features, minimum=1)
    check_int("width", width, minimum=1)
    check_int("depth", depth, minimum=0)
    check_int("num_classes", num_classes, minimum=1)
    check_choice("activation", activation, ACTIVATIONS)
    check_number("init_scale", init_scale)
    sizes = [in_features] + [width] * depth + [num_classes]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=bias))
        if i < depth:
            layers.append(_activation(activation))
    model = nn.Sequential(*layers)
    _scale_weights(model, init_scale)
    return model


def small_cnn(
    in_channels: int,
    num_classes: int,
    width: int = 16,
    depth: int = 2,
    batchnorm: bool = True,
    init_scale: float = 1.0,
) -> nn.Sequential:
    """Small CNN for 8x8 images: ``depth`` conv blocks, global average pool, linear head.

    Block: ``Conv2d(c_in, width, 3, padding=1, bias=not batchnorm) [- BatchNorm2d] - ReLU``
    (a conv bias is redundant before BatchNorm's shift). The spatial size stays 8x8 until
    ``AdaptiveAvgPool2d(1)``; the head is ``Linear(width, num_classes)``.
    Parameter count: ``(9 in_channels + [no BN]) width + (depth-1)(9 width + [no BN]) width
    + [BN] 2 width depth + (width + 1) num_classes``.

    ``init_scale`` multiplies the conv and linear weights after the default
    initialisation (conv biases, BatchNorm and the head's bias keep theirs).

    >>> _ = torch.manual_seed(0)
    >>> net = small_cnn(1, 10, width=8, depth=2, batchnorm=False)
    >>> sum(p.numel() for p in net.parameters())   # (9 + 1) 8 + (72 + 1) 8 + (8 + 1) 10
    754
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    check_int("in_channels", in_channels, minimum=1)
    check_int("num_classes", num_classes, minimum=1)
    check_int("width", width, minimum=1)
    check_int("depth", depth, minimum=1)
    check_number("init_scale", init_scale)
    layers: list[nn.Module] = []
    c_in = in_channels
    for _ in range(depth):
        layers.append(nn.Conv2d(c_in, width, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU())
        c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(start_dim=1), nn.Linear(width, num_classes)]
    model = nn.Sequential(*layers)
    _scale_weights(model, init_scale)
    return model
