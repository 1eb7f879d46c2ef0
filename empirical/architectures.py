"""The architectures of the scored search spaces: their keys, the cell a store row
carries, seeded samples, and the network at a chosen size.

One architecture is ``(space, arch, cell)``: ``arch`` is the stable key that joins
scores with a ground truth, ``cell`` the JSON data that builds it (stored in the row,
so a row rebuilds its network without the benchmark file):

=========  ===========================================  =============================================
space      arch (the key)                               cell
=========  ===========================================  =============================================
nb201      NAS-Bench-201's arch string                  None (the string is the cell)
nb101      the benchmark's hash (`nb101.spec_hash`)     ``{"matrix": [[0/1, ...], ...], "ops": [...]}``
nds-<s>    `nds_files.arch_key` of the four fields      ``{"genotype": {NDS layout}, "width": w,
           (the key of the user's NDS file)             "depth": d, "aux": false}``
=========  ===========================================  =============================================

An NB101 hash names an isomorphism class; the cell is one member of it, the one the
row was built from (vertex order changes the order in which weights are drawn, so
members of a class get different θ_0 from one seed).

Size ``(C, N)`` of the network, per space (`build`):

* ``nb201``: ``C`` channels in the first stage, ``N`` cells per stage
  (`nb201.build(arch, C, N)`; the benchmark's size is C=16, N=5);
* ``nb101``: stem of ``C`` channels, 3 stacks of ``N`` cells
  (`nb101.build(..., stem_channels=C, num_stacks=3, cells_per_stack=N)`; the
  benchmark's size is C=128, N=3);
* ``nds-<s>``: ``C`` initial channels, ``N`` cells in all (`nds.build(s, genotype,
  C, layers=N)`, without the auxiliary head: it is a training device that the logits
  do not pass through); ``C=None`` / ``N=None`` take the width / depth of the cell,
  i.e. the size the NDS file trained the network at. DARTS's CIFAR-10 evaluation size
  is C=36, N=20.

``LAPTOP_SIZE`` is what `gradsign space-score` uses by default (a network that scores
in well under a second on digits), ``ORIGINAL_SIZE`` each benchmark's own.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from torch import nn

from empirical.benchmarks import nds_files
from empirical.spaces import nb101, nb201, nds
from proxies.checks import check_choice, check_int

__all__ = ["SPACES", "NDS_SPACES", "LAPTOP_SIZE", "ORIGINAL_SIZE", "nb101_cell", "nds_cell", "check_cell",
           "check_size", "build", "sample", "subset"]

#: ``nds-<space>`` -> the space's name in `empirical.spaces.nds`.
NDS_SPACES = {f"nds-{space}": space for space in nds.SPACES}
SPACES = ("nb201", "nb101", *NDS_SPACES)
LAPTOP_SIZE = {"nb201": (8, 1), "nb101": (8, 1), **{s: (8, 5) for s in NDS_SPACES}}
ORIGINAL_SIZE = {"nb201": (16, 5), "nb101": (128, 3), **{s: (36, 20) for s in NDS_SPACES}}
NB101_STACKS = 3


def nb101_cell(matrix, ops=None) -> dict:
    """The cell of an NB101 spec (``matrix, ops`` or a `nb101.Spec`), pruned and validated.

    >>> nb101_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    {'matrix': [[0, 1, 0], [0, 0, 1], [0, 0, 0]], 'ops': ['input', 'maxpool3x3', 'output']}
    """
    spec = matrix if isinstance(matrix, nb101.Spec) and ops is None else nb101.spec(matrix, ops)
    return {"matrix": [list(row) for row in spec.matrix], "ops": list(spec.ops)}


def nds_cell(genotype, width: int, depth: int, aux: bool = False) -> dict:
    """The cell of an NDS architecture: its genotype in the NDS layout, width, depth, aux."""
    return {"genotype": json.loads(nds.genotype_to_json(genotype)), "width": int(width), "depth": int(depth),
            "aux": bool(aux)}


def check_cell(space: str, arch: str | None, cell: Mapping | None) -> tuple[str, dict | None]:
    """``(arch, cell)`` checked against each other: the cell validated in its space and
    normalised, and ``arch`` its key (computed when ``arch`` is None). ``ValueError`` on a
    cell that is missing, malformed, outside its space, or whose key is not ``arch``.

    >>> cell = nb101_cell([[0, 1], [0, 0]], ["input", "output"])
    >>> check_cell("nb101", None, cell)[0] == nb101.spec_hash([[0, 1], [0, 0]], ["input", "output"])
    True
    """
    check_choice("space", space, SPACES)
    if space == "nb201":
        if cell is not None:
            raise ValueError("an nb201 architecture is its arch string; it takes no cell")
        if not arch:
            raise ValueError("space 'nb201' needs an arch string ('|op~0|+|op~0|op~1|+|...|')")
        return arch, None
    if not isinstance(cell, Mapping):
        raise ValueError(f"space {space!r} needs the cell of architecture {arch!r} "
                         f"({'matrix and ops' if space == 'nb101' else 'genotype, width, depth, aux'}), "
                         f"got {cell!r}")
    if space == "nb101":
        missing = {"matrix", "ops"} - set(cell)
        if missing:
            raise ValueError(f"an nb101 cell needs 'matrix' and 'ops', this one lacks {sorted(missing)}")
        spec = nb101.spec(cell["matrix"], cell["ops"])
        key, normal = spec.hash(), nb101_cell(spec)
    else:
        missing = {"genotype", "width", "depth"} - set(cell)
        if missing:
            raise ValueError(f"an NDS cell needs 'genotype', 'width' and 'depth', this one lacks {sorted(missing)}")
        genotype = nds.validate(NDS_SPACES[space], cell["genotype"])
        width = check_int("cell width", cell["width"], minimum=1)
        depth = check_int("cell depth", cell["depth"], minimum=1)
        aux = cell.get("aux", False)
        if not isinstance(aux, bool):
            raise ValueError(f"cell aux must be true or false, got {aux!r}")
        key, normal = nds_files.arch_key(genotype, width, depth, aux), nds_cell(genotype, width, depth, aux)
    if arch is not None and arch != key:
        raise ValueError(f"arch {arch!r} is not the key of its {space} cell (the cell's key is {key!r})")
    return key, normal


def check_size(space: str, C, N) -> tuple[int | None, int | None]:
    """The size ``(C, N)`` checked for ``space`` (module docstring): positive integers,
    or None (NDS only: the cell's own width / depth)."""
    check_choice("space", space, SPACES)
    out = []
    for name, value in (("C", C), ("N", N)):
        if value is None and space in NDS_SPACES:
            out.append(None)
        else:
            out.append(check_int(name, value, minimum=1))
    return out[0], out[1]


def build(space: str, arch: str, cell: Mapping | None, *, C: int | None, N: int | None, num_classes: int,
          in_channels: int) -> nn.Module:
    """The network of one architecture at size ``(C, N)`` (module docstring), with PyTorch's
    default initialisation from the global RNG (seed it first).

    >>> cell = nds_cell(nds.GENOTYPES["darts_v2"], width=16, depth=8)
    >>> net = build("nds-darts", check_cell("nds-darts", None, cell)[0], cell, C=None, N=None,
    ...             num_classes=10, in_channels=3)
    >>> len(net.cells), net.stem[0].out_channels  # depth 8, stem 3 x width 16
    (8, 48)
    """
    C, N = check_size(space, C, N)
    arch, cell = check_cell(space, arch, cell)
    if space == "nb201":
        return nb201.build(arch, C=C, N=N, num_classes=num_classes, in_channels=in_channels)
    if space == "nb101":
        return nb101.build(cell["matrix"], cell["ops"], stem_channels=C, num_stacks=NB101_STACKS,
                           cells_per_stack=N, num_classes=num_classes, in_channels=in_channels)
    return nds.build(NDS_SPACES[space], cell["genotype"], C=cell["width"] if C is None else C,
                     layers=cell["depth"] if N is None else N, auxiliary=False, num_classes=num_classes,
                     in_channels=in_channels)


def subset(archs: list[str], k: int, seed: int) -> list[str]:
    """``k`` of ``archs`` drawn uniformly without replacement from ``seed``, in list order
    (all of them when ``k`` is not below their number).

    >>> subset(list("abcdef"), 3, seed=0) == subset(list("abcdef"), 3, seed=0), len(subset(list("ab"), 5, 0))
    (True, 2)
    """
    k = check_int("k", k, minimum=1)
    if k >= len(archs):
        return list(archs)
    picked = np.sort(np.random.default_rng(seed).choice(len(archs), size=k, replace=False))
    return [archs[i] for i in picked]


def sample(space: str, k: int, seed: int, *, C: int | None = None, N: int | None = None) -> list[tuple[str, dict | None]]:
    """``k`` distinct architectures ``(arch, cell)`` of ``space`` drawn from ``seed``.

    * ``nb201``: a uniform subset of the 15,625 arch strings, in `nb201.all_archs` order;
    * ``nb101``: `nb101.sample` (the benchmark's ``random_spec`` law, distinct by hash);
    * ``nds-<s>``: `nds.sample` genotypes; their cells record width ``C`` and depth ``N``
      (integers here: a sampled genotype has no size of its own), so their keys are the
      keys an NDS file would give the same networks.

    >>> [a for a, _ in sample("nb101", 2, seed=0)] == [s.hash() for s in nb101.sample(2, 0)]
    True
    """
    check_choice("space", space, SPACES)
    k = check_int("k", k, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if space == "nb201":
        archs = nb201.all_archs()
        if k > len(archs):
            raise ValueError(f"k={k} exceeds the {len(archs)} NB201 architectures")
        return [(arch, None) for arch in subset(archs, k, seed)]
    if space == "nb101":
        return [(spec.hash(), nb101_cell(spec)) for spec in nb101.sample(k, seed)]
    if C is None or N is None:
        raise ValueError(f"sampled {space} genotypes have no size of their own: give C and N as integers")
    C, N = check_size(space, C, N)
    out = []
    for genotype in nds.sample(NDS_SPACES[space], k, seed):
        cell = nds_cell(genotype, C, N)
        out.append((nds_files.arch_key(genotype, C, N, False), cell))
    return out
