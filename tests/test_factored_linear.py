"""Factored nn.Linear derivatives (theory.factored_linear) against explicit Jacobians, and
the solvers' factored route against their generic route (every parameter differentiated
directly)."""
import pytest
import torch
from torch import nn

import theory
import theory.solvers
from theory.factored_linear import find_factored_linears, grad_sq_norm, gram, materialise

DT = torch.float64


def _explicit_rows(B, a, weight, bias):
    """Per-sample Jacobian rows of one Linear layer, built entry by entry from
    out_t = W a_t + b: ∂f_j/∂W_pq = Σ_t B[j, t, p] a[t, q], ∂f_j/∂b_p = Σ_t B[j, t, p]."""
    c, k, T, o = B.shape
    i = a.shape[-1]
    rows = torch.zeros(c, k, (o * i if weight else 0) + (o if bias else 0), dtype=B.dtype)
    for s in range(c):
        for j in range(k):
            col = 0
            if weight:
                for p in range(o):
                    for q in range(i):
                        rows[s, j, col] = sum(B[s, j, t, p] * a[s, t, q] for t in range(T))
                        col += 1
            if bias:
                for p in range(o):
                    rows[s, j, col] = sum(B[s, j, t, p] for t in range(T))
                    col += 1
    return rows


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("weight, bias", [(True, True), (True, False), (False, True)])
def test_gram_and_gradient_norm_match_explicit_jacobian_rows(T, weight, bias):
    g = torch.Generator().manual_seed(10 * T + weight + 2 * bias)
    c, k, o, i = 2, 3, 4, 5
    B = torch.randn(c, k, T, o, generator=g, dtype=DT)
    a = torch.randn(c, T, i, generator=g, dtype=DT)
    rows = _explicit_rows(B, a, weight, bias)
    torch.testing.assert_close(gram(B, a, weight, bias), rows @ rows.mT, rtol=1e-12, atol=1e-12)
    # A scalar loss is the k = 1 case: δ = B[:, 0].
    delta = B[:, 0]
    expected = rows[:, 0].square().sum(1)
    torch.testing.assert_close(grad_sq_norm(delta, a, weight, bias), expected, rtol=1e-12, atol=1e-12)
    if weight:
        torch.testing.assert_close(
            materialise(delta, a).flatten(1), rows[:, 0, : o * i], rtol=1e-12, atol=1e-12
        )


class _SequenceNet(nn.Module):
    """Linear on each of 3 positions (T = 3), then a Linear on the flattened sequence."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 5)
        self.head = nn.Linear(15, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.embed(x)).flatten(1))


def _pair(model, X, Y, loss, solver, **opts):
    fac = theory.sample_wise_optima(model, X, Y, loss, solver, **opts)
    gen = theory.sample_wise_optima(model, X, Y, loss, solver, factored_linear=False, **opts)
    return fac, gen


@pytest.mark.parametrize(
    "loss, solver, opts",
    [
        ("mse", "gauss_newton", {}),
        ("mse", "gd", {"lr": 0.1, "tol": 1e-9}),
        ("ce", "proximal", {"lam": 0.5, "lr": 0.2}),
        ("ce", "eps_stop", {"eps": 0.05, "lr": 0.2}),
    ],
)
def test_factored_route_equals_generic_route(loss, solver, opts):
    torch.manual_seed(1)
    model = _SequenceNet().to(DT)
    X = torch.randn(6, 3, 4, dtype=DT)
    Y = torch.randn(6, 3, dtype=DT) if loss == "mse" else torch.tensor([0, 1, 2, 0, 1, 2])
    fac, gen = _pair(model, X, Y, loss, solver, **opts)
    assert fac.options["factored_linear"] == ["embed", "head"]
    assert gen.options["factored_linear"] == []
    assert fac.converged.all() and gen.converged.all()
    assert torch.equal(fac.iterations, gen.iterations)
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-10)
    torch.testing.assert_close(fac.loss, gen.loss, rtol=1e-8, atol=1e-18)
    torch.testing.assert_close(fac.grad_norm, gen.grad_norm, rtol=1e-6, atol=1e-14)
    for module in model.modules():
        assert not module._forward_hooks


class _VectorInput(nn.Module):
    """The first Linear sees one sample as a bare vector (no batch dimension)."""

    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.fc(x[0]))).unsqueeze(0)


@pytest.mark.parametrize("solver", ["gauss_newton", "gd"])
def test_linear_on_a_bare_vector(solver):
    torch.manual_seed(4)
    model = _VectorInput().to(DT)
    X, Y = torch.randn(4, 3, dtype=DT), torch.randn(4, 2, dtype=DT)
    opts = {"lr": 0.1, "tol": 1e-9} if solver == "gd" else {}
    fac, gen = _pair(model, X, Y, "mse", solver, **opts)
    assert fac.options["factored_linear"] == ["fc", "head"]
    assert fac.converged.all() and torch.equal(fac.iterations, gen.iterations)
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-10)


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.free = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 2)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.free(torch.tanh(self.b(torch.tanh(self.a(x)))))


class _CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.square, self.free = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.free(torch.tanh(self.square(torch.tanh(self.square(x)))))


class _WeightReadElsewhere(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.free = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.free(torch.tanh(self.fc(x)) + x @ self.fc.weight.T)


def _hooked_sequential():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    model[0].register_forward_hook(lambda module, args, output: 2 * output)
    return model


class _ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize(
    "make, factored",
    [
        (_Tied, ["b", "free"]),  # b keeps its own bias; the tied weight is generic
        (_CalledTwice, ["free"]),
        (_WeightReadElsewhere, ["free"]),
        (lambda: nn.Sequential(_ScaledLinear(3, 3), nn.Tanh(), nn.Linear(3, 2)), ["2"]),
        (_hooked_sequential, ["2"]),
    ],
)
def test_layers_that_are_not_plain_single_use_linears_go_the_generic_way(make, factored):
    torch.manual_seed(2)
    model = make().to(DT)
    X, Y = torch.randn(5, 3, dtype=DT), torch.randn(5, 2, dtype=DT)
    fac, gen = _pair(model, X, Y, "mse", "gd", lr=0.05, tol=1e-9)
    assert fac.options["factored_linear"] == factored
    assert fac.converged.all() and torch.equal(fac.iterations, gen.iterations)
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-10)


def test_fixed_bias_is_not_factored_and_weights_only_still_reach_zero_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)
    params = {n: p.detach() for n, p in model.named_parameters()}
    moving = {n: params[n] for n in ("0.weight", "2.weight")}
    layers = find_factored_linears(
        model, moving, lambda: torch.func.functional_call(model, params, (torch.randn(1, 4, dtype=DT),))
    )
    assert {name: (l.weight, l.bias) for name, l in layers.layers.items()} == {
        "0": ("0.weight", None), "2": ("2.weight", None)
    }
    X, Y = torch.randn(5, 4, dtype=DT), torch.randn(5, 2, dtype=DT)
    fac, gen = _pair(model, X, Y, "mse", "gauss_newton", params="weights")
    assert fac.converged.all() and fac.loss.max() < 1e-16
    torch.testing.assert_close(fac.theta, gen.theta, rtol=0, atol=1e-10)


def test_hooks_are_removed_when_the_solver_fails(monkeypatch):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(theory.solvers, "_run_pool", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        theory.sample_wise_optima(model, torch.randn(3, 3, dtype=DT), torch.randn(3, 2, dtype=DT))
    for module in model.modules():
        assert not module._forward_hooks
