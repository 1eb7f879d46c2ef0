"""Sample-wise optima θ*_i of the per-sample losses l_i (docs/theory.md §2).

``sample_wise_optima`` runs one optimisation per training sample, all of them as one
batched computation: the per-sample loss ``l_i(θ) = l(f_θ(x_i), y_i)`` is written for one
``(θ, x, y)`` with ``torch.func.functional_call`` and vmapped over ``(θ_i, x_i, y_i)``, so
every sample carries its own parameters. A working set of at most ``chunk_size``
samples runs at once, each sample with its own step count; a sample whose stopping
criterion is met is recorded at once and dropped from the batched computation once a
quarter of the working set has stopped (until then it is carried along, its later values
unused), and waiting samples take the freed places from θ_0. So the slow samples of the
whole set finish together rather than one chunk's after another's (on an NB201 cell with
n = 128 the earlier chunk-by-chunk order ran two tails of up to 50 steps).

Parameters of plain ``nn.Linear`` and ``nn.Conv2d`` layers are handled in factored form
(``theory.factored_linear``): their per-sample gradients and Jacobians are never formed;
Gram matrices, norms and updates come from ∂/∂(layer output) and the layer input. This is
exact and removes most of the memory traffic on an MLP; ``factored_linear=False``
differentiates every parameter directly.

Each solver is a small object of ``theory.solver_rules`` (its option table, the pass it
needs, its stopping rule and its update), registered in ``theory.SOLVERS``; the runner
here composes them: per iteration it evaluates the pass (``theory.passes``), applies the
stopping rule, records the samples that stopped, and steps the others. The solvers (the
table of §2; defaults in brackets, from ``theory.solver_options()``):

- ``gauss_newton`` (loss="mse" only): ``θ ← θ + Δ``, ``Δ = −J_iᵀ(J_iJ_iᵀ + εI)⁻¹ r_i`` with
  ``r_i = f_θ(x_i) − y_i`` and ``J_i = ∂r_i/∂θ``; the min-norm step towards the zero-loss
  manifold. Options ``eps`` [1e-10], ``max_iter`` [50], ``tol`` (stop when
  ``‖∇l_i‖ = ‖J_iᵀr_i‖ ≤ tol``; [1e-10] in float64, [1e-5] otherwise). When every moving
  parameter is factored, or the others are fewer entries than the factored ones (e.g.
  BatchNorm's affine parameters beside factored convolutions), one Jacobian pass per
  iteration serves both the check and the step; otherwise the check takes a gradient
  pass and the Jacobian is formed only for the samples still running.
- ``gd``: ``θ ← θ − lr ∇l_i(θ)`` from θ_0 until ``‖∇l_i‖ ≤ tol``. Options ``lr`` [0.01],
  ``max_iter`` [10000], ``tol`` ([1e-8] in float64, [1e-5] otherwise).
- ``proximal``: ``argmin_θ l_i(θ) + (λ/2)‖θ − θ_0‖²`` by gradient descent on that objective
  until its gradient norm is ≤ tol (``extra["prox_grad_norm"]``). Options ``lam`` (λ,
  [1.0]), ``lr`` [0.1], ``max_iter`` [10000], ``tol`` (as ``gd``). Works with any loss,
  cross-entropy included.
- ``eps_stop``: the first point of the ``gd`` path with ``l_i ≤ eps``; ``converged`` means ε
  was reached. Options ``eps`` [0.01], ``lr`` [0.01], ``max_iter`` [10000].

``lr`` and ``lam`` must be positive, ``eps`` and ``tol`` non-negative, ``max_iter`` a
non-negative integer. The gradient solvers converge only for ``lr`` below ``2/β_i`` (β_i
the smoothness of the objective near the path); every solver stops a sample whose loss
becomes non-finite (``extra["diverged"]``, not converged).

**BatchNorm and buffers.** Each sample's forward pass is run alone (a batch of one), with
the model's current train/eval mode: in training mode BatchNorm normalises with that
sample's own statistics (as in the GradSign reference implementation). Buffers are given
to every sample as its own fresh copy at every step, so running statistics are neither
shared between samples nor written back to the caller's model; they never influence the
result (training mode uses batch statistics, eval mode does not update them). Note that
``nn.BatchNorm1d`` in training mode cannot normalise a batch of one: put such a model in
eval mode.

**Chunking.** With ``chunk_size=None`` the working set holds as many samples as fit
``DEFAULT_SOLVER_BUDGET_BYTES`` under the estimate ``itemsize · (4m + k·m_g + (k + 2)·o +
64·d_in)`` bytes per sample: a few parameter-sized state and work vectors, the Jacobian
``k × m_g`` of the parameters not factored (k = output size for ``gauss_newton``, 0 for
the others), the factors (o = total Linear output size) and a crude allowance for
activations. The budget is small on purpose: on the 2-core machine of
``bench/bench_psi.py`` chunks of a few tens of MB ran faster than larger ones (fresh
large allocations cost page faults at every step). Results do not depend on the chunk
size beyond round-off (tested in float64 against one sample at a time); in float32 that
round-off can move a sample across the stopping tolerance, a step more or fewer (on the
NB201 cell of ``bench/bench_psi.py`` Ψ_2 moved by 0.8 %).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils._pytree import tree_map

from proxies.checks import check_choice, check_int
from proxies.engine import (
    functional_view,
    per_sample_buffers,
    private_buffers,
    select_param_names,
    validate_batch,
)
from theory.factored_linear import FactoredLinears, find_factored_linears
from theory.losses import check_targets, resolve_loss
from theory.optima import SampleWiseOptima
from theory.passes import SamplePasses
from theory.solver_rules import SOLVERS, Solver

log = logging.getLogger(__name__)

DEFAULT_SOLVER_BUDGET_BYTES = 160 * 2**20


def sample_wise_optima(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "mse",
    solver: str = "gauss_newton",
    *,
    params: str | Sequence[str] = "all",
    chunk_size: int | None = None,
    factored_linear: bool = True,
    **solver_options,
) -> SampleWiseOptima:
    """Per-sample optima θ*_i of l_i reached from the model's parameters θ_0 (docs/theory.md §2).

    Args:
        model: the network at θ_0; never mutated (its parameters and buffers are read only).
        inputs: (n, ...) samples; each is run through the model alone.
        targets: (n, ...) targets (float of the output's shape for "mse", class indices
            for "ce").
        loss: "mse" (``½‖f(x_i) − y_i‖²``), "ce", or ``loss(output (1,...), target (1,...))``.
        solver: a name of `theory.SOLVERS` ("gauss_newton" | "gd" | "proximal" |
            "eps_stop"; see the module docstring for the update rules, options and
            defaults).
        params: which parameters move ("all", "weights" or a list of names); the others
            stay at their θ_0 values.
        chunk_size: the most samples in one batched computation, the working set
            (default from a memory budget).
        factored_linear: handle qualifying ``nn.Linear`` layers in factored form
            (``theory.factored_linear``; exact, and much less memory traffic). False
            differentiates every parameter directly (to check one route by the other).
            The layers actually factored are recorded in ``result.options``.
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
    rule = SOLVERS.get(check_choice("solver", solver, SOLVERS.names()))
    if not isinstance(factored_linear, bool):
        raise ValueError(f"factored_linear must be True or False, got {factored_linear!r}")
    resolved_loss = resolve_loss(loss)
    if rule.residual_loss and not resolved_loss.is_squared:
        raise ValueError(
            f'solver="{solver}" needs the residual form of loss="mse" '
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
    options = rule.resolve_options(solver_options, dtype)

    def forward(theta: dict[str, Tensor], bufs: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, ({**fixed, **theta}, bufs), (x.unsqueeze(0),))
        if not isinstance(out, Tensor):
            raise ValueError(f"model returned a {type(out).__name__}, not a tensor")
        return out

    probe_output: list[Tensor] = []

    def run_probe() -> Tensor:
        with torch.no_grad():
            probe_output.append(forward(diff, private_buffers(buffers), inputs[0]))
        return probe_output[-1]

    if factored_linear:
        layers = find_factored_linears(model, diff, run_probe)
    else:
        layers = FactoredLinears(model, {})
    probe = probe_output[-1] if probe_output else run_probe()
    targets = check_targets(resolved_loss, probe, targets)

    n, m = inputs.shape[0], theta0.numel()
    k = probe.numel() if rule.needs == "residual_jacobian" else 0
    if chunk_size is None:
        m_generic = sum(p.numel() for name, p in diff.items() if name not in layers.names)
        m_outputs = sum(math.prod(layer.out_shape) for layer in layers.layers.values())
        per_sample = dtype.itemsize * (4 * m + k * m_generic + (k + 2) * m_outputs + 64 * inputs[0].numel())
        chunk_size = max(1, min(n, DEFAULT_SOLVER_BUDGET_BYTES // per_sample))
    else:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)

    passes = SamplePasses(forward, resolved_loss, layers, names, dtype, {n: p.numel() for n, p in diff.items()})
    theta = torch.empty(n, m, dtype=dtype, device=theta0.device)
    with layers.hooked():
        log.debug("%s: %d samples, working set of at most %d", solver, n, chunk_size)
        fields = _run_pool(rule, passes, diff, buffers, inputs, targets, options, theta, chunk_size)
    extra = {key: fields.pop(key) for key in list(fields) if key not in _CORE_FIELDS}
    return SampleWiseOptima(
        theta=theta,
        loss=fields["loss"],
        grad_norm=fields["grad_norm"],
        iterations=fields["iterations"],
        converged=fields["converged"],
        theta0=theta0.clone(),
        param_names=tuple(names),
        param_shapes=shapes,
        solver=solver,
        options={
            **options,
            "chunk_size": chunk_size,
            "params": params if isinstance(params, str) else list(params),
            "factored_linear": sorted(layers.layers),
        },
        loss_name=resolved_loss.name,
        extra=extra,
    )


_CORE_FIELDS = ("loss", "grad_norm", "iterations", "converged")


def _evaluate(rule: Solver, passes: SamplePasses, theta: dict, bufs: dict, x: Tensor, y: Tensor) -> dict:
    """The pass the solver's stopping rule reads. Gauss–Newton: where the generic
    parameters are few (`SamplePasses.one_jacobian_pass`) the Jacobian pass is cheap and
    one pass per iteration serves the check and the step; otherwise the check takes a
    gradient pass and the (k times dearer) Jacobian is formed afterwards, only for the
    samples still running (`_run_pool`)."""
    if rule.needs == "residual_jacobian":
        if passes.one_jacobian_pass:
            return passes.residual_jacobian(theta, bufs, x, y, with_gradient=True)
        return passes.gradient(theta, bufs, x, y, keep=None)
    return passes.gradient(theta, bufs, x, y, keep="dense" if rule.needs == "dense_gradient" else "factors")


def _run_pool(
    rule: Solver, passes: SamplePasses, theta0: dict, buffers: dict, x: Tensor, y: Tensor, opts: dict, theta: Tensor,
    capacity: int,
) -> dict:
    """Solve all samples of ``x`` with a working set of at most ``capacity`` of them; θ*_i
    are written into ``theta`` (n, m), the rest returned. Every sample keeps its own step
    count. A sample whose criterion is met is recorded at once; once a quarter of the
    working set has stopped, the stopped ones are dropped (until then they are carried
    along: cheaper than copying every step) and waiting samples take their places,
    starting from θ_0. So the working set stays full while samples wait, and the slow
    samples of the whole set finish together instead of one chunk after another."""
    n = x.shape[0]
    dtype = theta.dtype
    spans, start = [], 0
    for p in theta0.values():
        spans.append((start, start + p.numel()))
        start += p.numel()
    loss = torch.full((n,), float("nan"), dtype=dtype, device=x.device)
    grad_norm = torch.full_like(loss, float("nan"))
    recorded = {key: torch.full_like(loss, float("nan")) for key in rule.records}
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    converged = torch.zeros(n, dtype=torch.bool, device=x.device)
    diverged = torch.zeros(n, dtype=torch.bool, device=x.device)
    separate_jacobian_pass = rule.needs == "residual_jacobian" and not passes.one_jacobian_pass

    def fresh(first: int, count: int):
        rows = torch.arange(first, first + count, device=x.device)
        params = {k: p.unsqueeze(0).repeat(count, *[1] * p.ndim) for k, p in theta0.items()}
        return rows, params

    # Working set: samples `idx`; `steps` the steps each has taken; `live` those running.
    admitted = min(capacity, n)
    idx, th = fresh(0, admitted)
    xs, ys = x[idx], y[idx]
    steps = torch.zeros(len(idx), dtype=torch.long, device=x.device)
    live = torch.ones(len(idx), dtype=torch.bool, device=x.device)
    while True:
        # Fresh per-sample buffer copies: training-mode BatchNorm writes its running
        # stats into these, and they are discarded.
        bufs = per_sample_buffers(buffers, len(idx))
        with torch.no_grad():
            ev = _evaluate(rule, passes, th, bufs, xs, ys)
            done, carried = rule.stop(ev, th, theta0, opts)
            ev.update(carried)
            bad = ~torch.isfinite(ev["loss"]) | ~torch.isfinite(ev["grad_norm"])
            stop = (done | bad | (steps >= opts["max_iter"])) & live
            if stop.any():
                rows = idx[stop]
                for (a, b), p in zip(spans, th.values()):
                    theta[rows, a:b] = p[stop].flatten(1)
                loss[rows] = ev["loss"][stop]
                grad_norm[rows] = ev["grad_norm"][stop]
                for key, values in recorded.items():
                    values[rows] = ev[key][stop]
                iterations[rows] = steps[stop]
                converged[rows] = (done & ~bad)[stop]
                diverged[rows] = bad[stop]
                live &= ~stop
                if not live.any() and admitted == n:
                    break
                if 4 * (len(idx) - int(live.sum())) >= len(idx):
                    keep = live
                    idx, xs, ys, live, steps = idx[keep], xs[keep], ys[keep], live[keep], steps[keep]
                    th = {k: p[keep] for k, p in th.items()}
                    ev = tree_map(lambda t: t[keep], ev)
            if live.any():
                if separate_jacobian_pass:
                    ev.update(passes.residual_jacobian(th, per_sample_buffers(buffers, len(idx)), xs, ys))
                rule.update(th, ev, opts, live, passes.layers)
                steps += live
            room = min(capacity - len(idx), n - admitted)
            if room > 0:
                rows, params = fresh(admitted, room)
                admitted += room
                idx, xs, ys = torch.cat([idx, rows]), torch.cat([xs, x[rows]]), torch.cat([ys, y[rows]])
                th = {k: torch.cat([th[k], params[k]]) for k in th}
                steps = torch.cat([steps, torch.zeros(room, dtype=torch.long, device=x.device)])
                live = torch.cat([live, torch.ones(room, dtype=torch.bool, device=x.device)])
    return {
        "loss": loss, "grad_norm": grad_norm,
        "iterations": iterations, "converged": converged, "diverged": diverged,
        **recorded,
    }
