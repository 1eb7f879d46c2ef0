"""Symbolic derivations (sympy) behind the closed forms of docs/theory.md §2–§3.

The closed form of the sample-wise optima of a linear model with squared loss is not
typed in: `derive_linear_optimum` solves the Lagrangian of
``min_W ½‖W − W0‖²_F  s.t.  W x = y`` (the point of the zero-loss manifold of sample
``(x, y)`` nearest to ``W0``; for a linear model this is where both ``gd`` and
``gauss_newton`` go, since their steps stay in the row space spanned by ``x``) for small
symbolic dimensions, and `linear_optimum_entry` checks that every entry of that solution
is ``w0_ab − r_a x_b / ‖x‖²`` with ``r = W0 x − y``. That entrywise expression is
lambdified and evaluated on broadcast tensors by `linear_closed_form_optima`.

The identities used in the proofs of §3–§5 are built here as sympy expressions so that
the test suite (tests/test_symbolic.py) can check them: `psi2_pairwise`,
`psi2_variance`, `sign_split_pairs`.
"""
from __future__ import annotations

import functools

import sympy as sp
import torch
from torch import Tensor

# Dimensions (d inputs, c outputs) at which the general formula is checked against the
# Lagrangian solution before it is used.
_CHECKED_DIMS = ((1, 1), (2, 1), (3, 2))


def derive_linear_optimum(d: int, c: int) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix, sp.Matrix]:
    """Solve ``min ½‖W − W0‖²_F s.t. W x = y`` by its Lagrangian, symbolically.

    ``L(W, λ) = ½‖W − W0‖²_F + λᵀ(W x − y)``; ∂L/∂W = 0 and the constraint give a linear
    system in (W, λ), solved by sympy. Returns ``(W_star, W0, x, y)`` as sympy matrices
    of shapes (c, d), (c, d), (d, 1), (c, 1).
    """
    W = sp.Matrix(c, d, lambda a, b: sp.Symbol(f"w_{a}{b}", real=True))
    W0 = sp.Matrix(c, d, lambda a, b: sp.Symbol(f"w0_{a}{b}", real=True))
    x = sp.Matrix(d, 1, lambda b, _: sp.Symbol(f"x_{b}", real=True))
    y = sp.Matrix(c, 1, lambda a, _: sp.Symbol(f"y_{a}", real=True))
    lam = sp.Matrix(c, 1, lambda a, _: sp.Symbol(f"lam_{a}", real=True))
    lagrangian = sp.Rational(1, 2) * sum((W - W0).applyfunc(lambda e: e**2)) + (lam.T * (W * x - y))[0, 0]
    equations = [sp.diff(lagrangian, w) for w in W] + list(W * x - y)
    solution = sp.solve(equations, list(W) + list(lam), dict=True)
    if len(solution) != 1:
        raise ArithmeticError(f"expected one stationary point of the Lagrangian, got {len(solution)}")
    return W.subs(solution[0]), W0, x, y


@functools.cache
def linear_optimum_entry() -> tuple[tuple[sp.Symbol, ...], sp.Expr]:
    """The entrywise closed form ``W*_ab = w0_ab − r_a x_b / s`` (r = W0x − y, s = ‖x‖²).

    Verified against `derive_linear_optimum` at the dimensions in ``_CHECKED_DIMS``
    before it is returned (cached after the first call).
    """
    w0, r, xb, s = sp.symbols("w0 r x s", real=True)
    entry = w0 - r * xb / s
    for d, c in _CHECKED_DIMS:
        W_star, W0, x, y = derive_linear_optimum(d, c)
        res = W0 * x - y
        norm2 = (x.T * x)[0, 0]
        for a in range(c):
            for b in range(d):
                general = entry.subs({w0: W0[a, b], r: res[a], xb: x[b], s: norm2})
                if sp.simplify(W_star[a, b] - general) != 0:
                    raise ArithmeticError(f"closed form disagrees with the Lagrangian at d={d}, c={c}, entry ({a},{b})")
    return (w0, r, xb, s), entry


@functools.cache
def _linear_optimum_fn():
    args, entry = linear_optimum_entry()
    # Pure arithmetic: the lambdified function broadcasts over torch tensors.
    return sp.lambdify(args, entry, modules=[{}])


def _as_linear_problem(X: Tensor, Y: Tensor, W0: Tensor, b0: Tensor | None):
    """Validate and bring to (n, d), (n, c), (c, d) form; augment x with 1 for a bias."""
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {tuple(X.shape)}")
    n, d = X.shape
    if W0.ndim not in (1, 2) or W0.shape[-1] != d:
        raise ValueError(f"W0 must have shape (d,) or (c, d) with d={d}, got {tuple(W0.shape)}")
    single = W0.ndim == 1
    W = W0.reshape(1, d) if single else W0
    c = W.shape[0]
    if Y.shape[0] != n or Y.reshape(n, -1).shape[1] != c:
        raise ValueError(f"Y must have shape (n,) or (n, {c}) with n={n}, got {tuple(Y.shape)}")
    Y = Y.reshape(n, c)
    if b0 is not None:
        if b0.reshape(-1).shape[0] != c:
            raise ValueError(f"b0 must have {c} entries (one per output), got shape {tuple(b0.shape)}")
        X = torch.cat([X, X.new_ones(n, 1)], dim=1)
        W = torch.cat([W, b0.reshape(c, 1)], dim=1)
    norm2 = X.square().sum(dim=1)
    if (norm2 == 0).any():
        raise ValueError("X has an all-zero row: its sample-wise optimum is not unique (any W fits or none does)")
    return X, Y, W, norm2, single


def linear_closed_form_optima(X: Tensor, Y: Tensor, W0: Tensor, b0: Tensor | None = None):
    """Sample-wise optima of ``f(x) = W x`` with squared loss (theory.md §2), in closed form.

    ``W*_i = W0 − r_i x_iᵀ / ‖x_i‖²`` with ``r_i = W0 x_i − y_i``: the projection of W0 onto
    ``{W : W x_i = y_i}``, where ``gd`` and ``gauss_newton`` converge from W0.

    Args:
        X: (n, d) inputs. Y: (n,) or (n, c) targets.
        W0: (d,) for one output or (c, d) (``nn.Linear.weight`` layout).
        b0: optional (c,) bias; then x is augmented with a constant 1 and the bias moves
            too, and the result is the pair ``(W*, b*)``.

    Returns:
        (n, d) for a 1-D W0, else (n, c, d); with ``b0`` the tuple ``(W*, b*)``, b* of
        shape (n,) or (n, c).

    Example:
        >>> X = torch.tensor([[1.0, 0.0]]); Y = torch.tensor([3.0])
        >>> linear_closed_form_optima(X, Y, torch.zeros(2))
        tensor([[3., 0.]])
    """
    Xa, Y, W, norm2, single = _as_linear_problem(X, Y, W0, b0)
    r = Xa @ W.T - Y  # (n, c)
    W_star = _linear_optimum_fn()(W.unsqueeze(0), r.unsqueeze(2), Xa.unsqueeze(1), norm2[:, None, None])
    if b0 is None:
        return W_star[:, 0, :] if single else W_star
    d = X.shape[1]
    weight, bias = W_star[:, :, :d], W_star[:, :, d]
    return (weight[:, 0, :], bias[:, 0]) if single else (weight, bias)


def linear_closed_form_psi(X: Tensor, Y: Tensor, W0: Tensor, b0: Tensor | None = None) -> float:
    """Ψ_2 of the linear closed-form optima without forming them (theory.md §3).

    With ``D_i = r_i x_iᵀ/‖x_i‖²`` (so ``W*_i = W0 − D_i``) the variance form gives
    ``Ψ_2 = (2/n) Σ_i ‖D_i‖²_F − (2/n²) ‖Σ_i D_i‖²_F``, and ``‖D_i‖²_F = ‖r_i‖²/‖x_i‖²``,
    ``Σ_i D_i = R̃ᵀX̃`` with rows ``r̃_i = r_i/‖x_i‖``, ``x̃_i = x_i/‖x_i‖``.
    """
    Xa, Y, W, norm2, _ = _as_linear_problem(X, Y, W0, b0)
    n = Xa.shape[0]
    scale = norm2.sqrt().unsqueeze(1)
    R = (Xa @ W.T - Y) / scale
    total = R.T @ (Xa / scale)
    return float(2.0 / n * R.square().sum() - 2.0 / n**2 * total.square().sum())


def psi2_pairwise(theta: sp.Matrix) -> sp.Expr:
    """``(1/n²) Σ_{i,j} ‖θ_i − θ_j‖²`` for the rows of a symbolic (n, m) matrix."""
    n = theta.rows
    return sp.Rational(1, n**2) * sum(
        (theta[i, k] - theta[j, k]) ** 2 for i in range(n) for j in range(n) for k in range(theta.cols)
    )


def psi2_variance(theta: sp.Matrix) -> sp.Expr:
    """``(2/n) Σ_i ‖θ_i − θ̄‖²`` for the rows of a symbolic (n, m) matrix."""
    n = theta.rows
    mean = [sum(theta[i, k] for i in range(n)) / n for k in range(theta.cols)]
    return sp.Rational(2, n) * sum((theta[i, k] - mean[k]) ** 2 for i in range(n) for k in range(theta.cols))


def sign_split_pairs(p: sp.Expr, q: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Ordered opposite-side pairs ``2pq`` and their form ``(n² − s²)/2`` (theory.md §5)."""
    n, s = p + q, p - q
    return 2 * p * q, (n**2 - s**2) / 2
