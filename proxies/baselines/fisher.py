"""Fisher pruning score as a zero-cost proxy (Theis et al., ECCV 2018; Turner et al.,
ICLR 2020; Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

from proxies.baselines._common import forward_hooks, private_buffers, training_mode, weight_layers
from proxies.engine import check_class_targets, functional_view, select_output, validate_batch
from proxies.registry import register


def _mask_view(mask: Tensor, output: Tensor, module: nn.Module) -> Tensor:
    """Broadcast an (n, C) per-sample channel mask against the layer's output."""
    if isinstance(module, nn.Linear):  # channels last: (n, ..., C)
        return mask.reshape(mask.shape[0], *([1] * (output.ndim - 2)), mask.shape[1])
    return mask.reshape(*mask.shape, *([1] * (output.ndim - 2)))  # conv: (n, C, *spatial)


def channel_saliencies(
    model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn=F.cross_entropy, *, output_selector=None
) -> dict[str, Tensor]:
    """g_{nk} = Σ_s a_{nks} ∂L/∂a_{nks} for every Conv/Linear output a, as `name -> (n, C)`.

    Computed as ∂L/∂m_{nk} of a multiplicative channel gate a ↦ a ⊙ (1 + m), at m = 0,
    placed on each layer's output by a forward hook (removed afterwards). L is the loss
    of the whole batch.
    """
    validate_batch(inputs, targets)
    layers = weight_layers(model)
    modules = [m for _, m in layers]
    params, buffers = functional_view(model)
    gates: dict[int, Tensor] = {}

    def gate(i, module):
        def hook(mod, args, output):
            return output * (1 + _mask_view(gates[i], output, mod))
        return hook

    def loss_of_gates(masks: dict[int, Tensor]) -> Tensor:
        gates.clear()
        gates.update(masks)
        out = select_output(
            functional_call(model, (params, private_buffers(buffers)), (inputs,)), output_selector
        )
        check_class_targets(out, targets, loss_fn)
        return loss_fn(out, targets)

    n = inputs.shape[0]
    zeros = {
        i: inputs.new_zeros(n, m.out_features if isinstance(m, nn.Linear) else m.out_channels,
                            dtype=m.weight.dtype)
        for i, m in enumerate(modules)
    }
    with forward_hooks(modules, gate):
        g = grad(loss_of_gates)(zeros)
    # A layer the forward pass never calls gets an all-zero gate gradient: saliency 0.
    return {name: g[i] for i, (name, _) in enumerate(layers)}


@register("fisher")
def fisher(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn=F.cross_entropy,
    *,
    train_mode: bool = True,
    output_selector=None,
) -> float:
    """fisher = Σ_l fan_in_l · Σ_k ½ mean_n g_{nk}²,  g_{nk} = Σ_s a_{nks} ∂L/∂a_{nks}.

    a is the output of Conv/Linear layer l (before any BatchNorm), k its channel (dim 1
    for Conv, the last dim for Linear), s the remaining positions, L the loss of the whole
    batch (mean reduction), so g_{nk} carries a 1/n from L. ½ mean_n g_{nk}² is the
    Fisher saliency of channel k (Theis et al.). Aggregation follows the foresight code
    exactly: each channel's saliency is broadcast to every weight of that channel, then
    all weights are summed, hence the factor fan_in_l = W_l[0].numel() (C_in·kh·kw for a
    Conv, in_features for a Linear). BatchNorm in training mode when `train_mode`; hooks
    are removed and the model is left as it was. Higher = better.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        >>> fisher(model, torch.randn(8, 4), torch.randint(0, 3, (8,))) > 0
        True
    """
    named = dict(model.named_modules())
    with training_mode(model, train_mode):
        saliencies = channel_saliencies(
            model, inputs, targets, loss_fn, output_selector=output_selector
        )
    total = 0.0
    for name, g in saliencies.items():
        fan_in = named[name].weight[0].numel()
        total += fan_in * float((0.5 * g.pow(2).mean(dim=0)).sum())
    return total
