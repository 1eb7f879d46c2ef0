"""Per-sample derivatives of ``nn.Linear`` and ``nn.Conv2d`` parameters in factored form,
for the solvers.

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

A Conv2d is the same computation at each output position t with ``a_t`` the input patch
under the kernel (``F.unfold``, `conv_patches`) and W viewed as out × (C_in·kh·kw); its
output's positions are read channels last (`conv_positions`). It qualifies on the same
probe as a Linear (the call being ``F.conv2d``) and only where unfold describes it
exactly: one group, zero padding given as numbers, a batched 4-D input.

A layer qualifies only when this is exact: a plain ``nn.Linear`` (``forward`` not
overridden, no hooks of its own), called once per forward pass, whose moving parameters enter the forward
pass exactly once, as the weight (bias) of one ``F.linear`` call, and are not shared
with another module. ``find_factored_linears`` checks this on a probe forward pass; any
other parameter goes the generic way (per-sample autograd of the parameter itself).
"""
from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class ConvGeometry:
    """What ``F.unfold`` needs to turn a Conv2d input into its patches ``a_t``, and the
    weight's shape after the output channel: ``(C_in, kh, kw)``."""

    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]
    weight_shape: tuple[int, int, int]


@dataclass(frozen=True)
class FactoredLinear:
    """One qualifying layer: the names of its moving weight / bias (None if fixed), the
    shape of its output for a batch of one, and for a Conv2d its geometry (None for a
    Linear)."""

    weight: str | None
    bias: str | None
    out_shape: tuple[int, ...]
    conv: ConvGeometry | None = None


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
    """Counts, per watched tensor, the torch calls it is an argument of, and per
    ``(tensor, func)`` the calls of ``F.linear`` / ``F.conv2d`` with the tensor passed
    positionally in the weight/bias slot."""

    def __init__(self, watched: dict[int, str]) -> None:
        super().__init__()
        self.watched = watched
        self.uses: Counter = Counter()
        self.layer_uses: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves, _ = tree_flatten((args, kwargs))
        for leaf in leaves:
            name = self.watched.get(id(leaf)) if isinstance(leaf, Tensor) else None
            if name is not None:
                self.uses[name] += 1
        if func in (F.linear, F.conv2d):
            for slot in args[1:3]:
                name = self.watched.get(id(slot)) if isinstance(slot, Tensor) else None
                if name is not None:
                    self.layer_uses[name, func] += 1
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

    def output_positions(self, d_out: dict[str, Tensor], batch_dims: int) -> dict[str, Tensor]:
        """Each layer's ``∂/∂out`` as ``(*batch, T, out)`` (`positions`, `conv_positions`)."""
        return {name: conv_positions(t, batch_dims) if self.layers[name].conv else positions(t, batch_dims)
                for name, t in d_out.items()}

    def input_positions(self, inputs: dict[str, Tensor], batch_dims: int) -> dict[str, Tensor]:
        """Each layer's input as ``a (*batch, T, in)``: the Linear input's positions, or the
        Conv2d input's patches (`conv_patches`)."""
        return {name: conv_patches(t, batch_dims, self.layers[name].conv) if self.layers[name].conv
                else positions(t, batch_dims) for name, t in inputs.items()}

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
        """``{parameter name: ∂l/∂W (c, *weight shape) or ∂l/∂b (c, out)}``: the factored
        gradients formed (weight, then bias, layer by layer)."""
        grads = {}
        for name, layer in self.layers.items():
            if layer.weight is not None:
                grads[layer.weight] = materialise(delta[name], inputs[name])
                if layer.conv:
                    grads[layer.weight] = grads[layer.weight].unflatten(-1, layer.conv.weight_shape)
            if layer.bias is not None:
                grads[layer.bias] = delta[name].sum(1)
        return grads

    def descend(self, theta: dict[str, Tensor], delta: dict[str, Tensor], inputs: dict[str, Tensor],
                lr: float) -> None:
        """In place, ``W ← W − lr Σ_t δ_t ⊗ a_t`` and ``b ← b − lr Σ_t δ_t`` for every layer
        (one batched ``baddbmm_`` per weight, on a (c, out, in) view of a conv weight): a
        step along ``δ = ∂(·)/∂out``."""
        for name, layer in self.layers.items():
            if layer.weight is not None:
                w = theta[layer.weight]
                w.view(w.shape[0], w.shape[1], -1).baddbmm_(delta[name].mT, inputs[name], alpha=-lr)
            if layer.bias is not None:
                theta[layer.bias].add_(delta[name].sum(1), alpha=-lr)


def _qualifying_kind(module: nn.Module) -> str | None:
    """``"linear"`` / ``"conv2d"`` for a plain nn.Linear / a plain nn.Conv2d that unfold
    describes exactly (one group, zero padding given as numbers), else None."""
    if module._forward_hooks or module._forward_pre_hooks:
        return None  # a hook could change what the layer's output or input is
    if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
        return "linear"
    if (isinstance(module, nn.Conv2d) and type(module).forward is nn.Conv2d.forward
            and type(module)._conv_forward is nn.Conv2d._conv_forward
            and module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)):
        return "conv2d"
    return None


def find_factored_linears(
    model: nn.Module, moving: dict[str, Tensor], run_forward: Callable[[], Tensor]
) -> FactoredLinears:
    """The nn.Linear and nn.Conv2d layers whose moving parameters can be handled in
    factored form.

    ``moving`` maps the moving parameter names to the tensors ``run_forward`` passes to
    ``functional_call`` (their identity is what the probe watches); ``run_forward`` runs
    one sample's forward pass (no gradients needed).
    """
    shared = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    candidates: dict[str, tuple[str, str | None, str | None]] = {}
    for mod_name, module in model.named_modules():
        kind = _qualifying_kind(module)
        if kind is None:
            continue
        prefix = f"{mod_name}." if mod_name else ""
        weight = prefix + "weight" if prefix + "weight" in moving else None
        bias = prefix + "bias" if module.bias is not None and prefix + "bias" in moving else None
        if weight is None and bias is None:
            continue
        own = [getattr(module, attr) for attr, name in (("weight", weight), ("bias", bias)) if name]
        if any(shared[id(p)] != 1 for p in own):
            continue
        candidates[mod_name] = (kind, weight, bias)
    if not candidates:
        return FactoredLinears(model, {})

    modules = dict(model.named_modules())
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(name):
        def run(module, args, output):
            shapes[name] = (tuple(args[0].shape) if args else (), tuple(output.shape))

        return run

    watched = {id(moving[p]): p for _, *pair in candidates.values() for p in pair if p}
    handles = [modules[name].register_forward_hook(record(name)) for name in candidates]
    try:
        with torch.no_grad(), _CountUses(watched) as uses:
            run_forward()
    finally:
        for handle in handles:
            handle.remove()
    layers = {}
    for name, (kind, weight, bias) in candidates.items():
        params = [p for p in (weight, bias) if p]
        func = F.linear if kind == "linear" else F.conv2d
        # Used once, in F.linear / F.conv2d: so the layer ran once and nothing else reads them.
        if not all(uses.uses[p] == 1 == uses.layer_uses[p, func] for p in params):
            continue
        in_shape, out_shape = shapes[name]
        conv = None
        if kind == "conv2d":
            if len(in_shape) != 4:
                continue  # an unbatched (C, H, W) input: not the layout unfold reads
            module = modules[name]
            conv = ConvGeometry(tuple(module.kernel_size), tuple(module.dilation), tuple(module.padding),
                                tuple(module.stride), tuple(module.weight.shape[1:]))
        layers[name] = FactoredLinear(weight, bias, out_shape, conv)
    return FactoredLinears(model, layers)


def conv_positions(t: Tensor, batch_dims: int) -> Tensor:
    """Reshape a Conv2d output ``(*batch, N, C, H, W)`` to ``(*batch, N·H·W, C)``: its
    positions (row-major over N, H, W, the order ``F.unfold`` uses), channels last."""
    return t.movedim(-3, -1).flatten(batch_dims, -2)


def conv_patches(t: Tensor, batch_dims: int, geometry: ConvGeometry) -> Tensor:
    """The Conv2d input ``(*batch, N, C, H, W)`` as patches ``(*batch, N·L, C·kh·kw)``:
    ``a_t`` of each output position t (``F.unfold`` with the layer's geometry)."""
    if t.ndim != batch_dims + 4:
        raise ValueError(f"inputs: a Conv2d input needs {batch_dims} batch dimension(s) and (N, C, H, W), "
                         f"got shape {tuple(t.shape)}")
    if t.shape[-3] * math.prod(geometry.kernel_size) != math.prod(geometry.weight_shape):
        raise ValueError(f"geometry: weight shape (C_in, kh, kw) = {geometry.weight_shape} does not match "
                         f"{t.shape[-3]} input channels and kernel {geometry.kernel_size}")
    lead = t.shape[:batch_dims]
    cols = F.unfold(t.reshape(-1, *t.shape[-3:]), geometry.kernel_size, geometry.dilation,
                    geometry.padding, geometry.stride)
    return cols.mT.reshape(*lead, -1, cols.shape[1])


def positions(t: Tensor, batch_dims: int) -> Tensor:
    """Reshape ``(*batch, ..., features)`` to ``(*batch, T, features)``: the positions of
    one sample's Linear input or output, flattened (T = 1 for an input of one vector)."""
    if t.ndim == batch_dims + 1:
        return t.unsqueeze(batch_dims)
    return t.flatten(batch_dims, -2)


def grad_sq_norm_cost(T: int, out: int, inp: int) -> tuple[bool, int]:
    """``(formed, multiplications)`` per sample of a weight's ``‖∂l/∂W‖²`` (`grad_sq_norm`):
    whether ``δᵀa`` is formed (``T·out·in``) rather than the positions' inner products
    ``Σ_{t,s}(δ_t·δ_s)(a_t·a_s)`` (``T²·(out + in)``), the cheaper of the two."""
    formed, pairs = T * out * inp, T * T * (out + inp)
    return formed < pairs, min(formed, pairs)


def gram_cost(k: int, T: int, out: int, inp: int) -> tuple[bool, int]:
    """``(rows, multiplications)`` per sample of a weight's share of ``J Jᵀ`` (`gram`):
    whether the rows ``J_W`` are formed (``k·T·out·in + k²·out·in``) rather than
    ``Σ_{t,s}(a_t·a_s) B_t B_sᵀ`` (``T²·in + k·T²·out + k²·T·out``), the cheaper."""
    rows = k * T * out * inp + k * k * out * inp
    pairs = T * T * inp + k * T * T * out + k * k * T * out
    return rows < pairs, min(rows, pairs)


def grad_sq_norm(delta: Tensor, inputs: Tensor, weight: bool, bias: bool) -> Tensor:
    """Per-sample ``‖∂l/∂W‖² (+ ‖∂l/∂b‖²)`` from ``δ (c, T, out)`` and ``a (c, T, in)``:
    ``Σ_{t,s}(δ_t·δ_s)(a_t·a_s)``, or ``‖δᵀa‖²`` with ``δᵀa`` formed where that takes fewer
    multiplications (many positions, as in a convolution)."""
    total = torch.zeros(delta.shape[0], dtype=delta.dtype, device=delta.device)
    if weight:
        if grad_sq_norm_cost(delta.shape[1], delta.shape[2], inputs.shape[2])[0]:
            total = total + (delta.mT @ inputs).square().sum((1, 2))
        else:
            total = total + ((delta @ delta.mT) * (inputs @ inputs.mT)).sum((1, 2))
    if bias:
        total = total + delta.sum(1).square().sum(1)
    return total


def gram(B: Tensor, inputs: Tensor, weight: bool, bias: bool) -> Tensor:
    """The layer's share of ``J Jᵀ`` per sample, from ``B (c, k, T, out)``, ``a (c, T, in)``:
    ``Σ_{t,s}(a_t·a_s) B_t B_sᵀ``, or ``J_W J_Wᵀ`` with the rows ``J_W = Σ_t B_t ⊗ a_t``
    formed where that takes fewer multiplications (many positions, few input features)."""
    c, k, T, out = B.shape
    total = torch.zeros(c, k, k, dtype=B.dtype, device=B.device)
    if weight:
        if gram_cost(k, T, out, inputs.shape[2])[0]:
            rows = torch.einsum("ckto,cti->ckoi", B, inputs).flatten(2)
            total = total + rows @ rows.mT
        else:
            weighted = torch.matmul((inputs @ inputs.mT).unsqueeze(1), B)  # Σ_s (a_t·a_s) B_s
            total = total + B.flatten(2) @ weighted.flatten(2).mT
    if bias:
        summed = B.sum(2)
        total = total + summed @ summed.mT
    return total


def materialise(delta: Tensor, inputs: Tensor) -> Tensor:
    """``Σ_t δ_t ⊗ a_t`` per sample: (c, out, in)."""
    return delta.mT @ inputs
