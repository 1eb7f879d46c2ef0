"""The batched per-sample passes the solvers are built from (docs/theory.md §2).

A pass evaluates, for every sample of a working set at once, the loss ``l_i`` at that
sample's own parameters θ_i and its derivative: the gradient ∇l_i (``gradient``) or the
residual Jacobian ``J_i = ∂r_i/∂θ`` of ``l_i = ½‖r_i‖²`` (``residual_jacobian``). Each
is one ``torch.func`` transform of the loss of one ``(θ, x, y)``, vmapped over samples.

Parameters are dicts ``name -> (c, *shape)`` (no flat vector inside the loop). The moving
parameters of factored Linear layers (``theory.factored_linear``) are passed to the model
as plain per-sample inputs; their derivatives come from a zero perturbation ``z`` of the
layer output and the layer input ``a`` (``δ = ∂l/∂out`` or ``B = ∂r/∂out``). Every other
moving parameter ("generic") is differentiated directly.

Every tensor a pass returns has the samples as leading dimension, so the runner can drop
samples from any of them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, jacrev, vmap

from theory.factored_linear import FactoredLinears
from theory.losses import ResolvedLoss, residual

Forward = Callable[[dict[str, Tensor], dict[str, Tensor], Tensor], Tensor]


class SamplePasses:
    """The gradient and residual-Jacobian passes of one model, loss and set of moving
    parameters (``names``, with ``sizes`` their numbers of entries), with ``layers`` in
    factored form."""

    def __init__(self, forward: Forward, resolved_loss: ResolvedLoss, layers: FactoredLinears,
                 names: list[str], dtype: torch.dtype, sizes: dict[str, int]) -> None:
        self.layers = layers
        self.generic_names = [name for name in names if name not in layers.names]
        self.factored_names = [name for name in names if name in layers.names]
        # Entries of the generic and of the factored moving parameters (`one_jacobian_pass`).
        self._generic_entries = sum(sizes[name] for name in self.generic_names)
        self._factored_entries = sum(sizes[name] for name in self.factored_names)
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

    @property
    def all_factored(self) -> bool:
        """Whether every moving parameter belongs to a factored layer."""
        return not self.generic_names

    @property
    def one_jacobian_pass(self) -> bool:
        """Whether one Jacobian pass should serve a Gauss–Newton iteration's check and step:
        when every moving parameter is factored, or the generic ones are fewer entries than
        the factored ones (e.g. BatchNorm affine parameters beside factored convolutions:
        their Jacobian rows cost little, a separate gradient pass costs a backward pass).
        Without factored layers the check stays a separate gradient pass, so the Jacobian
        is never formed for a sample that stops."""
        if self.all_factored:
            return True
        return bool(self.factored_names) and self._generic_entries < self._factored_entries

    def _split(self, theta: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return ({n: theta[n] for n in self.generic_names}, {n: theta[n] for n in self.factored_names})

    def _grad_norm(self, generic: dict[str, Tensor], delta: dict[str, Tensor], inputs: dict[str, Tensor]) -> Tensor:
        """``‖∇l_i‖`` per sample from the generic gradients and the factors."""
        parts = [torch.linalg.vector_norm(g.flatten(1), dim=1).square() for g in generic.values()]
        parts.extend(self.layers.grad_sq_norms(delta, inputs))
        return torch.stack(parts).sum(0).sqrt()

    def gradient(self, theta: dict[str, Tensor], bufs: dict[str, Tensor], x: Tensor, y: Tensor, *,
                 keep: str | None) -> dict:
        """The gradient pass: ``{"loss", "grad_norm"}`` plus, by ``keep``,

        - ``"factors"``: ``generic`` (∇ of each generic parameter), ``delta`` (∂l/∂out,
          (c, T, out)) and ``inputs`` (a, (c, T, in)) of each factored layer;
        - ``"dense"``: ``grads``, every moving parameter's gradient formed (generic ones
          first, then the factored layers');
        - None: nothing more.
        """
        generic, frozen = self._split(theta)
        (d_generic, d_z), (value, a) = self._gradients(generic, self.z, frozen, bufs, x, y)
        delta = self.layers.output_positions(d_z, 1)
        inputs = self.layers.input_positions(a, 1)
        ev = {"loss": value, "grad_norm": self._grad_norm(d_generic, delta, inputs)}
        if keep == "factors":
            ev.update(generic=d_generic, delta=delta, inputs=inputs)
        elif keep == "dense":
            ev["grads"] = {**d_generic, **self.layers.dense_gradients(delta, inputs)}
        return ev

    def residual_jacobian(self, theta: dict[str, Tensor], bufs: dict[str, Tensor], x: Tensor, y: Tensor, *,
                          with_gradient: bool = False) -> dict:
        """The Jacobian pass: ``generic`` (each generic parameter's rows (c, k, *shape)),
        ``B`` (∂r/∂out, (c, k, T, out)) and ``inputs`` of each factored layer, and ``r`` (c, k).

        ``with_gradient`` adds ``loss`` ½‖r_i‖² and ``grad_norm`` ‖J_iᵀr_i‖, where for a
        factored layer ``J_iᵀr_i = Σ_t δ_t ⊗ a_t`` with ``δ = Σ_k r_k B_k`` and for a generic
        parameter ``J_iᵀr_i = Σ_k r_k J_ik``: one pass then serves a Gauss–Newton
        iteration's check and step.
        """
        generic, frozen = self._split(theta)
        (d_generic, d_z), (r, a) = self._jacobians(generic, self.z, frozen, bufs, x, y)
        B = self.layers.output_positions(d_z, 2)
        inputs = self.layers.input_positions(a, 1)
        ev = {"generic": d_generic, "B": B, "inputs": inputs, "r": r}
        if with_gradient:
            delta = {n: torch.einsum("ck,ckto->cto", r, b) for n, b in B.items()}
            g_generic = {n: torch.einsum("ck,ckm->cm", r, j.flatten(2)) for n, j in d_generic.items()}
            ev["grad_norm"] = self._grad_norm(g_generic, delta, inputs)
            ev["loss"] = 0.5 * r.square().sum(1)
        return ev
