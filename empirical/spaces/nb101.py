"""The NAS-Bench-101 search space: specs, pruning, the benchmark's hash, and the network.

NAS-Bench-101 (Ying et al., ICML 2019, §2) searches one cell ("module"), repeated in a
fixed skeleton. A cell is a DAG given by an upper-triangular 0/1 adjacency matrix on at
most 7 vertices with at most 9 edges; vertex 0 is ``input``, the last vertex is
``output`` and every interior vertex carries one op from ``OPS``. Vertices that lie on
no input -> output path are pruned before anything else (the benchmark's
``ModelSpec._prune``); the limits of 7 vertices and 9 edges apply to the pruned spec, as
the benchmark's ``NASBench._check_spec`` applies them.

Keys: ``spec_hash`` is the benchmark's own graph hash (``graph_util.hash_module``), so
keys match the published data. With labels ``-1`` for input, ``-2`` for output and the
op's index in ``OPS`` for interior vertices, each vertex starts from
``md5(str((out_degree, in_degree, label)))``; then, ``V`` times, every vertex's hash
becomes ``md5(sorted in-neighbour hashes joined + "|" + sorted out-neighbour hashes
joined + "|" + own hash)``; the key is ``md5(str(sorted(hashes)))`` (hex digests,
Python ``str`` formatting of the tuple and list, UTF-8).

Network (``build``), the skeleton of the paper's Figure 1 and the benchmark's
``model_builder``:

    stem:   Conv3x3(in_channels -> stem_channels) - BN - ReLU
    stack:  cells_per_stack cells at c channels, c = stem_channels * 2**s for stack s,
            each stack after the first preceded by MaxPool 2x2, stride 2
    head:   global average pool - Linear(c -> num_classes)

    Inside a cell with input x (c_in channels) and c output channels:
    vertex_channels = compute_vertex_channels(c_in, c, matrix)
    vertex t = op_t( sum_{interior s -> t} x_s[:, :vc_t]  +  [0 -> t] proj_t(x) )
    output   = concat_{t -> output} x_t  +  [0 -> output] proj_out(x)

where ``proj`` is a 1x1 Conv-BN-ReLU to the target's channel count, a source with one
channel more than its target is truncated to the target's count (the channel split can
hand the first vertices one extra channel), and a cell whose only edge is input ->
output is ``proj_out(x)``. Convolutions have no bias and ``same`` padding; ``maxpool3x3``
is a 3x3 max pool, stride 1, padding 1; the 2x2 down-sampling pool uses
``ceil_mode=True`` to match TensorFlow's ``same`` padding on odd sizes.

Choices, all deliberate:

* BatchNorm: ``momentum=0.003, eps=1e-5``, the benchmark's ``BN_MOMENTUM = 0.997`` and
  ``BN_EPSILON = 1e-5`` translated to PyTorch's convention (PyTorch's momentum is the
  weight of the new batch, TensorFlow's the weight of the old average). It changes only
  the running statistics, not a forward pass in training mode.
* Weights get PyTorch's default initialisation (the benchmark used TensorFlow's
  ``variance_scaling_initializer``); seed the global RNG for reproducible weights.
* ``forward`` returns the logits only; no ReLU is in-place, so the model composes with
  ``torch.func``.

Parameter counts match the benchmark's ``trainable_parameters`` (conv kernels, BatchNorm
scale and shift, the classifier's weight and bias); ``tests/test_nb101.py`` checks the
README's Inception-like cell (2,694,282) and hand arithmetic.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from proxies.checks import check_int

__all__ = [
    "OPS",
    "INPUT",
    "OUTPUT",
    "MAX_VERTICES",
    "MAX_EDGES",
    "BN_MOMENTUM",
    "BN_EPS",
    "Spec",
    "spec",
    "is_valid",
    "prune",
    "hash_module",
    "spec_hash",
    "sample",
    "compute_vertex_channels",
    "build",
    "Network",
    "Cell",
    "ConvBnRelu",
]

#: Interior ops in the benchmark's ``available_ops`` order: a label is an index into this.
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
MAX_VERTICES = 7
MAX_EDGES = 9
#: PyTorch's BatchNorm momentum for TensorFlow's 0.997 (the weight of the new batch).
BN_MOMENTUM = 1.0 - 0.997
BN_EPS = 1e-5

_LABELS = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(OPS)}}


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Spec:
    """A pruned, validated cell: ``matrix[i][j] == 1`` is an edge i -> j (i < j)."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def array(self) -> np.ndarray:
        """The adjacency matrix as an ``int8`` array."""
        return np.array(self.matrix, dtype=np.int8).reshape(self.num_vertices, self.num_vertices)

    def hash(self) -> str:
        """NAS-Bench-101's key of this spec (see ``spec_hash``)."""
        return hash_module(self.array(), [_LABELS[op] for op in self.ops])


def _as_matrix(matrix) -> np.ndarray:
    try:
        array = np.asarray(matrix)
    except (ValueError, TypeError):
        raise ValueError("matrix must be a square 2-D array of 0/1 entries (ragged or not numeric)") from None
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"matrix must be a square 2-D array of 0/1 entries, got shape {array.shape}")
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"matrix must hold 0/1 numbers, got dtype {array.dtype}")
    bad = np.argwhere((array != 0) & (array != 1))
    if len(bad):
        i, j = map(int, bad[0])
        raise ValueError(f"matrix entries must be 0 or 1, found {array[i, j]!r} at ({i}, {j})")
    if array.shape[0] < 2:
        raise ValueError(f"matrix must have at least 2 vertices (input and output), got {array.shape[0]}")
    below = np.argwhere(np.tril(array) != 0)
    if len(below):
        i, j = map(int, below[0])
        raise ValueError(
            f"matrix must be upper-triangular (edges only from a lower to a higher vertex), "
            f"found an entry at ({i}, {j})"
        )
    return array.astype(np.int8)


def _check_ops(ops, num_vertices: int) -> tuple[str, ...]:
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise ValueError(f"ops must be a list of op names, got {type(ops).__name__}")
    ops = tuple(ops)
    if len(ops) != num_vertices:
        raise ValueError(f"ops must name one op per vertex ({num_vertices}), got {len(ops)}")
    if ops[0] != INPUT:
        raise ValueError(f"the first op must be {INPUT!r}, got {ops[0]!r}")
    if ops[-1] != OUTPUT:
        raise ValueError(f"the last op must be {OUTPUT!r}, got {ops[-1]!r}")
    for vertex, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise ValueError(f"unknown op {op!r} at vertex {vertex}; valid interior ops: {', '.join(OPS)}")
    return ops


def prune(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Keep the vertices on some input -> output path (the benchmark's ``_prune``).

    ``matrix`` is a checked upper-triangular 0/1 array. Raises ``ValueError`` when no
    path joins input to output (the spec is disconnected).
    """
    n = matrix.shape[0]
    from_input, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(matrix[v]):
            if int(w) not in from_input:
                from_input.add(int(w))
                frontier.append(int(w))
    to_output, frontier = {n - 1}, [n - 1]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(matrix[:, v]):
            if int(w) not in to_output:
                to_output.add(int(w))
                frontier.append(int(w))
    keep = sorted(from_input & to_output)
    if n - 1 not in from_input:
        raise ValueError(
            f"spec is disconnected: no path from input (vertex 0) to output (vertex {n - 1})"
        )
    return matrix[np.ix_(keep, keep)].copy(), tuple(ops[i] for i in keep)


def spec(matrix, ops: Sequence[str]) -> Spec:
    """Validate ``(matrix, ops)`` and return the pruned ``Spec``.

    Errors (``ValueError``, naming the problem): a matrix that is not square, not 0/1 or
    not upper-triangular; ops of the wrong length, not starting with ``input`` or ending
    with ``output``, or naming an op outside ``OPS``; a disconnected spec; more than
    ``MAX_VERTICES`` vertices or ``MAX_EDGES`` edges after pruning.

    >>> s = spec([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
    ...          ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    >>> s.ops, s.matrix
    (('input', 'conv3x3-bn-relu', 'output'), ((0, 1, 0), (0, 0, 1), (0, 0, 0)))
    """
    array = _as_matrix(matrix)
    ops = _check_ops(ops, array.shape[0])
    pruned, kept_ops = prune(array, ops)
    if len(kept_ops) > MAX_VERTICES:
        raise ValueError(
            f"spec has {len(kept_ops)} vertices after pruning; NAS-Bench-101 allows at most {MAX_VERTICES}"
        )
    edges = int(pruned.sum())
    if edges > MAX_EDGES:
        raise ValueError(f"spec has {edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")
    return Spec(tuple(tuple(int(v) for v in row) for row in pruned), kept_ops)


def is_valid(matrix, ops: Sequence[str]) -> bool:
    """Whether ``spec(matrix, ops)`` succeeds."""
    try:
        spec(matrix, ops)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------ hash


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def hash_module(matrix, labels: Sequence[int]) -> str:
    """NAS-Bench-101's ``graph_util.hash_module``: an isomorphism-invariant MD5 key.

    Works on any square 0/1 matrix with one integer label per vertex; see the module
    docstring for the iteration. Isomorphic labelled graphs get the same key.

    >>> hash_module([[0, 1], [0, 0]], [-1, -2]) == hash_module([[0, 1], [0, 0]], [-1, -2])
    True
    """
    array = np.asarray(matrix)
    n = array.shape[0]
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per vertex ({n}), got {len(labels)}")
    in_degree = array.sum(axis=0).tolist()
    out_degree = array.sum(axis=1).tolist()
    hashes = [_md5(str((int(out_degree[v]), int(in_degree[v]), int(labels[v])))) for v in range(n)]
    sources = [[w for w in range(n) if array[w, v]] for v in range(n)]
    targets = [[w for w in range(n) if array[v, w]] for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[w] for w in sources[v])) + "|"
                 + "".join(sorted(hashes[w] for w in targets[v])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def spec_hash(matrix, ops: Sequence[str]) -> str:
    """The benchmark's key of a spec: ``hash_module`` of the pruned spec, labelled
    ``-1`` (input), ``-2`` (output) and the op's index in ``OPS``.

    >>> spec_hash([[0, 1], [0, 0]], ["input", "output"]) == spec_hash(
    ...     [[0, 0, 1], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    True
    """
    return spec(matrix, ops).hash()


# --------------------------------------------------------------------------- sampler


def sample(k: int, seed: int, *, num_vertices: int = MAX_VERTICES) -> list[Spec]:
    """``k`` distinct (by hash) valid specs, drawn deterministically from ``seed``.

    Each draw is a ``num_vertices`` x ``num_vertices`` matrix whose above-diagonal
    entries are independent fair coins and interior ops drawn uniformly from ``OPS``
    (the benchmark's colab ``random_spec``); it is pruned, and rejected when
    disconnected or over the limits, or when its hash was already drawn. The law is
    therefore not uniform over the 423,624 classes: small pruned cells are rarer.

    >>> [s.hash() for s in sample(3, 0)] == [s.hash() for s in sample(3, 0)]
    True
    """
    k = check_int("k", k, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    num_vertices = check_int("num_vertices", num_vertices, minimum=2, maximum=MAX_VERTICES)
    rng = np.random.default_rng(seed)
    upper = np.triu(np.ones((num_vertices, num_vertices), dtype=bool), 1)
    drawn: list[Spec] = []
    seen: set[str] = set()
    while len(drawn) < k:
        matrix = (rng.integers(0, 2, size=(num_vertices, num_vertices)) * upper).astype(np.int8)
        ops = [INPUT, *(OPS[i] for i in rng.integers(0, len(OPS), size=num_vertices - 2)), OUTPUT]
        try:
            candidate = spec(matrix, ops)
        except ValueError:
            continue
        key = candidate.hash()
        if key not in seen:
            seen.add(key)
            drawn.append(candidate)
    return drawn


# --------------------------------------------------------------------------- network


def compute_vertex_channels(input_channels: int, output_channels: int, matrix) -> list[int]:
    """Channels of every vertex (the benchmark's ``compute_vertex_channels``).

    The output's channels are split evenly among the interior vertices that feed it, the
    remainder going one each to the first of them in vertex order; every other interior
    vertex takes the maximum over its interior successors, filled in backwards. Vertex 0
    keeps ``input_channels``. ``matrix`` is a pruned spec's matrix.

    >>> compute_vertex_channels(8, 15, [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1],
    ...                                 [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    [8, 5, 5, 5, 15]
    """
    array = np.asarray(matrix)
    n = array.shape[0]
    channels = [0] * n
    channels[0], channels[n - 1] = input_channels, output_channels
    if n == 2:
        return channels
    feeding_output = int(array[1:, n - 1].sum())
    base, extra = divmod(output_channels, feeding_output)
    for v in range(1, n - 1):
        if array[v, n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra = max(extra - 1, 0)
    for v in range(n - 3, 0, -1):
        if not array[v, n - 1]:
            for w in range(v + 1, n - 1):
                if array[v, w]:
                    channels[v] = max(channels[v], channels[w])
    if any(c <= 0 for c in channels[1:-1]):
        raise ValueError(
            f"output_channels={output_channels} is too small to give each of the {feeding_output} "
            "vertices feeding the output at least one channel"
        )
    return channels


class ConvBnRelu(nn.Module):
    """Conv2d(no bias, ``same`` padding, stride 1) - BatchNorm2d - ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _vertex_op(op: str, channels: int) -> nn.Module:
    if op == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3)
    if op == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1)
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown op {op!r}; valid interior ops: {', '.join(OPS)}")


class Cell(nn.Module):
    """One NAS-Bench-101 module from ``in_channels`` to ``out_channels`` (module docstring)."""

    def __init__(self, cell_spec: Spec, in_channels: int, out_channels: int):
        super().__init__()
        self.spec = cell_spec
        matrix = cell_spec.array()
        n = cell_spec.num_vertices
        self.vertex_channels = compute_vertex_channels(in_channels, out_channels, matrix)
        self.sources = [[s for s in range(1, t) if matrix[s, t]] for t in range(n)]
        self.from_input = [bool(matrix[0, t]) for t in range(n)]
        self.to_output = [t for t in range(1, n - 1) if matrix[t, n - 1]]
        # Index t of each list is vertex t; unused slots hold an Identity so names stay aligned.
        self.projections = nn.ModuleList(
            ConvBnRelu(in_channels, self.vertex_channels[t], 1) if self.from_input[t] else nn.Identity()
            for t in range(n)
        )
        self.vertex_ops = nn.ModuleList(
            _vertex_op(cell_spec.ops[t], self.vertex_channels[t]) if 0 < t < n - 1 else nn.Identity()
            for t in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.spec.num_vertices
        tensors = [x]
        for t in range(1, n - 1):
            width = self.vertex_channels[t]
            terms = [tensors[s][:, :width] for s in self.sources[t]]
            if self.from_input[t]:
                terms.append(self.projections[t](x))
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            tensors.append(self.vertex_ops[t](total))
        if not self.to_output:
            return self.projections[n - 1](x)
        out = tensors[self.to_output[0]] if len(self.to_output) == 1 else torch.cat(
            [tensors[t] for t in self.to_output], dim=1)
        if self.from_input[n - 1]:
            out = out + self.projections[n - 1](x)
        return out


class Network(nn.Module):
    """NAS-Bench-101's skeleton around one cell; ``forward`` returns logits only."""

    def __init__(self, cell_spec: Spec, stem_channels: int, num_stacks: int, cells_per_stack: int,
                 num_classes: int, in_channels: int):
        super().__init__()
        self.spec = cell_spec
        self.stem = ConvBnRelu(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        channels = previous = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(cell_spec, previous, channels))
                previous = channels
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for layer in self.layers:
            out = layer(out)
        return self.classifier(out.mean(dim=(2, 3)))


def build(matrix, ops: Sequence[str] | None = None, stem_channels: int = 128, num_stacks: int = 3,
          cells_per_stack: int = 3, num_classes: int = 10, in_channels: int = 3) -> Network:
    """Build the NAS-Bench-101 network of ``(matrix, ops)``, or of a ``Spec`` passed as
    ``matrix`` with ``ops=None`` (pruned and validated first; module docstring).

    Defaults are the benchmark's (stem 128, 3 stacks of 3 cells, CIFAR-10). Weights get
    PyTorch's default initialisation from the global RNG; seed it first.

    >>> net = build([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"],
    ...             stem_channels=8, num_stacks=1, cells_per_stack=1)
    >>> sum(p.numel() for p in net.parameters())  # stem 232, projection 80, conv 592, head 90
    994
    """
    stem_channels = check_int("stem_channels", stem_channels, minimum=1)
    num_stacks = check_int("num_stacks", num_stacks, minimum=1)
    cells_per_stack = check_int("cells_per_stack", cells_per_stack, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    if isinstance(matrix, Spec):
        cell_spec = spec(matrix.matrix, matrix.ops if ops is None else ops)
    elif ops is None:
        raise ValueError("ops is required unless matrix is a Spec")
    else:
        cell_spec = spec(matrix, ops)
    compute_vertex_channels(stem_channels, stem_channels, cell_spec.array())
    return Network(cell_spec, stem_channels, num_stacks, cells_per_stack, num_classes, in_channels)
