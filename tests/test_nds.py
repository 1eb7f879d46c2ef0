"""NDS cell spaces: genotypes, validation, parameter counts, forward semantics.

Published numbers tested here and where they come from:

* DARTS-V2 at CIFAR-10's 36 channels, 20 cells: 3,349,342 parameters not counting the
  auxiliary head (DARTS's ``count_parameters_in_MB`` prints "param size = 3.349342MB"
  for ``train.py``'s defaults, as quoted in a public annotated copy of DARTS's
  cnn/train.py; the DARTS paper, Table 1, rounds it to 3.3 M).
* 4,190,314 parameters of one sampled network of NDS's Amoeba space at width 32,
  depth 12, no auxiliary head: NNI's NAS-benchmark example notebook
  (microsoft/nni, docs/en_US/NAS/BenchmarksExample.ipynb, ``query_nds_trial_stats``
  output: 'parameters': 4.190314, i.e. NDS's ``params`` / 1e6).
* ENAS's cell: the official ``--child_fixed_arc`` of melodyguan/enas,
  scripts/cifar10_micro_final.sh.
"""
import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from empirical.spaces import nds

from nds_examples import NDS_AMOEBA_SAMPLE


def op_params(op, C, stride):
    """Parameters of one op at C channels, from layer shapes (no model code)."""
    if op == "skip_connect":
        return 0 if stride == 1 else C * C + 2 * C  # FactorizedReduce: two 1x1 C -> C/2, BN
    if op in ("none", "avg_pool_3x3") or op.startswith("max_pool"):
        return 0
    if op in ("conv_1x1", "conv_3x3"):
        k = int(op[-1])
        return k * k * C * C + 2 * C
    if op.startswith("sep_conv_") or op == "dil_sep_conv_3x3":
        k = int(op[-1])
        return 2 * (k * k * C + C * C + 2 * C)  # twice depthwise + pointwise + BN
    if op.startswith("dil_conv_"):
        k = int(op[-1])
        return k * k * C + C * C + 2 * C
    if op in ("conv_3x1_1x3", "conv_7x1_1x7"):
        k = int(op[5])
        return 2 * k * C * C + 2 * C
    raise AssertionError(op)


def expected_params(genotype, C, layers, num_classes=10, in_channels=3, auxiliary=False):
    g = nds.parse_genotype(genotype)
    stem = 3 * C
    total = in_channels * stem * 9 + 2 * stem
    c_pp, c_p, c = stem, stem, C
    c_aux = None
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        # preprocess0 (ReLUConvBN 1x1 or FactorizedReduce) and preprocess1: both c_in * c + 2c
        total += c_pp * c + 2 * c + c_p * c + 2 * c
        pairs = g.reduce if reduction else g.normal
        total += sum(op_params(op, c, 2 if reduction and idx < 2 else 1) for op, idx in pairs)
        concat = g.reduce_concat if reduction else g.normal_concat
        c_pp, c_p = c_p, len(concat) * c
        if i == 2 * layers // 3:
            c_aux = c_p
    total += c_p * num_classes + num_classes
    if auxiliary:
        total += 128 * c_aux + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes
    return total


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ published values


def test_darts_v2_at_the_darts_cifar_setting_has_the_published_size():
    net = nds.build("darts", nds.GENOTYPES["darts_v2"], C=36, layers=20, auxiliary=True)
    assert nds.count_parameters(net) == 3_349_342
    assert expected_params(nds.GENOTYPES["darts_v2"], 36, 20) == 3_349_342
    assert n_params(net) == expected_params(nds.GENOTYPES["darts_v2"], 36, 20, auxiliary=True)
    assert round(nds.count_parameters(net) / 1e6, 1) == 3.3


def test_nds_amoeba_sample_has_the_published_size():
    net = nds.build("amoeba", NDS_AMOEBA_SAMPLE, C=32, layers=12)
    assert n_params(net) == 4_190_314


def test_enas_genotype_decodes_the_official_fixed_arc():
    normal = "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1"
    reduce = "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
    names = ["sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip_connect"]

    def decode(arc):
        v = [int(t) for t in arc.split()]
        pairs = [(names[v[i + 1]], v[i]) for i in range(0, len(v), 2)]
        used = {index for _, index in pairs}
        return tuple(pairs), tuple(s for s in range(2, 2 + len(pairs) // 2) if s not in used)

    g = nds.GENOTYPES["enas"]
    assert decode(normal) == (g.normal, g.normal_concat)
    assert decode(reduce) == (g.reduce, g.reduce_concat)


# ------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize("name", sorted(nds.GENOTYPES))
@pytest.mark.parametrize("C, layers, num_classes, in_channels", [(36, 20, 10, 3), (8, 5, 7, 1), (6, 1, 3, 2)])
def test_parameter_count_matches_layer_shape_arithmetic(name, C, layers, num_classes, in_channels):
    space = {"darts_v1": "darts", "darts_v2": "darts", "enas": "enas", "pnasnet": "pnas",
             "nasnet_a": "nasnet", "amoebanet_a": "amoeba"}[name]
    genotype = nds.GENOTYPES[name]
    net = nds.build(space, genotype, C, layers, auxiliary=True, num_classes=num_classes, in_channels=in_channels)
    assert nds.count_parameters(net) == expected_params(genotype, C, layers, num_classes, in_channels)
    assert n_params(net) == expected_params(genotype, C, layers, num_classes, in_channels, auxiliary=True)


def test_small_darts_count_written_out():
    # DARTS-V2 at C=4, 3 cells (cells 1 and 2 reduce): stem 3*12*9 + 24 = 348.
    # cell 0 (normal, C=4, inputs 12, 12): preprocess 2 * (48 + 8) = 112; ops: five
    #   sep_conv_3x3 at 2*(36 + 16 + 8) = 120 each, dil_conv_3x3 36 + 16 + 8 = 60,
    #   two skips 0 -> 660; out 4*4 = 16 channels.
    # cell 1 (reduce, C=8, inputs 12, 16): preprocess 12*8 + 16 + 16*8 + 16 = 256; ops:
    #   max pools 0, skip_connect reading node 2 (stride 1) 0 -> 0; out 32.
    # cell 2 (reduce, C=16, inputs 16, 32, previous reduced -> FactorizedReduce):
    #   16*16 + 32 + 32*16 + 32 = 832; ops 0; out 64. Head 64*10 + 10 = 650.
    net = nds.build("darts", nds.GENOTYPES["darts_v2"], C=4, layers=3)
    assert n_params(net) == 348 + 112 + 660 + 256 + 832 + 650 == 2858


# ---------------------------------------------------------------- forward semantics


@pytest.mark.parametrize("space", sorted(nds.REFERENCE))
def test_reference_genotypes_forward_shapes(space):
    net = nds.build(space, nds.GENOTYPES[nds.REFERENCE[space]], C=8, layers=5, auxiliary=True, num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    logits, aux = net.forward_with_auxiliary(x)
    torch.testing.assert_close(logits, out)
    assert aux.shape == (2, 7)
    assert nds.build(space, nds.GENOTYPES[nds.REFERENCE[space]], C=8, layers=5).forward_with_auxiliary(x)[1] is None


def test_cell_matches_functional_composition():
    # node 2 = skip(s0') + avg(s1'); node 3 = skip(node 2) + none(s0'); out = cat(node 2, node 3, s1').
    g = nds.Genotype(normal=(("skip_connect", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("none", 0)),
                     normal_concat=(2, 3, 1),
                     reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)), reduce_concat=(2,))
    cell = nds.Cell(nds.validate("darts", g), 5, 6, 4, reduction=False, reduction_prev=False).train()
    s0, s1 = torch.randn(2, 5, 6, 6), torch.randn(2, 6, 6, 6)
    a = cell.preprocess0(s0)
    b = cell.preprocess1(s1)
    node2 = a + F.avg_pool2d(b, 3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(cell(s0, s1), torch.cat([node2, node2, b], dim=1))


def test_reduction_cell_halves_resolution_and_factorized_reduce_shifts():
    g = nds.Genotype(normal=(("skip_connect", 0), ("skip_connect", 1)), normal_concat=(2,),
                     reduce=(("skip_connect", 0), ("none", 1)), reduce_concat=(2,))
    cell = nds.Cell(g, 4, 4, 4, reduction=True, reduction_prev=False)
    assert cell(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)
    fr = nds.FactorizedReduce(2, 4).train()
    x = torch.randn(1, 2, 5, 5)
    h = F.relu(x)
    first = F.conv2d(h, fr.conv_1.weight, stride=2)
    second = F.conv2d(F.pad(h, (0, 1, 0, 1))[:, :, 1:, 1:], fr.conv_2.weight, stride=2)
    expected = F.batch_norm(torch.cat([first, second], 1), None, None, fr.bn.weight, fr.bn.bias, training=True)
    torch.testing.assert_close(fr(x), expected)


def test_vmap_per_sample_grads_match_loop():
    torch.manual_seed(3)
    model = nds.build("amoeba", nds.GENOTYPES["amoebanet_a"], C=4, layers=3, num_classes=3).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------ genotypes


def test_genotype_formats_round_trip():
    g = nds.GENOTYPES["nasnet_a"]
    text = nds.genotype_to_json(g)
    assert nds.parse_genotype(text) == g
    assert nds.parse_genotype(json.loads(text)) == g
    assert nds.parse_genotype(NDS_AMOEBA_SAMPLE).normal_concat == (3, 5, 6)
    assert nds.validate("amoeba", NDS_AMOEBA_SAMPLE).reduce[5] == ("sep_conv_7x7", 0)


@pytest.mark.parametrize("space", sorted(nds.REFERENCE))
def test_reference_genotypes_lie_in_their_space(space):
    nds.validate(space, nds.GENOTYPES[nds.REFERENCE[space]])


@pytest.mark.parametrize(
    "space, genotype, match",
    [
        ("darts", nds.GENOTYPES["nasnet_a"], r"genotype.reduce\[1\] names op 'sep_conv_7x7', which is not in the darts"),
        ("enas", nds.GENOTYPES["darts_v2"], r"genotype.normal\[7\] names op 'dil_conv_3x3', which is not in the enas"),
        ("pnas", NDS_AMOEBA_SAMPLE, r"genotype.normal\[4\] names op 'dil_sep_conv_3x3', which is not in the pnas"),
        ("nasnet", NDS_AMOEBA_SAMPLE, "'dil_sep_conv_3x3', which is not in the nasnet"),
        ("amoeba", nds.GENOTYPES["darts_v2"], r"genotype.normal\[7\] names op 'dil_conv_3x3', which is not in the amoeba"),
        ("enas", {**NDS_AMOEBA_SAMPLE}, r"genotype.normal\[1\] names op 'conv_7x1_1x7', which is not in the enas"),
    ],
)
def test_genotype_naming_an_op_outside_its_space_is_refused(space, genotype, match):
    with pytest.raises(ValueError, match=match):
        nds.build(space, genotype, C=4, layers=3)


def _with(part, value):
    g = dict(nds.GENOTYPES["darts_v2"]._asdict())
    g[part] = value
    return g


@pytest.mark.parametrize(
    "genotype, match",
    [
        (_with("normal", (("sep_conv_3x3", 0), ("sep_conv_3x3", 2))), r"normal\[1\] reads state 2"),
        (_with("normal", (("sep_conv_3x3", 0),)), "even number"),
        (_with("normal", (("sep_conv_3x3", "0"), ("sep_conv_3x3", 1))), r"normal\[0\] must be an \[op name"),
        (_with("normal_concat", (2, 6)), "normal_concat names state 6"),
        (_with("reduce_concat", (1, 2)), "reduce_concat names state 1.*higher resolution"),
        (_with("reduce_concat", ()), "non-empty"),
        ({"normal": [], "reduce": []}, "lacks normal_concat, reduce_concat"),
        ("{not json", "not JSON"),
        (42, "must be a Genotype"),
    ],
)
def test_malformed_genotypes_are_refused(genotype, match):
    with pytest.raises(ValueError, match=match):
        nds.validate("darts", genotype)


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError, match="space must be one of"):
        nds.build("resnet", nds.GENOTYPES["darts_v2"], 16, 8)
    with pytest.raises(ValueError, match="C must be a positive integer"):
        nds.build("darts", nds.GENOTYPES["darts_v2"], 0, 8)
    with pytest.raises(ValueError, match="auxiliary must be a bool"):
        nds.build("darts", nds.GENOTYPES["darts_v2"], 16, 8, auxiliary="yes")
