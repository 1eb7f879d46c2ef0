"""The NDS cell spaces: DARTS, ENAS, PNAS, NASNet and Amoeba (Radosavovic et al., ICCV 2019).

"On Network Design Spaces for Visual Recognition" samples networks from the cell design
spaces of five NAS papers and trains them all with one recipe (pycls). Every space uses
the DARTS-style network (Liu et al., ICLR 2019, §2.1 and the code's ``NetworkCIFAR``);
the spaces differ in the op set a cell may use (``SPACES``, pycls's
``models/nas/genotypes.py``) and in the number of nodes per cell (4 for DARTS, 5 for the
others).

Genotype (the NDS data's ``net.genotype`` layout, DARTS's ``Genotype``)::

    {"normal": [[op, input], ...], "normal_concat": [i, ...],
     "reduce": [[op, input], ...], "reduce_concat": [i, ...]}

Entries ``2k`` and ``2k + 1`` of ``normal`` are the two inputs of node ``k``; ``input``
indexes the cell's states: 0 is the output of the cell before the previous one, 1 the
previous cell's output, ``2 + k`` node ``k``. The cell's output concatenates the
``*_concat`` states along channels.

Network (``build``), for CIFAR-sized inputs::

    stem:   Conv3x3(in_channels -> 3C, no bias) - BN
    cells:  `layers` cells; cells layers//3 and 2*layers//3 are reduction cells, which
            double the channel count and halve the resolution
    head:   global average pool - Linear(multiplier * C_last -> num_classes)
    aux:    (auxiliary=True) after cell 2*layers//3: ReLU - AvgPool 5/3 - Conv1x1(128) - BN
            - ReLU - Conv2x2(768) - BN - ReLU - Linear(768 -> num_classes)

    Cell at C channels with states s0 (C_pp channels) and s1 (C_p):
    s0' = FactorizedReduce(C_pp, C)(s0) if the previous cell reduced, else ReLUConvBN 1x1
    s1' = ReLUConvBN 1x1 (C_p -> C)(s1)
    node_k = op_{2k}(state[in_{2k}]) + op_{2k+1}(state[in_{2k+1}])
    out = concat(state[i] for i in concat),  multiplier = len(concat)

In a reduction cell the ops reading states 0 and 1 have stride 2 (``skip_connect``
becomes FactorizedReduce, ``none`` sub-samples). Op definitions follow pycls's
``models/nas/operations.py`` (DARTS's ``operations.py`` plus the ops of the other
spaces): ``sep_conv_k`` is two ReLU - depthwise k x k - pointwise 1x1 - BN blocks,
``dil_conv_k`` one ReLU - depthwise k x k dilation 2 - pointwise - BN block,
``dil_sep_conv_3x3`` two dilated blocks, ``conv_a x1_1x a`` a ReLU - (1 x a) - (a x 1) -
BN factorisation, pools are 3x3 (max and average, the average excluding padding).

Choices, all deliberate: ``forward`` returns the logits only (``forward_with_auxiliary``
also returns the auxiliary head's logits); drop-path, a training-time regulariser with
probability 0 at initialisation, is omitted; no op is in-place, so the model composes
with ``torch.func``; weights get PyTorch's default initialisation. Module names follow
DARTS (``stem``, ``cells.i.preprocess0``, ``cells.i._ops.j``, ``auxiliary_head``,
``classifier``), so DARTS's parameter count (names without ``auxiliary``) applies as is.
"""
from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from proxies.checks import check_choice, check_int

__all__ = [
    "Genotype",
    "SPACES",
    "GENOTYPES",
    "REFERENCE",
    "NODES",
    "parse_genotype",
    "validate",
    "genotype_to_json",
    "sample",
    "build",
    "count_parameters",
    "NetworkCIFAR",
    "Cell",
    "AuxiliaryHeadCIFAR",
]

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

#: Each space's op set, as pycls's ``models/nas/genotypes.py`` defines it
#: (NASNET_OPS, ENAS_OPS, PNAS_OPS, AMOEBA_OPS, DARTS_OPS).
SPACES: dict[str, tuple[str, ...]] = {
    "darts": ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),
    "enas": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"),
    "pnas": ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect",
             "avg_pool_3x3", "max_pool_3x3", "dil_conv_3x3"),
    "nasnet": ("skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3",
               "max_pool_3x3", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
               "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"),
    "amoeba": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
               "max_pool_3x3", "dil_sep_conv_3x3", "conv_7x1_1x7"),
}


def _pairs(*flat):
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


#: Published cells. Sources:
#: - darts_v1, darts_v2: DARTS (Liu et al., ICLR 2019), quark0/darts ``cnn/genotypes.py``
#:   (DARTS_V1: first order, DARTS_V2: second order, the paper's "DARTS (second order)").
#: - nasnet_a: NASNet-A (Zoph et al., CVPR 2018, Fig. 4), as transcribed in the same file.
#: - amoebanet_a: AmoebaNet-A (Real et al., AAAI 2019, Fig. 3), same file.
#: - pnasnet: PNASNet-5 (Liu et al., ECCV 2018, Fig. 1), one cell for normal and reduction,
#:   as in pycls's ``models/nas/genotypes.py`` (``PNASNet``).
#: - enas: ENAS's CIFAR-10 micro cell (Pham et al., ICML 2018), decoded from the official
#:   ``--child_fixed_arc`` of melodyguan/enas ``scripts/cifar10_micro_final.sh``: groups of
#:   (x_input, x_op, y_input, y_op) per node with ops 0 sep_conv_3x3, 1 sep_conv_5x5,
#:   2 avg_pool_3x3, 3 max_pool_3x3, 4 identity (``micro_child._fixed_layer``); the cell's
#:   output is the concatenation of the nodes no node reads ("loose ends"). Other public
#:   transcriptions of "the ENAS cell" differ from this one and from each other.
GENOTYPES: dict[str, Genotype] = {
    "darts_v1": Genotype(
        normal=_pairs("sep_conv_3x3", 1, "sep_conv_3x3", 0, "skip_connect", 0, "sep_conv_3x3", 1,
                      "skip_connect", 0, "sep_conv_3x3", 1, "sep_conv_3x3", 0, "skip_connect", 2),
        normal_concat=(2, 3, 4, 5),
        reduce=_pairs("max_pool_3x3", 0, "max_pool_3x3", 1, "skip_connect", 2, "max_pool_3x3", 0,
                      "max_pool_3x3", 0, "skip_connect", 2, "skip_connect", 2, "avg_pool_3x3", 0),
        reduce_concat=(2, 3, 4, 5),
    ),
    "darts_v2": Genotype(
        normal=_pairs("sep_conv_3x3", 0, "sep_conv_3x3", 1, "sep_conv_3x3", 0, "sep_conv_3x3", 1,
                      "sep_conv_3x3", 1, "skip_connect", 0, "skip_connect", 0, "dil_conv_3x3", 2),
        normal_concat=(2, 3, 4, 5),
        reduce=_pairs("max_pool_3x3", 0, "max_pool_3x3", 1, "skip_connect", 2, "max_pool_3x3", 1,
                      "max_pool_3x3", 0, "skip_connect", 2, "skip_connect", 2, "max_pool_3x3", 1),
        reduce_concat=(2, 3, 4, 5),
    ),
    "nasnet_a": Genotype(
        normal=_pairs("sep_conv_5x5", 1, "sep_conv_3x3", 0, "sep_conv_5x5", 0, "sep_conv_3x3", 0,
                      "avg_pool_3x3", 1, "skip_connect", 0, "avg_pool_3x3", 0, "avg_pool_3x3", 0,
                      "sep_conv_3x3", 1, "skip_connect", 1),
        normal_concat=(2, 3, 4, 5, 6),
        reduce=_pairs("sep_conv_5x5", 1, "sep_conv_7x7", 0, "max_pool_3x3", 1, "sep_conv_7x7", 0,
                      "avg_pool_3x3", 1, "sep_conv_5x5", 0, "skip_connect", 3, "avg_pool_3x3", 2,
                      "sep_conv_3x3", 2, "max_pool_3x3", 1),
        reduce_concat=(4, 5, 6),
    ),
    "amoebanet_a": Genotype(
        normal=_pairs("avg_pool_3x3", 0, "max_pool_3x3", 1, "sep_conv_3x3", 0, "sep_conv_5x5", 2,
                      "sep_conv_3x3", 0, "avg_pool_3x3", 3, "sep_conv_3x3", 1, "skip_connect", 1,
                      "skip_connect", 0, "avg_pool_3x3", 1),
        normal_concat=(4, 5, 6),
        reduce=_pairs("avg_pool_3x3", 0, "sep_conv_3x3", 1, "max_pool_3x3", 0, "sep_conv_7x7", 2,
                      "sep_conv_7x7", 0, "avg_pool_3x3", 1, "max_pool_3x3", 0, "max_pool_3x3", 1,
                      "conv_7x1_1x7", 0, "sep_conv_3x3", 5),
        reduce_concat=(3, 4, 6),
    ),
    "pnasnet": Genotype(
        normal=_pairs("sep_conv_5x5", 0, "max_pool_3x3", 0, "sep_conv_7x7", 1, "max_pool_3x3", 1,
                      "sep_conv_5x5", 1, "sep_conv_3x3", 1, "sep_conv_3x3", 4, "max_pool_3x3", 1,
                      "sep_conv_3x3", 0, "skip_connect", 1),
        normal_concat=(2, 3, 4, 5, 6),
        reduce=_pairs("sep_conv_5x5", 0, "max_pool_3x3", 0, "sep_conv_7x7", 1, "max_pool_3x3", 1,
                      "sep_conv_5x5", 1, "sep_conv_3x3", 1, "sep_conv_3x3", 4, "max_pool_3x3", 1,
                      "sep_conv_3x3", 0, "skip_connect", 1),
        reduce_concat=(2, 3, 4, 5, 6),
    ),
    "enas": Genotype(
        normal=_pairs("avg_pool_3x3", 0, "sep_conv_3x3", 0, "skip_connect", 0, "sep_conv_5x5", 0,
                      "skip_connect", 0, "sep_conv_5x5", 1, "sep_conv_3x3", 1, "sep_conv_5x5", 0,
                      "avg_pool_3x3", 0, "sep_conv_5x5", 1),
        normal_concat=(2, 3, 4, 5, 6),
        reduce=_pairs("sep_conv_3x3", 1, "sep_conv_3x3", 1, "max_pool_3x3", 0, "avg_pool_3x3", 0,
                      "sep_conv_5x5", 1, "sep_conv_5x5", 3, "sep_conv_3x3", 1, "skip_connect", 0,
                      "max_pool_3x3", 0, "sep_conv_5x5", 1),
        reduce_concat=(2, 4, 5, 6),
    ),
}

#: The reference network of each space: the published cell its space was taken from.
REFERENCE = {"darts": "darts_v2", "enas": "enas", "pnas": "pnasnet", "nasnet": "nasnet_a",
             "amoeba": "amoebanet_a"}

#: Nodes per cell: 4 in the DARTS space, 5 in the others (as the published cells of each have).
NODES = {"darts": 4, "enas": 5, "pnas": 5, "nasnet": 5, "amoeba": 5}

_PARTS = ("normal", "normal_concat", "reduce", "reduce_concat")


# ------------------------------------------------------------------------- genotypes


def parse_genotype(genotype) -> Genotype:
    """A ``Genotype`` from a ``Genotype``, a mapping in the NDS layout, or its JSON text.

    Checks the structure only (pairs of an op name and an input index, concat lists of
    indices); ``validate`` checks it against a space.

    >>> parse_genotype('{"normal": [["skip_connect", 0], ["skip_connect", 1]], "normal_concat": [2],'
    ...                ' "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]], "reduce_concat": [2]}').normal
    (('skip_connect', 0), ('skip_connect', 1))
    """
    if isinstance(genotype, str):
        try:
            genotype = json.loads(genotype)
        except json.JSONDecodeError as err:
            raise ValueError(f"genotype text is not JSON: {err}") from None
    if isinstance(genotype, Genotype):
        parts = genotype._asdict()
    elif isinstance(genotype, Mapping):
        missing = [p for p in _PARTS if p not in genotype]
        if missing:
            raise ValueError(f"genotype lacks {', '.join(missing)}; expected the keys {', '.join(_PARTS)}")
        parts = {p: genotype[p] for p in _PARTS}
    else:
        raise ValueError(f"genotype must be a Genotype, a mapping or its JSON text, got {type(genotype).__name__}")
    out = {}
    for cell in ("normal", "reduce"):
        entries = parts[cell]
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence) or not entries \
                or len(entries) % 2:
            raise ValueError(f"genotype.{cell} must be a non-empty list of an even number of [op, input] pairs")
        pairs = []
        for i, entry in enumerate(entries):
            if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2 \
                    or not isinstance(entry[0], str) or isinstance(entry[1], bool) or not isinstance(entry[1], int):
                raise ValueError(f"genotype.{cell}[{i}] must be an [op name, input index] pair, got {entry!r}")
            pairs.append((entry[0], int(entry[1])))
        out[cell] = tuple(pairs)
        concat = parts[f"{cell}_concat"]
        if isinstance(concat, (str, bytes)) or not isinstance(concat, (Sequence, range)) or not len(concat) \
                or any(isinstance(c, bool) or not isinstance(c, int) for c in concat):
            raise ValueError(f"genotype.{cell}_concat must be a non-empty list of state indices, got {concat!r}")
        out[f"{cell}_concat"] = tuple(int(c) for c in concat)
    return Genotype(**out)


def validate(space: str, genotype) -> Genotype:
    """``parse_genotype`` and check it against ``space``: every op in the space's op set,
    every input index naming an earlier state, every concat index a state of the cell (a
    node, or in a normal cell also an input state). ``ValueError`` names the entry.

    >>> validate("darts", GENOTYPES["darts_v2"]) == GENOTYPES["darts_v2"]
    True
    """
    check_choice("space", space, SPACES)
    parsed = parse_genotype(genotype)
    ops = SPACES[space]
    for cell in ("normal", "reduce"):
        pairs = getattr(parsed, cell)
        for i, (op, index) in enumerate(pairs):
            if op not in ops:
                raise ValueError(
                    f"genotype.{cell}[{i}] names op {op!r}, which is not in the {space} space; "
                    f"its ops: {', '.join(ops)}")
            if not 0 <= index < 2 + i // 2:
                raise ValueError(
                    f"genotype.{cell}[{i}] reads state {index}, but node {i // 2} can read only states "
                    f"0..{1 + i // 2} (the two cell inputs and the nodes before it)")
        steps = len(pairs) // 2
        lowest = 0 if cell == "normal" else 2
        for c in getattr(parsed, f"{cell}_concat"):
            if not lowest <= c < 2 + steps:
                why = " (a reduction cell's inputs are at the higher resolution)" if cell == "reduce" and c < 2 else ""
                raise ValueError(f"genotype.{cell}_concat names state {c}; valid: {lowest}..{1 + steps}{why}")
    return parsed


def genotype_to_json(genotype) -> str:
    """The genotype in the NDS layout as canonical JSON (sorted keys, no spaces)."""
    g = parse_genotype(genotype)
    return json.dumps({"normal": [list(p) for p in g.normal], "normal_concat": list(g.normal_concat),
                       "reduce": [list(p) for p in g.reduce], "reduce_concat": list(g.reduce_concat)},
                      sort_keys=True, separators=(",", ":"))


def _sample_cell(space: str, rng: np.random.Generator) -> tuple[tuple, tuple]:
    ops = [op for op in SPACES[space] if op != "none"]
    pairs, read = [], set()
    for node in range(NODES[space]):
        states = 2 + node
        if space == "darts":
            inputs = rng.choice(states, size=2, replace=False)
        else:
            inputs = rng.integers(0, states, size=2)
        for index in inputs:
            pairs.append((ops[int(rng.integers(len(ops)))], int(index)))
            read.add(int(index))
    nodes = range(2, 2 + NODES[space])
    concat = tuple(nodes) if space == "darts" else tuple(s for s in nodes if s not in read)
    return tuple(pairs), concat


def sample(space: str, k: int, seed: int) -> list[Genotype]:
    """``k`` distinct genotypes of ``space``, drawn deterministically from ``seed``.

    The law (ours: NDS's release holds the sampled networks, not its sampler): the
    normal and the reduction cell are drawn independently; node ``j`` of ``NODES[space]``
    takes two inputs among the states ``0 .. 1 + j`` and an op for each, uniformly from
    the space's op set without ``none`` (a derived cell never contains the zero op).
    In the DARTS space the two inputs of a node differ and the output concatenates
    every node (DARTS's derived cells); in the other spaces the inputs are independent
    (they may coincide, as in the published AmoebaNet and NASNet cells) and the output
    concatenates the loose ends, the nodes no node reads (NASNet's rule; the last node
    is always one). A repeated genotype is drawn again.

    >>> g = sample("amoeba", 2, seed=0)
    >>> g == sample("amoeba", 2, seed=0), len(g[0].normal), validate("amoeba", g[1]) == g[1]
    (True, 10, True)
    """
    check_choice("space", space, SPACES)
    k = check_int("k", k, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    drawn: list[Genotype] = []
    seen: set[str] = set()
    while len(drawn) < k:
        normal, normal_concat = _sample_cell(space, rng)
        reduce, reduce_concat = _sample_cell(space, rng)
        genotype = Genotype(normal, normal_concat, reduce, reduce_concat)
        key = genotype_to_json(genotype)
        if key not in seen:
            seen.add(key)
            drawn.append(validate(space, genotype))
    return drawn


# ------------------------------------------------------------------------------- ops


class ReLUConvBN(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _separable_block(C: int, kernel_size: int, stride: int, padding: int, dilation: int) -> list[nn.Module]:
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C, bias=False),
        nn.Conv2d(C, C, 1, bias=False),
        nn.BatchNorm2d(C),
    ]


class SepConv(nn.Module):
    """Two ReLU - depthwise - pointwise - BN blocks, the first with the stride (``dilation``
    2 gives ``dil_sep_conv``)."""

    def __init__(self, C: int, kernel_size: int, stride: int, padding: int, dilation: int = 1):
        super().__init__()
        self.op = nn.Sequential(*_separable_block(C, kernel_size, stride, padding, dilation),
                                *_separable_block(C, kernel_size, 1, padding, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """One ReLU - dilated depthwise - pointwise - BN block."""

    def __init__(self, C: int, kernel_size: int, stride: int, padding: int, dilation: int):
        super().__init__()
        self.op = nn.Sequential(*_separable_block(C, kernel_size, stride, padding, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedConv(nn.Module):
    """ReLU - Conv(1 x k) - Conv(k x 1) - BN: ``conv_3x1_1x3`` and ``conv_7x1_1x7``."""

    def __init__(self, C: int, k: int, stride: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
            nn.Conv2d(C, C, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
            nn.BatchNorm2d(C),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op; ``x.mul(0.)`` so it batches under vmap."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU - two 1x1 stride-2 convs (C_out / 2 each, the second shifted by one pixel) -
    concat - BN: halves the resolution without dropping pixels."""

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output channel count, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _make_op(name: str, C: int, stride: int) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C)
    if name in ("avg_pool_3x3",):
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name.startswith("max_pool_"):
        k = int(name[-1])
        return nn.MaxPool2d(k, stride=stride, padding=k // 2)
    if name in ("conv_1x1", "conv_3x3"):
        k = int(name[-1])
        return ReLUConvBN(C, C, k, stride, k // 2)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return SepConv(C, k, stride, k // 2)
    if name == "dil_sep_conv_3x3":
        return SepConv(C, 3, stride, 2, dilation=2)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return DilConv(C, k, stride, k - 1, 2)
    if name in ("conv_3x1_1x3", "conv_7x1_1x7"):
        return FactorizedConv(C, int(name[5]), stride)
    raise ValueError(f"unknown op {name!r}")


# --------------------------------------------------------------------------- network


class Cell(nn.Module):
    """One DARTS-style cell (module docstring)."""

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self._concat = tuple(genotype.reduce_concat if reduction else genotype.normal_concat)
        self._indices = tuple(index for _, index in pairs)
        self._steps = len(pairs) // 2
        self.multiplier = len(self._concat)
        self._ops = nn.ModuleList(
            _make_op(name, C, 2 if reduction and index < 2 else 1) for name, index in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(self._steps):
            a, b = 2 * k, 2 * k + 1
            states.append(self._ops[a](states[self._indices[a]]) + self._ops[b](states[self._indices[b]]))
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier for an 8x8 input."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(start_dim=1))


class NetworkCIFAR(nn.Module):
    """The DARTS / NDS CIFAR network around one genotype; ``forward`` returns logits only."""

    def __init__(self, genotype: Genotype, C: int, layers: int, auxiliary: bool, num_classes: int,
                 in_channels: int, stem_multiplier: int = 3):
        super().__init__()
        self.genotype = genotype
        self._layers = layers
        self._auxiliary = auxiliary
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        C_to_auxiliary = C_prev
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == 2 * layers // 3:
                C_to_auxiliary = C_prev
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_to_auxiliary, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward_with_auxiliary(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, auxiliary_logits)``; the second is None without an auxiliary head."""
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == 2 * self._layers // 3 and self._auxiliary:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(start_dim=1))
        return logits, logits_aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(start_dim=1))


def build(space: str, genotype, C: int, layers: int, auxiliary: bool = False, num_classes: int = 10,
          in_channels: int = 3) -> NetworkCIFAR:
    """Build the NDS network of ``genotype`` in ``space`` at width ``C`` and depth ``layers``.

    ``genotype`` is a ``Genotype``, a mapping in the NDS layout or its JSON text; it is
    validated against the space's op set first. Weights get PyTorch's default
    initialisation from the global RNG; seed it first.

    >>> net = build("darts", GENOTYPES["darts_v2"], C=36, layers=20, auxiliary=True)
    >>> count_parameters(net)  # DARTS's count, auxiliary head excluded: the paper's 3.3 M
    3349342
    """
    check_choice("space", space, SPACES)
    C = check_int("C", C, minimum=1)
    layers = check_int("layers", layers, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    if not isinstance(auxiliary, bool):
        raise ValueError(f"auxiliary must be a bool, got {auxiliary!r}")
    return NetworkCIFAR(validate(space, genotype), C, layers, auxiliary, num_classes, in_channels)


def count_parameters(model: nn.Module) -> int:
    """Parameters whose name does not contain ``auxiliary`` (DARTS's ``count_parameters_in_MB``
    times 1e6)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)
