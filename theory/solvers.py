"""Sample-wise optima θ*_i of the per-sample losses l_i (docs/theory.md §2).

``sample_wise_optima`` runs one optimisation per training sample, all of them as one
batched computation: the per-sample loss ``l_i(θ) = l(f_θ(x_i), y_i)`` is written for one
``(θ, x, y)`` with ``torch.func.functional_call`` and vmapped over ``(θ_i, x_i, y_i)``, so
every sample carries its own parameters. Samples are processed in chunks; within a
chunk, a sample whose stopping criterion is met is recorded at once and dropped from the
batched computation once a quarter of the working set has stopped (until then it is
carried along, its later values unused).

Parameters of plain ``nn.Linear`` layers are handled in factored form
(``theory.factored_linear``): their per-sample gradients and Jacobians are never formed;
Gram matrices, norms and updates come from ∂/∂(layer output) and the layer input. This is
exact and removes most of the memory traffic on an MLP; ``factored_linear=False``
differentiates every parameter directly.

Solvers (the table of §2):

- ``gauss_newton`` (loss="mse" only): ``θ ← θ + Δ``, ``Δ = −J_iᵀ(J_iJ_iᵀ + εI)⁻¹ r_i`` with
  ``r_i = f_θ(x_i) − y_i`` and ``J_i = ∂r_i/∂θ``; the min-norm step towards the zero-loss
  manifold. Options ``eps`` (1e-10), ``max_iter`` (50), ``tol`` (stop when
  ``‖∇l_i‖ = ‖J_iᵀr_i‖ ≤ tol``; 1e-10 in float64, 1e-5 otherwise). When every moving
  parameter is factored, one Jacobian pass per iteration serves both the check and the
  step; otherwise the check takes a gradient pass and the Jacobian is formed only for the
  samples still running.
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
``DEFAULT_SOLVER_BUDGET_BYTES`` under the estimate ``itemsize · (4m + k·m_g + (k + 2)·o +
64·d_in)`` bytes per sample: a few parameter-sized state and work vectors, the Jacobian
``k × m_g`` of the parameters not factored (k = output size for ``gauss_newton``, 0 for
the others), the factors (o = total Linear output size) and a crude allowance for
activations. The budget is small on purpose: on the 2-core machine of
``bench/bench_psi.py`` chunks of a few tens of MB ran faster than larger ones (fresh
large allocations cost page faults at every step). Results do not depend on the chunk
size beyond round-off.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.utils._pytree import tree_map

from proxies.engine import (
    functional_view,
    per_sample_buffers,
    private_buffers,
    select_param_names,
    validate_batch,
)
from theory.factored_linear import (
    FactoredLinears,
    find_factored_linears,
    gram,
    grad_sq_norm,
    materialise,
    positions,
)
from theory.losses import ResolvedLoss, check_targets, resolve_loss, residual
from theory.optima import SampleWiseOptima

log = logging.getLogger(__name__)

DEFAULT_SOLVER_BUDGET_BYTES = 160 * 2**20

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
    factored_linear: bool = True,
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
    k = probe.numel() if solver == "gauss_newton" else 0
    if chunk_size is None:
        m_generic = sum(p.numel() for name, p in diff.items() if name not in layers.names)
        m_outputs = sum(math.prod(layer.out_shape) for layer in layers.layers.values())
        per_sample = dtype.itemsize * (4 * m + k * m_generic + (k + 2) * m_outputs + 64 * inputs[0].numel())
        chunk_size = max(1, min(n, DEFAULT_SOLVER_BUDGET_BYTES // per_sample))
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")

    problem = _Problem(solver, forward, resolved_loss, layers, names, dtype)
    theta = torch.empty(n, m, dtype=dtype, device=theta0.device)
    results = []
    with layers.hooked():
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            log.debug("%s: samples %d..%d of %d", solver, start, stop - 1, n)
            results.append(
                _run_chunk(problem, diff, buffers, inputs[start:stop], targets[start:stop], options, theta[start:stop])
            )
    fields = {key: torch.cat([r[key] for r in results]) for key in results[0]}
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


class _Problem:
    """The batched per-iteration computations of one solver.

    Parameters are dicts ``name -> (c, *shape)`` (no flat vector inside the loop). The
    moving parameters of factored Linear layers (see ``theory.factored_linear``) are
    passed to the model as plain per-sample inputs; their derivatives come from a zero
    perturbation ``z`` of the layer output and the layer input ``a``. Every other moving
    parameter ("generic") is differentiated directly.

    ``evaluate`` returns ``{"loss", "grad_norm", ...}`` plus what ``step`` needs, every
    tensor with the samples as leading dimension (so the runner can drop samples):
    for the gradient solvers ``generic`` (gradients), ``delta`` (∂l/∂out, (c, T, out))
    and ``inputs`` (a, (c, T, in)); for Gauss–Newton ``generic`` (Jacobians
    (c, k, *shape)), ``B`` (∂r/∂out, (c, k, T, out)), ``inputs`` and ``r`` (c, k), from
    ``jacobian_pass`` (see ``separate_jacobian_pass`` for when it runs).
    """

    def __init__(self, solver, forward, resolved_loss, layers: FactoredLinears, names, dtype):
        self.solver = solver
        self.layers = layers
        self.generic_names = [name for name in names if name not in layers.names]
        self.factored_names = [name for name in names if name in layers.names]
        self.z = layers.zeros(dtype)

        def outputs(generic, z, frozen, bufs, x):
            with layers.tapping(z) as taps:
                out = forward({**generic, **frozen}, bufs, x)
                a = dict(taps)
            return out, a

        def sample_loss(generic, z, frozen, bufs, x, y):
            out, a = outputs(generic, z, frozen, bufs, x)
            value = resolved_loss.fn(out, y.unsqueeze(0))
            return value, (value, a)

        def sample_residual(generic, z, frozen, bufs, x, y):
            out, a = outputs(generic, z, frozen, bufs, x)
            r = residual(out, y.unsqueeze(0))
            return r, (r, a)

        in_dims = (0, None, 0, 0, 0, 0)
        self._gradients = vmap(grad(sample_loss, argnums=(0, 1), has_aux=True), in_dims=in_dims)
        self._jacobians = vmap(jacrev(sample_residual, argnums=(0, 1), has_aux=True), in_dims=in_dims)
        # Gauss–Newton: with every moving parameter factored the Jacobian pass is cheap, and
        # one pass per iteration serves the convergence check and the step. Otherwise the
        # check takes a gradient pass and the (k times dearer) Jacobian is formed only for
        # the samples still in the working set (`jacobian_pass`).
        self.separate_jacobian_pass = solver == "gauss_newton" and bool(self.generic_names)

    def _split(self, theta):
        return ({n: theta[n] for n in self.generic_names}, {n: theta[n] for n in self.factored_names})

    def _factors(self, per_layer: dict[str, Tensor], inputs: dict[str, Tensor], batch_dims: int):
        """Flatten the positions of each layer's derivative and input."""
        return (
            {name: positions(t, batch_dims) for name, t in per_layer.items()},
            {name: positions(t, 1) for name, t in inputs.items()},
        )

    def _grad_sq_norm(self, generic: dict[str, Tensor], delta: dict[str, Tensor], inputs: dict[str, Tensor]):
        parts = [torch.linalg.vector_norm(g.flatten(1), dim=1).square() for g in generic.values()]
        for name, layer in self.layers.layers.items():
            parts.append(grad_sq_norm(delta[name], inputs[name], layer.weight is not None, layer.bias is not None))
        return torch.stack(parts).sum(0)

    def jacobian_pass(self, theta, bufs, x, y) -> dict:
        """Gauss–Newton's Jacobian pass: ``generic``, ``B``, ``inputs``, ``r``."""
        generic, frozen = self._split(theta)
        (d_generic, d_z), (r, a) = self._jacobians(generic, self.z, frozen, bufs, x, y)
        B, inputs = self._factors(d_z, a, 2)
        return {"generic": d_generic, "B": B, "inputs": inputs, "r": r}

    def evaluate(self, theta, bufs, x, y) -> dict:
        if self.solver == "gauss_newton" and not self.separate_jacobian_pass:
            # Every moving parameter is factored here: the gradient J_iᵀr_i is Σ_t δ_t ⊗ a_t
            # with δ = Σ_k r_k B_k.
            ev = self.jacobian_pass(theta, bufs, x, y)
            r = ev["r"]
            delta = {n: torch.einsum("ck,ckto->cto", r, b) for n, b in ev["B"].items()}
            ev["grad_norm"] = self._grad_sq_norm({}, delta, ev["inputs"]).sqrt()
            ev["loss"] = 0.5 * r.square().sum(1)
            return ev
        generic, frozen = self._split(theta)
        (d_generic, d_z), (value, a) = self._gradients(generic, self.z, frozen, bufs, x, y)
        delta, inputs = self._factors(d_z, a, 1)
        ev = {"loss": value, "grad_norm": self._grad_sq_norm(d_generic, delta, inputs).sqrt()}
        if self.solver == "gauss_newton":
            return ev  # the Jacobian pass follows for the samples still running
        if self.solver == "proximal":
            # The proximal direction mixes in θ − θ_0: materialise the factored gradients.
            grads = dict(d_generic)
            for name, layer in self.layers.layers.items():
                if layer.weight is not None:
                    grads[layer.weight] = materialise(delta[name], inputs[name])
                if layer.bias is not None:
                    grads[layer.bias] = delta[name].sum(1)
            ev["grads"] = grads
            return ev
        ev.update(generic=d_generic, delta=delta, inputs=inputs)
        return ev

    def stop(self, theta: dict, ev: dict, theta0: dict, opts: dict):
        """At the evaluated θ: (stopping criterion met, proximal residual norm or None).

        For ``proximal`` the step direction ``∇l_i + λ(θ − θ_0)`` is stored in ``ev``.
        """
        if self.solver == "eps_stop":
            return ev["loss"] <= opts["eps"], None
        if self.solver == "proximal":
            ev["direction"] = {k: g + opts["lam"] * (theta[k] - theta0[k]) for k, g in ev.pop("grads").items()}
            prox = _norm(ev["direction"])
            return prox <= opts["tol"], prox
        return ev["grad_norm"] <= opts["tol"], None

    def step(self, theta: dict, ev: dict, opts: dict, live: Tensor) -> dict:
        """One update of every sample in ``theta`` (in place). Samples that have stopped
        (``~live``, already recorded) may be updated too; Gauss–Newton leaves them be (so
        a non-finite stopped sample never reaches the linear solve)."""
        if self.solver == "proximal":
            for k, d in ev["direction"].items():
                theta[k].add_(d, alpha=-opts["lr"])
            return theta
        if self.solver == "gauss_newton":
            J = {n: j.flatten(2) for n, j in ev["generic"].items()}
            r = ev["r"]
            G = torch.zeros(r.shape[0], r.shape[1], r.shape[1], dtype=r.dtype, device=r.device)
            for j in J.values():
                G = G + j @ j.mT
            for name, layer in self.layers.layers.items():
                G = G + gram(ev["B"][name], ev["inputs"][name], layer.weight is not None, layer.bias is not None)
            eye = torch.eye(r.shape[1], dtype=r.dtype, device=r.device)
            G = torch.where(live[:, None, None], G + opts["eps"] * eye, eye)
            u = torch.linalg.solve(G, torch.where(live[:, None], r, 0.0))  # Δ = −Jᵀ(JJᵀ + εI)⁻¹ r = −Jᵀu
            for n, j in J.items():
                theta[n].sub_((u.unsqueeze(1) @ j).view_as(theta[n]))
            delta = {n: torch.einsum("ck,ckto->cto", u, b) for n, b in ev["B"].items()}
            lr = 1.0
        else:
            lr = opts["lr"]
            for n, g in ev["generic"].items():
                theta[n].add_(g, alpha=-lr)
            delta = ev["delta"]
        for name, layer in self.layers.layers.items():
            if layer.weight is not None:
                theta[layer.weight].baddbmm_(delta[name].mT, ev["inputs"][name], alpha=-lr)
            if layer.bias is not None:
                theta[layer.bias].add_(delta[name].sum(1), alpha=-lr)
        return theta


def _norm(tensors: dict[str, Tensor]) -> Tensor:
    """Per-sample Euclidean norm over all parameters: (c,)."""
    return sum(torch.linalg.vector_norm(t.flatten(1), dim=1).square() for t in tensors.values()).sqrt()


def _run_chunk(
    problem: _Problem, theta0: dict, buffers: dict, x: Tensor, y: Tensor, opts: dict, theta: Tensor
) -> dict:
    """Solve the chunk's samples; θ*_i are written into ``theta`` (c, m), the rest returned."""
    c = x.shape[0]
    dtype = theta.dtype
    spans, start = [], 0
    for p in theta0.values():
        spans.append((start, start + p.numel()))
        start += p.numel()
    loss = torch.full((c,), float("nan"), dtype=dtype, device=x.device)
    grad_norm = torch.full_like(loss, float("nan"))
    prox_norm = torch.full_like(loss, float("nan"))
    iterations = torch.zeros(c, dtype=torch.long, device=x.device)
    converged = torch.zeros(c, dtype=torch.bool, device=x.device)
    diverged = torch.zeros(c, dtype=torch.bool, device=x.device)
    # Working set: rows `idx` of the chunk; `live` marks those still running (all have
    # taken `it` steps). Stopped rows are recorded at once and dropped from the working
    # set in batches.
    idx, xs, ys = torch.arange(c, device=x.device), x, y
    live = torch.ones(c, dtype=torch.bool, device=x.device)
    th = {k: p.unsqueeze(0).repeat(c, *[1] * p.ndim) for k, p in theta0.items()}
    for it in range(opts["max_iter"] + 1):
        # Fresh per-sample buffer copies: training-mode BatchNorm writes its running
        # stats into these, and they are discarded.
        bufs = per_sample_buffers(buffers, len(idx))
        with torch.no_grad():
            ev = problem.evaluate(th, bufs, xs, ys)
            done, prox = problem.stop(th, ev, theta0, opts)
            bad = ~torch.isfinite(ev["loss"]) | ~torch.isfinite(ev["grad_norm"])
            stop = (done | bad if it < opts["max_iter"] else torch.ones_like(done)) & live
            if stop.any():
                rows = idx[stop]
                for (a, b), p in zip(spans, th.values()):
                    theta[rows, a:b] = p[stop].flatten(1)
                loss[rows] = ev["loss"][stop]
                grad_norm[rows] = ev["grad_norm"][stop]
                if prox is not None:
                    prox_norm[rows] = prox[stop]
                iterations[rows] = it
                converged[rows] = (done & ~bad)[stop]
                diverged[rows] = bad[stop]
                live &= ~stop
                if not live.any():
                    break
                # Drop the stopped samples once they are a quarter of the working set
                # (until then they are carried along: cheaper than copying every step).
                if 4 * (len(idx) - int(live.sum())) >= len(idx):
                    keep = live
                    idx, xs, ys, live = idx[keep], xs[keep], ys[keep], live[keep]
                    th = {k: p[keep] for k, p in th.items()}
                    ev = tree_map(lambda t: t[keep], ev)
            if problem.separate_jacobian_pass:
                ev.update(problem.jacobian_pass(th, per_sample_buffers(buffers, len(idx)), xs, ys))
            th = problem.step(th, ev, opts, live)
    out = {
        "loss": loss, "grad_norm": grad_norm,
        "iterations": iterations, "converged": converged, "diverged": diverged,
    }
    if problem.solver == "proximal":
        out["prox_grad_norm"] = prox_norm
    return out
