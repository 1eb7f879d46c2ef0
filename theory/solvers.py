"""Sample-wise optima θ*_i of the per-sample losses l_i (docs/theory.md §2).

``sample_wise_optima`` runs one optimisation per training sample, all of them as one
batched computation: the per-sample loss ``l_i(θ) = l(f_θ(x_i), y_i)`` is written for one
``(θ, x, y)`` with ``torch.func.functional_call`` and vmapped over ``(θ_i, x_i, y_i)``, so
every sample carries its own parameter vector. Samples are processed in chunks; within a
chunk, a sample whose stopping criterion is met stops updating and drops out of the
batched computation (the others continue).

Solvers (the table of §2):

- ``gauss_newton`` (loss="mse" only): ``θ ← θ + Δ``, ``Δ = −J_iᵀ(J_iJ_iᵀ + εI)⁻¹ r_i`` with
  ``r_i = f_θ(x_i) − y_i`` and ``J_i = ∂r_i/∂θ``; the min-norm step towards the zero-loss
  manifold. Options ``eps`` (1e-10), ``max_iter`` (50), ``tol`` (stop when
  ``‖∇l_i‖ = ‖J_iᵀr_i‖ ≤ tol``; 1e-10 in float64, 1e-5 otherwise). The gradient for the
  check comes from one backward pass; the k × m Jacobian is formed only for the samples
  that take a step.
- ``gd``: ``θ ← θ − lr ∇l_i(θ)`` from θ_0 until ``‖∇l_i‖ ≤ tol``. Options ``lr`` (0.01),
  ``max_iter`` (10000), ``tol`` (1e-8 in float64, 1e-5 otherwise).
- ``proximal``: ``argmin_θ l_i(θ) + (λ/2)‖θ − θ_0‖²`` by gradient descent on that objective
  until its gradient norm is ≤ tol. Options ``lam`` (λ, 1.0), ``lr`` (0.1), ``max_iter``
  (10000), ``tol`` (as ``gd``). Works with any loss, cross-entropy included.
- ``eps_stop``: the first point of the ``gd`` path with ``l_i ≤ eps``; ``converged`` means ε
  was reached. Options ``eps`` (0.01), ``lr`` (0.01), ``max_iter`` (10000).

The gradient solvers converge only for ``lr`` below ``2/β_i`` (β_i the smoothness of the
objective near the path); every solver stops a sample whose loss becomes non-finite (``extra["diverged"]``, not
converged).

**BatchNorm and buffers.** Each sample's forward pass is run alone (a batch of one), with
the model's current train/eval mode: in training mode BatchNorm normalises with that
sample's own statistics (as in the GradSign reference implementation). Buffers are given
to every sample as its own fresh copy at every step, so running statistics are neither
shared between samples nor written back to the caller's model; they never influence the
result (training mode uses batch statistics, eval mode does not update them). Note that
``nn.BatchNorm1d`` in training mode cannot normalise a batch of one: put such a model in
eval mode.

**Chunking.** With ``chunk_size=None`` the chunk holds as many samples as fit
``DEFAULT_SOLVER_BUDGET_BYTES`` under the estimate ``itemsize · (8m + k·m + 64·d_in)``
bytes per sample: a few parameter-sized state and work vectors (θ, gradient, update,
autograd intermediates), the Jacobian ``k × m`` for ``gauss_newton`` (k = output size, 0
for the other solvers) and a crude allowance for activations. Results do not depend on
the chunk size.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, jacrev, vmap

from proxies.engine import (
    functional_view,
    per_sample_buffers,
    private_buffers,
    select_param_names,
    validate_batch,
)
from theory.losses import ResolvedLoss, check_targets, resolve_loss, residual
from theory.optima import SampleWiseOptima

log = logging.getLogger(__name__)

DEFAULT_SOLVER_BUDGET_BYTES = 512 * 2**20

SOLVERS = ("gauss_newton", "gd", "proximal", "eps_stop")


def _default_tol(dtype: torch.dtype, float64_tol: float) -> float:
    return float64_tol if dtype == torch.float64 else 1e-5


def _resolve_options(solver: str, opts: dict, dtype: torch.dtype) -> dict:
    defaults = {
        "gauss_newton": {"eps": 1e-10, "max_iter": 50, "tol": _default_tol(dtype, 1e-10)},
        "gd": {"lr": 0.01, "max_iter": 10000, "tol": _default_tol(dtype, 1e-8)},
        "proximal": {"lam": 1.0, "lr": 0.1, "max_iter": 10000, "tol": _default_tol(dtype, 1e-8)},
        "eps_stop": {"eps": 0.01, "lr": 0.01, "max_iter": 10000},
    }[solver]
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise ValueError(
            f"solver={solver!r} has no option(s) {unknown}; valid options: {sorted(defaults)}"
        )
    resolved = {**defaults, **opts}
    for key, value in resolved.items():
        if key == "max_iter":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"max_iter must be a non-negative int, got {value!r}")
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        if value < 0 or (value == 0 and key in ("lr", "lam")):
            raise ValueError(f"{key} must be {'positive' if key in ('lr', 'lam') else 'non-negative'}, got {value!r}")
        resolved[key] = float(value)
    return resolved


def sample_wise_optima(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "mse",
    solver: str = "gauss_newton",
    *,
    params: str | Sequence[str] = "all",
    chunk_size: int | None = None,
    **solver_options,
) -> SampleWiseOptima:
    """Per-sample optima θ*_i of l_i reached from the model's parameters θ_0 (theory.md §2).

    Args:
        model: the network at θ_0; never mutated (its parameters and buffers are read only).
        inputs: (n, ...) samples; each is run through the model alone.
        targets: (n, ...) targets (float of the output's shape for "mse", class indices
            for "ce").
        loss: "mse" (``½‖f(x_i) − y_i‖²``), "ce", or ``loss(output (1,...), target (1,...))``.
        solver: "gauss_newton" | "gd" | "proximal" | "eps_stop" (see the module docstring
            for the update rules, options and defaults).
        params: which parameters move ("all", "weights" or a list of names); the others
            stay at their θ_0 values.
        chunk_size: samples per batched computation (default from a memory budget).
        **solver_options: the solver's options; the values used, defaults included, are
            recorded in ``result.options``.

    Returns:
        SampleWiseOptima with θ*_i (n, m), l*_i, ‖∇l_i(θ*_i)‖, iterations and converged flags.

    Example:
        >>> model = nn.Linear(3, 1, bias=False).double()
        >>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
        >>> opt = sample_wise_optima(model, X, y, loss="mse", solver="gauss_newton")
        >>> bool(opt.converged.all()), tuple(opt.theta.shape)
        (True, (5, 3))
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    resolved_loss = resolve_loss(loss)
    if solver == "gauss_newton" and not resolved_loss.is_squared:
        raise ValueError(
            f'solver="gauss_newton" needs the residual form of loss="mse" '
            f"(got loss={resolved_loss.name!r}); use solver=\"gd\", \"proximal\" or \"eps_stop\""
        )
    validate_batch(inputs, targets)
    names = select_param_names(model, params)
    all_params, buffers = functional_view(model)
    diff = {name: all_params[name] for name in names}
    fixed = {name: p for name, p in all_params.items() if name not in diff}
    shapes = tuple(tuple(p.shape) for p in diff.values())
    theta0 = torch.cat([p.reshape(-1) for p in diff.values()])
    dtype = theta0.dtype
    if inputs.is_floating_point() and inputs.dtype != dtype:
        raise ValueError(
            f"inputs are {inputs.dtype} but the model's parameters are {dtype}: "
            f"convert one of them (e.g. inputs.to({dtype}))"
        )
    if resolved_loss.name == "mse" and targets.is_floating_point() and targets.dtype != dtype:
        raise ValueError(f"targets are {targets.dtype} but the model's parameters are {dtype}")
    options = _resolve_options(solver, dict(solver_options), dtype)

    def forward(theta: dict[str, Tensor], bufs: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, ({**fixed, **theta}, bufs), (x.unsqueeze(0),))
        if not isinstance(out, Tensor):
            raise ValueError(f"model returned a {type(out).__name__}, not a tensor")
        return out

    with torch.no_grad():
        probe = forward(diff, private_buffers(buffers), inputs[0])
    targets = check_targets(resolved_loss, probe, targets)

    n, m = inputs.shape[0], theta0.numel()
    k = probe.numel() if solver == "gauss_newton" else 0
    if chunk_size is None:
        per_sample = dtype.itemsize * (8 * m + k * m + 64 * inputs[0].numel())
        chunk_size = max(1, min(n, DEFAULT_SOLVER_BUDGET_BYTES // per_sample))
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")

    run_chunk = _CHUNK_RUNNERS[solver]
    evaluate, gn_step = _make_evaluator(solver, forward, resolved_loss)
    results = []
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        log.debug("%s: samples %d..%d of %d", solver, start, stop - 1, n)
        results.append(
            run_chunk(evaluate, gn_step, diff, buffers, inputs[start:stop], targets[start:stop], options)
        )
    fields = {key: torch.cat([r[key] for r in results]) for key in results[0]}
    extra = {key: fields.pop(key) for key in list(fields) if key not in _CORE_FIELDS}
    return SampleWiseOptima(
        theta=fields["theta"],
        loss=fields["loss"],
        grad_norm=fields["grad_norm"],
        iterations=fields["iterations"],
        converged=fields["converged"],
        theta0=theta0.clone(),
        param_names=tuple(names),
        param_shapes=shapes,
        solver=solver,
        options={**options, "chunk_size": chunk_size, "params": params if isinstance(params, str) else list(params)},
        loss_name=resolved_loss.name,
        extra=extra,
    )


_CORE_FIELDS = ("theta", "loss", "grad_norm", "iterations", "converged")


def _make_evaluator(solver: str, forward, resolved_loss: ResolvedLoss):
    """Batched ``evaluate(theta, bufs, x, y) -> {"loss", "grad"}`` and, for
    ``gauss_newton``, the batched step ``gn_step(theta, bufs, x, y, eps) -> new theta``.

    ``theta`` and gradients are dicts ``name -> (c, *shape)``: keeping parameters apart
    (no flat vector inside the loop) spares a concatenation of every per-sample gradient
    and Jacobian. The Jacobian is only formed for samples that take a step: convergence
    is checked on ‖∇l_i‖ = ‖J_iᵀr_i‖ from one backward pass.
    """

    def sample_loss(theta, bufs, x, y):
        return resolved_loss.fn(forward(theta, bufs, x), y.unsqueeze(0))

    value_grad = vmap(grad_and_value(sample_loss))

    def evaluate(theta, bufs, x, y):
        g, value = value_grad(theta, bufs, x, y)
        return {"loss": value, "grad": g}

    if solver != "gauss_newton":
        return evaluate, None

    def residual_with_aux(theta, bufs, x, y):
        r = residual(forward(theta, bufs, x), y.unsqueeze(0))
        return r, r

    jac = vmap(jacrev(residual_with_aux, has_aux=True))

    def gn_step(theta, bufs, x, y, eps):
        J, r = jac(theta, bufs, x, y)  # name -> (c, k, *shape), (c, k)
        rows = {name: j.flatten(2) for name, j in J.items()}
        gram = sum(j @ j.mT for j in rows.values())  # J Jᵀ = Σ_params J_p J_pᵀ
        gram = gram + eps * torch.eye(r.shape[-1], dtype=r.dtype)
        u = torch.linalg.solve(gram, r).unsqueeze(1)  # (c, 1, k)
        return {name: theta[name] - (u @ rows[name]).view_as(theta[name]) for name in theta}

    return evaluate, gn_step


def _norm(tensors: dict[str, Tensor]) -> Tensor:
    """Per-sample Euclidean norm over all parameters: (c,)."""
    return sum(t.flatten(1).square().sum(1) for t in tensors.values()).sqrt()


def _stop_and_direction(solver: str, theta: dict, ev: dict, theta0: dict, opts: dict):
    """At the evaluated θ: (stopping criterion met, step direction, proximal residual norm).

    The direction is what is subtracted from θ, times ``lr``.
    """
    if solver == "eps_stop":
        return ev["loss"] <= opts["eps"], ev["grad"], None
    if solver == "proximal":
        prox_grad = {k: g + opts["lam"] * (theta[k] - theta0[k]) for k, g in ev["grad"].items()}
        prox = _norm(prox_grad)
        return prox <= opts["tol"], prox_grad, prox
    return ev["grad_norm"] <= opts["tol"], ev["grad"], None


def _make_chunk_runner(solver: str):
    def run(evaluate, gn_step, theta0, buffers, x, y, opts):
        c = x.shape[0]
        dtype = next(iter(theta0.values())).dtype
        theta = torch.cat([p.reshape(1, -1) for p in theta0.values()], dim=1).repeat(c, 1)
        loss = torch.full((c,), float("nan"), dtype=dtype)
        grad_norm = torch.full_like(loss, float("nan"))
        prox_norm = torch.full_like(loss, float("nan"))
        iterations = torch.zeros(c, dtype=torch.long)
        converged = torch.zeros(c, dtype=torch.bool)
        diverged = torch.zeros(c, dtype=torch.bool)
        # Working set: the samples still running, compacted whenever some of them stop, so
        # finished samples cost nothing. All of them have taken `it` steps.
        idx, xs, ys = torch.arange(c), x, y
        th = {k: p.unsqueeze(0).repeat(c, *[1] * p.ndim) for k, p in theta0.items()}
        for it in range(opts["max_iter"] + 1):
            # Fresh per-sample buffer copies: training-mode BatchNorm writes its running
            # stats into these, and they are discarded.
            bufs = per_sample_buffers(buffers, len(idx))
            with torch.no_grad():
                ev = evaluate(th, bufs, xs, ys)
                ev["grad_norm"] = _norm(ev["grad"])
                done, direction, prox = _stop_and_direction(solver, th, ev, theta0, opts)
                bad = ~torch.isfinite(ev["loss"]) | ~torch.isfinite(ev["grad_norm"])
                stop = done | bad if it < opts["max_iter"] else torch.ones_like(done)
                if stop.any():
                    rows = idx[stop]
                    theta[rows] = torch.cat([p[stop].flatten(1) for p in th.values()], dim=1)
                    loss[rows] = ev["loss"][stop]
                    grad_norm[rows] = ev["grad_norm"][stop]
                    if prox is not None:
                        prox_norm[rows] = prox[stop]
                    iterations[rows] = it
                    converged[rows] = (done & ~bad)[stop]
                    diverged[rows] = bad[stop]
                    keep = ~stop
                    if not keep.any():
                        break
                    idx, xs, ys = idx[keep], xs[keep], ys[keep]
                    th = {k: p[keep] for k, p in th.items()}
                    direction = {k: d[keep] for k, d in direction.items()}
                if gn_step is not None:
                    bufs = per_sample_buffers(buffers, len(idx))
                    th = gn_step(th, bufs, xs, ys, opts["eps"])
                else:
                    th = {k: p.add_(direction[k], alpha=-opts["lr"]) for k, p in th.items()}
        out = {
            "theta": theta, "loss": loss, "grad_norm": grad_norm,
            "iterations": iterations, "converged": converged, "diverged": diverged,
        }
        if solver == "proximal":
            out["prox_grad_norm"] = prox_norm
        return out

    return run


_CHUNK_RUNNERS = {name: _make_chunk_runner(name) for name in SOLVERS}
