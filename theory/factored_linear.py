"""Per-sample derivatives of ``nn.Linear`` parameters in factored form, for the solvers.

A Linear layer computes ``out_t = W a_t + b`` at each position t of one sample's input
(one position for a flat input). With ``B_t = ∂f/∂out_t`` (k × out for a k-output
function, a vector for a scalar loss):

- ``∂f/∂W = Σ_t B_t ⊗ a_t`` and ``∂f/∂b = Σ_t B_t``;
- the layer's share of the Gram matrix ``J Jᵀ`` is ``Σ_{t,s} (a_t·a_s) B_t B_sᵀ`` (weight)
  plus ``(Σ_t B_t)(Σ_s B_s)ᵀ`` (bias);
- ``‖∂l/∂W‖² = Σ_{t,s} (δ_t·δ_s)(a_t·a_s)`` for a scalar loss with ``δ_t = ∂l/∂out_t``.

So a solver never needs a sample's k × m Jacobian, or even its gradient, for such a
layer: it differentiates with respect to a zero perturbation ``z`` added to the layer's
output (which gives B, of size k × out) and reads ``a`` with a forward hook; Gram
matrices, norms and updates (``W ← W − δᵀa``, one batched ``baddbmm_``) come from the
factors. That removes most of the memory traffic of a per-sample solver on an MLP.

A layer qualifies only when this is exact: a plain ``nn.Linear`` (``forward`` not
overridden, no hooks of its own), called once per forward pass, whose moving parameters enter the forward
pass exactly once, as the weight (bias) of one ``F.linear`` call, and are not shared
with another module. ``find_factored_linears`` checks this on a probe forward pass; any
other parameter goes the generic way (per-sample autograd of the parameter itself).
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class FactoredLinear:
    """One qualifying layer: the names of its moving weight / bias (None if fixed) and the
    shape of its output for a batch of one."""

    weight: str | None
    bias: str | None
    out_shape: tuple[int, ...]


class _Taps:
    """Forward hooks on the factored layers: while ``z`` is set (inside the solvers'
    transformed functions), add ``z[layer]`` to the output and record the input."""

    def __init__(self) -> None:
        self.z: dict[str, Tensor] | None = None
        self.inputs: dict[str, Tensor] = {}

    def hook(self, name: str) -> Callable:
        def run(module, args, kwargs, output):
            if self.z is None:
                return None
            self.inputs[name] = args[0] if args else kwargs["input"]
            return output + self.z[name]

        return run


class _CountUses(TorchFunctionMode):
    """Counts, per watched tensor, the torch calls it is an argument of (and whether
    the call was ``F.linear`` with the tensor in the weight/bias slot)."""

    def __init__(self, watched: dict[int, str]) -> None:
        super().__init__()
        self.watched = watched
        self.uses: Counter = Counter()
        self.linear_uses: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves, _ = tree_flatten((args, kwargs))
        for position, leaf in enumerate(leaves):
            name = self.watched.get(id(leaf)) if isinstance(leaf, Tensor) else None
            if name is not None:
                self.uses[name] += 1
                if func is F.linear and position in (1, 2):
                    self.linear_uses[name] += 1
        return func(*args, **kwargs)


class FactoredLinears:
    """The qualifying layers of a model and the hooks that expose their factors.

    Use ``with layers.hooked(): ...`` around the solver; inside a transformed function,
    ``with layers.tapping(z) as inputs:`` adds ``z`` and collects the layer inputs.
    """

    def __init__(self, model: nn.Module, layers: dict[str, FactoredLinear]) -> None:
        self.model = model
        self.layers = layers
        self._taps = _Taps()

    @property
    def names(self) -> set[str]:
        """The parameter names handled in factored form."""
        return {p for layer in self.layers.values() for p in (layer.weight, layer.bias) if p}

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        modules = dict(self.model.named_modules())
        handles = [
            modules[name].register_forward_hook(self._taps.hook(name), with_kwargs=True)
            for name in self.layers
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._taps.z = None

    @contextlib.contextmanager
    def tapping(self, z: dict[str, Tensor]) -> Iterator[dict[str, Tensor]]:
        self._taps.z, self._taps.inputs = z, {}
        try:
            yield self._taps.inputs
        finally:
            self._taps.z = None

    def zeros(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """The zero perturbations z (one sample's output shape per layer), on the device of
        each layer's weight."""
        modules = dict(self.model.named_modules())
        return {name: torch.zeros(layer.out_shape, dtype=dtype, device=modules[name].weight.device)
                for name, layer in self.layers.items()}

    def grad_sq_norms(self, delta: dict[str, Tensor], inputs: dict[str, Tensor]) -> list[Tensor]:
        """Each layer's ``‖∂l/∂W‖² + ‖∂l/∂b‖²`` per sample (`grad_sq_norm`), in layer order."""
        return [
            grad_sq_norm(delta[name], inputs[name], layer.weight is not None, layer.bias is not None)
            for name, layer in self.layers.items()
        ]

    def add_gram(self, G: Tensor, B: dict[str, Tensor], inputs: dict[str, Tensor]) -> Tensor:
        """``G`` plus every layer's share of ``J Jᵀ`` (`gram`), added in layer order."""
        for name, layer in self.layers.items():
            G = G + gram(B[name], inputs[name], layer.weight is not None, layer.bias is not None)
        return G

    def dense_gradients(self, delta: dict[str, Tensor], inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{parameter name: ∂l/∂W (c, out, in) or ∂l/∂b (c, out)}``: the factored gradients
        formed (weight, then bias, layer by layer)."""
        grads = {}
        for name, layer in self.layers.items():
            if layer.weight is not None:
                grads[layer.weight] = materialise(delta[name], inputs[name])
            if layer.bias is not None:
                grads[layer.bias] = delta[name].sum(1)
        return grads

    def descend(self, theta: dict[str, Tensor], delta: dict[str, Tensor], inputs: dict[str, Tensor],
                lr: float) -> None:
        """In place, ``W ← W − lr Σ_t δ_t ⊗ a_t`` and ``b ← b − lr Σ_t δ_t`` for every layer
        (one batched ``baddbmm_`` per weight): a step along ``δ = ∂(·)/∂out``."""
        for name, layer in self.layers.items():
            if layer.weight is not None:
                theta[layer.weight].baddbmm_(delta[name].mT, inputs[name], alpha=-lr)
            if layer.bias is not None:
                theta[layer.bias].add_(delta[name].sum(1), alpha=-lr)


def find_factored_linears(
    model: nn.Module, moving: dict[str, Tensor], run_forward: Callable[[], Tensor]
) -> FactoredLinears:
    """The nn.Linear layers whose moving parameters can be handled in factored form.

    ``moving`` maps the moving parameter names to the tensors ``run_forward`` passes to
    ``functional_call`` (their identity is what the probe watches); ``run_forward`` runs
    one sample's forward pass (no gradients needed).
    """
    shared = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    candidates: dict[str, tuple[str | None, str | None]] = {}
    for mod_name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or type(module).forward is not nn.Linear.forward:
            continue
        if module._forward_hooks or module._forward_pre_hooks:
            continue  # a hook could change what the layer's output or input is
        prefix = f"{mod_name}." if mod_name else ""
        weight = prefix + "weight" if prefix + "weight" in moving else None
        bias = prefix + "bias" if module.bias is not None and prefix + "bias" in moving else None
        if weight is None and bias is None:
            continue
        own = [getattr(module, attr) for attr, name in (("weight", weight), ("bias", bias)) if name]
        if any(shared[id(p)] != 1 for p in own):
            continue
        candidates[mod_name] = (weight, bias)
    if not candidates:
        return FactoredLinears(model, {})

    modules = dict(model.named_modules())
    out_shapes: dict[str, tuple[int, ...]] = {}

    def record(name):
        def run(module, args, output):
            out_shapes[name] = tuple(output.shape)

        return run

    watched = {id(moving[p]): p for pair in candidates.values() for p in pair if p}
    handles = [modules[name].register_forward_hook(record(name)) for name in candidates]
    try:
        with torch.no_grad(), _CountUses(watched) as uses:
            run_forward()
    finally:
        for handle in handles:
            handle.remove()
    layers = {}
    for name, (weight, bias) in candidates.items():
        params = [p for p in (weight, bias) if p]
        # Used once, in F.linear: so the layer ran once and nothing else reads them.
        if all(uses.uses[p] == 1 == uses.linear_uses[p] for p in params):
            layers[name] = FactoredLinear(weight, bias, out_shapes[name])
    return FactoredLinears(model, layers)


def positions(t: Tensor, batch_dims: int) -> Tensor:
    """Reshape ``(*batch, ..., features)`` to ``(*batch, T, features)``: the positions of
    one sample's Linear input or output, flattened (T = 1 for an input of one vector)."""
    if t.ndim == batch_dims + 1:
        return t.unsqueeze(batch_dims)
    return t.flatten(batch_dims, -2)


def grad_sq_norm(delta: Tensor, inputs: Tensor, weight: bool, bias: bool) -> Tensor:
    """Per-sample ``‖∂l/∂W‖² (+ ‖∂l/∂b‖²)`` from ``δ (c, T, out)`` and ``a (c, T, in)``."""
    total = torch.zeros(delta.shape[0], dtype=delta.dtype, device=delta.device)
    if weight:
        total = total + ((delta @ delta.mT) * (inputs @ inputs.mT)).sum((1, 2))
    if bias:
        total = total + delta.sum(1).square().sum(1)
    return total


def gram(B: Tensor, inputs: Tensor, weight: bool, bias: bool) -> Tensor:
    """The layer's share of ``J Jᵀ`` per sample, from ``B (c, k, T, out)``, ``a (c, T, in)``."""
    c, k = B.shape[:2]
    total = torch.zeros(c, k, k, dtype=B.dtype, device=B.device)
    if weight:
        weighted = torch.matmul((inputs @ inputs.mT).unsqueeze(1), B)  # Σ_s (a_t·a_s) B_s
        total = total + B.flatten(2) @ weighted.flatten(2).mT
    if bias:
        summed = B.sum(2)
        total = total + summed @ summed.mT
    return total


def materialise(delta: Tensor, inputs: Tensor) -> Tensor:
    """``Σ_t δ_t ⊗ a_t`` per sample: (c, out, in)."""
    return delta.mT @ inputs
