"""Bounds of docs/theory.md §4: hand-computed values, the inequalities on real optima, the registry."""
import pytest
import sympy as sp
import torch
from torch import nn

import theory
from theory.assumptions import Assumption, AssumptionCheck
from theory.bounds import Bound, Lbar, evaluate_bounds, psi_2
from theory.registry import bound_names, get_bound, register_assumption, register_bound
from reference_loops import linear_optima
from theory.solvers import sample_wise_optima

ALL = ["theorem1_per_sample", "theorem1_uniform", "theorem2", "lipschitz_per_sample", "lipschitz_psi1"]


def test_bound_values_on_a_hand_computed_case():
    # f(x) = w x, w0 = 0, (x, y) = (1, 1), (2, 1): w*_1 = 1, w*_2 = 1/2, w̄* = 3/4, l*_i = 0.
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    X = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    Y = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    res = evaluate_bounds(ALL, model, X, Y, linear_optima(model, X, Y), "mse")
    # β_i = x_i² = 1, 4; ‖w̄* − w*_i‖² = 1/16 each; Ψ_2 = 1/8; Ψ_1 = 1/4.
    # L_S(3/4) = ½·½·((3/4 − 1)² + (3/2 − 1)²) = 5/64.
    assert res["theorem1_per_sample"]["measured"] == pytest.approx(5 / 64, rel=1e-12)
    assert res["theorem1_per_sample"]["value"] == pytest.approx((1 + 4) / 16 / 4, rel=1e-12)  # 5/64
    assert res["theorem1_uniform"]["value"] == pytest.approx(4 / 4 * (1 / 8), rel=1e-12)
    # Theorem 2 without held-out data: E l*_z ≈ L̄* = 0; (β/4)(n+1)/(n−1) Ψ_2 = 1·3·(1/8).
    assert res["theorem2"]["value"] == pytest.approx(3 / 8, rel=1e-12)
    assert res["theorem2"]["measured"] is None and res["theorem2"]["holds"] is None
    # |l'_1(w)| = |w − 1| ≤ 1/4 on [3/4, 1]; |l'_2(w)| = |2(2w − 1)| ≤ 1 on [1/2, 3/4]; d1 = 1/4 each.
    assert res["lipschitz_per_sample"]["value"] == pytest.approx((1 / 4 * 1 / 4 + 1 * 1 / 4) / 2, rel=1e-12)
    assert res["lipschitz_psi1"]["value"] == pytest.approx(1 * 1 / 4, rel=1e-12)
    for name in ["theorem1_uniform", "lipschitz_per_sample", "lipschitz_psi1"]:
        assert res[name]["holds"]


def test_bound_evaluate_reads_named_constants():
    b = get_bound("theorem1_per_sample")
    beta, d2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    value = b.evaluate({"Lbar": 0.1, "n": 3, "beta": beta, "d2": d2, "psi_2": 0.7, "lam": 0.0})
    assert value == pytest.approx(0.1 + (4 + 10 + 18) / 6)
    value = b.evaluate({"Lbar": 0.1, "n": 3, "beta": beta, "d2": d2, "psi_2": 0.7, "lam": 0.5})
    assert value == pytest.approx(0.1 + 0.5 * 0.7 / 2 + (4 + 10 + 18) / 6)
    assert get_bound("theorem1_uniform").evaluate({"Lbar": 0.1, "beta_max": 2.0, "psi_2": 0.3, "lam": 0.5}) == (
        pytest.approx(0.1 + (2.0 + 1.0) / 4 * 0.3)
    )
    theorem2 = get_bound("theorem2")
    assert theorem2.evaluate({"El_star": 0.2, "beta_max": 2.0, "n": 5, "psi_2": 0.3, "lam": 0.0}) == pytest.approx(
        0.2 + 0.5 * 6 / 4 * 0.3
    )
    assert theorem2.evaluate({"El_star": 0.2, "beta_max": 2.0, "n": 5, "psi_2": 0.3, "lam": 0.4}) == pytest.approx(
        0.2 + 0.5 * 6 / 4 * 0.3 + 0.4 * 5 / 8 * 0.3
    )
    first = get_bound("theorem1_first_order")
    assert first.evaluate({"Lbar": 0.1, "n": 3, "beta": beta, "d2": d2, "first_order": -0.05}) == pytest.approx(
        0.1 - 0.05 + (4 + 10 + 18) / 6
    )
    with pytest.raises(ValueError, match="psi_2"):
        get_bound("theorem1_uniform").evaluate({"Lbar": 0.0, "beta_max": 1.0, "lam": 0.0})


def test_per_sample_form_with_equal_betas_is_the_uniform_form():
    # (1/2n) Σ β ‖θ̄* − θ*_i‖² = (β/4) Ψ_2 because Ψ_2 = (2/n) Σ_i ‖θ̄* − θ*_i‖².
    d2 = torch.tensor([0.3, 1.2, 0.05, 2.0], dtype=torch.float64)
    psi2 = float(2 / 4 * d2.sum())
    per = get_bound("theorem1_per_sample").evaluate(
        {"Lbar": 0.4, "n": 4, "beta": torch.full((4,), 2.5), "d2": d2, "psi_2": psi2, "lam": 0.3}
    )
    uni = get_bound("theorem1_uniform").evaluate({"Lbar": 0.4, "beta_max": 2.5, "psi_2": psi2, "lam": 0.3})
    assert per == pytest.approx(uni, rel=1e-12)


def test_theorem1_holds_for_linear_model_with_closed_form_optima():
    torch.manual_seed(0)
    model = nn.Linear(6, 3, bias=False).double()
    X, Y = torch.randn(20, 6, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    opt = linear_optima(model, X, Y)
    res = evaluate_bounds(ALL, model, X, Y, opt, "mse", assumption_options={"A2": {"tol": 1e-10}})
    for name in ["theorem1_per_sample", "theorem1_uniform"]:
        assert all(c.holds for c in res[name]["assumptions"].values())
        assert res[name]["holds"], res[name]
    assert res["theorem1_per_sample"]["value"] <= res["theorem1_uniform"]["value"]
    assert res["lipschitz_per_sample"]["value"] <= res["lipschitz_psi1"]["value"]
    assert res["theorem1_uniform"]["constants"]["psi_2"] == pytest.approx(theory.psi(opt), rel=1e-12)


def test_theorem1_holds_for_tanh_mlp_with_gauss_newton_optima():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    X, Y = torch.randn(12, 4, dtype=torch.float64), 0.5 * torch.randn(12, 2, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    res = evaluate_bounds(
        ["theorem1_per_sample", "theorem1_uniform", "lipschitz_psi1"], model, X, Y, opt, "mse",
        assumption_options={"A1": {"points_per_segment": 3}, "A2": {"tol": 1e-8}},
    )
    a1 = res["theorem1_uniform"]["assumptions"]["A1"]
    assert a1.holds, a1.detail
    assert res["theorem1_uniform"]["assumptions"]["A2"].holds
    for name in res:
        assert res[name]["holds"], (name, res[name]["value"], res[name]["measured"])
    # The per-sample bound is Lemma 1 averaged; L_S(θ̄*) is recomputed from the model.
    const = res["theorem1_per_sample"]["constants"]
    assert res["theorem1_per_sample"]["measured"] == pytest.approx(float(const["loss_at_center"].mean()), rel=1e-12)


def test_theorem1_with_proximal_optima_and_its_first_order_form():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    lam = 0.5
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="proximal", lam=lam, tol=1e-10, max_iter=20000)
    names = ["theorem1_per_sample", "theorem1_uniform", "theorem1_first_order"]
    res = evaluate_bounds(names, model, X, Y, opt, "mse", assumption_options={"A2": {"tol": 1e-8}})
    assert res["theorem1_uniform"]["assumptions"]["A1"].holds
    assert res["theorem1_uniform"]["assumptions"]["A2"].holds  # proximal stationarity
    const = res["theorem1_per_sample"]["constants"]
    assert const["lam"] == lam
    # The derived λΨ_2/2 is the measured first-order term, so the two forms agree.
    assert res["theorem1_per_sample"]["value"] == pytest.approx(res["theorem1_first_order"]["value"], rel=1e-7)
    for name in names:
        assert res[name]["holds"], (name, res[name]["value"], res[name]["measured"])
    # Without the λ term the per-sample bound would be smaller by λΨ_2/2 > 0.
    assert const["psi_2"] > 0


def test_theorem2_estimates_from_heldout_optima():
    torch.manual_seed(2)
    model = nn.Linear(5, 2, bias=False).double()
    X, Y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    Xt, Yt = torch.randn(10, 5, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64)
    opt, opt_t = linear_optima(model, X, Y), linear_optima(model, Xt, Yt)
    res = evaluate_bounds(["theorem2"], model, X, Y, opt, "mse", heldout=(Xt, Yt, opt_t))["theorem2"]
    const = res["constants"]
    wbar = opt.theta.mean(0).reshape(2, 5)
    assert res["measured"] == pytest.approx(float((0.5 * (Xt @ wbar.T - Yt).pow(2).sum(1)).mean()), rel=1e-12)
    assert const["El_star"] == pytest.approx(0.0, abs=1e-20)
    # β of the linear model is ‖x‖²: the max over training and held-out inputs.
    assert const["beta_max"] == pytest.approx(float(torch.cat([X, Xt]).pow(2).sum(1).max()), rel=1e-8)
    assert res["value"] == pytest.approx(const["beta_max"] / 4 * 17 / 15 * theory.psi(opt), rel=1e-12)
    with pytest.raises(ValueError, match="same θ_0"):
        other = linear_optima(nn.Linear(5, 2, bias=False).double(), Xt, Yt)
        evaluate_bounds(["theorem2"], model, X, Y, opt, "mse", heldout=(Xt, Yt, other))


def test_registry_names_and_errors():
    assert set(ALL) <= set(bound_names())
    # Registration order (proxies.registry.Registry), built-ins first, as theory.bounds lists them.
    assert bound_names()[:6] == [
        "theorem1_per_sample", "theorem1_uniform", "theorem1_first_order", "theorem2",
        "lipschitz_per_sample", "lipschitz_psi1",
    ]
    assert theory.assumption_names()[:4] == ["A1", "A2", "A3", "lipschitz"]
    assert get_bound("theorem1_uniform").assumptions == ("A1", "A2")
    with pytest.raises(ValueError, match="unknown bound"):
        get_bound("theorem9")
    with pytest.raises(ValueError, match="already registered"):
        register_bound(Bound("theorem1_uniform", ("A1",), Lbar))
    with pytest.raises(ValueError, match="not registered"):
        register_bound(Bound("needs_missing", ("no_such_assumption",), Lbar))


def test_a_user_defined_assumption_and_bound_are_picked_up_by_name():
    # A constant "curvature" bound β ≤ c, checked against A1's β_hess: the extension route of §6.
    def estimate(model, inputs, targets, optima, loss, *, seed=0):
        a1 = theory.get_assumption("A1").estimate(model, inputs, targets, optima, loss, seed=seed)
        return {"c_curv": 10.0, "beta_seen": a1["beta_max"]}

    def check(constants):
        holds = constants["beta_seen"] <= constants["c_curv"]
        return AssumptionCheck("curvature_le_c", holds, f"β_hess {constants['beta_seen']:.3g} ≤ 10", constants)

    register_assumption(Assumption("curvature_le_c", sp.Le(sp.Symbol("beta"), sp.Symbol("c_curv")), estimate, check), replace=True)
    register_bound(Bound("theorem1_const_c", ("curvature_le_c",), Lbar + sp.Symbol("c_curv") / 4 * psi_2), replace=True)
    assert bound_names().index("theorem1_const_c") > bound_names().index("lipschitz_psi1")  # appended
    assert theory.get_bound("theorem1_const_c").assumptions == ("curvature_le_c",)
    model = nn.Linear(3, 1, bias=False).double()
    X = 0.5 * torch.randn(6, 3, dtype=torch.float64)
    Y = torch.randn(6, 1, dtype=torch.float64)
    opt = linear_optima(model, X, Y)
    res = evaluate_bounds(["theorem1_const_c"], model, X, Y, opt, "mse")["theorem1_const_c"]
    assert res["value"] == pytest.approx(10.0 / 4 * theory.psi(opt), rel=1e-12)
    assert res["assumptions"]["curvature_le_c"].holds == (float(X.pow(2).sum(1).max()) <= 10.0)
    assert res["holds"]


def test_readme_extension_example_runs_and_matches_builtin_lipschitz_bound():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Extending the theory", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    X, Y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
    opt = sample_wise_optima(model, X, Y, loss="mse", solver="gauss_newton")
    res = evaluate_bounds(["l1_lipschitz_psi1", "lipschitz_psi1"], model, X, Y, opt, "mse", seed=5)
    assert res["l1_lipschitz_psi1"]["value"] == pytest.approx(res["lipschitz_psi1"]["value"], rel=1e-12)
    assert res["l1_lipschitz_psi1"]["holds"]
