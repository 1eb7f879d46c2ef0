"""Sign–side agreement (docs/theory.md §4, A3) against a literal loop and the one-GD-step case."""
import math

import pytest
import torch
from torch import nn

from theory.agreement import sign_side_agreement
from theory.optima import SampleWiseOptima
from theory.solvers import sample_wise_optima


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def literal_grads(model, X, Y):
    """∇l_i(θ_0) by one backward pass per sample on the module itself (nothing is mutated)."""
    rows = []
    for i in range(X.shape[0]):
        loss = 0.5 * (model(X[i : i + 1]) - Y[i : i + 1]).pow(2).sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def optima_from(model, theta):
    names = tuple(name for name, _ in model.named_parameters())
    shapes = tuple(tuple(p.shape) for _, p in model.named_parameters())
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    n = theta.shape[0]
    return SampleWiseOptima(
        theta=theta, loss=torch.zeros(n, dtype=theta.dtype), grad_norm=torch.zeros(n, dtype=theta.dtype),
        iterations=torch.ones(n, dtype=torch.long), converged=torch.ones(n, dtype=torch.bool), theta0=theta0,
        param_names=names, param_shapes=shapes, solver="gd", options={}, loss_name="mse",
    )


def test_agreement_equals_literal_loop_on_gauss_newton_optima():
    model = mlp()
    X, Y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    res = sign_side_agreement(model, X, Y, opt, loss="mse", tol=1e-9)

    grads = literal_grads(model, X, Y)
    agree = moved = 0
    per = {}
    offset = 0
    for name, p in model.named_parameters():
        a = mv = 0
        for i in range(X.shape[0]):
            for k in range(offset, offset + p.numel()):
                step = float(opt.theta0[k] - opt.theta[i, k])
                if abs(step) > 1e-9:
                    mv += 1
                    a += int(math.copysign(1, step) == math.copysign(1, float(grads[i, k])) and grads[i, k] != 0)
        per[name] = (a, mv)
        agree, moved, offset = agree + a, moved + mv, offset + p.numel()
    assert (res["agree"], res["moved"]) == (agree, moved)
    assert res["rate"] == agree / moved
    assert res["total"] == X.shape[0] * offset
    assert {k: (v["agree"], v["moved"]) for k, v in res["per_param"].items()} == per
    assert 0 < res["rate"] < 1  # a nonlinear model: A3 is not automatic


def test_one_gradient_step_optimum_agrees_exactly():
    model = mlp(seed=3)
    X, Y = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 2, dtype=torch.float64)
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    star = theta0[None] - 0.05 * literal_grads(model, X, Y)  # θ*_i = θ_0 − η ∇l_i(θ_0)
    res = sign_side_agreement(model, X, Y, optima_from(model, star), loss="mse")
    assert res["rate"] == 1.0 and res["agree"] == res["moved"] > 0
    assert all(v["rate"] == 1.0 for v in res["per_param"].values())


def test_uphill_step_disagrees_and_zero_gradient_counts_as_disagreement():
    model = mlp(seed=4)
    X, Y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    g = literal_grads(model, X, Y)
    assert sign_side_agreement(model, X, Y, optima_from(model, theta0 + 0.05 * g), loss="mse")["rate"] == 0.0
    # sign(0) = 0: a coordinate that moves although its per-sample gradient is exactly 0.
    extra = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).double()
    with torch.no_grad():
        extra[1].weight.zero_()  # l_i does not depend on extra[0] at θ_0: ∂l_i/∂W_0 = 0
    theta0e = torch.cat([p.detach().reshape(-1) for p in extra.parameters()])
    star = theta0e[None].repeat(4, 1)
    star[:, 0] += 0.1  # moves, but its gradient is 0 -> disagreement
    res = sign_side_agreement(extra, X, Y, optima_from(extra, star), loss="mse")
    assert (res["agree"], res["moved"]) == (0, 4)


def test_params_subset_tol_and_errors():
    model = mlp(seed=5)
    X, Y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    full = sign_side_agreement(model, X, Y, opt, loss="mse")
    weights = sign_side_agreement(model, X, Y, opt, loss="mse", params="weights")
    assert set(weights["per_param"]) == {"0.weight", "2.weight"}
    assert weights["agree"] == sum(full["per_param"][k]["agree"] for k in ("0.weight", "2.weight"))
    big_tol = sign_side_agreement(model, X, Y, opt, loss="mse", tol=1e-2)
    assert big_tol["moved"] < full["moved"]
    only_last = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton", params=["2.weight", "2.bias"])
    with pytest.raises(ValueError, match="not covered"):
        sign_side_agreement(model, X, Y, only_last, loss="mse", params="all")
    with pytest.raises(ValueError, match="tol"):
        sign_side_agreement(model, X, Y, opt, loss="mse", tol=-1.0)
    with pytest.raises(ValueError, match="rows"):
        sign_side_agreement(model, X[:4], Y[:4], opt, loss="mse")


class _Quadratic(nn.Module):
    """f_w(A) = A w for a 2 × 2 input A: with y = 0, l(w) = ½‖A w‖² = ½ wᵀ(AᵀA)w."""

    def __init__(self, w0):
        super().__init__()
        self.w = nn.Parameter(w0.clone())

    def forward(self, a):
        return a @ self.w


@pytest.mark.parametrize("solver, opts", [("gauss_newton", {}), ("gd", {"lr": 0.5, "tol": 1e-12, "max_iter": 5000})])
def test_convexity_does_not_give_a3_the_two_dimensional_quadratic(solver, opts):
    """docs/theory.md §4, A3: H = [[1, .9], [.9, 1]], θ* = 0, θ_0 = (1, −0.5). Every solver
    reaches the unique minimiser θ* = 0, but ∇l(θ_0) = Hθ_0 = (0.55, 0.4): the second
    coordinate's optimum lies uphill of θ_0, so exactly one of two coordinates agrees."""
    H = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    A = torch.linalg.cholesky(H).T  # AᵀA = H
    theta0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    model = _Quadratic(theta0).double()
    X, Y = A[None], torch.zeros(1, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver=solver, **opts)
    assert opt.converged.all()
    torch.testing.assert_close(opt.theta[0], torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(H @ theta0, torch.tensor([0.55, 0.4], dtype=torch.float64))
    res = sign_side_agreement(model, X, Y, opt, loss="mse")
    assert (res["agree"], res["moved"], res["rate"]) == (1, 2, 0.5)
