"""Bounds on training and population loss in terms of Ψ (docs/theory.md §4, §6).

A `Bound` names the assumptions it needs and carries a sympy expression in Ψ and
constants; `Bound.evaluate` turns it into a number with `sympy.lambdify`, so the formula
that is printed is the formula that is computed. `evaluate_bounds` measures every
constant on a model and its sample-wise optima and compares each bound with the loss it
bounds.

Symbols (the keys of the ``constants`` dict):

- ``n``: number of kept (converged) samples; ``i``: the summation index 0..n−1;
- ``Lbar``: L̄* = (1/n) Σ_i l*_i;  ``d2[i]`` = ‖θ̄* − θ*_i‖²₂;  ``d1[i]`` = ‖θ̄* − θ*_i‖₁;
- ``psi_2``, ``psi_1``: Ψ_2(S), Ψ_1(S) of the kept optima (`theory.psi`);
- ``beta[i]``: β_hess,i and ``beta_max`` = max_i β_hess,i (assumption A1);
- ``G_inf[i]``, ``G_inf_max``: ℓ∞ gradient bounds on the segments (assumption ``lipschitz``);
- ``El_star``: the estimate of E_z l*_z (Theorem 2);
- ``first_order``: (1/n) Σ_i ⟨∇l_i(θ*_i), θ̄* − θ*_i⟩ (measured by A2's estimator);
- ``lam``: λ of ``proximal`` optima, 0 for every other solver (A2's estimator).

Built-in bounds (each an upper bound on the quantity ``measures`` names):

- ``theorem1_per_sample`` (A1, A2): L_S(θ̄*) ≤ L̄* + λΨ_2/2 + (1/2n) Σ_i β_i ‖θ̄* − θ*_i‖²₂.
- ``theorem1_uniform`` (A1, A2): L_S(θ̄*) ≤ L̄* + ((β + 2λ)/4) Ψ_2(S), β = max_i β_i.
- ``theorem1_first_order`` (A1 only): L_S(θ̄*) ≤ L̄* + first_order + (1/2n) Σ_i β_i ‖θ̄* − θ*_i‖²₂.
- ``theorem2`` (A1, A2): E_S E_z l_z(θ̄*) ≤ E l*_z + (β/4)(n+1)/(n−1) Ψ_2(S) + λ n/(2(n−1)) Ψ_2(S).
- ``lipschitz_per_sample`` (lipschitz): L_S(θ̄*) ≤ L̄* + (1/n) Σ_i G_i ‖θ̄* − θ*_i‖₁.
- ``lipschitz_psi1`` (lipschitz): L_S(θ̄*) ≤ L̄* + G Ψ_1(S), G = max_i G_i.

The λ terms (λ = 0 except for ``proximal``, where they are the theorems of docs/theory.md
§4 under its A2): Lemma 1 keeps its first-order term, l_i(θ) ≤ l*_i + ⟨∇l_i(θ*_i), θ − θ*_i⟩
+ (β_i/2)‖θ − θ*_i‖². Proximal stationarity gives ∇l_i(θ*_i) = −λ(θ*_i − θ_0), so the
term is −λ⟨θ*_i − θ_0, θ − θ*_i⟩ (docs/theory.md §4, "Proximal optima").
At θ = θ̄*, Σ_i (θ̄* − θ*_i) = 0 turns its average into λ (1/n) Σ_i ‖θ̄* − θ*_i‖² = λΨ_2/2.
For Theorem 2, with z independent of S and E_S θ̄* = μ, E_S E_z of the term is
λ E_z‖θ*_z − μ‖² = λΨ_2(D)/2 = λ n/(2(n−1)) E_S Ψ_2(S). ``theorem1_first_order`` instead
measures the first-order term (any solver, stationary or not).

The Lipschitz bounds: if ‖∇l_i‖_∞ ≤ G_i on [θ*_i, θ̄*], the mean value theorem and
Hölder give l_i(θ̄*) − l*_i = ⟨∇l_i(ξ), θ̄* − θ*_i⟩ ≤ G_i ‖θ̄* − θ*_i‖₁; averaging over i
gives the per-sample form. Since θ̄* − θ*_i = (1/n) Σ_j (θ*_j − θ*_i), the triangle
inequality gives ‖θ̄* − θ*_i‖₁ ≤ (1/n) Σ_j ‖θ*_j − θ*_i‖₁, whose average over i is Ψ_1.
No stationarity (A2) is needed.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import sympy as sp
import torch
from torch import Tensor, nn

from proxies.checks import check_choice
from theory.assumptions import AssumptionCheck, estimate_smoothness, segments
from theory.hessian import batched_loss, flat_sample_loss
from theory.optima import SampleWiseOptima
from theory.psi import psi
from theory.registry import get_assumption, get_bound, register_bound

n = sp.Symbol("n", integer=True, positive=True)
i = sp.Idx("i")
Lbar = sp.Symbol("Lbar", nonnegative=True)
psi_2 = sp.Symbol("psi_2", nonnegative=True)
psi_1 = sp.Symbol("psi_1", nonnegative=True)
beta_max = sp.Symbol("beta_max")
G_inf_max = sp.Symbol("G_inf_max", nonnegative=True)
El_star = sp.Symbol("El_star", nonnegative=True)
first_order = sp.Symbol("first_order")
lam = sp.Symbol("lam", nonnegative=True)
beta = sp.IndexedBase("beta")
d2 = sp.IndexedBase("d2")
d1 = sp.IndexedBase("d1")
G_inf = sp.IndexedBase("G_inf")


@dataclass(frozen=True)
class Bound:
    """A named upper bound: ``measures`` ≤ ``expression`` under ``assumptions``.

    ``measures`` is ``"train"`` (L_S(θ̄*)) or ``"population"`` (E_z l_z(θ̄*), estimated on
    held-out samples). ``expression`` is a sympy expression in the symbols of this module
    (or any symbols whose names are keys of the constants dict). ``uses`` names further
    assumptions whose *estimators* supply constants without being preconditions.

    Example:
        >>> b = get_bound("theorem1_uniform")
        >>> b.evaluate({"Lbar": 0.5, "beta_max": 2.0, "psi_2": 1.0, "lam": 0.0})
        1.0
    """

    name: str
    assumptions: tuple[str, ...]
    expression: sp.Expr
    measures: str = "train"
    description: str = ""
    uses: tuple[str, ...] = ()

    def __post_init__(self):
        check_choice("measures", self.measures, ("train", "population"))

    @cached_property
    def arguments(self) -> tuple[sp.Basic, ...]:
        """Scalar symbols and indexed bases the expression reads, sorted by name."""
        free = self.expression.free_symbols
        args = [s for s in free if isinstance(s, sp.IndexedBase) or (isinstance(s, sp.Symbol) and not isinstance(s, sp.Idx))]
        return tuple(sorted(args, key=lambda s: str(s)))

    @cached_property
    def _function(self):
        return sp.lambdify(self.arguments, self.expression, "numpy")

    def evaluate(self, constants: dict) -> float:
        """The bound's value from measured constants (tensors become float64 arrays)."""
        values = []
        for arg in self.arguments:
            key = str(arg)
            if key not in constants:
                raise ValueError(f"bound {self.name!r} needs constant {key!r}; got {sorted(constants)}")
            value = constants[key]
            if isinstance(value, Tensor):
                value = value.detach().to(torch.float64).cpu().numpy()
            values.append(int(value) if arg == n else value)
        return float(self._function(*values))


THEOREM1_PER_SAMPLE = Bound(
    "theorem1_per_sample", ("A1", "A2"),
    Lbar + lam * psi_2 / 2 + sp.Sum(beta[i] * d2[i], (i, 0, n - 1)) / (2 * n),
    description="Theorem 1, per-sample β_i: average of Lemma 1 at θ̄*",
)
THEOREM1_UNIFORM = Bound(
    "theorem1_uniform", ("A1", "A2"),
    Lbar + (beta_max + 2 * lam) / 4 * psi_2,
    description="Theorem 1 with β = max_i β_i and (1/n) Σ ‖θ̄* − θ*_i‖² = Ψ_2/2",
)
THEOREM1_FIRST_ORDER = Bound(
    "theorem1_first_order", ("A1",),
    Lbar + first_order + sp.Sum(beta[i] * d2[i], (i, 0, n - 1)) / (2 * n),
    description="Theorem 1 without stationarity: Lemma 1 keeps its first-order term",
    uses=("A2",),
)
THEOREM2 = Bound(
    "theorem2", ("A1", "A2"),
    El_star + beta_max / 4 * (n + 1) / (n - 1) * psi_2 + lam * n / (2 * (n - 1)) * psi_2,
    measures="population",
    description="Theorem 2 (a statement in expectation over S; one draw is compared)",
)
LIPSCHITZ_PER_SAMPLE = Bound(
    "lipschitz_per_sample", ("lipschitz",),
    Lbar + sp.Sum(G_inf[i] * d1[i], (i, 0, n - 1)) / n,
    description="mean value theorem + Hölder (‖·‖_∞ gradient, ‖·‖₁ distance), averaged",
)
LIPSCHITZ_PSI1 = Bound(
    "lipschitz_psi1", ("lipschitz",),
    Lbar + G_inf_max * psi_1,
    description="lipschitz_per_sample with G = max_i G_i and (1/n) Σ_i ‖θ̄* − θ*_i‖₁ ≤ Ψ_1",
)

for _bound in (THEOREM1_PER_SAMPLE, THEOREM1_UNIFORM, THEOREM1_FIRST_ORDER, THEOREM2, LIPSCHITZ_PER_SAMPLE, LIPSCHITZ_PSI1):
    register_bound(_bound)


def _accepted(estimator, options: dict) -> dict:
    """The options an estimator declares (all of them if it takes **kwargs)."""
    params = inspect.signature(estimator).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def evaluate_bounds(
    names: Sequence[str],
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    optima: SampleWiseOptima,
    loss="mse",
    *,
    heldout: tuple[Tensor, Tensor, SampleWiseOptima] | None = None,
    on_unconverged: str = "raise",
    seed: int = 0,
    chunk_size: int | None = None,
    output_selector=None,
    assumption_options: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Measure the constants the named bounds need and evaluate each bound.

    For each name returns ``{"value", "measured", "holds", "constants", "assumptions"}``:
    ``value`` the bound, ``measured`` the quantity it bounds, ``holds`` whether
    ``measured ≤ value`` (None when nothing was measured), ``constants`` everything the
    bound was evaluated from, ``assumptions`` the `AssumptionCheck` of each assumption it
    names.

    What is estimated from what:

    - samples whose solver did not converge are dropped (``on_unconverged="exclude"``) or
      refused (``"raise"``); n, θ̄*, L̄*, Ψ and the ``d`` vectors come from the kept ones;
    - "train" bounds: measured = L_S(θ̄*) = (1/n) Σ_i l_i(θ̄*) over the kept samples;
    - ``theorem2``: with ``heldout = (X_test, Y_test, optima_test)`` — the optima of held-out
      samples from the same θ_0 by the same solver — E l*_z is the mean of their converged
      l*_z, measured = mean over every held-out sample of l_z(θ̄*) (an estimate of
      E_z l_z(θ̄*) for this one draw of S), and β = max of β_hess over the training
      segments and the held-out segments [θ*_z, θ̄*]. Without ``heldout``, E l*_z is
      estimated by L̄* (each l*_i depends only on z_i and θ_0, so the l*_i are i.i.d. draws
      of l*_z) and measured/holds are None. The theorem bounds an expectation over draws
      of S, so a single draw above the value is not a contradiction by itself.

    `seed` seeds the segment points and power-iteration starts; `assumption_options`
    maps an assumption name to extra keyword options of its estimator (for example
    ``{"A1": {"points_per_segment": 4}, "A2": {"tol": 1e-6}}``).

    Example (a linear model with squared loss, whose l_i are quadratics: Theorem 1 holds):

        >>> import theory
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Linear(3, 2).double()
        >>> X, Y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
        >>> opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton")
        >>> res = evaluate_bounds(["theorem1_uniform"], model, X, Y, opt, "mse")
        >>> res["theorem1_uniform"]["holds"], res["theorem1_uniform"]["assumptions"]["A1"].holds
        (True, True)
        >>> res["theorem1_uniform"]["measured"] <= res["theorem1_uniform"]["value"]
        True
    """
    bounds = [get_bound(name) for name in names]
    assumption_options = assumption_options or {}
    common = {"on_unconverged": on_unconverged, "seed": seed, "chunk_size": chunk_size, "output_selector": output_selector}

    seg = segments(optima, inputs, targets, on_unconverged=on_unconverged)
    fn = flat_sample_loss(model, optima.param_names, optima.param_shapes, loss, output_selector)
    count, m = seg.theta.shape
    base = {
        "n": count,
        "Lbar": float(seg.loss.double().mean()),
        "d2": seg.delta.pow(2).sum(dim=1),
        "d1": seg.delta.abs().sum(dim=1),
        "psi_2": psi(seg.theta, 2),
        "psi_1": psi(seg.theta, 1),
    }
    train_loss = float(batched_loss(fn, seg.center.expand(count, m), seg.inputs, seg.targets, chunk_size).double().mean())

    checks: dict[str, AssumptionCheck] = {}
    for name in dict.fromkeys(a for b in bounds for a in (*b.assumptions, *b.uses)):
        assumption = get_assumption(name)
        options = {**_accepted(assumption.estimate, common), **assumption_options.get(name, {})}
        checks[name] = assumption.check(assumption.estimate(model, inputs, targets, optima, loss, **options))

    results = {}
    for bound in bounds:
        constants = dict(base)
        for name in (*bound.uses, *bound.assumptions):
            constants.update(checks[name].constants)
        measured = train_loss
        if bound.measures == "population":
            measured, constants = _population_constants(
                model, optima, loss, seg.center, constants, heldout, common, assumption_options.get("A1", {})
            )
        value = bound.evaluate(constants)
        results[bound.name] = {
            "value": value,
            "measured": measured,
            "holds": None if measured is None else bool(measured <= value),
            "constants": constants,
            "assumptions": {name: checks[name] for name in bound.assumptions},
        }
    return results


def _population_constants(model, optima, loss, center, constants, heldout, common, a1_options):
    """(measured E_z l_z(θ̄*) or None, constants with El_star and the population β)."""
    if heldout is None:
        return None, {**constants, "El_star": constants["Lbar"]}
    x_test, y_test, optima_test = heldout
    if (
        optima_test.param_names != optima.param_names
        or optima_test.solver != optima.solver
        or optima_test.options.get("lam") != optima.options.get("lam")
    ):
        raise ValueError(
            "heldout optima must cover the same parameters with the same solver (and λ) as the training "
            f"optima (got {optima_test.solver!r} over {optima_test.param_names[:3]}..., expected "
            f"{optima.solver!r} over {optima.param_names[:3]}...)"
        )
    if not torch.equal(optima_test.theta0, optima.theta0):
        raise ValueError("heldout optima must start from the same θ_0 as the training optima")
    fn = flat_sample_loss(model, optima.param_names, optima.param_shapes, loss, common["output_selector"])
    count = x_test.shape[0]
    measured = float(batched_loss(fn, center.expand(count, center.numel()), x_test, y_test, common["chunk_size"]).double().mean())
    held = estimate_smoothness(model, x_test, y_test, optima_test, loss, center=center, **common, **a1_options)
    test_seg = segments(optima_test, x_test, y_test, on_unconverged=common["on_unconverged"], center=center)
    return measured, {
        **constants,
        "El_star": float(test_seg.loss.double().mean()),
        "beta_max": max(constants["beta_max"], held["beta_max"]),
        "beta_train_max": constants["beta_max"],
        "beta_heldout_max": held["beta_max"],
    }
