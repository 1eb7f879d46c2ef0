"""Assumptions of the sample-wise bounds as small composable objects (docs/theory.md §4, §6).

An `Assumption` is a name, a sympy statement, an estimator that measures its constants
on a model, data and sample-wise optima, and a check that says whether the measured
constants are consistent with it. Assumptions hold no state; they are registered by
name in `theory.registry` so that bounds can ask for them.

The geometry every estimator shares (docs/theory.md §3–§4): after dropping unconverged
samples (``on_unconverged``, `SampleWiseOptima.kept`), θ̄* = (1/n) Σ_i θ*_i and the
segments [θ*_i, θ̄*]. Points on a segment are θ*_i + t (θ̄* − θ*_i) with t ∈ {0, 1} plus
``points_per_segment`` values drawn uniformly from (0, 1) by a generator seeded with
``seed`` (docs/theory.md §4, "Checking the assumptions").

Example (a linear model with squared loss: each l_i is a quadratic with Hessian x_i x_iᵀ,
so β_hess,i = ‖x_i‖², and β_eff,i = (x_i·v)²/‖v‖² ≤ ‖x_i‖² with v = θ̄* − θ*_i):

    >>> import theory
    >>> from theory.registry import get_assumption
    >>> model = nn.Linear(3, 1, bias=False).double()
    >>> X = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    >>> Y = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    >>> opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton")
    >>> a1 = get_assumption("A1")
    >>> constants = a1.estimate(model, X, Y, opt, "mse")
    >>> [round(float(b), 6) for b in constants["beta"]]
    [1.0, 4.0]
    >>> bool((constants["beta_eff"] <= constants["beta"]).all()), a1.check(constants).holds
    (True, True)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
import torch
from torch import Tensor, nn

from proxies.checks import check_int
from theory.agreement import sign_side_agreement
from theory.hessian import batched_grad, batched_hvp, batched_loss, flat_sample_loss, top_eigenvalue
from theory.optima import SampleWiseOptima
from theory.registry import register_assumption

Estimator = Callable[..., dict]


@dataclass(frozen=True)
class AssumptionCheck:
    """Outcome of checking one assumption against its measured constants."""

    name: str
    holds: bool
    detail: str
    constants: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Assumption:
    """A named assumption: `statement` (sympy), `estimate(...) -> constants`, `check(constants)`.

    ``estimate(model, inputs, targets, optima, loss, **options) -> dict`` measures the
    constants (tensors for per-sample values, floats for scalars, plus the options used);
    ``check(constants) -> AssumptionCheck`` decides consistency from them alone.
    """

    name: str
    statement: sp.Basic
    estimate: Estimator
    check: Callable[[dict], AssumptionCheck]
    description: str = ""


@dataclass(frozen=True)
class Segments:
    """Converged optima, θ̄*, and the data rows they belong to."""

    theta: Tensor       # (n, m) θ*_i of the kept samples
    loss: Tensor        # (n,) l*_i
    center: Tensor      # (m,) θ̄* (or a given centre, e.g. a training θ̄* for held-out samples)
    inputs: Tensor
    targets: Tensor
    kept: Tensor        # (n_total,) bool: which samples were kept

    @property
    def delta(self) -> Tensor:
        """(n, m) θ̄* − θ*_i."""
        return self.center[None, :] - self.theta


def segments(
    optima: SampleWiseOptima,
    inputs: Tensor,
    targets: Tensor,
    *,
    on_unconverged: str = "raise",
    center: Tensor | None = None,
) -> Segments:
    """The kept optima and their θ̄* (or the given `center`)."""
    if inputs.shape[0] != optima.n or targets.shape[0] != optima.n:
        raise ValueError(
            f"inputs/targets have {inputs.shape[0]}/{targets.shape[0]} rows but optima has "
            f"{optima.n} samples: pass the data the optima were computed on"
        )
    kept = optima.kept(on_unconverged)
    theta = optima.theta[kept]
    if center is None:
        center = theta.mean(dim=0)
    return Segments(theta, optima.loss[kept], center, inputs[kept], targets[kept], kept)


def segment_points(seg: Segments, points_per_segment: int, seed: int) -> tuple[Tensor, Tensor]:
    """`(points (n, P, m), t (P,))` with t = [0, 1, u_1..u_k], u ~ U(0,1) from `seed`."""
    check_int("points_per_segment", points_per_segment, minimum=0)
    gen = torch.Generator().manual_seed(seed)
    inner = torch.rand(points_per_segment, generator=gen, dtype=torch.float64)  # on the CPU: the same t everywhere
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64, device=inner.device)
    t = torch.cat([ends, inner]).to(device=seg.theta.device, dtype=seg.theta.dtype)
    points = seg.theta[:, None, :] + t[None, :, None] * seg.delta[:, None, :]
    return points, t


def _repeat_rows(x: Tensor, times: int) -> Tensor:
    return x.repeat_interleave(times, dim=0)


# ---------------------------------------------------------------- A1: β-smoothness

def estimate_smoothness(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    points_per_segment: int = 2,
    seed: int = 0,
    max_iter: int = 500,
    tol: float = 1e-6,
    chunk_size: int | None = None,
    on_unconverged: str = "raise",
    center: Tensor | None = None,
    output_selector=None,
) -> dict:
    """Measure A1's constants: β_hess,i and β_eff,i (docs/theory.md §4, "Checking the assumptions").

    - ``beta`` (n,): β_hess,i = max over the points of [θ*_i, θ̄*] of λ_max(∇²l_i), by power
      iteration on Hessian–vector products (`theory.hessian.top_eigenvalue`, which explains
      how negative-dominant spectra are handled); ``beta_abs`` (n,): the same maximum of the
      spectral radius max|λ|, for reference.
    - ``beta_eff`` (n,): β_eff,i = 2 (l_i(θ̄*) − l*_i) / ‖θ̄* − θ*_i‖²₂, the smallest constant
      that makes Lemma 1 hold at θ̄* under A2 (NaN where θ̄* = θ*_i); l*_i is ``optima.loss``.
    - ``beta_eff_first_order`` (n,): 2 (l_i(θ̄*) − l*_i − ⟨∇l_i(θ*_i), θ̄* − θ*_i⟩) / ‖θ̄* − θ*_i‖²₂,
      the smallest constant for the first-order form of Lemma 1, which β-smoothness implies
      without A2. It equals β_eff when ∇l_i(θ*_i) = 0 and is what the check compares with,
      so that A1 is judged apart from A2 (for ``proximal`` optima the two differ).
    - ``beta_max``: max_i β_hess,i, the uniform β of Theorems 1–2.

    β_hess is a sampled estimate of the supremum on the segment, not a certificate.
    `center` replaces θ̄* (used for held-out samples against a training θ̄*).
    """
    seg = segments(optima, inputs, targets, on_unconverged=on_unconverged, center=center)
    fn = flat_sample_loss(model, optima.param_names, optima.param_shapes, loss, output_selector)
    points, t = segment_points(seg, points_per_segment, seed)
    n, p, m = points.shape
    flat_points = points.reshape(n * p, m)
    xs, ys = _repeat_rows(seg.inputs, p), _repeat_rows(seg.targets, p)
    hvp = batched_hvp(fn, chunk_size)

    def matvec(v: Tensor, rows: Tensor) -> Tensor:
        return hvp(flat_points[rows], xs[rows], ys[rows], v)

    eig = top_eigenvalue(matvec, (n * p, m), dtype=flat_points.dtype, max_iter=max_iter, tol=tol, seed=seed,
                         device=flat_points.device)
    beta = eig["lambda_max"].reshape(n, p).amax(dim=1)
    beta_abs = eig["spectral_radius"].reshape(n, p).amax(dim=1)

    d2 = seg.delta.pow(2).sum(dim=1)
    loss_at_center = batched_loss(fn, seg.center.expand(n, m), seg.inputs, seg.targets, chunk_size)
    slope = (batched_grad(fn, seg.theta, seg.inputs, seg.targets, chunk_size) * seg.delta).sum(dim=1)
    nan = torch.full_like(d2, float("nan"))
    gap = loss_at_center - seg.loss
    return {
        "beta": beta,
        "beta_abs": beta_abs,
        "beta_eff": torch.where(d2 > 0, 2 * gap / d2, nan),
        "beta_eff_first_order": torch.where(d2 > 0, 2 * (gap - slope) / d2, nan),
        "beta_max": float(beta.max()),
        "loss_at_center": loss_at_center,
        "d2": d2,
        "eig_converged_fraction": float(eig["converged"].double().mean()),
        "points_per_segment": points_per_segment,
        "t": t,
        "seed": seed,
    }


def check_smoothness(constants: dict) -> AssumptionCheck:
    """A1 is consistent for sample i where β_hess,i ≥ β_eff,i (NaN: no constraint).

    β_eff here is the first-order form (``beta_eff_first_order``), equal to
    2 (l_i(θ̄*) − l*_i) / ‖θ̄* − θ*_i‖² at a stationary θ*_i.
    """
    beta, beta_eff = constants["beta"], constants["beta_eff_first_order"]
    consistent = torch.isnan(beta_eff) | (beta >= beta_eff)
    fraction = float(consistent.double().mean())
    out = {**constants, "consistent": consistent, "consistent_fraction": fraction}
    detail = (
        f"β_hess ≥ β_eff on {int(consistent.sum())}/{consistent.numel()} samples "
        f"(fraction {fraction:.3f}); max β_hess = {float(beta.max()):.4g}, "
        f"max β_eff = {float(beta_eff.nan_to_num(float('-inf')).max()):.4g}; "
        f"power iteration converged on {constants['eig_converged_fraction']:.3f} of points"
    )
    return AssumptionCheck("A1", bool(consistent.all()), detail, out)


# ---------------------------------------------------------------- A2: stationarity

def estimate_stationarity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    tol: float = 1e-4,
    chunk_size: int | None = None,
    on_unconverged: str = "raise",
    output_selector=None,
) -> dict:
    """Measure A2: the stationarity residual at θ*_i, recomputed from the model.

    ``grad_norm`` (n,): ‖∇l_i(θ*_i)‖₂. ``residual`` (n,): the stationarity residual of the
    solver's objective: ‖∇l_i(θ*_i)‖₂, or for ``proximal`` ‖∇l_i(θ*_i) + λ(θ*_i − θ_0)‖₂
    with λ = ``optima.options["lam"]``. ``first_order``: (1/n) Σ_i ⟨∇l_i(θ*_i), θ̄* − θ*_i⟩,
    the term Lemma 1 gains when ∇l_i(θ*_i) ≠ 0 (for ``proximal`` it equals λ Ψ_2(S)/2,
    because Σ_i (θ̄* − θ*_i) = 0). ``tol`` is recorded for the check.
    """
    seg = segments(optima, inputs, targets, on_unconverged=on_unconverged)
    fn = flat_sample_loss(model, optima.param_names, optima.param_shapes, loss, output_selector)
    grads = batched_grad(fn, seg.theta, seg.inputs, seg.targets, chunk_size)
    objective_grad = grads
    lam = 0.0
    if optima.solver == "proximal":
        lam = float(optima.options["lam"])
        objective_grad = grads + lam * (seg.theta - optima.theta0[None, :])
    return {
        "grad_norm": grads.norm(dim=1),
        "residual": objective_grad.norm(dim=1),
        "first_order": float((grads * seg.delta).sum(dim=1).mean()),
        "lam": lam,
        "tol": tol,
    }


def check_stationarity(constants: dict) -> AssumptionCheck:
    """A2 holds where the solver objective's residual is ≤ tol."""
    residual = constants["residual"]
    ok = residual <= constants["tol"]
    detail = (
        f"stationarity residual ≤ {constants['tol']:.1e} on {int(ok.sum())}/{ok.numel()} samples; "
        f"max residual {float(residual.max()):.3e}, max ‖∇l_i(θ*_i)‖ {float(constants['grad_norm'].max()):.3e}"
    )
    return AssumptionCheck("A2", bool(ok.all()), detail, {**constants, "stationary": ok})


# ---------------------------------------------------------------- A3: sign–side agreement

def estimate_sign_side(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    params=None,
    tol: float = 0.0,
    chunk_size: int | None = None,
    on_unconverged: str = "raise",
    output_selector=None,
) -> dict:
    """Measure A3 with `theory.agreement.sign_side_agreement` (same options)."""
    return sign_side_agreement(
        model, inputs, targets, optima, loss=loss, params=params, tol=tol,
        on_unconverged=on_unconverged, chunk_size=chunk_size, output_selector=output_selector,
    )


def check_sign_side(constants: dict) -> AssumptionCheck:
    """A3 is stated for every (i, k): it holds when the agreement rate is exactly 1."""
    detail = (
        f"sign–side agreement {constants['agree']}/{constants['moved']} moving coordinates "
        f"(rate {constants['rate']:.4f})"
    )
    return AssumptionCheck("A3", constants["agree"] == constants["moved"], detail, constants)


# ---------------------------------------------------------------- Lipschitz (worked extension)

def estimate_lipschitz(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    points_per_segment: int = 2,
    seed: int = 0,
    chunk_size: int | None = None,
    on_unconverged: str = "raise",
    output_selector=None,
) -> dict:
    """Measure the ℓ∞-gradient (= ℓ1-Lipschitz) constant on the segments [θ*_i, θ̄*].

    ``G_inf`` (n,): G_i = max over the segment points of ‖∇l_i(θ)‖_∞ (a sampled estimate
    of the supremum). ``G_eff`` (n,): (l_i(θ̄*) − l*_i) / ‖θ̄* − θ*_i‖₁, the smallest
    constant that makes the Lipschitz inequality hold at θ̄*. ``d1`` (n,): ‖θ̄* − θ*_i‖₁.
    ``G_inf_max``: max_i G_i.
    """
    seg = segments(optima, inputs, targets, on_unconverged=on_unconverged)
    fn = flat_sample_loss(model, optima.param_names, optima.param_shapes, loss, output_selector)
    points, t = segment_points(seg, points_per_segment, seed)
    n, p, m = points.shape
    grads = batched_grad(fn, points.reshape(n * p, m), _repeat_rows(seg.inputs, p), _repeat_rows(seg.targets, p), chunk_size)
    g_inf = grads.abs().amax(dim=1).reshape(n, p).amax(dim=1)
    d1 = seg.delta.abs().sum(dim=1)
    loss_at_center = batched_loss(fn, seg.center.expand(n, m), seg.inputs, seg.targets, chunk_size)
    g_eff = torch.where(d1 > 0, (loss_at_center - seg.loss) / d1, torch.full_like(d1, float("nan")))
    return {
        "G_inf": g_inf,
        "G_eff": g_eff,
        "G_inf_max": float(g_inf.max()),
        "d1": d1,
        "loss_at_center": loss_at_center,
        "points_per_segment": points_per_segment,
        "t": t,
        "seed": seed,
    }


def check_lipschitz(constants: dict) -> AssumptionCheck:
    """Consistent for sample i where G_i ≥ G_eff,i (the inequality at θ̄* is then implied)."""
    g, g_eff = constants["G_inf"], constants["G_eff"]
    consistent = torch.isnan(g_eff) | (g >= g_eff)
    fraction = float(consistent.double().mean())
    detail = (
        f"G_∞ ≥ G_eff on {int(consistent.sum())}/{consistent.numel()} samples (fraction {fraction:.3f}); "
        f"max G_∞ = {float(g.max()):.4g}"
    )
    out = {**constants, "consistent": consistent, "consistent_fraction": fraction}
    return AssumptionCheck("lipschitz", bool(consistent.all()), detail, out)


# ---------------------------------------------------------------- statements

_beta_i = sp.Symbol("beta_i", positive=True)
_G = sp.Symbol("G_inf", positive=True)

SMOOTHNESS = Assumption(
    name="A1",
    statement=sp.Le(sp.Symbol("‖∇l_i(θ) − ∇l_i(θ')‖₂"), _beta_i * sp.Symbol("‖θ − θ'‖₂")),
    estimate=estimate_smoothness,
    check=check_smoothness,
    description="β-smoothness of each l_i on a convex set holding every θ*_j and θ̄*",
)

STATIONARITY = Assumption(
    name="A2",
    statement=sp.Eq(sp.Symbol("‖∇l_i(θ*_i)‖₂"), 0),
    estimate=estimate_stationarity,
    check=check_stationarity,
    description="θ*_i is a stationary point of the solver's objective",
)

SIGN_SIDE = Assumption(
    name="A3",
    statement=sp.Eq(sp.Symbol("sign(θ_0k − θ*_ik)"), sp.Symbol("sign(∂_k l_i(θ_0))")),
    estimate=estimate_sign_side,
    check=check_sign_side,
    description="each optimum lies downhill of θ_0 along every coordinate that moves",
)

LIPSCHITZ = Assumption(
    name="lipschitz",
    statement=sp.Le(sp.Symbol("|l_i(θ) − l_i(θ')|"), _G * sp.Symbol("‖θ − θ'‖₁")),
    estimate=estimate_lipschitz,
    check=check_lipschitz,
    description="l_i is G-Lipschitz w.r.t. ‖·‖₁ on the segments, i.e. ‖∇l_i‖_∞ ≤ G there",
)

for _assumption in (SMOOTHNESS, STATIONARITY, SIGN_SIDE, LIPSCHITZ):
    register_assumption(_assumption)
