"""Evidence for the bounds that does not come from the bound-validation rows themselves.

- Theorem 2 on the linear model, by Monte Carlo over draws of S from a finite
  population D (so every expectation over D is an exact finite mean): the identities
  E_S‖θ̄* − μ‖² = Ψ_2(D)/(2n) and E_S Ψ_2(S) = (1 − 1/n) Ψ_2(D) of docs/theory.md §4,
  the exact E_S E_z l_z(θ̄*) of the quadratic case, and the theorem's inequality, with
  the optima from the closed form `theory.linear_closed_form_optima`.
- Proposition 3 (Ψ_1(S) ≥ (1/n²) Σ_k (n² − s_k²) δ_k, §5) on solver optima of real
  networks, with Ψ_1 from the slow pairwise loop.
"""
import math

import numpy as np
import pytest
import torch

import theory
from empirical.config import validate
from empirical.validation import schema
from empirical.validation.job import build_model, prepare_data, sign_split_bound

# ------------------------------------------------------------------ Theorem 2, Monte Carlo

N_POPULATION, DIM, N_SAMPLE, DRAWS = 40, 3, 5, 40_000


@pytest.fixture(scope="module")
def population():
    """D: 40 points of a noisy linear teacher; θ*_z for every z from θ_0 (closed form)."""
    gen = torch.Generator().manual_seed(11)
    X = torch.randn(N_POPULATION, DIM, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3 * torch.randn(N_POPULATION, generator=gen,
                                                                                   dtype=torch.float64)
    W0 = torch.randn(DIM, generator=gen, dtype=torch.float64)
    theta = theory.linear_closed_form_optima(X, y, W0)                      # (N, d): θ*_z
    return X, y, W0, theta


def test_the_population_optima_are_the_solvers_optima(population):
    X, y, W0, theta = population
    model = torch.nn.Linear(DIM, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(W0[None, :])
    opt = theory.sample_wise_optima(model, X, y[:, None], "mse", "gauss_newton")
    assert bool(opt.converged.all())
    torch.testing.assert_close(opt.theta, theta, rtol=0, atol=1e-10)


def _draws(population):
    """θ̄* and Ψ_2(S) of DRAWS samples S of size n, i.i.d. from D (uniform, with replacement)."""
    X, y, W0, theta = population
    rng = np.random.default_rng(5)
    index = torch.from_numpy(rng.integers(0, N_POPULATION, size=(DRAWS, N_SAMPLE)))
    optima = theta[index]                                                   # (draws, n, d)
    center = optima.mean(dim=1)                                             # θ̄* per draw
    psi_s = 2.0 / N_SAMPLE * (optima - center[:, None, :]).square().sum(dim=(1, 2))
    return center, psi_s


def _mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    v = values.double().numpy()
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def test_theorem2_identities_over_draws_of_s(population):
    X, y, W0, theta = population
    mu = theta.mean(dim=0)
    psi_d = theory.psi(theta, 2)                               # E_{z,z'}‖θ*_z − θ*_z'‖² over D
    assert psi_d == pytest.approx(2 * float((theta - mu).square().sum(dim=1).mean()), rel=1e-12)
    center, psi_s = _draws(population)

    spread, spread_se = _mean_and_se((center - mu).square().sum(dim=1))
    expected = psi_d / (2 * N_SAMPLE)
    assert abs(spread - expected) < 4 * spread_se
    # The test can tell the conventions apart: 1/(2(n−1)) instead of 1/(2n) is far outside.
    assert abs(spread - psi_d / (2 * (N_SAMPLE - 1))) > 10 * spread_se

    mean_psi, psi_se = _mean_and_se(psi_s)
    assert abs(mean_psi - (1 - 1 / N_SAMPLE) * psi_d) < 4 * psi_se
    assert abs(mean_psi - psi_d) > 10 * psi_se


def test_theorem2_holds_in_expectation_and_matches_the_exact_expected_loss(population):
    X, y, W0, theta = population
    center, psi_s = _draws(population)
    # E_z l_z(θ̄*) of each draw, exactly over D: l_z(θ) = ½ (xᵀθ − y)².
    population_loss = 0.5 * (center @ X.T - y[None, :]).square().mean(dim=1)
    mc, mc_se = _mean_and_se(population_loss)

    # l_z is quadratic with l*_z = 0 and ∇l_z(θ*_z) = 0, so l_z(θ) = ½ (x_zᵀ(θ − θ*_z))²; with
    # E_S θ̄* = μ and Cov_S θ̄* = Σ/n (Σ = Cov_D θ*_z): E_S l_z(θ̄*) = ½ (x_zᵀΣx_z/n + (x_zᵀ(μ − θ*_z))²).
    mu = theta.mean(dim=0)
    sigma = (theta - mu).T @ (theta - mu) / N_POPULATION
    exact = float(0.5 * ((X @ sigma * X).sum(dim=1) / N_SAMPLE + ((mu - theta) * X).sum(dim=1).square()).mean())
    assert abs(mc - exact) < 4 * mc_se

    # Theorem 2: E_S E_z l_z(θ̄*) ≤ E l*_z + (β/4)(n+1)/(n−1) E_S Ψ_2(S), β = max_z ‖x_z‖²
    # (the Hessian of l_z is x_z x_zᵀ), E l*_z = 0; evaluated by the toolkit's own bound.
    l_star = 0.5 * ((theta * X).sum(dim=1) - y).square()
    assert float(l_star.max()) < 1e-20
    beta = float(X.square().sum(dim=1).max())
    psi_d = theory.psi(theta, 2)
    value = theory.get_bound("theorem2").evaluate(
        {"El_star": 0.0, "beta_max": beta, "n": N_SAMPLE, "psi_2": (1 - 1 / N_SAMPLE) * psi_d, "lam": 0.0})
    assert value == pytest.approx(beta / 4 * (N_SAMPLE + 1) / N_SAMPLE * psi_d, rel=1e-12)
    assert exact <= value and mc + 4 * mc_se <= value
    # The same bound with the Monte-Carlo E_S Ψ_2(S) in place of the exact one.
    mean_psi, _ = _mean_and_se(psi_s)
    assert mc <= theory.get_bound("theorem2").evaluate(
        {"El_star": 0.0, "beta_max": beta, "n": N_SAMPLE, "psi_2": mean_psi, "lam": 0.0})


# ------------------------------------------------------------------ Proposition 3 on real networks

PROP3_NETWORKS = {
    "tanh MLP, GN": ({"name": "digits", "n": 12, "n_heldout": 2}, {"width": 12, "depth": 2, "activation": "tanh"},
                     {"loss": "mse", "solver": "gauss_newton"}),
    "ReLU MLP, GN": ({"name": "digits", "n": 12, "n_heldout": 2}, {"width": 12, "depth": 1, "activation": "relu",
                                                                  "init_scale": 2.0},
                     {"loss": "mse", "solver": "gauss_newton"}),
    "CNN, GN": ({"name": "digits", "n": 8, "n_heldout": 2}, {"family": "cnn", "width": 3, "depth": 1,
                                                             "activation": "relu"},
                {"loss": "mse", "solver": "gauss_newton"}),
    "tanh MLP, proximal CE": ({"name": "iris", "n": 10, "n_heldout": 2}, {"width": 5, "depth": 1, "activation": "tanh"},
                              {"loss": "ce", "solver": "proximal",
                               "solver_options": {"lam": 1.0, "lr": 0.5, "max_iter": 3000, "tol": 1e-6}}),
}


def _solver_optima(data, model, theory_cfg):
    job = schema.jobs(validate({"data": data, "model": model, "theory": theory_cfg}, schema.SCHEMA))[0]
    d = prepare_data(job.params)
    net = build_model(job.params["model"], d["input_shape"], d["outputs"], job.seed)
    options = {k: v for k, v in job.params["theory"]["solver_options"].items() if v is not None}
    opt = theory.sample_wise_optima(net, d["X"], d["Y"], theory_cfg["loss"], theory_cfg["solver"], **options)
    return opt.theta[opt.converged], opt.theta0


@pytest.mark.parametrize("name", list(PROP3_NETWORKS))
def test_proposition3_sign_split_lower_bounds_psi1_on_solver_optima(name):
    theta, theta0 = _solver_optima(*PROP3_NETWORKS[name])
    n, m = theta.shape
    assert n >= 6
    # Ψ_1 by the slow pairwise loop, against theory.psi.
    pairwise = np.zeros(m)
    for i in range(n):
        for j in range(n):
            pairwise += (theta[i] - theta[j]).abs().numpy()
    psi_1 = pairwise.sum() / n**2
    assert theory.psi(theta, 1) == pytest.approx(psi_1, rel=1e-12)

    moves = (theta - theta0[None, :]).numpy()                       # θ*_{i,k} − θ_{0,k}
    s = np.sign(moves).sum(axis=0)                                   # s_k
    delta = np.abs(moves).min(axis=0)                                # δ_k
    per_coordinate = (n**2 - s**2) * delta
    # Coordinate by coordinate: the opposite-side pairs alone already give (n² − s_k²) δ_k.
    assert np.all(pairwise >= per_coordinate * (1 - 1e-12))
    lower = per_coordinate.sum() / n**2
    assert psi_1 >= lower > 0
    assert sign_split_bound(theta, theta0) == pytest.approx(lower, rel=1e-12)  # what the job stores
    # Opposite-side pairs: 2 p_k q_k = (n² − s_k²)/2 wherever no optimum sits exactly at θ_0.
    p = (moves > 0).sum(axis=0)
    exact = np.all(moves != 0, axis=0)
    np.testing.assert_array_equal(2 * p[exact] * (n - p[exact]), (n**2 - s[exact] ** 2) / 2)
