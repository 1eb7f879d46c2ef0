"""The sample-wise solvers as small objects: options, pass, stopping rule, update
(docs/theory.md §2, the solver table).

A `Solver` holds

- ``options``: its option table (`Option`: name, default per dtype, check). This table
  is the one source of truth: `sample_wise_optima` resolves options with it and the
  validation config (``empirical/validation/schema.py``) builds its fields from it;
- ``needs``: what it needs from a pass (`theory.passes`): ``"gradient"`` (∇l_i in
  factored form), ``"dense_gradient"`` (∇l_i formed, for an update that mixes in
  θ − θ_0) or ``"residual_jacobian"`` (J_i = ∂r_i/∂θ of ``l_i = ½‖r_i‖²``);
- ``stop(ev, theta, theta0, opts) -> (met, carried)``: its stopping criterion at the
  evaluated θ, and the per-sample tensors it computed on the way that the update reuses
  or that are reported (those named in ``records``);
- ``update(theta, ev, opts, live, layers)``: one step of every sample, in place.

The shared runner (`theory.solvers`) composes them: evaluate, stop, record, drop, step.
The four built-in solvers are registered in `SOLVERS` (a `proxies.registry.Registry`),
in the order of the table of docs/theory.md §2.

Example:
    >>> SOLVERS.names()
    ['gauss_newton', 'gd', 'proximal', 'eps_stop']
    >>> [option.name for option in SOLVERS.get("gd").options]
    ['lr', 'max_iter', 'tol']
    >>> SOLVERS.get("gd").resolve_options({"lr": 1}, torch.float32)
    {'lr': 1.0, 'max_iter': 10000, 'tol': 1e-05}
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from proxies.checks import check_choice, check_int, check_number
from proxies.registry import Registry
from theory.factored_linear import FactoredLinears

PASSES = ("gradient", "dense_gradient", "residual_jacobian")


@dataclass(frozen=True)
class Option:
    """One solver option: its default (``default_float64`` where float64 differs), whether
    it is an integer, and whether it must be strictly positive (else ≥ 0)."""

    name: str
    default: float | int
    doc: str
    integer: bool = False
    positive: bool = False
    default_float64: float | None = None

    def default_for(self, dtype: torch.dtype) -> float | int:
        if dtype == torch.float64 and self.default_float64 is not None:
            return self.default_float64
        return self.default

    def check(self, value) -> float | int:
        """The value as int/float, or ``ValueError`` naming the option."""
        if self.integer:
            return check_int(self.name, value, minimum=0)
        return check_number(self.name, value, minimum=0, strict=self.positive)


Stop = Callable[[dict, dict, dict, dict], tuple[Tensor, dict]]
Update = Callable[[dict, dict, dict, Tensor, FactoredLinears], None]


@dataclass(frozen=True)
class Solver:
    """One sample-wise solver (see the module docstring for the fields)."""

    name: str
    rule: str
    options: tuple[Option, ...]
    needs: str
    stop: Stop
    update: Update
    residual_loss: bool = False
    records: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice("needs", self.needs, PASSES)

    def defaults(self, dtype: torch.dtype) -> dict:
        return {option.name: option.default_for(dtype) for option in self.options}

    def resolve_options(self, given: Mapping, dtype: torch.dtype) -> dict:
        """Defaults for ``dtype`` overridden by ``given``, every value checked."""
        known = [option.name for option in self.options]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"solver={self.name!r} has no option(s) {unknown}; valid options: {sorted(known)}")
        values = {**self.defaults(dtype), **given}
        return {option.name: option.check(values[option.name]) for option in self.options}


def _norm(tensors: dict[str, Tensor]) -> Tensor:
    """Per-sample Euclidean norm over all parameters: (c,)."""
    return sum(torch.linalg.vector_norm(t.flatten(1), dim=1).square() for t in tensors.values()).sqrt()


def _gradient_small(ev, theta, theta0, opts):
    return ev["grad_norm"] <= opts["tol"], {}


def _loss_small(ev, theta, theta0, opts):
    return ev["loss"] <= opts["eps"], {}


def _proximal_stationary(ev, theta, theta0, opts):
    direction = {k: g + opts["lam"] * (theta[k] - theta0[k]) for k, g in ev["grads"].items()}
    residual = _norm(direction)
    return residual <= opts["tol"], {"direction": direction, "prox_grad_norm": residual}


def _gradient_step(theta, ev, opts, live, layers):
    lr = opts["lr"]
    for name, g in ev["generic"].items():
        theta[name].add_(g, alpha=-lr)
    layers.descend(theta, ev["delta"], ev["inputs"], lr)


def _proximal_step(theta, ev, opts, live, layers):
    for name, d in ev["direction"].items():
        theta[name].add_(d, alpha=-opts["lr"])


def _gauss_newton_step(theta, ev, opts, live, layers):
    """``Δ = −J_iᵀ(J_iJ_iᵀ + εI)⁻¹ r_i = −J_iᵀu``. Samples that have stopped (``~live``) are
    left be, so a non-finite stopped sample never reaches the linear solve."""
    J = {n: j.flatten(2) for n, j in ev["generic"].items()}
    r = ev["r"]
    G = torch.zeros(r.shape[0], r.shape[1], r.shape[1], dtype=r.dtype, device=r.device)
    for j in J.values():
        G = G + j @ j.mT
    G = layers.add_gram(G, ev["B"], ev["inputs"])
    eye = torch.eye(r.shape[1], dtype=r.dtype, device=r.device)
    G = torch.where(live[:, None, None], G + opts["eps"] * eye, eye)
    u = torch.linalg.solve(G, torch.where(live[:, None], r, 0.0))
    for n, j in J.items():
        theta[n].sub_((u.unsqueeze(1) @ j).view_as(theta[n]))
    delta = {n: torch.einsum("ck,ckto->cto", u, b) for n, b in ev["B"].items()}
    layers.descend(theta, delta, ev["inputs"], 1.0)


def _tol(float64: float) -> Option:
    return Option("tol", 1e-5, "stop once the criterion's gradient norm is at most tol", default_float64=float64)


_MAX_ITER_DOC = "the most steps per sample; a sample still running then is not converged"

GAUSS_NEWTON = Solver(
    name="gauss_newton",
    rule="θ ← θ − J_iᵀ(J_iJ_iᵀ + εI)⁻¹ r_i, until ‖J_iᵀr_i‖ ≤ tol (loss=\"mse\" only)",
    options=(
        Option("eps", 1e-10, "damping ε of the Gram matrix J_iJ_iᵀ + εI"),
        Option("max_iter", 50, _MAX_ITER_DOC, integer=True),
        _tol(1e-10),
    ),
    needs="residual_jacobian",
    stop=_gradient_small,
    update=_gauss_newton_step,
    residual_loss=True,
)
GD = Solver(
    name="gd",
    rule="θ ← θ − lr ∇l_i(θ) from θ_0, until ‖∇l_i‖ ≤ tol",
    options=(Option("lr", 0.01, "step size", positive=True), Option("max_iter", 10000, _MAX_ITER_DOC, integer=True),
             _tol(1e-8)),
    needs="gradient",
    stop=_gradient_small,
    update=_gradient_step,
)
PROXIMAL = Solver(
    name="proximal",
    rule="θ ← θ − lr (∇l_i(θ) + λ(θ − θ_0)), until ‖∇l_i + λ(θ − θ_0)‖ ≤ tol",
    options=(
        Option("lam", 1.0, "λ of the proximal term (λ/2)‖θ − θ_0‖²", positive=True),
        Option("lr", 0.1, "step size", positive=True),
        Option("max_iter", 10000, _MAX_ITER_DOC, integer=True),
        _tol(1e-8),
    ),
    needs="dense_gradient",
    stop=_proximal_stationary,
    update=_proximal_step,
    records=("prox_grad_norm",),
)
EPS_STOP = Solver(
    name="eps_stop",
    rule="the gd path θ ← θ − lr ∇l_i(θ), stopped at the first θ with l_i(θ) ≤ eps",
    options=(
        Option("eps", 0.01, "the loss level ε that stops the path"),
        Option("lr", 0.01, "step size", positive=True),
        Option("max_iter", 10000, _MAX_ITER_DOC, integer=True),
    ),
    needs="gradient",
    stop=_loss_small,
    update=_gradient_step,
)

SOLVERS: Registry[Solver] = Registry("solver")
for _solver in (GAUSS_NEWTON, GD, PROXIMAL, EPS_STOP):
    SOLVERS.add(_solver.name, _solver)


def solver_options() -> dict[str, tuple[Option, ...]]:
    """``{solver name: its option table}`` for every registered solver, in order.

    Example:
        >>> {name: [o.name for o in table] for name, table in solver_options().items()}["eps_stop"]
        ['eps', 'lr', 'max_iter']
    """
    return {name: SOLVERS.get(name).options for name in SOLVERS.names()}
