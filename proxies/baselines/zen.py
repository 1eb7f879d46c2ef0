"""Zen-score (Lin et al., ICCV 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance
Image Recognition")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from proxies.baselines._common import (
    forward_hooks, logger, private_buffers, training_mode, undefined,
)
from proxies.engine import functional_view, select_output, validate_batch
from proxies.registry import register

_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def gaussian_parameters(model: nn.Module, generator: torch.Generator) -> dict[str, Tensor]:
    """Zen-NAS's initialisation, as a new parameter dict (the model is not touched).

    Conv/Linear weights ~ N(0, 1), their biases 0; BatchNorm/GroupNorm weights 1, biases
    0; every other parameter keeps its value.
    """
    params, _ = functional_view(model)
    new = dict(params)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            w = module.weight
            new[prefix + "weight"] = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
            if module.bias is not None:
                new[prefix + "bias"] = torch.zeros_like(module.bias.detach())
        elif isinstance(module, (_BatchNorm, nn.GroupNorm)) and module.weight is not None:
            new[prefix + "weight"] = torch.ones_like(module.weight.detach())
            new[prefix + "bias"] = torch.zeros_like(module.bias.detach())
    return new


def _feature_module(model: nn.Module, feature_module: str | None) -> nn.Module | None:
    if feature_module is not None:
        modules = dict(model.named_modules())
        if feature_module not in modules:
            raise ValueError(
                f"feature_module {feature_module!r} is not a submodule name of the model; "
                f"e.g. {[n for n in modules if n][:5]}"
            )
        return modules[feature_module]
    pools = [m for m in model.modules() if isinstance(m, _GLOBAL_POOLS)]
    return pools[-1] if pools else None


@register("zen")
def zen(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    alpha: float = 0.01,
    repeat: int = 1,
    seed: int = 0,
    gaussian_init: bool = True,
    feature_module: str | None = None,
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """zen = log Δ + Σ_i log σ̄_i  (Zen-NAS, the Zen-score).

    Δ = mean_n ‖φ(x_n) − φ(x_n + α ε_n)‖₁ with x, ε ~ N(0, 1) of the shape of `inputs`
    (the L1 norm over the pre-pooling feature map, as the authors' code computes it; the
    paper writes a Frobenius norm). φ is the input of the global average pooling: of the
    module named `feature_module`, by default of the last `AdaptiveAvgPool*d` module,
    or the network output if it has none. σ̄_i = sqrt(mean_j σ²_{i,j}) for each BatchNorm
    call i on x, σ²_{i,j} the (biased) mini-batch variance of its channel j: the paper's
    rescaling term (the authors' code reads `running_var` after the forward passes
    instead). A BatchNorm call whose input is constant (σ̄ = 0: a dead branch, e.g. a
    convolution fed only by NAS-Bench-201's `none` op) rescales no signal and is left
    out of the sum rather than making the score log 0. A network without BatchNorm has
    an empty rescaling sum: the score is log Δ (nothing rescales the features).

    With `gaussian_init` (default, as Zen-NAS) the score is taken at a fresh Gaussian
    initialisation (`gaussian_parameters`), not at the model's own weights; with
    `gaussian_init=False` at the model's weights. `inputs` gives only the shape; `targets`
    and `loss_fn` are unused. Draws come from a `torch.Generator` seeded with `seed`;
    `repeat` > 1 averages that many independent draws. BatchNorm in training mode when
    `train_mode`; hooks are removed and the model is left as it was. Higher = better.

    Undefined, NaN with a logged reason: Δ = 0 (the features do not depend on the
    input), or a non-finite result.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
        ...     torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> isinstance(zen(model, torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)), float)
        True
    """
    validate_batch(inputs, targets)
    if alpha <= 0:
        raise ValueError(f"alpha must be positive (the perturbation scale), got {alpha}")
    if repeat < 1:
        raise ValueError(f"repeat must be a positive integer, got {repeat}")
    generator = torch.Generator().manual_seed(seed)
    feature = _feature_module(model, feature_module)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    _, buffers = functional_view(model)
    captured: dict[str, list[Tensor]] = {"feature": [], "variance": []}

    def capture_feature(i, module):
        def hook(mod, args, output):
            captured["feature"].append(args[0])
        return hook

    def capture_variance(i, module):
        def hook(mod, args, output):
            x = args[0]
            dims = [d for d in range(x.ndim) if d != 1]
            captured["variance"].append(x.var(dim=dims, unbiased=False).mean())
        return hook

    def features(params, x, record_variance):
        captured["feature"].clear()
        feature_modules = [feature] if feature is not None else []
        with forward_hooks(feature_modules, capture_feature), \
                forward_hooks(norms if record_variance else [], capture_variance):
            out = functional_call(model, (params, private_buffers(buffers)), (x,))
        if feature is None:
            return select_output(out, output_selector)
        if not captured["feature"]:
            raise ValueError("the feature module was not called in the forward pass; "
                             "name one that is with feature_module=")
        return captured["feature"][-1]

    scores = []
    with torch.no_grad(), training_mode(model, train_mode):
        for _ in range(repeat):
            params = gaussian_parameters(model, generator) if gaussian_init else functional_view(model)[0]
            x = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype).to(inputs.device)
            eps = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype).to(inputs.device)
            captured["variance"].clear()
            clean = features(params, x, record_variance=True)
            perturbed = features(params, x + alpha * eps, record_variance=False)
            delta = float((clean - perturbed).abs().reshape(x.shape[0], -1).sum(dim=1).mean())
            if not delta > 0:
                return undefined("zen", f"Δ = {delta}: the features do not depend on the input")
            variances = [float(v) for v in captured["variance"]]
            live = [v for v in variances if v > 0]
            if len(live) < len(variances):
                logger.debug("zen: %d BatchNorm calls on a constant input left out",
                             len(variances) - len(live))
            score = math.log(delta) + sum(0.5 * math.log(v) for v in live)
            if not math.isfinite(score):
                return undefined("zen", f"the score is {score} (overflow)")
            scores.append(score)
    return float(sum(scores) / len(scores))
