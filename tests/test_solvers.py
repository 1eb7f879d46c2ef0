"""Sample-wise solvers against closed forms, plain per-sample loops and autograd."""
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import theory
from empirical.validation import schema
from theory.symbolic import linear_closed_form_optima, linear_closed_form_psi

DT = torch.float64


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _linear_problem(seed, n, d, c):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=DT)
    Y = torch.randn(n, c, generator=g, dtype=DT)
    return X, Y


@pytest.mark.parametrize("factored", [True, False], ids=["factored", "generic"])
@pytest.mark.parametrize("c, bias", [(1, False), (3, False), (3, True)])
def test_linear_least_squares_reaches_closed_form(c, bias, factored):
    X, Y = _linear_problem(c, n=25, d=6, c=c)
    torch.manual_seed(1)
    model = nn.Linear(6, c, bias=bias).to(DT)
    W0 = model.weight.detach().clone()
    b0 = model.bias.detach().clone() if bias else None
    targets = Y[:, 0] if c == 1 else Y  # a 1-D target for a 1-output model is accepted
    if bias:
        W_cf, b_cf = linear_closed_form_optima(X, Y, W0, b0)
        expected = torch.cat([W_cf.reshape(25, -1), b_cf], dim=1)
    else:
        expected = linear_closed_form_optima(X, Y, W0).reshape(25, -1)
    # GD on ½(w·x − y)² contracts by |1 − lr‖x‖²| per step: lr below 1/max‖x‖² is stable.
    lr = 0.9 / float((X.square().sum(1) + bias).max())
    for solver, opts in [("gauss_newton", {}), ("gd", {"lr": lr, "tol": 1e-12, "max_iter": 20000})]:
        opt = theory.sample_wise_optima(model, X, targets, "mse", solver, factored_linear=factored, **opts)
        assert opt.options["factored_linear"] == ([""] if factored else [])
        assert opt.converged.all()
        assert _rel(opt.theta, expected) < 1e-6, solver
        assert opt.loss.max() < 1e-12
        assert abs(theory.psi(opt) / linear_closed_form_psi(X, Y, W0, b0) - 1) < 1e-6
        assert abs(theory.psi(opt, norm=1) / theory.psi(expected, norm=1) - 1) < 1e-6
    assert torch.equal(model.weight, W0)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    X = torch.tensor(data.data[:200] / 16.0, dtype=DT)
    y = torch.tensor(data.target[:200])
    return X, y, F.one_hot(y, 10).to(DT)


def _mlp(act, seed=0, width=64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), act(), nn.Linear(width, 10)).to(DT)


@pytest.fixture(scope="module")
def relu_mlp_optima(digits):
    X, _, Y = digits
    model = _mlp(nn.ReLU)
    gn = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton")
    gd = theory.sample_wise_optima(model, X, Y, "mse", "gd", lr=0.05, tol=1e-7, max_iter=3000)
    return model, gn, gd


def test_mlp_gauss_newton_and_gd_reach_zero_loss(relu_mlp_optima, digits):
    model, gn, gd = relu_mlp_optima
    X, _, Y = digits
    assert gn.converged.all() and gd.converged.all()
    assert gn.loss.max() < 1e-10
    assert gd.loss.max() < 1e-10
    # The recorded losses are the losses at the returned points (independent forward).
    for opt in (gn, gd):
        for i in (0, 57, 199):
            p = opt.unflatten(opt.theta[i])
            h = torch.relu(X[i] @ p["0.weight"].T + p["0.bias"])
            out = h @ p["2.weight"].T + p["2.bias"]
            assert abs(float(0.5 * (out - Y[i]).square().sum()) - float(opt.loss[i])) < 1e-12
    # The same zero-loss manifold, reached at nearby but not identical points.
    assert theory.psi(gn) > 0 and theory.psi(gd) > 0
    assert gn.options == {
        "eps": 1e-10, "max_iter": 50, "tol": 1e-10, "chunk_size": 200, "params": "all", "factored_linear": ["0", "2"],
    }


def test_unconverged_samples_are_flagged_and_psi_refuses_or_excludes(relu_mlp_optima, digits, caplog):
    model, _, gd_full = relu_mlp_optima
    X, _, Y = digits
    cut = int(gd_full.iterations.median())
    opt = theory.sample_wise_optima(model, X, Y, "mse", "gd", lr=0.05, tol=1e-7, max_iter=cut)
    expected_converged = gd_full.iterations <= cut
    assert torch.equal(opt.converged, expected_converged)
    assert 0 < int(opt.converged.sum()) < 200
    assert (opt.iterations[~opt.converged] == cut).all()
    assert torch.equal(opt.iterations[opt.converged], gd_full.iterations[opt.converged])
    assert (opt.grad_norm[~opt.converged] > 1e-7).all()
    with pytest.raises(ValueError, match="did not converge"):
        theory.psi(opt)
    with caplog.at_level(logging.WARNING, logger="theory.psi"):
        value = theory.psi(opt, on_unconverged="exclude")
    assert f"excluding {int((~opt.converged).sum())} of 200" in caplog.text
    assert value == theory.psi(opt.theta[opt.converged])


def test_chunking_does_not_change_results(digits):
    X, _, Y = digits
    model = _mlp(nn.Tanh)
    a = theory.sample_wise_optima(model, X[:30], Y[:30], "mse", "gauss_newton")
    b = theory.sample_wise_optima(model, X[:30], Y[:30], "mse", "gauss_newton", chunk_size=7)
    assert torch.allclose(a.theta, b.theta, rtol=0, atol=1e-12)
    assert torch.equal(a.iterations, b.iterations)


@pytest.mark.parametrize("loss, solver, opts", [
    ("mse", "gauss_newton", {}),
    ("mse", "gd", {"lr": 0.05, "tol": 1e-6, "max_iter": 60}),         # every sample cut at max_iter
    ("ce", "proximal", {"lam": 4.0, "lr": 0.2, "tol": 1e-5, "max_iter": 600}),
    ("ce", "eps_stop", {"eps": 0.02, "lr": 0.02, "max_iter": 110}),   # some cut at max_iter
])
def test_working_set_refill_equals_one_sample_at_a_time(digits, loss, solver, opts):
    """Samples stopping at different steps, the working set refilled from the waiting
    samples (chunk 4 and 9 of 23) against each sample solved alone (chunk 1)."""
    X, y, Y = digits
    model = _mlp(nn.Tanh)
    targets = (Y if loss == "mse" else y)[:23]
    alone = theory.sample_wise_optima(model, X[:23], targets, loss, solver, chunk_size=1, **opts)
    assert len(set(alone.iterations.tolist())) >= (1 if solver == "gd" else 2), "samples must stop at different steps"
    for chunk in (4, 9):
        pooled = theory.sample_wise_optima(model, X[:23], targets, loss, solver, chunk_size=chunk, **opts)
        assert torch.equal(pooled.iterations, alone.iterations)
        assert torch.equal(pooled.converged, alone.converged)
        assert torch.allclose(pooled.theta, alone.theta, rtol=0, atol=1e-12)
        assert torch.allclose(pooled.loss, alone.loss, rtol=1e-10, atol=1e-14)
        for key in alone.extra:
            assert torch.allclose(pooled.extra[key].double(), alone.extra[key].double(), rtol=1e-10, atol=1e-14,
                                  equal_nan=True)


def _tanh_mlp_loss(p, x, y):
    """Independent forward of Linear-Tanh-Linear from explicit tensors, one sample."""
    out = torch.tanh(x @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]
    return F.cross_entropy(out.unsqueeze(0), y.reshape(1))


def test_proximal_cross_entropy_is_stationary(digits):
    X, y, _ = digits
    model = _mlp(nn.Tanh)
    lam = 1.0
    opt = theory.sample_wise_optima(model, X[:12], y[:12], "ce", "proximal", lam=lam, lr=0.1, tol=1e-9)
    assert opt.converged.all()
    for i in range(12):
        theta = opt.theta[i].clone().requires_grad_(True)
        loss = _tanh_mlp_loss(opt.unflatten(theta), X[i], y[i])
        (g,) = torch.autograd.grad(loss, theta)
        assert float((g + lam * (opt.theta[i] - opt.theta0)).norm()) < 1e-8
        assert abs(float(g.norm()) - float(opt.grad_norm[i])) < 1e-10
        assert abs(float(loss.detach()) - float(opt.loss[i])) < 1e-12
    # The optimum moved away from θ_0 and lowered the loss.
    assert (opt.theta - opt.theta0).norm(dim=1).min() > 1e-3


def test_eps_stop_matches_a_plain_per_sample_loop(digits):
    X, y, _ = digits
    model = _mlp(nn.Tanh)
    eps, lr = 0.05, 0.1
    opt = theory.sample_wise_optima(model, X[:8], y[:8], "ce", "eps_stop", eps=eps, lr=lr)
    assert opt.converged.all()
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    for i in range(8):
        theta, steps, previous = theta0.clone(), 0, None
        while True:
            theta.requires_grad_(True)
            loss = _tanh_mlp_loss(opt.unflatten(theta), X[i], y[i])
            if float(loss.detach()) <= eps:
                break
            (g,) = torch.autograd.grad(loss, theta)
            previous = float(loss.detach())
            theta = (theta - lr * g).detach()
            steps += 1
        assert steps == int(opt.iterations[i]) and steps > 0
        assert torch.allclose(theta.detach(), opt.theta[i], rtol=0, atol=1e-12)
        assert float(opt.loss[i]) <= eps < previous


def test_batchnorm_model_is_not_mutated_and_samples_are_independent():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)).to(DT)
    model.train()
    X = torch.randn(6, 1, 8, 8, dtype=DT)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = theory.sample_wise_optima(model, X, y, "ce", "eps_stop", eps=0.2, lr=0.05, max_iter=200)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training
    alone = theory.sample_wise_optima(model, X[4:5], y[4:5], "ce", "eps_stop", eps=0.2, lr=0.05, max_iter=200)
    assert torch.allclose(alone.theta[0], opt.theta[4], rtol=0, atol=1e-12)
    assert int(alone.iterations[0]) == int(opt.iterations[4])


def test_eval_mode_batchnorm1d_uses_running_stats_and_leaves_them():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).to(DT)
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, Y = torch.randn(4, 5, dtype=DT), torch.randn(4, 2, dtype=DT)
    opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert opt.converged.all()
    # The loss at θ*_i through the module itself (eval mode: running statistics) is zero.
    for i in range(4):
        out = torch.func.functional_call(model, opt.unflatten(opt.theta[i]), (X[i:i + 1],))
        assert float(0.5 * (out - Y[i]).square().sum()) < 1e-18


def test_params_subset_moves_only_selected():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)
    X, Y = torch.randn(5, 4, dtype=DT), torch.randn(5, 2, dtype=DT)
    opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="weights")
    assert opt.param_names == ("0.weight", "2.weight")
    assert opt.theta.shape == (5, 12 + 6)
    assert opt.converged.all() and opt.loss.max() < 1e-16


def test_bad_arguments_raise_clear_errors():
    model = nn.Linear(3, 2).to(DT)
    X, y = torch.randn(4, 3, dtype=DT), torch.tensor([0, 1, 1, 0])
    with pytest.raises(ValueError, match="gauss_newton"):
        theory.sample_wise_optima(model, X, y, "ce", "gauss_newton")
    with pytest.raises(ValueError, match="solver must be one of"):
        theory.sample_wise_optima(model, X, y, "ce", "newton")
    with pytest.raises(ValueError, match="no option"):
        theory.sample_wise_optima(model, X, y, "ce", "gd", step=0.1)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        theory.sample_wise_optima(model, X, y, "ce", "gd", lr=0.0)
    with pytest.raises(ValueError, match="float targets"):
        theory.sample_wise_optima(model, X, y, "mse", "gd")
    with pytest.raises(ValueError, match="inputs are torch.float32"):
        theory.sample_wise_optima(model, X.float(), y, "ce", "gd")
    with pytest.raises(ValueError, match="class indices"):
        theory.sample_wise_optima(model, X, y + 5, "ce", "gd")


def test_callable_loss_and_divergence_flag():
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False).to(DT)
    X, Y = 10 * torch.randn(4, 3, dtype=DT), torch.randn(4, 1, dtype=DT)

    def half_sq(out, target):
        return 0.5 * (out - target).square().sum()

    opt = theory.sample_wise_optima(model, X, Y, half_sq, "gd", lr=1.0, max_iter=2000)
    assert opt.loss_name == "half_sq"
    assert opt.extra["diverged"].all() and not opt.converged.any()
    np.testing.assert_array_less(opt.iterations.numpy(), 2000)


@pytest.mark.parametrize("solver", ["gauss_newton", "gd"])
def test_a_non_finite_sample_is_flagged_and_does_not_disturb_the_others(solver):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 8), nn.Softplus(), nn.Linear(8, 2)).to(DT)
    X, Y = torch.randn(6, 4, dtype=DT), torch.randn(6, 2, dtype=DT)
    X[2] = 1e300  # the residual overflows: l_2 = inf at θ_0
    opts = {"lr": 0.1, "tol": 1e-9} if solver == "gd" else {}
    opt = theory.sample_wise_optima(model, X, Y, "mse", solver, **opts)
    assert opt.extra["diverged"].tolist() == [False, False, True, False, False, False]
    assert int(opt.iterations[2]) == 0 and not opt.converged[2]
    keep = torch.tensor([0, 1, 3, 4, 5])
    clean = theory.sample_wise_optima(model, X[keep], Y[keep], "mse", solver, **opts)
    assert opt.converged[keep].all()
    assert torch.equal(opt.iterations[keep], clean.iterations)
    torch.testing.assert_close(opt.theta[keep], clean.theta, rtol=0, atol=1e-12)


def test_each_solver_is_a_small_object_with_its_option_table():
    assert theory.SOLVERS.names() == ["gauss_newton", "gd", "proximal", "eps_stop"]
    needs = {name: theory.SOLVERS.get(name).needs for name in theory.SOLVERS.names()}
    assert needs == {"gauss_newton": "residual_jacobian", "gd": "gradient", "proximal": "dense_gradient",
                     "eps_stop": "gradient"}
    gn = theory.SOLVERS.get("gauss_newton")
    assert gn.resolve_options({}, torch.float64) == {"eps": 1e-10, "max_iter": 50, "tol": 1e-10}
    assert gn.resolve_options({}, torch.float32) == {"eps": 1e-10, "max_iter": 50, "tol": 1e-5}
    assert theory.SOLVERS.get("proximal").resolve_options({"lam": 2}, DT) == {
        "lam": 2.0, "lr": 0.1, "max_iter": 10000, "tol": 1e-8}
    assert theory.SOLVERS.get("eps_stop").resolve_options({"max_iter": np.int64(7)}, DT)["max_iter"] == 7
    for value, words in [(-1, "max_iter must be a non-negative integer"), (2.5, "max_iter must be")]:
        with pytest.raises(ValueError, match=words):
            gn.resolve_options({"max_iter": value}, DT)
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        gn.resolve_options({"tol": -1e-3}, DT)
    with pytest.raises(ValueError, match="lam must be a positive number"):
        theory.SOLVERS.get("proximal").resolve_options({"lam": 0}, DT)
    with pytest.raises(ValueError, match=r"no option\(s\) \['lr'\]"):
        gn.resolve_options({"lr": 0.1}, DT)
    with pytest.raises(ValueError, match="needs must be one of"):
        theory.Solver("bad", "", (), "hessian", gn.stop, gn.update)


def test_the_validation_config_reads_the_solver_option_tables():
    tables = theory.solver_options()
    assert schema.SOLVERS == tuple(tables)
    assert schema.SOLVER_OPTIONS == {name: tuple(o.name for o in table) for name, table in tables.items()}
    fields = schema.SCHEMA.fields["theory"].fields["solver_options"].fields
    assert list(fields) == ["eps", "max_iter", "tol", "lr", "lam"]
    assert fields["max_iter"].type is int and fields["max_iter"].ge == 0
    assert fields["lr"].gt == 0 and fields["lam"].gt == 0 and fields["tol"].ge == 0
    assert all(field.default is None for field in fields.values())  # the defaults live in theory


def test_an_unknown_solver_or_loss_names_the_argument():
    model = nn.Linear(3, 2).to(DT)
    X, Y = torch.randn(4, 3, dtype=DT), torch.randn(4, 2, dtype=DT)
    with pytest.raises(ValueError, match="solver must be one of 'gauss_newton', 'gd', 'proximal', 'eps_stop'"):
        theory.sample_wise_optima(model, X, Y, "mse", "lbfgs")
    with pytest.raises(ValueError, match="loss must be"):
        theory.sample_wise_optima(model, X, Y, "huber", "gd")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        theory.sample_wise_optima(model, X, Y, "mse", "gd", chunk_size=0)
