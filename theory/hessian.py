"""Per-sample losses in flat parameters, their gradients, and Hessian eigenvalues.

The assumptions of docs/theory.md §4 are checked on the functional view of a model: the
loss of sample ``i`` as a function of the flat vector θ that a `SampleWiseOptima` uses
(its ``param_names`` in order; every other parameter and every buffer stays at the
model's value). Gradients are `torch.func.grad`; Hessian–vector products are
`torch.func.jvp` of `grad` (forward-over-reverse), so the Hessian is never formed
(the PyHessian method). Everything is vmapped over (point, sample) pairs.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap

from proxies.engine import functional_view, per_sample_buffers, private_buffers, select_output
from theory.losses import resolve_loss



@dataclass(frozen=True)
class FlatSampleLoss:
    """`fn(θ, buffers, x, y)`: the loss of one sample at flat θ, and the model's buffers.

    Every vmapped evaluation gets its own copy of the buffers (`batched_buffers`), so that
    BatchNorm in training mode, which writes its running statistics in place, neither fails
    under vmap nor touches the caller's tensors; in training mode those statistics do not
    influence the output.
    """

    fn: Callable[[Tensor, dict[str, Tensor], Tensor, Tensor], Tensor]
    buffers: dict[str, Tensor]

    def batched_buffers(self, count: int) -> dict[str, Tensor]:
        return per_sample_buffers(self.buffers, count)


def flat_sample_loss(
    model: nn.Module,
    param_names: tuple[str, ...],
    param_shapes: tuple[tuple[int, ...], ...],
    loss: str | Callable[[Tensor, Tensor], Tensor],
    output_selector: Callable[[object], Tensor] | None = None,
) -> FlatSampleLoss:
    """The loss of one sample (run alone, as a batch of one) as a function of flat θ.

    θ covers `param_names` in order; other parameters and the buffers keep the model's
    values, in the model's current train/eval mode. The caller's module is not touched.
    """
    params, buffers = functional_view(model)
    unknown = [name for name in param_names if name not in params]
    if unknown:
        raise ValueError(f"optima.param_names {unknown} are not parameters of the model")
    fixed = {k: v for k, v in params.items() if k not in param_names}
    sizes = [math.prod(s) for s in param_shapes]
    loss_fn = resolve_loss(loss).fn

    def sample_loss(theta: Tensor, bufs: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        diff = {
            name: chunk.reshape(shape)
            for name, chunk, shape in zip(param_names, torch.split(theta, sizes), param_shapes)
        }
        # Cloned inside the function: grad/jvp refuse in-place writes to captured tensors.
        bufs = private_buffers(bufs)
        out = functional_call(model, ({**fixed, **diff}, bufs), (x.unsqueeze(0),))
        return loss_fn(select_output(out, output_selector), y.unsqueeze(0))

    return FlatSampleLoss(sample_loss, buffers)


def batched_loss(loss: FlatSampleLoss, thetas: Tensor, xs: Tensor, ys: Tensor, chunk_size: int | None = None) -> Tensor:
    """`(B,)` losses l(θ_b, x_b, y_b)."""
    with torch.no_grad():
        return vmap(loss.fn, chunk_size=chunk_size)(thetas, loss.batched_buffers(thetas.shape[0]), xs, ys)


def batched_grad(loss: FlatSampleLoss, thetas: Tensor, xs: Tensor, ys: Tensor, chunk_size: int | None = None) -> Tensor:
    """`(B, m)` gradients ∇_θ l(θ_b, x_b, y_b)."""
    return vmap(grad(loss.fn), chunk_size=chunk_size)(thetas, loss.batched_buffers(thetas.shape[0]), xs, ys)


def batched_hvp(loss: FlatSampleLoss, chunk_size: int | None = None) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """`hvp(thetas, xs, ys, vs) -> (B, m)`: H_b v_b with H_b = ∇²_θ l(θ_b, x_b, y_b).

    Forward-over-reverse: the directional derivative (jvp) of the gradient along v.
    """

    def one(theta: Tensor, bufs: dict[str, Tensor], x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        return jvp(lambda t: grad(loss.fn)(t, bufs, x, y), (theta,), (v,))[1]

    def hvp(thetas: Tensor, xs: Tensor, ys: Tensor, vs: Tensor) -> Tensor:
        return vmap(one, chunk_size=chunk_size)(thetas, loss.batched_buffers(thetas.shape[0]), xs, ys, vs)

    return hvp


def _power_iteration(
    matvec: Callable[[Tensor, Tensor], Tensor], v: Tensor, max_iter: int, tol: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batched power iteration; returns (Rayleigh quotient, ‖Av‖, converged, iterations) per row.

    A row stops once its Rayleigh quotient changes by at most `tol` (relative) in one
    step; only the rows still running are multiplied.
    """
    tiny = torch.finfo(v.dtype).tiny
    v = v / v.norm(dim=1, keepdim=True)
    batch = v.shape[0]
    rayleigh = torch.full((batch,), float("nan"), dtype=v.dtype, device=v.device)
    norm_av = torch.zeros(batch, dtype=v.dtype, device=v.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=v.device)
    iterations = torch.zeros(batch, dtype=torch.long, device=v.device)
    active = torch.arange(batch, device=v.device)
    for _ in range(max_iter):
        av = matvec(v[active], active)
        new = (v[active] * av).sum(dim=1)
        norms = av.norm(dim=1)
        done = (new - rayleigh[active]).abs() <= tol * new.abs().clamp_min(tiny)
        rayleigh[active], norm_av[active], converged[active] = new, norms, done
        iterations[active] += 1
        # A zero Hessian–vector product means v spans only null directions: keep v.
        v[active] = torch.where(norms[:, None] > 0, av / norms.clamp_min(tiny)[:, None], v[active])
        active = active[~done]
        if active.numel() == 0:
            break
    return rayleigh, norm_av, converged, iterations


def top_eigenvalue(
    matvec: Callable[[Tensor, Tensor], Tensor],
    dim: tuple[int, int],
    *,
    dtype: torch.dtype = torch.float32,
    max_iter: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Largest (algebraic) eigenvalue λ_max of each of B symmetric operators, by power iteration.

    `matvec(V, rows)` maps vectors `V` of shape `(len(rows), m)` to the products H_b v_b for
    the operators `b in rows` (an index tensor into the batch); `dim = (B, m)`.

    Power iteration converges to the eigenvalue of largest *magnitude*, which is λ_max only
    when the spectrum is positive-dominant. Choice made here: a first run gives the
    dominant eigenvalue λ_dom (Rayleigh quotient) and ρ = ‖H v‖ ≈ |λ_dom|. Where
    λ_dom > 0 and λ_dom ≥ (1 − 1e-3) ρ, λ_max = λ_dom. Otherwise (negative-dominant
    spectrum, or ± eigenvalues of equal magnitude, where the Rayleigh quotient stalls
    strictly inside (−ρ, ρ)) a second run on the shifted operator H + ρI, whose spectrum
    λ_j + ρ is non-negative, gives λ_max = μ_dom − ρ. λ_max is the constant Lemma 1 needs:
    l_i(θ) − l*_i = ∫₀¹ (1 − t) vᵀ H(θ*_i + t v) v dt ≤ (sup λ_max / 2) ‖v‖² under A2.

    Returns ``{"lambda_max", "spectral_radius", "converged", "iterations"}`` (the last
    counts both runs); the start vectors are Gaussian from `seed`, drawn on the CPU (the
    same vectors on every device) and moved to `device` (default: the CPU).

    Example:
        >>> A = torch.diag(torch.tensor([-5.0, 1.0, 2.0]))[None]
        >>> mv = lambda V, rows: torch.einsum("bij,bj->bi", A[rows], V)
        >>> round(float(top_eigenvalue(mv, (1, 3))["lambda_max"][0]), 3)
        2.0
    """
    batch, m = dim
    gen = torch.Generator().manual_seed(seed)
    v0 = torch.randn(batch, m, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    lam, rho, conv, iterations = _power_iteration(matvec, v0, max_iter, tol)
    lam_max = lam.clone()
    need_shift = ~((lam > 0) & (lam >= (1 - 1e-3) * rho))
    if bool(need_shift.any()):
        rows = need_shift.nonzero().squeeze(1)
        shift = torch.maximum(rho, lam.abs())[rows]

        def shifted(v_sub: Tensor, sub_rows: Tensor) -> Tensor:
            return matvec(v_sub, rows[sub_rows]) + shift[sub_rows, None] * v_sub

        mu, _, conv_s, iters_s = _power_iteration(shifted, v0[rows], max_iter, tol)
        lam_max[rows] = mu - shift
        conv[rows] = conv_s
        iterations[rows] += iters_s
    return {"lambda_max": lam_max, "spectral_radius": rho, "converged": conv, "iterations": iterations}
