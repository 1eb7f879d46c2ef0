"""Baseline proxies against independent computations of their definitions.

Every reference here is the slow, obvious route: plain autograd on the module itself,
finite differences, python loops over samples, pairs and units, or a value by hand.
"""
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import proxies
from reference_loops import loop_per_sample_grads

BASELINES = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "synflow",
             "naswot", "zen", "zico", "params", "flops"]


def small_cnn(dtype=torch.float32):
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    ).to(dtype)


def tanh_mlp(dtype=torch.float64):
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4)).to(dtype)


def relu_mlp(dtype=torch.float32):
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).to(dtype)


def weights_of(model):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def batch_backward(model, x, y):
    """Plain autograd on the module, train mode, mean loss; returns weight grads. State restored."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    grads = [w.grad.detach().clone() for w in weights_of(model)]
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    for m, f in zip(model.modules(), flags):
        m.training = f
    return grads


def rel_err(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def cnn_batch(n=6, dtype=torch.float32):
    return torch.randn(n, 3, 8, 8, dtype=dtype), torch.randint(0, 5, (n,))


# ---------------------------------------------------------------- batch-gradient proxies


def test_registered_in_order():
    assert proxies.names()[2:] == BASELINES


def test_grad_norm_and_snip_match_module_autograd():
    model = small_cnn()
    x, y = cnn_batch()
    grads = batch_backward(model, x, y)
    weights = [w.detach() for w in weights_of(model)]
    expected_norm = sum(float(g.norm()) for g in grads)
    expected_snip = sum(float((w * g).abs().sum()) for w, g in zip(weights, grads))
    assert rel_err(proxies.compute("grad_norm", model, x, y), expected_norm) < 1e-5
    assert rel_err(proxies.compute("snip", model, x, y), expected_snip) < 1e-5


def test_grasp_matches_finite_difference_hessian_vector_product():
    torch.manual_seed(3)
    model = tanh_mlp()
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 4, (10,))
    weights = weights_of(model)
    g = batch_backward(model, x, y)

    # H g ≈ (∇L(θ + h g) − ∇L(θ − h g)) / 2h, with biases fixed: central differences.
    h = 1e-5
    originals = [w.detach().clone() for w in weights]

    def grads_at(sign):
        with torch.no_grad():
            for w, w0, gi in zip(weights, originals, g):
                w.copy_(w0 + sign * h * gi)
        out = batch_backward(model, x, y)
        with torch.no_grad():
            for w, w0 in zip(weights, originals):
                w.copy_(w0)
        return out

    plus, minus = grads_at(+1), grads_at(-1)
    hg = [(p - m) / (2 * h) for p, m in zip(plus, minus)]
    expected = -sum(float((w0 * v).sum()) for w0, v in zip(originals, hg))
    assert rel_err(proxies.compute("grasp", model, x, y), expected) < 1e-6


def test_grasp_reverse_over_reverse_on_cnn_with_batchnorm():
    model = small_cnn()
    x, y = cnn_batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weights = weights_of(model)
    model.train()
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, weights, create_graph=True)
    z = sum((gi.detach() * gi).sum() for gi in g)
    hg = torch.autograd.grad(z, weights)
    expected = -sum(float((w.detach() * v).sum()) for w, v in zip(weights, hg))
    model.load_state_dict(state)
    assert rel_err(proxies.compute("grasp", model, x, y), expected) < 1e-4


def test_fisher_matches_activation_gradients_by_autograd():
    model = small_cnn()
    x, y = cnn_batch()
    value = proxies.compute("fisher", model, x, y)

    state = {k: v.clone() for k, v in model.state_dict().items()}
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    acts = {}
    handles = []
    for layer in layers:
        def keep(mod, args, out):
            out.retain_grad()
            acts[mod] = out
        handles.append(layer.register_forward_hook(keep))
    model.train()
    F.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    expected = 0.0
    for layer in layers:
        a = acts[layer]
        prod = (a * a.grad).detach()
        g_nk = prod.sum(dim=(2, 3)) if prod.ndim == 4 else prod
        fan_in = layer.weight[0].numel()
        for k in range(g_nk.shape[1]):
            expected += fan_in * 0.5 * float((g_nk[:, k] ** 2).mean())
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    assert rel_err(value, expected) < 1e-4


# ---------------------------------------------------------------- jacob_cov


def reference_jacob_cov(jacobians, k=1e-5):
    corr = np.corrcoef(jacobians)
    v = np.linalg.eig(corr)[0].real
    return -np.sum(np.log(v + k) + 1.0 / (v + k))


def test_jacob_cov_matches_per_sample_loop_without_batchnorm():
    model = tanh_mlp(torch.float32)
    x = torch.randn(7, 6)
    rows = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        model(xi).sum().backward()
        rows.append(xi.grad.reshape(-1).double().numpy())
    expected = reference_jacob_cov(np.stack(rows))
    value = proxies.compute("jacob_cov", model, x, torch.zeros(7, dtype=torch.long))
    assert rel_err(value, expected) < 1e-6


def test_jacob_cov_batchnorm_batch_jacobian_like_foresight():
    model = small_cnn()
    x, y = cnn_batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    out.backward(torch.ones_like(out))
    expected = reference_jacob_cov(xr.grad.reshape(6, -1).double().numpy())
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    assert rel_err(proxies.compute("jacob_cov", model, x, y), expected) < 1e-5


def test_jacob_cov_undefined_is_nan_with_reason(caplog):
    model = relu_mlp()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # dead first layer: every input Jacobian is 0
    with caplog.at_level(logging.WARNING, logger="proxies.baselines"):
        value = proxies.compute("jacob_cov", model, torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    assert math.isnan(value)
    assert "jacob_cov is undefined" in caplog.text
    assert math.isnan(proxies.compute("jacob_cov", relu_mlp(), torch.randn(1, 5), torch.zeros(1, dtype=torch.long)))


# ---------------------------------------------------------------- synflow


def test_synflow_by_hand_two_layer_linear():
    # |W1| = [[1,2],[3,1]], |b1| = [.5, 1], |W2| = [[2, 1]], |b2| = 3, input 1:
    # h = |W1|1 + |b1| = [3.5, 5];  Σ|W1 ⊙ ∂R/∂W1| = Σ_jk |W2|_j |W1|_jk = 2·3 + 1·4 = 10;
    # Σ|W2 ⊙ ∂R/∂W2| = Σ_j |W2|_j h_j = 7 + 5 = 12.  synflow = 22.
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.BatchNorm1d(2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.5, -1.0]))
        model[2].running_mean.fill_(7.0)  # BatchNorm must act as the identity
        model[2].weight.fill_(-3.0)
        model[3].weight.copy_(torch.tensor([[2.0, -1.0]]))
        model[3].bias.fill_(3.0)
    x = torch.randn(4, 2)
    assert proxies.compute("synflow", model, x, torch.zeros(4)) == 22.0


def test_synflow_cnn_matches_module_autograd_in_double():
    model = small_cnn()
    value = proxies.compute("synflow", model, *cnn_batch())
    # Independent route: a BatchNorm-free copy of the network, |θ|, float64, module autograd.
    plain = nn.Sequential(*[m for m in small_cnn() if not isinstance(m, nn.BatchNorm2d)]).double()
    source = [m for m in model if not isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for dst, src in zip(plain, source):
            for p_dst, p_src in zip(dst.parameters(), src.parameters()):
                p_dst.copy_(p_src.abs())
    plain(torch.ones(1, 3, 8, 8, dtype=torch.float64)).sum().backward()
    expected = sum(float((w.detach() * w.grad).abs().sum()) for w in weights_of(plain))
    assert rel_err(value, expected) < 1e-12


# ---------------------------------------------------------------- naswot


def naswot_by_loops(model, x):
    codes = []
    handles = [m.register_forward_hook(lambda mod, args, out: codes.append((args[0] > 0).reshape(len(x), -1)))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    c = torch.cat(codes, dim=1).tolist()
    n, units = len(c), len(c[0])
    kernel = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            hamming = sum(1 for u in range(units) if c[i][u] != c[j][u])
            kernel[i, j] = units - hamming
    return np.linalg.slogdet(kernel)[1]


def test_naswot_kernel_by_explicit_loops():
    model = relu_mlp()
    x = torch.randn(6, 5)
    expected = naswot_by_loops(model, x)
    assert rel_err(proxies.compute("naswot", model, x, torch.zeros(6, dtype=torch.long)), expected) < 1e-12


def test_naswot_cnn_with_batchnorm_in_training_mode():
    model = small_cnn().train()
    x, y = cnn_batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = naswot_by_loops(model, x)
    model.load_state_dict(state)
    assert rel_err(proxies.compute("naswot", model, x, y), expected) < 1e-12


def test_naswot_undefined_cases(caplog):
    with caplog.at_level(logging.WARNING, logger="proxies.baselines"):
        no_relu = proxies.compute("naswot", tanh_mlp(), torch.randn(4, 6, dtype=torch.float64),
                                  torch.zeros(4, dtype=torch.long))
        x = torch.randn(4, 5)
        x[3] = x[0]  # two samples with the same code
        repeated = proxies.compute("naswot", relu_mlp(), x, torch.zeros(4, dtype=torch.long))
    assert math.isnan(no_relu) and math.isnan(repeated)
    assert "no nn.ReLU" in caplog.text and "share an activation code" in caplog.text


# ---------------------------------------------------------------- zen


def test_zen_closed_form_linear_network_gaussian_init():
    # No BatchNorm, no pooling: φ = f = W x + b with W ~ N(0,1) (bias set to 0), so
    # Δ = mean_n ‖W α ε_n‖₁ and zen = log Δ. Same draw order: W, then x, then ε.
    model = nn.Linear(4, 3).double()
    inputs = torch.randn(5, 4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(11)
    w = torch.randn((3, 4), generator=gen, dtype=torch.float64)
    torch.randn((5, 4), generator=gen, dtype=torch.float64)  # x: cancels in a linear map
    eps = torch.randn((5, 4), generator=gen, dtype=torch.float64)
    delta = (0.01 * eps @ w.T).abs().sum(dim=1).mean()
    value = proxies.compute("zen", model, inputs, torch.zeros(5, dtype=torch.long), seed=11)
    assert rel_err(value, math.log(float(delta))) < 1e-9


def test_zen_batchnorm_term_matches_module_forward():
    model = small_cnn().double()
    x0, y = cnn_batch(8, torch.float64)
    value = proxies.compute("zen", model, x0, y, gaussian_init=False, seed=5, alpha=0.1)

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    body = model[:7]  # everything before the global average pool
    log_sigma = 0.0
    with torch.no_grad():
        model.train()
        h = x
        for layer in body:
            if isinstance(layer, nn.BatchNorm2d):
                var = h.permute(1, 0, 2, 3).reshape(h.shape[1], -1).var(dim=1, unbiased=False)
                log_sigma += math.log(math.sqrt(float(var.mean())))
            h = layer(h)
        delta = (h - body(x + 0.1 * eps)).abs().sum(dim=(1, 2, 3)).mean()
    model.load_state_dict(state)
    assert rel_err(value, math.log(float(delta)) + log_sigma) < 1e-9


def test_zen_seeded_and_undefined(caplog):
    model = small_cnn()
    x, y = cnn_batch()
    assert proxies.compute("zen", model, x, y, seed=1) == proxies.compute("zen", model, x, y, seed=1)
    assert proxies.compute("zen", model, x, y, seed=1) != proxies.compute("zen", model, x, y, seed=2)
    dead = relu_mlp()
    with torch.no_grad():
        dead[0].weight.zero_()
    with caplog.at_level(logging.WARNING, logger="proxies.baselines"):
        value = proxies.compute("zen", dead, torch.randn(4, 5), torch.zeros(4, dtype=torch.long),
                                gaussian_init=False)
    assert math.isnan(value) and "zen is undefined" in caplog.text


# ---------------------------------------------------------------- zico


def zico_reference(model, x, y):
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = loop_per_sample_grads(model, x, y, names=[f"{n}.weight" for n in names])
    total = 0.0
    for g in grads.values():
        g = g.reshape(g.shape[0], -1).double().numpy()
        std = np.std(g, axis=0)
        keep = np.nonzero(std)[0]
        s = np.sum(np.mean(np.abs(g), axis=0)[keep] / std[keep])
        if s != 0:
            total += np.log(s)
    return total


def test_zico_matches_per_sample_backward_loop():
    model = tanh_mlp()
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.randint(0, 4, (9,))
    assert rel_err(proxies.compute("zico", model, x, y, chunk_size=4), zico_reference(model, x, y)) < 1e-9


def test_zico_cnn_with_dead_coordinates():
    model = small_cnn(torch.float64).train()
    with torch.no_grad():
        model[4].weight[0].zero_()  # some exactly-constant gradient coordinates downstream
    x, y = cnn_batch(6, torch.float64)
    assert rel_err(proxies.compute("zico", model, x, y, chunk_size=4), zico_reference(model, x, y)) < 1e-8
    assert math.isnan(proxies.compute("zico", model, x[:1], y[:1]))


# ---------------------------------------------------------------- params and flops


def test_params_and_flops_by_hand():
    model = small_cnn()
    # params: conv 3·4·9 = 108; BN 2·4 = 8; conv 4·6·9 + 6 = 222; BN 2·6 = 12; linear 6·5 + 5 = 35.
    assert proxies.compute("params", model, *cnn_batch()) == 108 + 8 + 222 + 12 + 35
    # flops, one 3×8×8 sample:
    #   conv1 4·8·8 outputs × 27 = 6912;  BN 256;  maxpool 4·4·4 × 2·2 = 256;
    #   conv2 (4×4 -> 2×2) 6·2·2 × 36 + 24 bias = 888;  BN 24;  adaptive pool 24 inputs;
    #   linear 6·5 + 5 = 35.
    assert proxies.compute("flops", model, *cnn_batch()) == 6912 + 256 + 256 + 888 + 24 + 24 + 35


# ---------------------------------------------------------------- state restoration


@pytest.mark.parametrize("name", BASELINES)
def test_model_state_flags_and_hooks_restored(name):
    model = small_cnn()
    model.train()
    model[5].eval()  # mixed flags must come back as they were
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    x, y = cnn_batch()
    value = proxies.compute(name, model, x, y)
    assert isinstance(value, float)
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in after.items():
        assert torch.equal(v, before[k]), f"{name} changed {k}"
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_bad_input_raises_clear_value_error():
    with pytest.raises(ValueError, match="different lengths"):
        proxies.compute("snip", small_cnn(), torch.randn(4, 3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        proxies.compute("grad_norm", small_cnn(), torch.randn(4, 3, 8, 8), torch.full((4,), 9))


# ---------------------------------------------------------------- NAS-Bench-201


def test_all_proxies_run_on_nb201():
    nb201 = pytest.importorskip("empirical.spaces.nb201")
    rng = np.random.default_rng(0)
    archs = list(rng.choice(nb201.all_archs(), size=5, replace=False))
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    for arch in archs:
        net = nb201.build(arch, C=8, N=1, num_classes=10, in_channels=3)
        for name in proxies.names():
            value = proxies.compute(name, net, x, y)
            assert math.isfinite(value) or math.isnan(value), (arch, name, value)


def test_zen_finite_with_a_dead_branch():
    nb201 = pytest.importorskip("empirical.spaces.nb201")
    # node 1 = none(x) = 0 feeds a 3x3 conv whose BatchNorm sees a constant input.
    net = nb201.build("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
                      C=8, N=1)
    assert math.isfinite(proxies.compute("zen", net, torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)))


@pytest.mark.parametrize("arch", [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # all-none cell
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # node 1 reached, no path to node 3
])
def test_nb201_without_a_path_gives_nan_with_reason(arch, caplog):
    nb201 = pytest.importorskip("empirical.spaces.nb201")
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    empty = nb201.build(arch, C=8, N=1)
    with caplog.at_level(logging.WARNING, logger="proxies.baselines"):
        values = {name: proxies.compute(name, empty, x, y) for name in proxies.names()}
    undefined = {name for name, v in values.items() if math.isnan(v)}
    assert undefined == {"jacob_cov", "naswot", "zen", "zico"}
    for name in undefined:
        assert f"{name} is undefined" in caplog.text
    # No path from input to output: every gradient-based score of the weights is zero.
    for name in ("grad_norm", "snip", "grasp", "synflow", "gradsign"):
        assert values[name] == 0.0
