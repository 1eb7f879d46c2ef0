import numpy as np
import pytest
import torch
from torch import nn

import proxies
from proxies.gradsign import sign_counts
from reference_loops import algorithm1_literal


def relu_mlp(width=32, depth=3, din=20, dout=10):
    layers, d = [], din
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, dout))


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


def flat_counts(model, x, y, **kw):
    counts = sign_counts(model, x, y, **kw)
    return np.concatenate([c.numpy().ravel() for c in counts.values()])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_exact_integer_equality_with_algorithm1(seed, dtype):
    torch.manual_seed(seed)
    model = relu_mlp().to(dtype)
    x, y = torch.randn(48, 20, dtype=dtype), torch.randint(0, 10, (48,))
    literal = algorithm1_literal(model, x, y)
    fast = flat_counts(model, x, y, chunk_size=16)
    assert fast.dtype == np.int64
    np.testing.assert_array_equal(fast, literal)
    assert proxies.gradsign(model, x, y) == float(np.abs(literal).sum())
    assert proxies.compute("gradsign_sq", model, x, y) == float((literal**2).sum())


def test_conv_bn_sign_disagreement_is_rare():
    model = small_cnn()
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    literal = algorithm1_literal(model, x, y)
    fast = flat_counts(model, x, y)
    differing = int((fast != literal).sum())
    print(f"conv net: {differing} of {literal.size} sign-count coordinates differ")
    assert differing <= 1e-4 * literal.size


def test_options_all_params_and_mean():
    model = small_cnn()
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    counts_all = sign_counts(model, x, y, params="all")
    assert set(counts_all) == {n for n, _ in model.named_parameters()}
    total = sum(int(c.abs().sum()) for c in counts_all.values())
    m = sum(p.numel() for p in model.parameters())
    assert proxies.gradsign(model, x, y, params="all") == total
    assert proxies.gradsign(model, x, y, params="all", reduction="mean") == pytest.approx(total / m)
    with pytest.raises(ValueError, match="reduction"):
        proxies.gradsign(model, x, y, reduction="max")


def test_sign_of_zero_is_zero():
    # A dead ReLU layer: every gradient of the first layer is exactly zero.
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
    x, y = torch.randn(10, 4), torch.randint(0, 2, (10,))
    counts = sign_counts(model, x, y)
    assert int(counts["0.weight"].abs().sum()) == 0


def test_model_state_and_mode_restored():
    model = small_cnn().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    proxies.gradsign(model, torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    assert not any(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_bounds_of_the_score():
    model = relu_mlp()
    n = 12
    x, y = torch.randn(n, 20), torch.randint(0, 10, (n,))
    m = sum(mod.weight.numel() for mod in model if isinstance(mod, nn.Linear))
    assert 0 <= proxies.gradsign(model, x, y) <= n * m
    # One sample: |sign| is 1 wherever the gradient is non-zero.
    one = proxies.gradsign(model, x[:1], y[:1])
    grads = flat_counts(model, x[:1], y[:1])
    assert one == float((grads != 0).sum())


def test_registry():
    assert proxies.names()[:2] == ["gradsign", "gradsign_sq"]
    with pytest.raises(ValueError, match="unknown proxy"):
        proxies.compute("nope", nn.Linear(2, 2), torch.randn(2, 2), torch.tensor([0, 1]))


def test_nb201_sign_disagreement_is_rare():
    from empirical.spaces import nb201

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    model = nb201.build(arch, C=8, N=1, num_classes=10, in_channels=1)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    literal = algorithm1_literal(model, x, y)
    fast = flat_counts(model, x, y)
    differing = int((fast != literal).sum())
    print(f"NB201 C=8 N=1: {differing} of {literal.size} sign-count coordinates differ")
    assert differing <= 1e-4 * literal.size
