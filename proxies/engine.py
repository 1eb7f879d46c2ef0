"""Per-sample gradient engine shared by every proxy and by `theory`.

All differentiation works on the functional view of a model
(`torch.func.functional_call` over detached copies of its parameters and buffers), so
the caller's module is never mutated. Per-sample gradients are
`vmap(grad(loss_of_one_sample))` evaluated in chunks of samples.

Each sample's forward pass is run alone, as a batch of one: this is what the GradSign
reference implementation does (one `backward()` per sample), and it means BatchNorm in
training mode normalises each sample with that sample's own statistics. Running-stat
buffers are given to every sample as its own copy, so the caller's buffers stay as they
were.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

LossFn = Callable[[Tensor, Tensor], Tensor]
OutputSelector = Callable[[object], Tensor]

# Memory budget for one chunk of per-sample gradients: chunk_size * m float32 values.
# 256 MiB keeps the gradient chunk well below the activations' memory for the networks
# this toolkit scores (NB201 C=16, N=5 has m = 1.5e6: 44 samples per chunk).
DEFAULT_GRAD_BUDGET_BYTES = 256 * 2**20


def functional_view(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Return detached `(params, buffers)` dicts of `model`, for `functional_call`.

    Example:
        >>> params, buffers = functional_view(nn.Linear(3, 2))
        >>> sorted(params)
        ['bias', 'weight']
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    return params, buffers


def select_param_names(model: nn.Module, which: str | Sequence[str] = "all") -> list[str]:
    """Names of the parameters a computation differentiates with respect to.

    `which`:
      - ``"all"``: every trainable parameter, in `named_parameters()` order;
      - ``"weights"``: the ``weight`` of every `Conv*d` and `Linear` module only
        (biases and normalisation parameters excluded): the GradSign reference set;
      - a sequence of parameter names.

    Example:
        >>> select_param_names(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), "weights")
        ['0.weight']
    """
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            "model has no trainable parameters: nothing to differentiate "
            "(check requires_grad on its parameters)"
        )
    if isinstance(which, str):
        if which == "all":
            return trainable
        if which == "weights":
            names = [
                f"{module_name}.weight" if module_name else "weight"
                for module_name, module in model.named_modules()
                if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
            ]
            names = [n for n in names if n in set(trainable)]
            if not names:
                raise ValueError(
                    'params="weights" selects Conv/Linear weights, and this model has none; '
                    'use params="all"'
                )
            return names
        raise ValueError(f'params must be "all", "weights" or a list of names, got {which!r}')
    names = list(which)
    unknown = [n for n in names if n not in set(trainable)]
    if unknown or not names:
        raise ValueError(
            f"params names {unknown or names} are not trainable parameters of the model; "
            f"valid names include {trainable[:5]}"
        )
    return names


def validate_batch(inputs: Tensor, targets: Tensor) -> None:
    """Boundary checks shared by every proxy: non-empty, same length, finite inputs."""
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise ValueError("inputs and targets must be torch tensors")
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch: give at least one sample")
    if targets.ndim == 0 or targets.shape[0] != inputs.shape[0]:
        got = "a scalar" if targets.ndim == 0 else str(targets.shape[0])
        raise ValueError(
            f"inputs and targets have different lengths ({inputs.shape[0]} vs {got}): "
            "give one target per sample"
        )
    if inputs.is_floating_point() and not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or Inf: clean or impute them first")
    if targets.is_floating_point() and not torch.isfinite(targets).all():
        raise ValueError("targets contain NaN or Inf")


def check_class_targets(output: Tensor, targets: Tensor, loss_fn: LossFn) -> None:
    """Class indices must lie in [0, num_classes) for classification losses."""
    if loss_fn not in (F.cross_entropy, F.nll_loss) or targets.is_floating_point():
        return
    num_classes = output.shape[-1]
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"targets hold class index {low if low < 0 else high}, out of range for a "
            f"model with {num_classes} outputs (valid: 0..{num_classes - 1})"
        )


def select_output(output: object, output_selector: OutputSelector | None) -> Tensor:
    """Apply the explicit output selector; refuse to guess inside tuples."""
    if output_selector is not None:
        output = output_selector(output)
    if not isinstance(output, Tensor):
        raise ValueError(
            f"model returned a {type(output).__name__}, not a tensor: pass "
            "output_selector=lambda out: out[k] to say which element is the prediction"
        )
    return output


def default_chunk_size(num_values: int, budget_bytes: int = DEFAULT_GRAD_BUDGET_BYTES) -> int:
    """Samples per chunk so that chunk_size * num_values float32 gradients fit the budget."""
    return max(1, budget_bytes // (4 * max(1, num_values)))


def make_sample_loss(
    model: nn.Module,
    loss_fn: LossFn,
    output_selector: OutputSelector | None,
) -> Callable[[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], Tensor, Tensor], Tensor]:
    """`sample_loss(diff_params, fixed_params, buffers, x, y)`: loss of one sample, run alone."""

    def sample_loss(diff_params, fixed_params, buffers, x, y):
        out = functional_call(model, ({**fixed_params, **diff_params}, buffers), (x.unsqueeze(0),))
        out = select_output(out, output_selector)
        return loss_fn(out, y.unsqueeze(0))

    return sample_loss


def iter_per_sample_grads(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    params: str | Sequence[str] = "all",
    chunk_size: int | None = None,
    output_selector: OutputSelector | None = None,
    at: dict[str, Tensor] | None = None,
) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """Yield `(start, grads)` with `grads[name]` of shape `(c, *param.shape)`.

    Rows are `∇_θ l(f_θ(x_i), y_i)` for samples `start .. start + c - 1`, each sample's
    forward pass run alone, at the model's parameters (or at `at`, a dict of
    replacement parameter values). At most `chunk_size * m` gradient values exist at
    once; the default chunk size keeps them under `DEFAULT_GRAD_BUDGET_BYTES`.
    """
    validate_batch(inputs, targets)
    names = select_param_names(model, params)
    all_params, buffers = functional_view(model)
    if at is not None:
        unknown = set(at) - set(all_params)
        if unknown:
            raise ValueError(f"`at` names unknown parameters: {sorted(unknown)}")
        all_params = {**all_params, **{k: v.detach() for k, v in at.items()}}
    diff_params = {n: all_params[n] for n in names}
    fixed_params = {n: p for n, p in all_params.items() if n not in diff_params}
    num_values = sum(p.numel() for p in diff_params.values())
    if chunk_size is None:
        chunk_size = default_chunk_size(num_values)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")

    sample_loss = make_sample_loss(model, loss_fn, output_selector)
    with torch.no_grad():
        probe = functional_call(model, (all_params, private_buffers(buffers)), (inputs[:1],))
        check_class_targets(select_output(probe, output_selector), targets, loss_fn)

    # Buffers are batched so that BatchNorm's in-place running-stat update in training
    # mode writes into per-sample copies, never into the caller's tensors.
    grad_fn = vmap(grad(sample_loss), in_dims=(None, None, 0, 0, 0))
    n = inputs.shape[0]
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        yield start, grad_fn(
            diff_params, fixed_params, per_sample_buffers(buffers, stop - start),
            inputs[start:stop], targets[start:stop],
        )


def private_buffers(buffers: dict[str, Tensor]) -> dict[str, Tensor]:
    """Copies of the buffers, so BatchNorm's running-stat update never reaches the caller's."""
    return {k: b.clone() for k, b in buffers.items()}


def per_sample_buffers(buffers: dict[str, Tensor], count: int) -> dict[str, Tensor]:
    """One private copy of every buffer per sample (leading dim `count`), for `vmap`.

    BatchNorm in training mode writes its running statistics in place; batched copies let
    it do so under `vmap`, and keep the caller's tensors untouched.
    """
    return {k: b.unsqueeze(0).expand(count, *b.shape).clone() for k, b in buffers.items()}


@contextlib.contextmanager
def training_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put every submodule in train (or eval) mode; restore each module's own flag after."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, flag in saved:
            module.training = flag


def per_sample_grads(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    **options,
) -> dict[str, Tensor]:
    """All per-sample gradients at once: `name -> (n, *param.shape)`.

    Same options as `iter_per_sample_grads`. Memory is n * m values; use the iterator
    for large models.

    Example:
        >>> model = nn.Linear(4, 3)
        >>> g = per_sample_grads(model, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
        >>> tuple(g["weight"].shape)
        (5, 3, 4)
    """
    chunks = [chunk for _, chunk in iter_per_sample_grads(model, inputs, targets, loss_fn, **options)]
    return {name: torch.cat([c[name] for c in chunks]) for name in chunks[0]}


def flatten_grads(grads: dict[str, Tensor], names: Sequence[str] | None = None) -> Tensor:
    """Concatenate per-sample gradients into an `(n, m)` matrix in `names` order."""
    names = list(grads) if names is None else list(names)
    return torch.cat([grads[n].flatten(start_dim=1) for n in names], dim=1)


def num_values(model: nn.Module, params: str | Sequence[str] = "all") -> int:
    """m: the number of scalar parameters in the selection."""
    selected = set(select_param_names(model, params))
    return sum(p.numel() for n, p in model.named_parameters() if n in selected)
