"""NAS-Bench-201 space: strings, isomorphism classes, parameter counts, forward semantics."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from empirical.spaces import nb201

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ parameter counts


def test_all_3x3_param_count_default_config_by_hand():
    # C=16, N=5, 10 classes, 3 input channels. Conv weights are out*in*k*k, no biases;
    # each BN has weight+bias = 2*channels; running stats are buffers, not parameters.
    stem = 3 * 16 * 9 + 2 * 16  # 464
    cell16 = 6 * (16 * 16 * 9 + 2 * 16)  # 6 * 2336 = 14016
    cell32 = 6 * (32 * 32 * 9 + 2 * 32)  # 6 * 9280 = 55680
    cell64 = 6 * (64 * 64 * 9 + 2 * 64)  # 6 * 36992 = 221952
    # ResNet block: conv_a 3x3 stride 2 + BN, conv_b 3x3 + BN, downsample 1x1 conv.
    red1 = (16 * 32 * 9 + 2 * 32) + (32 * 32 * 9 + 2 * 32) + 16 * 32  # 4672 + 9280 + 512 = 14464
    red2 = (32 * 64 * 9 + 2 * 64) + (64 * 64 * 9 + 2 * 64) + 32 * 64  # 18560 + 36992 + 2048 = 57600
    head = 2 * 64 + (64 * 10 + 10)  # 128 + 650 = 778
    expected = stem + 5 * cell16 + red1 + 5 * cell32 + red2 + 5 * cell64 + head
    assert expected == 1_531_546
    assert n_params(nb201.build(ALL_3X3)) == expected


def test_all_none_param_count_default_config_by_hand():
    # Only the stem, the two ResNet blocks and the head have parameters.
    expected = 464 + 14464 + 57600 + 778
    assert expected == 73_306
    assert n_params(nb201.build(ALL_NONE)) == expected


def _expected_count(ops, C, N, num_classes, in_channels):
    """Parameter count from layer shapes alone, written without the model code."""

    def edge(op, c):
        if op == "nor_conv_3x3":
            return c * c * 9 + 2 * c
        if op == "nor_conv_1x1":
            return c * c + 2 * c
        return 0  # none, skip_connect, avg_pool_3x3 have no parameters

    def reduction(cin, cout):
        return (cin * cout * 9 + 2 * cout) + (cout * cout * 9 + 2 * cout) + cin * cout

    total = in_channels * C * 9 + 2 * C
    for c in (C, 2 * C, 4 * C):
        total += N * sum(edge(op, c) for op in ops)
    total += reduction(C, 2 * C) + reduction(2 * C, 4 * C)
    total += 2 * 4 * C + 4 * C * num_classes + num_classes
    return total


@pytest.mark.parametrize(
    "arch, C, N, num_classes, in_channels",
    [
        (EXAMPLE, 16, 5, 10, 3),
        ("|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|", 8, 2, 7, 1),
        ("|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_3x3~2|", 4, 1, 3, 2),
        (ALL_3X3, 16, 5, 10, 3),
        (ALL_NONE, 16, 5, 10, 3),
    ],
)
def test_mixed_cells_param_count(arch, C, N, num_classes, in_channels):
    ops = [op for op, _ in nb201.parse(arch)]
    model = nb201.build(arch, C=C, N=N, num_classes=num_classes, in_channels=in_channels)
    assert n_params(model) == _expected_count(ops, C, N, num_classes, in_channels)


def test_mixed_cell_literal_count():
    # EXAMPLE has three 3x3 convs per cell, no 1x1.
    # 464 + 5*3*2336 + 14464 + 5*3*9280 + 57600 + 5*3*36992 + 778
    # = 464 + 35040 + 14464 + 139200 + 57600 + 554880 + 778 = 802426
    assert n_params(nb201.build(EXAMPLE)) == 802_426
    # One 1x1 and one 3x3 per cell at C=16, N=5:
    # 3x3: 2336/9280/36992; 1x1: 16*16+32=288, 32*32+64=1088, 64*64+128=4224.
    # 464 + 5*(2336+288) + 14464 + 5*(9280+1088) + 57600 + 5*(36992+4224) + 778
    # = 464 + 13120 + 14464 + 51840 + 57600 + 206080 + 778 = 344346
    arch = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    assert n_params(nb201.build(arch)) == 344_346


# --------------------------------------------------------------------- structure


def test_state_dict_names_follow_original():
    keys = set(nb201.build(ALL_3X3).state_dict())
    for key in (
        "stem.0.weight", "stem.1.running_mean", "cells.0.layers.5.op.1.weight",
        "cells.0.layers.5.op.2.running_var", "cells.5.conv_a.op.1.weight",
        "cells.5.conv_b.op.2.weight", "cells.5.downsample.1.weight",
        "cells.11.downsample.1.weight", "cells.16.layers.0.op.1.weight",
        "lastact.0.weight", "classifier.weight", "classifier.bias",
    ):
        assert key in keys
    model = nb201.build(ALL_3X3)
    assert len(model.cells) == 17
    assert model.cells[5].conv_a.op[1].stride == (2, 2)
    assert model.cells[5].downsample[1].bias is None
    assert all(not m.affine or m.track_running_stats for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = nb201.build(EXAMPLE, C=4, N=1)
    torch.manual_seed(3)
    b = nb201.build(EXAMPLE, C=4, N=1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


# ------------------------------------------------------------------ forward semantics


def test_all_skip_cell_is_four_times_input():
    # node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x.
    cell = nb201.InferCell(ALL_SKIP, 3)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(cell(x), 4 * x)


def test_all_none_cell_is_zero_and_keeps_grad_path():
    cell = nb201.InferCell(ALL_NONE, 3)
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    y = cell(x)
    assert torch.equal(y, torch.zeros_like(x))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def _rcb(x, conv, bn, padding):
    # ReLU - conv - BN in training mode, written with functional ops.
    h = F.conv2d(F.relu(x), conv.weight, padding=padding)
    return F.batch_norm(h, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)


def test_mixed_cell_matches_functional_composition():
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"
    torch.manual_seed(0)
    cell = nb201.InferCell(arch, 4).train()
    with torch.no_grad():
        for m in cell.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 4, 6, 6)
    l = cell.layers
    n1 = _rcb(x, l[0].op[1], l[0].op[2], 1)
    n2 = x + F.avg_pool2d(n1, 3, stride=1, padding=1, count_include_pad=False)
    n3 = _rcb(x, l[3].op[1], l[3].op[2], 0) + n2
    torch.testing.assert_close(cell(x), n3)


def test_avg_pool_excludes_padding():
    out = nb201.Pooling()(torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(out, torch.ones(1, 1, 4, 4))


def test_forward_shape_logits_only():
    model = nb201.build(EXAMPLE, C=4, N=1, num_classes=7, in_channels=1)
    out = model(torch.randn(5, 1, 8, 8))
    assert isinstance(out, torch.Tensor) and out.shape == (5, 7)


def test_functional_call_and_vmap_per_sample_grads_match_loop():
    torch.manual_seed(1)
    model = nb201.build(EXAMPLE, C=4, N=1, num_classes=3, in_channels=1).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 2, 1, 2])

    def loss(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad)


def test_functional_call_train_mode_does_not_touch_module_buffers():
    model = nb201.build(EXAMPLE, C=4, N=1, in_channels=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    functional_call(model, (dict(model.named_parameters()), buffers), (torch.randn(4, 1, 8, 8),))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


# ----------------------------------------------------------------------- strings


def test_parse_example():
    assert nb201.parse(EXAMPLE) == (
        ("nor_conv_3x3", 0), ("nor_conv_3x3", 0), ("avg_pool_3x3", 1),
        ("skip_connect", 0), ("nor_conv_3x3", 1), ("skip_connect", 2),
    )
    assert nb201.to_str([op for op, _ in nb201.parse(EXAMPLE)]) == EXAMPLE


@pytest.mark.parametrize(
    "bad, match",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 nodes"),
        (EXAMPLE + "+|none~0|", "3 nodes"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "2 incoming"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|conv_5x5~1|skip_connect~2|", "unknown op"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "source 1"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~x|", "source 2"),
        ("nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "start and end"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2", "start and end"),
        ("|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "missing '~'"),
        (None, "must be a str"),
    ],
)
def test_parse_rejects_malformed(bad, match):
    with pytest.raises(ValueError, match=match):
        nb201.parse(bad)


def test_build_rejects_bad_sizes():
    with pytest.raises(ValueError, match="C must be a positive int"):
        nb201.build(EXAMPLE, C=0)
    with pytest.raises(ValueError, match="unknown op"):
        nb201.build(EXAMPLE.replace("avg_pool_3x3", "max_pool_3x3"))


def test_all_archs_order_and_roundtrip():
    archs = nb201.all_archs()
    assert len(archs) == 5**6 == len(set(archs))
    assert archs[0] == ALL_NONE
    assert archs[-1] == nb201.to_str(["avg_pool_3x3"] * 6)
    # Position = sum_e index(op_e) * 5**(5-e): the last edge varies fastest.
    rng = random.Random(0)
    for i in rng.sample(range(len(archs)), 50):
        ops = [op for op, _ in nb201.parse(archs[i])]
        assert sum(nb201.OPS.index(op) * 5 ** (5 - e) for e, op in enumerate(ops)) == i
    assert nb201.all_archs() == archs


# ------------------------------------------------------------------- isomorphism


def test_nb201_rule_gives_6466_classes():
    labels = {nb201.canonical(a) for a in nb201.all_archs()}
    assert len(labels) == 6466
    assert len(nb201.unique_archs()) == 6466


def test_canonical_examples_by_hand():
    # Node 3's inputs all `none`: label '#+#+#' whatever the rest.
    assert nb201.canonical(ALL_NONE) == "#+#+#"
    assert nb201.canonical("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|") == "#+#+#"
    # Single zero input: the node is the zero marker and propagates.
    assert nb201.canonical("|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_3x3~1|none~2|") == "#+#+#"
    # Two zero inputs are '#+#', not the marker, so a conv on that node is kept.
    assert (
        nb201.canonical("|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|") == "#+#+(#+#)@nor_conv_3x3"
    )
    assert nb201.canonical(ALL_SKIP) == "0+0+0+0"  # node3 = x + x + 2x
    # EXAMPLE: node1 = c(0); node2 = sorted[(c(0))@pool, (0)@c] ('(' sorts before '0');
    # node3 = sorted['0', (node1)@c, node2 unparenthesised]: skip_connect hands node2's
    # joined string on, so its two terms stay together (the nb201 rule does not flatten).
    c = "nor_conv_3x3"
    node2 = f"((0)@{c})@avg_pool_3x3+(0)@{c}"
    assert nb201.canonical(EXAMPLE) == f"{node2}+((0)@{c})@{c}+0"
    assert nb201.canonical(EXAMPLE, rule="strict") == f"((0)@{c})@avg_pool_3x3+((0)@{c})@{c}+(0)@{c}+0"


def test_strict_rule_examples():
    assert nb201.canonical("|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|", rule="strict") == "#"
    assert (
        nb201.canonical("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|", rule="strict")
        == "(0)@nor_conv_1x1"
    )
    with pytest.raises(ValueError, match="rule must be one of"):
        nb201.canonical(EXAMPLE, rule="loose")


P = (1 << 61) - 1  # a Mersenne prime


def _symbolic_value(arch, coeffs, x):
    """Node 3's value for scalar input x when each op is a fixed cubic over GF(P) with f(0)=0."""
    nodes = [x]
    edges = nb201.parse(arch)
    for target in (1, 2, 3):
        total = 0
        for (t, src), (op, _) in zip(nb201.EDGES, edges):
            if t != target:
                continue
            v = nodes[src]
            if op == "none":
                v = 0
            elif op != "skip_connect":
                a, b, c = coeffs[op]
                v = (a * v * v * v + b * v * v + c * v) % P
            total = (total + v) % P
        nodes.append(total)
    return nodes[3]


def test_classes_agree_with_an_algebraic_model_of_the_cell():
    # Independent route: model each parametric op as a random nonlinear polynomial with
    # f(0) = 0 (the rule's "op of zero is zero"), sum exactly mod a large prime, and
    # group the archs by node 3's value at two random inputs. `strict` must be exactly
    # this partition; `nb201` must refine it (it keeps x + 0 apart from x).
    rng = random.Random(0)
    coeffs = {op: tuple(rng.randrange(1, P) for _ in range(3)) for op in nb201.OPS[2:]}
    xs = [rng.randrange(1, P) for _ in range(2)]
    archs = nb201.all_archs()
    value = {a: tuple(_symbolic_value(a, coeffs, x) for x in xs) for a in archs}
    strict = {a: nb201.canonical(a, rule="strict") for a in archs}
    nb = {a: nb201.canonical(a) for a in archs}
    value_of_strict, strict_of_value = {}, {}
    for a in archs:
        assert value_of_strict.setdefault(strict[a], value[a]) == value[a]
        assert strict_of_value.setdefault(value[a], strict[a]) == strict[a]
    assert len(value_of_strict) == len(set(value.values())) == 4930
    value_of_nb = {}
    for a in archs:
        assert value_of_nb.setdefault(nb[a], value[a]) == value[a]


def test_unique_archs_and_representatives():
    for rule, count in (("nb201", 6466), ("strict", 4930)):
        reps = nb201.unique_archs(rule)
        mapping = nb201.representatives(rule)
        assert len(reps) == count and len(mapping) == 15625
        assert set(mapping.values()) == set(reps)
        order = {a: i for i, a in enumerate(nb201.all_archs())}
        for arch, rep in mapping.items():
            assert nb201.canonical(arch, rule) == nb201.canonical(rep, rule)
            assert order[rep] <= order[arch]
        assert [order[r] for r in reps] == sorted(order[r] for r in reps)
    assert nb201.unique_archs()[0] == ALL_NONE
