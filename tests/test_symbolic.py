"""The identities of theory.md §2–§5, verified with sympy."""
import itertools

import pytest
import sympy as sp
import torch

from theory.symbolic import (
    derive_linear_optimum,
    linear_closed_form_optima,
    linear_closed_form_psi,
    linear_optimum_entry,
    psi2_pairwise,
    psi2_variance,
    sign_split_pairs,
)


@pytest.mark.parametrize("n, m", [(2, 1), (3, 2), (4, 2)])
def test_psi2_pairwise_equals_variance_form(n, m):
    theta = sp.Matrix(n, m, lambda i, k: sp.Symbol(f"t_{i}_{k}", real=True))
    assert sp.expand(psi2_pairwise(theta) - psi2_variance(theta)) == 0


def test_sign_split_pair_count():
    p, q = sp.symbols("p q", nonnegative=True, integer=True)
    pairs, split = sign_split_pairs(p, q)
    assert sp.expand(pairs - split) == 0
    # ... and it is the count of ordered opposite-side pairs, by enumeration.
    for signs in itertools.product([1, -1], repeat=5):
        count = sum(1 for a in signs for b in signs if a != b)
        s, n = sum(signs), len(signs)
        assert count == (n**2 - s**2) / 2


@pytest.mark.parametrize("d, c", [(2, 1), (2, 2), (3, 2)])
def test_linear_optimum_satisfies_definition(d, c):
    W_star, W0, x, y = derive_linear_optimum(d, c)
    # On the zero-loss manifold: W* x = y.
    assert sp.simplify(W_star * x - y) == sp.zeros(c, 1)
    # Stationarity of the Lagrangian: W* − W0 is a multiple λ xᵀ (row space of x),
    # i.e. (W* − W0) v = 0 for every v ⟂ x.
    normals = [sp.Matrix([-x[b] if k == 0 else (x[0] if k == b else 0) for k in range(d)]) for b in range(1, d)]
    for v in normals:
        assert sp.simplify((W_star - W0) * v) == sp.zeros(c, 1)
    # Nearest point: any other point of the manifold, W* + V with V x = 0, is farther by ‖V‖².
    coeffs = sp.Matrix(c, d - 1, lambda a, b: sp.Symbol(f"u_{a}{b}", real=True))
    V = sum((coeffs[:, b] * normals[b].T for b in range(d - 1)), sp.zeros(c, d))
    assert sp.simplify(V * x) == sp.zeros(c, 1)

    def sq(M):
        return sum(e**2 for e in M)

    gap = sp.simplify(sq(W_star + V - W0) - sq(W_star - W0) - sq(V))
    assert gap == 0


def test_general_entry_formula_and_numeric_closed_form():
    (w0, r, xb, s), entry = linear_optimum_entry()
    assert sp.simplify(entry - (w0 - r * xb / s)) == 0
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 4, generator=g, dtype=torch.float64)
    Y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    W0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    W_star = linear_closed_form_optima(X, Y, W0)
    # Against the sympy solution evaluated per sample.
    W_sym, W0s, xs, ys = derive_linear_optimum(4, 3)
    f = sp.lambdify((list(W0s), list(xs), list(ys)), W_sym, "numpy")
    for i in range(7):
        expected = torch.tensor(f(W0.reshape(-1).tolist(), X[i].tolist(), Y[i].tolist()), dtype=torch.float64)
        assert torch.allclose(W_star[i], expected, rtol=1e-12, atol=1e-12)


def test_closed_form_psi_symbolic_and_numeric():
    # Symbolic: for n = 3 samples, d = 2, c = 1, the Gram expression equals Ψ_2 of the optima.
    n, d = 3, 2
    w0 = sp.Matrix(1, d, sp.symbols("a0:2", real=True))
    xs = [sp.Matrix(d, 1, sp.symbols(f"x{i}_0:2", real=True)) for i in range(n)]
    ys = sp.symbols("y0:3", real=True)
    Ds = [(w0 * x - sp.Matrix([y])) * x.T / (x.T * x)[0, 0] for x, y in zip(xs, ys)]
    optima = sp.Matrix([list(w0 - D) for D in Ds])
    total = sum(Ds, sp.zeros(1, d))
    gram_form = sp.Rational(2, n) * sum(sum(e**2 for e in D) for D in Ds) - sp.Rational(2, n**2) * sum(e**2 for e in total)
    assert sp.simplify(psi2_variance(optima) - gram_form) == 0
    # Numeric: against Ψ_2 of the closed-form optima, with and without bias.
    from theory import psi

    g = torch.Generator().manual_seed(1)
    X = torch.randn(20, 5, generator=g, dtype=torch.float64)
    Y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    W0, b0 = torch.randn(2, 5, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    assert linear_closed_form_psi(X, Y, W0) == pytest.approx(psi(linear_closed_form_optima(X, Y, W0).reshape(20, -1)), rel=1e-12)
    Wb, bb = linear_closed_form_optima(X, Y, W0, b0)
    flat = torch.cat([Wb.reshape(20, -1), bb], dim=1)
    assert linear_closed_form_psi(X, Y, W0, b0) == pytest.approx(psi(flat), rel=1e-12)


def test_lemma1_for_a_quadratic():
    # l(θ) = ½(θ − a)ᵀA(θ − a), θ* = a, l* = 0, β = λ_max(A):
    # l* + β/2‖θ − θ*‖² − l(θ) = ½ dᵀ(βI − A)d ≥ 0 because βI − A is PSD.
    a11, a22 = sp.symbols("a11 a22", real=True)
    a12 = sp.Symbol("a12", real=True)
    A = sp.Matrix([[a11, a12], [a12, a22]])
    beta = (a11 + a22) / 2 + sp.sqrt(((a11 - a22) / 2) ** 2 + a12**2)
    assert sp.simplify(A.eigenvals(multiple=True)[0] - beta) == 0 or sp.simplify(A.eigenvals(multiple=True)[1] - beta) == 0
    gap_matrix = beta * sp.eye(2) - A
    assert sp.simplify(gap_matrix.det()) == 0  # one eigenvalue of βI − A is 0 ...
    assert sp.simplify(gap_matrix.trace() - 2 * sp.sqrt(((a11 - a22) / 2) ** 2 + a12**2)) == 0  # ... the other ≥ 0
    t, c = sp.Matrix(sp.symbols("t0:2", real=True)), sp.Matrix(sp.symbols("c0:2", real=True))
    d = t - c
    lemma_gap = beta / 2 * (d.T * d)[0, 0] - (d.T * A * d)[0, 0] / 2
    assert sp.simplify(lemma_gap - (d.T * gap_matrix * d)[0, 0] / 2) == 0
    # Numeric spot check of the inequality itself.
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        B = torch.randn(4, 4, generator=g, dtype=torch.float64)
        A_num = B @ B.T
        centre, theta = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
        beta_num = torch.linalg.eigvalsh(A_num).max()
        diff = theta - centre
        assert 0.5 * diff @ A_num @ diff <= beta_num / 2 * diff @ diff + 1e-12
