"""The NAS-Bench-201 search space: arch strings, isomorphism classes, and the network.

NAS-Bench-201 (Dong & Yang, ICLR 2020, §2) fixes a macro skeleton and searches one
cell, shared by all 15 cell positions. The cell is a DAG on 4 nodes (node 0 is the cell
input, node 3 its output) with an edge ``j -> i`` for every ``j < i``: 6 edges, each
carrying one of 5 operations, so 5**6 = 15,625 cells.

Arch strings use NAS-Bench-201's own format, one ``|op~src|`` group per incoming edge,
nodes separated by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Network (``build``), mirroring AutoDL-Projects' ``TinyNetwork`` / ``InferCell``:

    stem:   Conv3x3(in_channels -> C, no bias) - BN
    stage:  N cells at C  | ResNet block C -> 2C, stride 2
            N cells at 2C | ResNet block 2C -> 4C, stride 2
            N cells at 4C
    head:   BN - ReLU - global average pool - Linear(4C -> num_classes)

    node_i = sum_{j<i} op_{j->i}(node_j),   cell output = node_3.

Differences from the original, all deliberate and without effect on the function or
the parameters: ``forward`` returns the logits only (the original returns
``(pooled_features, logits)``); no ReLU is in-place (the original's head uses
``ReLU(inplace=True)``), so the model composes with ``torch.func``. Module and
parameter names follow the original (``stem.0``, ``cells.k.layers.e.op.1``,
``cells.5.conv_a.op.1``, ``lastact.0``, ``classifier``), so state dicts line up.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch
from torch import nn

from proxies.checks import check_int

__all__ = [
    "OPS",
    "EDGES",
    "parse",
    "to_str",
    "all_archs",
    "canonical",
    "unique_archs",
    "representatives",
    "build",
    "TinyNetwork",
    "InferCell",
    "ReLUConvBN",
    "ResNetBasicblock",
    "Pooling",
    "Identity",
    "Zero",
]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The 6 edges as (target, source), in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_NUM_NODES = 4
_ZERO = "#"
RULES = ("nb201", "strict")


# --------------------------------------------------------------------------- strings


def parse(arch_str: str) -> tuple[tuple[str, int], ...]:
    """Parse a NAS-Bench-201 arch string into 6 ``(op, src)`` pairs in ``EDGES`` order.

    Node ``i`` (1..3) must list exactly its ``i`` incoming edges with sources
    ``0, ..., i-1`` in that order, as NAS-Bench-201 writes them.

    >>> parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")[:2]
    (('nor_conv_3x3', 0), ('none', 0))
    """
    if not isinstance(arch_str, str):
        raise ValueError(f"arch_str must be a str, got {type(arch_str).__name__}")
    nodes = arch_str.split("+")
    if len(nodes) != _NUM_NODES - 1:
        raise ValueError(
            f"arch_str must have {_NUM_NODES - 1} nodes separated by '+', got {len(nodes)} "
            f"in {arch_str!r}; e.g. '|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
            "|avg_pool_3x3~0|nor_conv_1x1~1|none~2|'"
        )
    edges: list[tuple[str, int]] = []
    for target, node in enumerate(nodes, start=1):
        if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
            raise ValueError(
                f"node {target} of arch_str must start and end with '|', got {node!r} "
                f"in {arch_str!r}"
            )
        groups = node[1:-1].split("|")
        if len(groups) != target:
            raise ValueError(
                f"node {target} of arch_str must have {target} incoming edge(s) "
                f"'|op~src|', got {len(groups)} in {node!r}"
            )
        for expected_src, group in enumerate(groups):
            op, sep, src = group.partition("~")
            if not sep:
                raise ValueError(
                    f"edge {group!r} of node {target} must read 'op~src' (missing '~')"
                )
            if op not in OPS:
                raise ValueError(
                    f"unknown op {op!r} in node {target} of arch_str; valid ops: {', '.join(OPS)}"
                )
            if src != str(expected_src):
                raise ValueError(
                    f"edge {len(edges)} ({group!r}) of node {target} must have source "
                    f"{expected_src}; node {target} lists sources 0..{target - 1} in order"
                )
            edges.append((op, expected_src))
    return tuple(edges)


def to_str(ops: tuple[str, ...] | list[str]) -> str:
    """Inverse of ``parse`` up to sources: 6 op names in ``EDGES`` order -> arch string."""
    ops = tuple(ops)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(
            f"ops must be {len(EDGES)} names from {OPS} in EDGES order, got {ops!r}"
        )
    groups: dict[int, list[str]] = {t: [] for t in range(1, _NUM_NODES)}
    for (target, src), op in zip(EDGES, ops):
        groups[target].append(f"{op}~{src}")
    return "+".join("|" + "|".join(groups[t]) + "|" for t in range(1, _NUM_NODES))


@lru_cache(maxsize=1)
def _all_archs() -> tuple[str, ...]:
    return tuple(to_str(ops) for ops in itertools.product(OPS, repeat=len(EDGES)))


def all_archs() -> list[str]:
    """The 15,625 arch strings in a fixed order.

    Order: ``itertools.product(OPS, repeat=6)`` over the edges in ``EDGES`` order, i.e.
    the arch with op indices ``(o_0, ..., o_5)`` (index into ``OPS``) sits at position
    ``sum_e o_e * 5**(5 - e)``: the last edge (3<-2) varies fastest. This is *not*
    the index order of NAS-Bench-201's benchmark file.
    """
    return list(_all_archs())


# ----------------------------------------------------------------------- isomorphism


def _nb201_label(edges: tuple[tuple[str, int], ...]) -> str:
    exprs = ["0"]
    for target in range(1, _NUM_NODES):
        parts = []
        for (t, src), (op, _) in zip(EDGES, edges):
            if t != target:
                continue
            if op == "none" or exprs[src] == _ZERO:
                parts.append(_ZERO)
            elif op == "skip_connect":
                parts.append(exprs[src])
            else:
                parts.append(f"({exprs[src]})@{op}")
        exprs.append("+".join(sorted(parts)))
    return exprs[-1]


def _strict_label(edges: tuple[tuple[str, int], ...]) -> str:
    # A node is the sorted multiset of its non-zero summands; () is zero. Keeping terms
    # as a tuple (not a joined string) flattens sums passed on by skip_connect.
    terms: list[tuple[str, ...]] = [("0",)]
    for target in range(1, _NUM_NODES):
        node: list[str] = []
        for (t, src), (op, _) in zip(EDGES, edges):
            if t != target or op == "none" or not terms[src]:
                continue
            if op == "skip_connect":
                node.extend(terms[src])
            else:
                node.append(f"({'+'.join(terms[src])})@{op}")
        terms.append(tuple(sorted(node)))
    return "+".join(terms[-1]) or _ZERO


def canonical(arch_str: str, rule: str = "nb201") -> str:
    """Isomorphism-class label of a cell: cells with equal labels compute the same function.

    ``rule="nb201"`` is NAS-Bench-201's own rule (its ``to_unique_str(consider_zero=True)``):
    node 0 is ``"0"``; each edge ``j -> i`` contributes

    * ``"#"`` (the zero marker) if its op is ``none`` or node ``j``'s expression is
      exactly ``"#"``;
    * node ``j``'s expression unchanged if its op is ``skip_connect``;
    * ``"(" + expr_j + ")@" + op`` otherwise;

    a node's expression is its contributions sorted and joined by ``+`` (so a node with
    several all-zero inputs is ``"#+#"``, not ``"#"``); the label is node 3's expression.
    Over ``all_archs()`` this gives 6,466 classes, NAS-Bench-201's count.

    ``rule="strict"`` reads each node as a sum of terms and normalises it fully: zero
    summands are dropped (``x + 0 = x``), a node with no non-zero summand is zero (so an
    op on it is zero too), and sums handed on by ``skip_connect`` are flattened into the
    receiving node's sum before sorting (the nb201 rule sorts the joined strings, so
    ``(a+b)+c`` and ``a+(b+c)`` can get different labels). The label is node 3's sorted
    summands joined by ``+``, or ``"#"`` when node 3 is zero. Nodes that cannot reach
    node 3 never appear in its expression under either rule.
    Over ``all_archs()`` this gives 4,930 classes. The linearity of ``avg_pool_3x3``
    (pool(a + b) = pool(a) + pool(b)) is deliberately not used: classes stay structural.

    Both rules treat an op applied to a zero node as zero, as NAS-Bench-201 does: exact
    for ``none``, ``skip_connect`` and ``avg_pool_3x3``; for the convolutions the output
    is the BatchNorm shift beta, which is zero at initialisation.

    >>> canonical("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|avg_pool_3x3~2|")
    '#+#+(#+0)@avg_pool_3x3'
    >>> canonical("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|avg_pool_3x3~2|", rule="strict")
    '(0)@avg_pool_3x3'
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    edges = parse(arch_str)
    return _nb201_label(edges) if rule == "nb201" else _strict_label(edges)


@lru_cache(maxsize=len(RULES))
def _classes(rule: str) -> tuple[tuple[str, ...], dict[str, str]]:
    first: dict[str, str] = {}
    mapping: dict[str, str] = {}
    for arch in _all_archs():
        label = canonical(arch, rule)
        rep = first.setdefault(label, arch)
        mapping[arch] = rep
    return tuple(first.values()), mapping


def unique_archs(rule: str = "nb201") -> list[str]:
    """One representative per isomorphism class: the first member in ``all_archs()`` order."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return list(_classes(rule)[0])


def representatives(rule: str = "nb201") -> dict[str, str]:
    """Map every arch string in ``all_archs()`` to its class representative (see ``unique_archs``)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return dict(_classes(rule)[1])


# --------------------------------------------------------------------------- network


class ReLUConvBN(nn.Module):
    """ReLU - Conv2d(no bias) - BatchNorm2d(affine, tracked running stats)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=True, track_running_stats=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Pooling(nn.Module):
    """3x3 average pool, stride 1, padding 1, padded cells not counted (C_in == C_out here)."""

    def __init__(self):
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op. ``x.mul(0.)`` rather than a fresh tensor so it batches under vmap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ResNetBasicblock(nn.Module):
    """Reduction block: ``conv_b(conv_a(x)) + downsample(x)``, stride 2.

    ``conv_a`` = ReLUConvBN 3x3 stride 2, ``conv_b`` = ReLUConvBN 3x3 stride 1,
    ``downsample`` = AvgPool2d(2, 2) - Conv1x1(no bias).
    """

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv_a = ReLUConvBN(inplanes, planes, 3, 2, 1)
        self.conv_b = ReLUConvBN(planes, planes, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, padding=0, bias=False),
        )
        self.out_dim = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _make_op(op: str, C: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, 1, 1)
    if op == "avg_pool_3x3":
        return Pooling()
    raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")


class InferCell(nn.Module):
    """One NAS-Bench-201 cell at C channels: ``node_i = sum_{j<i} op_{j->i}(node_j)``."""

    def __init__(self, arch_str: str, C: int):
        super().__init__()
        self.arch = parse(arch_str)
        self.layers = nn.ModuleList(_make_op(op, C) for op, _ in self.arch)
        self.out_dim = C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, _NUM_NODES):
            node = None
            for (t, src), layer in zip(EDGES, self.layers):
                if t != target:
                    continue
                y = layer(nodes[src])
                node = y if node is None else node + y
            nodes.append(node)
        return nodes[-1]


class TinyNetwork(nn.Module):
    """NAS-Bench-201's macro skeleton around one cell; ``forward`` returns logits only."""

    def __init__(self, arch_str: str, C: int, N: int, num_classes: int, in_channels: int):
        super().__init__()
        self.arch_str = arch_str
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        cells: list[nn.Module] = []
        C_prev = C
        for stage, C_curr in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicblock(C_prev, C_curr))
            cells.extend(InferCell(arch_str, C_curr) for _ in range(N))
            C_prev = C_curr
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        out = self.global_pooling(self.lastact(feature))
        return self.classifier(out.flatten(start_dim=1))


def build(
    arch_str: str, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3
) -> TinyNetwork:
    """Build the NAS-Bench-201 network for ``arch_str`` (see the module docstring).

    Defaults are the benchmark's (C=16, N=5, CIFAR-10). Weights get PyTorch's default
    initialisation from the global RNG; seed it first for reproducible weights.

    >>> net = build("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    ...             "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    >>> sum(p.numel() for p in net.parameters())
    1531546
    """
    for name, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
        check_int(name, value, minimum=1)
    parse(arch_str)
    return TinyNetwork(arch_str, C, N, num_classes, in_channels)
