"""MLP and small-CNN model families."""

import pytest
import torch
from torch import nn

from empirical.spaces import mlp


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "in_features, width, depth, num_classes, bias, expected",
    [
        (64, 32, 0, 10, True, 64 * 10 + 10),
        (64, 32, 1, 10, True, 64 * 32 + 32 + 32 * 10 + 10),
        (64, 32, 3, 10, True, (64 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 10 + 10)),
        (4, 7, 2, 3, False, 4 * 7 + 7 * 7 + 7 * 3),
    ],
)
def test_parameter_counts_and_shapes(in_features, width, depth, num_classes, bias, expected):
    net = mlp.build(in_features, width, depth, num_classes, bias=bias)
    assert n_params(net) == expected
    assert sum(isinstance(m, nn.Linear) for m in net) == depth + 1
    assert net(torch.randn(5, in_features)).shape == (5, num_classes)


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("gelu", nn.GELU)])
def test_activation_modules(activation, cls):
    net = mlp.build(3, 4, 2, 2, activation=activation)
    assert [type(m) for m in net] == [nn.Linear, cls, nn.Linear, cls, nn.Linear]


def test_linear_activation_is_a_product_of_matrices():
    torch.manual_seed(0)
    net = mlp.build(5, 6, 2, 3, activation="linear", bias=False)
    w = [m.weight for m in net if isinstance(m, nn.Linear)]
    x = torch.randn(4, 5)
    torch.testing.assert_close(net(x), x @ (w[2] @ w[1] @ w[0]).T)


def test_init_scale_multiplies_weights_not_biases():
    torch.manual_seed(7)
    base = mlp.build(8, 16, 2, 3)
    torch.manual_seed(7)
    scaled = mlp.build(8, 16, 2, 3, init_scale=0.25)
    for (name, p), (_, q) in zip(base.named_parameters(), scaled.named_parameters()):
        if name.endswith("weight"):
            torch.testing.assert_close(q, 0.25 * p)
        else:
            assert torch.equal(q, p)


def test_same_seed_same_weights_different_seed_different():
    torch.manual_seed(1)
    a = mlp.build(8, 16, 1, 3)
    torch.manual_seed(1)
    b = mlp.build(8, 16, 1, 3)
    torch.manual_seed(2)
    c = mlp.build(8, 16, 1, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_features=0, width=4, depth=1, num_classes=2), "in_features"),
        (dict(in_features=3, width=4, depth=-1, num_classes=2), "depth"),
        (dict(in_features=3, width=4, depth=1, num_classes=2, activation="sigmoid"), "activation must be one of"),
        (dict(in_features=3, width=4, depth=1, num_classes=2, init_scale="big"), "init_scale"),
    ],
)
def test_build_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp.build(**kwargs)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_small_cnn_counts_and_shape(batchnorm):
    net = mlp.small_cnn(1, 10, width=8, depth=3, batchnorm=batchnorm)
    if batchnorm:  # convs without bias, BN weight+bias per channel
        expected = 1 * 8 * 9 + 2 * (8 * 8 * 9) + 3 * 2 * 8 + 8 * 10 + 10
    else:
        expected = (1 * 8 * 9 + 8) + 2 * (8 * 8 * 9 + 8) + 8 * 10 + 10
    assert n_params(net) == expected
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    with pytest.raises(ValueError, match="depth"):
        mlp.small_cnn(1, 10, width=8, depth=0)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_small_cnn_init_scale_multiplies_the_same_draws(batchnorm):
    torch.manual_seed(5)
    base = mlp.small_cnn(1, 10, width=4, depth=2, batchnorm=batchnorm)
    torch.manual_seed(5)
    scaled = mlp.small_cnn(1, 10, width=4, depth=2, batchnorm=batchnorm, init_scale=1.5)
    modules = dict(base.named_modules())
    scaled_names = []
    for (name, p), (_, q) in zip(base.named_parameters(), scaled.named_parameters()):
        owner, kind = name.rsplit(".", 1)
        if kind == "weight" and isinstance(modules[owner], (nn.Conv2d, nn.Linear)):
            assert torch.equal(q, 1.5 * p)
            scaled_names.append(name)
        else:  # conv and head biases, BatchNorm's affine parameters
            assert torch.equal(q, p)
    assert len(scaled_names) == 3
    with pytest.raises(ValueError, match="init_scale must be a finite number"):
        mlp.small_cnn(1, 10, init_scale=float("nan"))
