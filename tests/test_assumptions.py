"""Assumption estimators (docs/theory.md §4) against independent routes to the same numbers."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from theory.assumptions import segment_points, segments
from theory.hessian import top_eigenvalue
from theory.optima import SampleWiseOptima
from theory.registry import get_assumption
from reference_loops import linear_optima
from theory.solvers import sample_wise_optima


def tanh_mlp(d=3, h=4, c=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, c)).double()


def matvec_of(A):
    return lambda V, rows: torch.einsum("bij,bj->bi", A[rows], V)


@pytest.mark.parametrize(
    "spectrum",
    [[4.0, 1.0, 0.5, -0.2], [-5.0, 1.0, 2.0, 0.3], [3.0, -3.0, 1.0, 0.0], [-1.0, -2.0, -3.0, -0.5]],
    ids=["positive-dominant", "negative-dominant", "plus-minus-tie", "negative-definite"],
)
def test_top_eigenvalue_matches_eigvalsh(spectrum):
    gen = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    A = (Q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ Q.T)[None]
    out = top_eigenvalue(matvec_of(A), (1, 4), dtype=torch.float64, tol=1e-12, max_iter=5000)
    exact = torch.linalg.eigvalsh(A[0])
    assert out["converged"].all()
    assert out["lambda_max"][0] == pytest.approx(float(exact.max()), rel=1e-6)
    assert out["spectral_radius"][0] == pytest.approx(float(exact.abs().max()), rel=1e-6)


def test_top_eigenvalue_batched_rows_are_independent():
    gen = torch.Generator().manual_seed(2)
    B = torch.randn(5, 6, 6, generator=gen, dtype=torch.float64)
    A = B + B.transpose(1, 2)
    out = top_eigenvalue(matvec_of(A), (5, 6), dtype=torch.float64, tol=1e-12, max_iter=20000)
    exact = torch.linalg.eigvalsh(A).amax(dim=1)
    torch.testing.assert_close(out["lambda_max"], exact, rtol=1e-6, atol=0)


def test_beta_hess_matches_exact_hessian_eigenvalue_on_tanh_mlp():
    model = tanh_mlp()
    X = torch.randn(6, 3, dtype=torch.float64)
    Y = torch.randn(6, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    a1 = get_assumption("A1")
    const = a1.estimate(model, X, Y, opt, "mse", points_per_segment=2, seed=3, tol=1e-10, max_iter=3000)

    # Independent route: the full Hessian of each l_i at the same segment points, eigvalsh.
    seg = segments(opt, X, Y)
    points, _ = segment_points(seg, 2, 3)
    names, shapes = opt.param_names, opt.param_shapes
    sizes = [torch.Size(s).numel() for s in shapes]

    def loss_at(theta, x, y):
        p = {k: v.reshape(s) for k, v, s in zip(names, torch.split(theta, sizes), shapes)}
        return 0.5 * (functional_call(model, p, (x[None],)) - y[None]).pow(2).sum()

    for i in range(X.shape[0]):
        exact = max(float(torch.linalg.eigvalsh(hessian(loss_at)(pt, X[i], Y[i])).max()) for pt in points[i])
        assert float(const["beta"][i]) == pytest.approx(exact, rel=1e-3)
    assert const["beta_max"] == pytest.approx(float(const["beta"].max()))


def test_beta_of_linear_model_is_squared_input_norm_and_beta_eff_by_hand():
    torch.manual_seed(0)
    model = nn.Linear(4, 2, bias=False).double()
    X = torch.randn(5, 4, dtype=torch.float64)
    Y = torch.randn(5, 2, dtype=torch.float64)
    opt = linear_optima(model, X, Y)
    check = get_assumption("A1").check(get_assumption("A1").estimate(model, X, Y, opt, "mse", tol=1e-12))
    # Hessian of ½‖W x − y‖² in vec(W) is I ⊗ x xᵀ: every point has λ_max = ‖x‖².
    torch.testing.assert_close(check.constants["beta"], X.pow(2).sum(1), rtol=1e-8, atol=0)
    # Hand computation: l*_i = 0, l_i(W̄) = ½‖W̄x_i − y_i‖², ‖W̄ − W*_i‖²_F.
    W = opt.theta.reshape(5, 2, 4)
    Wbar = W.mean(0)
    for i in range(5):
        expected = 2 * (0.5 * (Wbar @ X[i] - Y[i]).pow(2).sum()) / (Wbar - W[i]).pow(2).sum()
        assert float(check.constants["beta_eff"][i]) == pytest.approx(float(expected), rel=1e-12)
        # Stationary optima: the first-order form is the same number.
        assert float(check.constants["beta_eff_first_order"][i]) == pytest.approx(float(expected), rel=1e-10)
    assert check.holds and check.constants["consistent_fraction"] == 1.0


def test_a1_check_reports_violations():
    check = get_assumption("A1").check({
        "beta": torch.tensor([1.0, 1.0, 2.0]), "beta_eff_first_order": torch.tensor([0.5, 3.0, float("nan")]),
        "eig_converged_fraction": 1.0,
    })
    assert not check.holds
    assert check.constants["consistent"].tolist() == [True, False, True]
    assert check.constants["consistent_fraction"] == pytest.approx(2 / 3)
    assert "2/3" in check.detail


def test_stationarity_of_closed_form_and_of_proximal_optima():
    model = tanh_mlp(seed=1)
    X = torch.randn(4, 3, dtype=torch.float64)
    Y = torch.randn(4, 2, dtype=torch.float64)
    a2 = get_assumption("A2")
    lin = nn.Linear(3, 2, bias=False).double()
    lin_check = a2.check(a2.estimate(lin, X, Y, linear_optima(lin, X, Y), "mse", tol=1e-10))
    assert lin_check.holds and float(lin_check.constants["grad_norm"].max()) < 1e-12

    lam = 0.5
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="proximal", lam=lam, tol=1e-11, max_iter=20000)
    const = a2.estimate(model, X, Y, opt, "mse", tol=1e-9)
    # Second route: the solver's own record of the proximal residual and of ‖∇l_i‖.
    torch.testing.assert_close(const["residual"], opt.extra["prox_grad_norm"], rtol=0, atol=1e-10)
    torch.testing.assert_close(const["grad_norm"], opt.grad_norm, rtol=1e-6, atol=1e-12)
    assert a2.check(const).holds
    # ∇l_i(θ*_i) = −λ(θ*_i − θ_0) and Σ_i (θ̄* − θ*_i) = 0 give first_order = λ Ψ_2 / 2.
    from theory.psi import psi
    assert const["first_order"] == pytest.approx(lam * psi(opt) / 2, rel=1e-6)
    # Measured ‖∇l_i‖ is far from 0 here, so plain stationarity would fail: the check uses the residual.
    assert float(const["grad_norm"].min()) > 1e-3


def test_lipschitz_constant_matches_literal_loop_and_psi1_chain():
    model = tanh_mlp(seed=2)
    X = torch.randn(5, 3, dtype=torch.float64)
    Y = torch.randn(5, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    const = get_assumption("lipschitz").estimate(model, X, Y, opt, "mse", points_per_segment=3, seed=7)

    seg = segments(opt, X, Y)
    points, _ = segment_points(seg, 3, 7)
    names = opt.param_names
    for i in range(5):
        g_max = 0.0
        for pt in points[i]:
            params = {k: v.clone().requires_grad_(True) for k, v in opt.unflatten(pt).items()}
            out = functional_call(model, params, (X[i : i + 1],))
            (0.5 * (out - Y[i : i + 1]).pow(2).sum()).backward()
            g_max = max(g_max, max(float(params[k].grad.abs().max()) for k in names))
        assert float(const["G_inf"][i]) == pytest.approx(g_max, rel=1e-12)

    # ‖θ̄* − θ*_i‖₁ ≤ (1/n) Σ_j ‖θ*_j − θ*_i‖₁ for every i, and the mean is ≤ Ψ_1.
    from theory.psi import psi
    pair = torch.cdist(opt.theta, opt.theta, p=1)
    assert (const["d1"] <= pair.mean(dim=1) + 1e-12).all()
    assert float(const["d1"].mean()) <= psi(opt, norm=1) + 1e-12
    check = get_assumption("lipschitz").check(const)
    assert check.holds
    # The Lipschitz inequality at θ̄* itself, from the measured losses.
    gap = const["loss_at_center"] - opt.loss
    assert (gap <= const["G_inf"] * const["d1"] + 1e-12).all()


def test_segment_points_are_seeded_and_include_endpoints():
    model = nn.Linear(3, 1, bias=False).double()
    X, Y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    seg = segments(linear_optima(model, X, Y), X, Y)
    p1, t1 = segment_points(seg, 3, 11)
    p2, t2 = segment_points(seg, 3, 11)
    _, t3 = segment_points(seg, 3, 12)
    assert torch.equal(p1, p2) and not torch.equal(t1, t3)
    torch.testing.assert_close(p1[:, 0], seg.theta)
    torch.testing.assert_close(p1[:, 1], seg.center.expand(4, 3))


def test_unconverged_samples_raise_or_are_excluded(caplog):
    model = nn.Linear(3, 1, bias=False).double()
    X, Y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    opt = linear_optima(model, X, Y)
    bad = SampleWiseOptima(**{**opt.__dict__, "converged": torch.tensor([True, False, True, True])})
    with pytest.raises(ValueError, match="on_unconverged"):
        get_assumption("A1").estimate(model, X, Y, bad, "mse")
    assert bad.kept("exclude").tolist() == [True, False, True, True]
    assert "excluding 1 of 4" in caplog.text
    const = get_assumption("A1").estimate(model, X, Y, bad, "mse", on_unconverged="exclude")
    assert const["beta"].shape == (3,)
    with pytest.raises(ValueError, match="rows"):
        get_assumption("A1").estimate(model, X[:3], Y[:3], opt, "mse")


def test_beta_eff_first_order_on_proximal_quadratic_is_exact_curvature():
    # f(x) = w x, l = ½(w x − y)²: l(w̄) − l* − l'(w*)(w̄ − w*) = ½ x² (w̄ − w*)² exactly, so the
    # first-order β_eff is x²; the plain β_eff differs because l'(w*) = −λ(w* − w0) ≠ 0.
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(0.3)
    X = torch.tensor([[1.0], [2.0], [-1.5]], dtype=torch.float64)
    Y = torch.tensor([[1.0], [-0.5], [2.0]], dtype=torch.float64)
    lam, w0 = 0.7, 0.3
    x, y = X[:, 0], Y[:, 0]
    w = w0 - x * (x * w0 - y) / (x**2 + lam)  # argmin ½(wx − y)² + (λ/2)(w − w0)²
    opt = SampleWiseOptima(
        theta=w[:, None], loss=0.5 * (w * x - y) ** 2, grad_norm=(x * (w * x - y)).abs(),
        iterations=torch.zeros(3, dtype=torch.long), converged=torch.ones(3, dtype=torch.bool),
        theta0=torch.tensor([w0], dtype=torch.float64), param_names=("weight",), param_shapes=((1, 1),),
        solver="proximal", options={"lam": lam}, loss_name="mse",
    )
    const = get_assumption("A1").estimate(model, X, Y, opt, "mse", tol=1e-12)
    torch.testing.assert_close(const["beta_eff_first_order"], x**2, rtol=1e-10, atol=0)
    wbar = w.mean()
    plain = 2 * (0.5 * (wbar * x - y) ** 2 - 0.5 * (w * x - y) ** 2) / (wbar - w) ** 2
    torch.testing.assert_close(const["beta_eff"], plain, rtol=1e-12, atol=0)
    assert not torch.allclose(const["beta_eff"], x**2)
    a2 = get_assumption("A2").estimate(model, X, Y, opt, "mse", tol=1e-10)
    assert float(a2["residual"].max()) < 1e-12 and a2["lam"] == lam


def test_batchnorm_train_mode_cross_entropy_beta_matches_exact_hessian_and_model_untouched():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)).double()
    X, Y = torch.randn(3, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 2, 1])
    names = tuple(k for k, _ in model.named_parameters())
    shapes = tuple(tuple(p.shape) for _, p in model.named_parameters())
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    theta = theta0[None] + 0.1 * torch.randn(3, theta0.numel(), dtype=torch.float64)
    opt = SampleWiseOptima(
        theta=theta, loss=torch.zeros(3, dtype=torch.float64), grad_norm=torch.zeros(3, dtype=torch.float64),
        iterations=torch.zeros(3, dtype=torch.long), converged=torch.ones(3, dtype=torch.bool), theta0=theta0,
        param_names=names, param_shapes=shapes, solver="proximal", options={"lam": 1.0}, loss_name="ce",
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    const = get_assumption("A1").estimate(model, X, Y, opt, "ce", points_per_segment=1, tol=1e-10, max_iter=5000)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    buffers = dict(model.named_buffers())
    sizes = [torch.Size(s).numel() for s in shapes]

    def loss_at(t, x, y):
        p = {k: v.reshape(s) for k, v, s in zip(names, torch.split(t, sizes), shapes)}
        out = functional_call(model, (p, {k: b.clone() for k, b in buffers.items()}), (x[None],))
        return torch.nn.functional.cross_entropy(out, y[None])

    # Reference Hessian by autograd's double-backward loop: torch.func.hessian (jacfwd over
    # jacrev) returned a Hessian that disagrees with finite differences of the gradient for
    # BatchNorm in training mode here, while this route and our jvp-of-grad agree with them.
    points, _ = segment_points(segments(opt, X, Y), 1, 0)
    for i in range(3):
        exact = max(
            float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(lambda t: loss_at(t, X[i], Y[i]), pt)).max())
            for pt in points[i]
        )
        assert float(const["beta"][i]) == pytest.approx(exact, rel=1e-3)
