"""Score one network of a model family with one or more proxies: the unit of work
behind `gradsign score` and `gradsign space-score`."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import proxies
from empirical import data as datasets

log = logging.getLogger(__name__)

SPACES = ("nb201", "mlp")


@dataclass(frozen=True)
class NetworkSpec:
    """What to build: a family name and its arguments (recorded with every score)."""

    space: str
    arch: str | None = None  # nb201 arch string
    C: int = 16
    N: int = 5
    width: int = 64
    depth: int = 2
    activation: str = "relu"

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.space == "nb201" and not self.arch:
            raise ValueError("space 'nb201' needs an arch string (--arch '|op~0|+|...|')")
        for key in ("C", "N", "width") + (("depth",) if self.space == "mlp" else ()):
            value = getattr(self, key)
            if value < (0 if key == "depth" else 1):
                raise ValueError(f"{key} must be a positive integer, got {value}")

    def label(self) -> str:
        if self.space == "nb201":
            return self.arch
        return f"mlp-w{self.width}-d{self.depth}-{self.activation}"


def build_network(spec: NetworkSpec, split: datasets.DataSplit, seed: int) -> nn.Module:
    """Build the network at its initialisation θ_0, drawn from `seed`."""
    torch.manual_seed(seed)
    if spec.space == "nb201":
        from empirical.spaces import nb201

        if len(split.input_shape) != 3:
            raise ValueError(f"nb201 needs image data; {split.name} has input shape {split.input_shape}")
        return nb201.build(
            spec.arch, C=spec.C, N=spec.N, num_classes=split.num_classes,
            in_channels=split.input_shape[0],
        )
    from empirical.spaces import mlp

    return mlp.build(
        in_features=math.prod(split.input_shape), width=spec.width, depth=spec.depth,
        num_classes=split.num_classes, activation=spec.activation,
    )


def scoring_batch(split: datasets.DataSplit, batch: int, seed: int, flat: bool) -> tuple[Tensor, Tensor]:
    """`batch` training samples drawn without replacement with `seed`."""
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch}")
    n = split.X_train.shape[0]
    if batch > n:
        raise ValueError(f"batch {batch} exceeds the {n} training samples of {split.name}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=generator)[:batch]
    x = split.X_train[index]
    return (x.flatten(start_dim=1) if flat else x), split.y_train[index]


def resolve_proxies(names: str | list[str]) -> list[str]:
    """'all' -> every registered proxy; a comma list -> checked names."""
    if isinstance(names, str):
        names = proxies.names() if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for name in names:
        proxies.get(name)
    return list(names)


def score_network(
    spec: NetworkSpec, split: datasets.DataSplit, proxy_names: list[str], *, batch: int, seed: int
) -> dict:
    """One row: the network, its seed, and each proxy's score and time in seconds."""
    model = build_network(spec, split, seed)
    x, y = scoring_batch(split, batch, seed, flat=spec.space == "mlp")
    row = {"network": spec.label(), "space": spec.space, "data": split.name, "batch": batch, "seed": seed}
    for name in proxy_names:
        start = time.perf_counter()
        row[name] = proxies.compute(name, model, x, y)
        row[f"{name}_seconds"] = time.perf_counter() - start
    return row
