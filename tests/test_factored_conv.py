"""Factored nn.Conv2d derivatives (theory.factored_linear) against Jacobian rows built by
autograd one output at a time, and the solvers' factored route on conv nets against
their generic route (every parameter differentiated directly)."""
import pytest
import torch
from torch import nn

import theory
from theory.factored_linear import (
    ConvGeometry,
    conv_patches,
    conv_positions,
    grad_sq_norm,
    gram,
    materialise,
)

DT = torch.float64


def _geometry(conv: nn.Conv2d) -> ConvGeometry:
    return ConvGeometry(conv.kernel_size, conv.dilation, conv.padding, conv.stride, tuple(conv.weight.shape[1:]))


@pytest.mark.parametrize(
    "stride, padding, dilation, bias",
    [(1, 1, 1, True), (2, 0, 1, False), (1, 2, 2, True), ((2, 1), (1, 0), 1, False)],
)
def test_conv_gram_gradient_and_rows_match_autograd_rows(stride, padding, dilation, bias):
    g = torch.Generator().manual_seed(7)
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding, dilation=dilation, bias=bias).to(DT)
    c, k = 2, 4
    x = torch.randn(c, 1, 2, 7, 6, generator=g, dtype=DT)  # (samples, batch of one, C, H, W)
    with torch.no_grad():
        n_out = conv(x[0]).numel()
    head = torch.randn(k, n_out, generator=g, dtype=DT)

    rows, B = [], []
    for s in range(c):
        out = conv(x[s])
        f = head @ torch.tanh(out).reshape(-1)  # k outputs of the conv's output
        params = [conv.weight] + ([conv.bias] if bias else [])
        sample_rows, sample_B = [], []
        for j in range(k):  # one output at a time: row j of J and B_j = ∂f_j/∂out
            *grads, d_out = torch.autograd.grad(f[j], params + [out], retain_graph=True)
            sample_rows.append(torch.cat([t.reshape(-1) for t in grads]))
            sample_B.append(d_out)
        rows.append(torch.stack(sample_rows))
        B.append(torch.stack(sample_B))
    rows, B = torch.stack(rows), torch.stack(B)  # (c, k, m), (c, k, 1, C_out, H', W')

    geometry = _geometry(conv)
    a = conv_patches(x, 1, geometry)
    Bt = conv_positions(B, 2)
    assert a.shape[:2] == (c, Bt.shape[2])  # the same output positions t
    torch.testing.assert_close(gram(Bt, a, True, bias), rows @ rows.mT, rtol=1e-12, atol=1e-12)
    delta = Bt[:, 0]  # a scalar loss is the k = 1 case
    torch.testing.assert_close(grad_sq_norm(delta, a, True, bias), rows[:, 0].square().sum(1),
                               rtol=1e-12, atol=1e-12)
    w = conv.weight.numel()
    formed = materialise(delta, a).unflatten(-1, geometry.weight_shape)
    torch.testing.assert_close(formed.flatten(1), rows[:, 0, :w], rtol=1e-12, atol=1e-12)


def test_conv_patches_refuses_a_tensor_without_channel_and_spatial_dimensions():
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1), (2, 3, 3))
    with pytest.raises(ValueError, match="inputs"):
        conv_patches(torch.zeros(4, 2, 5), 1, geometry)
    with pytest.raises(ValueError, match="geometry"):
        conv_patches(torch.zeros(4, 1, 3, 5, 5), 1, geometry)


class _ConvNet(nn.Module):
    """Conv - BN - ReLU - strided conv - BN - ReLU - 1x1 conv with bias - Linear: every
    kind of geometry the factored route reads (stride, padding, bias, 1x1)."""

    def __init__(self, second: nn.Module | None = None):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(3)
        self.c2 = second if second is not None else nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(4)
        self.c3 = nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = torch.relu(self.b2(self.c2(h)))
        return self.fc(torch.tanh(self.c3(h)).flatten(1))


def _data(n=5, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g, dtype=DT), torch.randn(n, 3, generator=g, dtype=DT)


def _pair(model, X, Y, loss, solver, **opts):
    fac = theory.sample_wise_optima(model, X, Y, loss, solver, **opts)
    gen = theory.sample_wise_optima(model, X, Y, loss, solver, factored_linear=False, **opts)
    return fac, gen


@pytest.mark.parametrize(
    "loss, solver, params, opts",
    [
        ("mse", "gauss_newton", "weights", {}),
        ("mse", "gauss_newton", "all", {}),
        ("mse", "gd", "weights", {"lr": 0.05, "tol": 1e-8, "max_iter": 3000}),
        # Not run to convergence (slow here): the same 40 steps of each route.
        ("ce", "proximal", "all", {"lam": 0.5, "lr": 0.1, "max_iter": 40}),
        ("ce", "eps_stop", "weights", {"eps": 1e-3, "lr": 0.1, "max_iter": 40}),
    ],
)
def test_conv_factored_route_equals_generic_route(loss, solver, params, opts):
    torch.manual_seed(1)
    model = _ConvNet().to(DT)
    X, Y = _data()
    if loss == "ce":
        Y = torch.tensor([0, 1, 2, 0, 1])
    fac, gen = _pair(model, X, Y, loss, solver, params=params, **opts)
    assert fac.options["factored_linear"] == ["c1", "c2", "c3", "fc"]
    assert gen.options["factored_linear"] == []
    assert torch.equal(fac.converged, gen.converged) and torch.equal(fac.iterations, gen.iterations)
    if opts.get("max_iter", 1000) > 40:
        assert fac.converged.all()
    else:
        assert (fac.iterations == 40).all()  # every sample took the same 40 steps
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-9)
    torch.testing.assert_close(fac.loss, gen.loss, rtol=1e-7, atol=1e-16)
    torch.testing.assert_close(fac.grad_norm, gen.grad_norm, rtol=1e-5, atol=1e-12)
    psi_fac, psi_gen = (theory.psi(fac.theta), theory.psi(gen.theta))
    assert psi_fac > 0 and psi_fac == pytest.approx(psi_gen, rel=1e-9)
    for module in model.modules():
        assert not module._forward_hooks


class _ReusedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(torch.relu(self.conv(x)))[..., ::2, ::2]


class _ScaledConv(nn.Conv2d):
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize(
    "second",
    [
        lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, groups=1, bias=False, padding_mode="reflect"),
        lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3, bias=False),
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding="same", bias=False), nn.AvgPool2d(2, ceil_mode=True)),
        lambda: nn.Sequential(_ReusedConv(), nn.Conv2d(3, 4, 1, bias=False)),
        lambda: _ScaledConv(3, 4, 3, stride=2, padding=1, bias=False),
    ],
    ids=["reflect-padding", "groups", "same-padding", "reused", "overridden-forward"],
)
def test_convs_that_unfold_does_not_describe_go_the_generic_way(second):
    torch.manual_seed(2)
    layer = second()
    if isinstance(layer, nn.Conv2d) and layer.out_channels == 6:
        layer = nn.Sequential(layer, nn.Conv2d(6, 4, 1, bias=False))
    model = _ConvNet(layer).to(DT)
    X, Y = _data(4)
    fac, gen = _pair(model, X, Y, "mse", "gauss_newton", params="weights")
    factored = fac.options["factored_linear"]
    assert {"c1", "c3", "fc"} <= set(factored)
    names = {name for name, _ in model.named_modules()}
    odd = {"c2", "c2.0", "c2.0.conv"} & names
    assert not odd & set(factored)
    assert fac.converged.all() and torch.equal(fac.iterations, gen.iterations)
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-9)


def test_factored_linear_must_be_a_bool():
    model = _ConvNet().to(DT)
    X, Y = _data(2)
    with pytest.raises(ValueError, match="factored_linear"):
        theory.sample_wise_optima(model, X, Y, factored_linear="no")


def test_gauss_newton_with_few_generic_parameters_takes_one_jacobian_pass(monkeypatch):
    """BatchNorm affine parameters beside factored convolutions: no separate gradient
    pass (the check reads J_iᵀr_i from the Jacobian pass, generic rows included); without
    factored layers the gradient pass stays. The results agree (the parametrised test
    above compares the routes entry by entry)."""
    from theory.passes import SamplePasses

    calls = {"gradient": 0, "jacobian_with_gradient": 0}
    gradient, jacobian = SamplePasses.gradient, SamplePasses.residual_jacobian

    def counted_gradient(self, *args, **kwargs):
        calls["gradient"] += 1
        return gradient(self, *args, **kwargs)

    def counted_jacobian(self, *args, with_gradient=False, **kwargs):
        calls["jacobian_with_gradient"] += with_gradient
        out = jacobian(self, *args, with_gradient=with_gradient, **kwargs)
        if with_gradient:  # the norm from the Jacobian equals the gradient pass's
            check = gradient(self, *args, keep=None, **kwargs)
            torch.testing.assert_close(out["grad_norm"], check["grad_norm"], rtol=1e-9, atol=1e-14)
        return out

    monkeypatch.setattr(SamplePasses, "gradient", counted_gradient)
    monkeypatch.setattr(SamplePasses, "residual_jacobian", counted_jacobian)
    torch.manual_seed(1)
    model = _ConvNet().to(DT)
    X, Y = _data()
    theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="all")
    assert calls == {"gradient": 0, "jacobian_with_gradient": calls["jacobian_with_gradient"]}
    assert calls["jacobian_with_gradient"] > 0
    calls.update(gradient=0, jacobian_with_gradient=0)
    theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="all", factored_linear=False)
    assert calls["gradient"] > 0 and calls["jacobian_with_gradient"] == 0
