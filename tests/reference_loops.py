"""Slow, obvious reference computations the fast code is tested against."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from theory.optima import SampleWiseOptima


def loop_per_sample_grads(model, inputs, targets, loss_fn=F.cross_entropy, names=None):
    """One backward pass per sample on the module itself (state restored after)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    named = dict(model.named_parameters())
    names = list(named) if names is None else names
    rows = {n: [] for n in names}
    for i in range(inputs.shape[0]):
        model.zero_grad(set_to_none=True)
        loss_fn(model(inputs[i : i + 1]), targets[i : i + 1]).backward()
        for n in names:
            g = named[n].grad
            rows[n].append(torch.zeros_like(named[n]) if g is None else g.detach().clone())
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    return {n: torch.stack(r) for n, r in rows.items()}


def algorithm1_literal(model, inputs, targets, loss_fn=F.cross_entropy):
    """GradSign, Algorithm 1 of the paper, literally: per-sample backward, numpy signs.

    Returns the per-coordinate sums s_k (int64 numpy array, Conv2d/Linear weights only).
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = None
    for i in range(inputs.shape[0]):
        model.zero_grad(set_to_none=True)
        loss_fn(model(inputs[i : i + 1]), targets[i : i + 1]).backward()
        signs = np.concatenate(
            [np.sign(m.weight.grad.detach().numpy()).ravel().astype(np.int64)
             if m.weight.grad is not None else np.zeros(m.weight.numel(), np.int64)
             for m in layers]
        )
        total = signs if total is None else total + signs
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    return total


def linear_optima(model, X, Y):
    """W*_i = W0 − r_i x_iᵀ/‖x_i‖² (docs/theory.md §2), computed directly."""
    W0 = model.weight.detach()
    r = X @ W0.T - Y
    W = W0[None] - r[:, :, None] * X[:, None, :] / X.pow(2).sum(1)[:, None, None]
    n = X.shape[0]
    return SampleWiseOptima(
        theta=W.reshape(n, -1), loss=torch.zeros(n, dtype=X.dtype), grad_norm=torch.zeros(n, dtype=X.dtype),
        iterations=torch.zeros(n, dtype=torch.long), converged=torch.ones(n, dtype=torch.bool),
        theta0=W0.reshape(-1), param_names=("weight",), param_shapes=(tuple(W0.shape),),
        solver="gauss_newton", options={}, loss_name="mse",
    )
