"""The arithmetic account of `bench/bench_psi.py --nb201` (per-sample multiplications of a
Gauss–Newton pass and of GradSign) against torch's own count of the same computation
(``torch.utils.flop_counter.FlopCounterMode``), and the route costs it reads
(`theory.factored_linear.gram_cost`, `grad_sq_norm_cost`) against the Gram matrix and
gradient norm built from explicit Jacobian rows."""
import importlib.util
import pathlib

import pytest
import torch
import torch.nn.functional as F

import theory
from empirical.spaces import nb201
from theory.factored_linear import grad_sq_norm, grad_sq_norm_cost, gram, gram_cost

_SPEC = importlib.util.spec_from_file_location(
    "bench_psi", pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_psi.py")
bench_psi = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_psi)

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"


def _problem(n=4):
    torch.manual_seed(0)
    model = nb201.build(ARCH, C=4, N=1, num_classes=10, in_channels=1)
    X = torch.randn(n, 1, 8, 8)
    Y = F.one_hot(torch.arange(n) % 10, 10).float()
    return model, X, Y


def test_forward_and_backward_counts_match_flop_counter():
    model, X, Y = _problem()
    shapes = bench_psi.layer_shapes(model, X[:1])
    convs = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}
    assert set(shapes) == convs | {"classifier"}  # every weight layer is factored here
    assert not shapes["stem.0"][3] and all(needs for name, (*_, needs) in shapes.items() if name != "stem.0")
    counts = bench_psi.pass_arithmetic(shapes, k=10)
    assert counts["forward"] == sum(bench_psi.flop_tally(lambda: model(X[:1]))[1].values())
    # One pass per sample with max_iter=0: the convolutions' backward is the k = 10 rows
    # pulled back through every conv input but the stem's.
    _, tally = bench_psi.flop_tally(lambda: theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton",
                                                                      params="weights", max_iter=0))
    conv_backward = sum(10 * T * out * inp for name, (T, out, inp, needs) in shapes.items()
                        if needs and name in convs)
    assert tally["aten.convolution_backward"] == len(X) * conv_backward
    conv_forward = sum(T * out * inp for name, (T, out, inp, _) in shapes.items() if name in convs)
    assert tally["aten.convolution"] == (len(X) + 1) * conv_forward  # and the solver's one probe forward
    assert counts["gradsign_sample"] == 2 * counts["forward"] + counts["backward"] // 10


def test_sample_passes_are_counted_per_working_set():
    model, X, Y = _problem(6)
    solve = lambda **kw: theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="weights", **kw)  # noqa: E731
    _, sample_passes, passes = bench_psi.count_sample_passes(lambda: solve(max_iter=0))
    assert (sample_passes, passes) == (6, 1)
    opt, sample_passes, passes = bench_psi.count_sample_passes(lambda: solve(chunk_size=2))
    assert sample_passes >= int((opt.iterations + 1).sum())  # every step and the last check, at least
    assert sample_passes <= 2 * passes


@pytest.mark.parametrize("k, T, out, inp", [(10, 64, 8, 72), (10, 4, 32, 288), (3, 1, 5, 7), (2, 9, 3, 2)])
def test_route_costs_pick_the_cheaper_form_and_both_forms_agree(k, T, out, inp):
    rows, pairs = k * T * out * inp + k * k * out * inp, T * T * inp + k * T * T * out + k * k * T * out
    assert gram_cost(k, T, out, inp) == (rows < pairs, min(rows, pairs))
    formed, pairs = T * out * inp, T * T * (out + inp)
    assert grad_sq_norm_cost(T, out, inp) == (formed < pairs, min(formed, pairs))
    g = torch.Generator().manual_seed(T + out)
    B = torch.randn(2, k, T, out, generator=g, dtype=torch.float64)
    a = torch.randn(2, T, inp, generator=g, dtype=torch.float64)
    J = torch.einsum("ckto,cti->ckoi", B, a).flatten(2)  # J_W = Σ_t B_t ⊗ a_t
    torch.testing.assert_close(gram(B, a, True, False), J @ J.mT, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_sq_norm(B[:, 0], a, True, False), J[:, 0].square().sum(1), rtol=1e-12, atol=1e-12)
