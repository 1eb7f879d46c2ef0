"""Helpers shared by the baseline proxies: batch losses over the functional view,
training-mode and hook scopes that leave the caller's module as it was, NaN-with-reason."""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn
from torch.func import functional_call, grad

from proxies.engine import (  # noqa: F401  (training_mode, private_buffers: re-exported)
    check_class_targets,
    functional_view,
    private_buffers,
    select_output,
    select_param_names,
    training_mode,
    validate_batch,
)

logger = logging.getLogger("proxies.baselines")

#: Modules whose weights the zero-cost-proxy literature scores (foresight's selection).
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def undefined(proxy: str, reason: str) -> float:
    """Log why `proxy` is undefined on this network and return NaN."""
    logger.warning("%s is undefined: %s; returning NaN", proxy, reason)
    return math.nan


@contextlib.contextmanager
def forward_hooks(modules: Sequence[nn.Module], hook_factory: Callable[[int, nn.Module], Callable]):
    """Register `hook_factory(i, module)` as a forward hook on each module; remove them after."""
    handles = []
    try:
        for i, module in enumerate(modules):
            handles.append(module.register_forward_hook(hook_factory(i, module)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, module)` of every Conv/Linear layer, in `named_modules()` order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def batch_loss(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    params: str | Sequence[str] = "weights",
    output_selector=None,
) -> tuple[Callable[[dict[str, Tensor]], Tensor], dict[str, Tensor]]:
    """`(loss, theta)`: `loss(theta) = loss_fn(f(inputs; theta, rest), targets)` on the whole batch.

    `theta` holds the detached values of the selected parameters (see
    `proxies.engine.select_param_names`); the others are held fixed. Each call runs on
    fresh copies of the buffers, so BatchNorm in training mode uses batch statistics and
    leaves the caller's running statistics untouched.
    """
    validate_batch(inputs, targets)
    names = select_param_names(model, params)
    all_params, buffers = functional_view(model)
    theta = {n: all_params[n] for n in names}
    fixed = {n: p for n, p in all_params.items() if n not in theta}

    def loss(diff_params: dict[str, Tensor]) -> Tensor:
        out = functional_call(model, ({**fixed, **diff_params}, private_buffers(buffers)), (inputs,))
        out = select_output(out, output_selector)
        check_class_targets(out, targets, loss_fn)
        return loss_fn(out, targets)

    return loss, theta


def batch_gradient(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    params: str | Sequence[str] = "weights",
    output_selector=None,
    train_mode: bool = True,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """`(theta, ∂L/∂theta)` of the whole-batch loss (see `batch_loss`), in `train_mode`."""
    with training_mode(model, train_mode):
        loss, theta = batch_loss(
            model, inputs, targets, loss_fn, params=params, output_selector=output_selector
        )
        return theta, grad(loss)(theta)
