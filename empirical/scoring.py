"""Score one network at its initialisation θ_0: the unit of work behind `gradsign score`,
`gradsign space-score` and the paper reproduction.

A network is a `NetworkSpec` (family, arguments, initialisation scheme) built from a
seed (`build_network`) on a device and scored on one seeded batch of training samples
(`scoring_batch`; the batches of one seed are nested: the n=8 batch is the start of the
n=16 batch) by a *scorer*: a small object that says what it computes and how its store
rows are identified (`Scorer`). `ProxyScorer` computes zero-cost proxies; another
architecture score is another scorer class registered in `SCORERS` under its own row
kind, and then goes through the same pipeline and store (`empirical.space_scoring`):
`empirical.psi_scoring.PsiScorer` (exact Ψ of the sample-wise optima, kind ``space-psi``)
is one.

Initialisation schemes (``INITS``, `initialise`), applied right after building, from
torch's global RNG as seeded by `build_network`:

* ``default``: PyTorch's layer defaults (NAS-Bench-201's own networks use these);
* ``kaiming``: ``W ~ N(0, 2/fan_in)`` (He et al. 2015, ReLU gain) for every Conv2d and
  Linear weight, biases 0;
* ``xavier``: ``W ~ N(0, 2/(fan_in + fan_out))`` (Glorot & Bengio 2010), biases 0.

BatchNorm keeps weight 1, bias 0 under every scheme.

Devices (`empirical.devices`): a network is built and initialised on the CPU, then moved,
so θ_0 does not depend on the device; the scoring batch is drawn by a CPU generator and
indexed from the split wherever the split lives.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

import proxies
from empirical import architectures
from empirical import data as datasets
from empirical.devices import resolve_device
from empirical.psi_scoring import PsiScorer
from empirical.spaces import mlp
from proxies.checks import check_choice, check_int
from proxies.registry import Registry

__all__ = ["INITS", "SPACES", "NetworkSpec", "ProxyScorer", "PsiScorer", "SCORERS", "Scorer", "build_network", "initialise",
           "resolve_proxies", "score_network", "scoring_batch"]

log = logging.getLogger(__name__)

SPACES = ("nb201", "mlp", *architectures.SPACES[1:])
INITS = ("default", "kaiming", "xavier")


@dataclass(frozen=True)
class NetworkSpec:
    """What to build: a family name, its arguments and the initialisation scheme
    (recorded with every score).

    ``mlp`` takes ``width, depth, activation``; the search spaces (``nb201``, ``nb101``,
    ``nds-<space>``) take ``arch`` (the key), ``cell`` (nb101 and NDS: the data that
    builds it) and the size ``C, N``, whose meaning per space (and ``None`` for an NDS
    cell's own width/depth) is in `empirical.architectures`. ``arch`` and ``cell`` are
    checked against each other; for nb101 and NDS a missing ``arch`` is the cell's key.

    >>> NetworkSpec("mlp", width=8, depth=1).label()
    'mlp-w8-d1-relu'
    >>> NetworkSpec("nb101", cell={"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}, C=8, N=1).arch
    '043721b9c7fe8c5fad811d47d83132ec'
    """

    space: str
    arch: str | None = None  # nb201 arch string, nb101 hash, NDS file key
    C: int | None = 16
    N: int | None = 5
    width: int = 64
    depth: int = 2
    activation: str = "relu"
    init: str = "default"
    cell: Mapping | None = None  # nb101 {matrix, ops}; NDS {genotype, width, depth, aux}

    def __post_init__(self):
        check_choice("space", self.space, SPACES)
        check_choice("init", self.init, INITS)
        if self.space == "mlp":
            check_int("width", self.width, minimum=1)
            check_int("depth", self.depth, minimum=0)
            return
        if self.space == "nb201" and not self.arch:
            raise ValueError("space 'nb201' needs an arch string (--arch '|op~0|+|...|')")
        architectures.check_size(self.space, self.C, self.N)
        arch, cell = architectures.check_cell(self.space, self.arch, self.cell)
        object.__setattr__(self, "arch", arch)
        object.__setattr__(self, "cell", cell)

    def label(self) -> str:
        name = f"mlp-w{self.width}-d{self.depth}-{self.activation}" if self.space == "mlp" else self.arch
        return name if self.init == "default" else f"{name} init={self.init}"


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Re-draw the Conv2d/Linear weights of a network we just built, by `scheme` (module
    docstring), from torch's global RNG; returns the same module.

    >>> _ = torch.manual_seed(0)
    >>> layer = initialise(nn.Linear(3, 2), "xavier")
    >>> layer.bias.tolist()
    [0.0, 0.0]
    """
    check_choice("init", scheme, INITS)
    if scheme == "default":
        return model
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                if scheme == "kaiming":
                    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return model


def build_network(spec: NetworkSpec, split: datasets.DataSplit, seed: int,
                  device: str | torch.device = "cpu") -> nn.Module:
    """Build the network at its initialisation θ_0: ``torch.manual_seed(seed)``, the
    family's constructor and `initialise` by ``spec.init``, on the CPU; then move it to
    ``device`` (the same θ_0 on every device)."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    if spec.space == "mlp":
        model = mlp.build(in_features=math.prod(split.input_shape), width=spec.width, depth=spec.depth,
                          num_classes=split.num_classes, activation=spec.activation)
    else:
        if len(split.input_shape) != 3:
            raise ValueError(f"{spec.space} needs image data; {split.name} has input shape {split.input_shape}")
        model = architectures.build(spec.space, spec.arch, spec.cell, C=spec.C, N=spec.N,
                                    num_classes=split.num_classes, in_channels=split.input_shape[0])
    return initialise(model, spec.init).to(device)


def scoring_batch(split: datasets.DataSplit, batch: int, seed: int, flat: bool) -> tuple[Tensor, Tensor]:
    """`batch` training samples: the first `batch` of a `seed`-seeded permutation of the
    training split (drawn on the CPU, so the same samples on every device), on the
    split's device."""
    check_int("batch", batch, minimum=1)
    n = split.X_train.shape[0]
    if batch > n:
        raise ValueError(f"batch {batch} exceeds the {n} training samples of {split.name}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=generator)[:batch].to(split.X_train.device)
    x = split.X_train[index]
    return (x.flatten(start_dim=1) if flat else x), split.y_train[index]


def resolve_proxies(names: str | list[str]) -> list[str]:
    """'all' -> every registered proxy; a comma list -> checked names.

    >>> resolve_proxies("gradsign, snip")
    ['gradsign', 'snip']
    """
    if isinstance(names, str):
        names = proxies.names() if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    for name in names:
        proxies.get(name)
    return list(names)


class Scorer(Protocol):
    """What an architecture score computes, and how its store rows are identified.

    ``kind`` is the job kind of its rows; ``settings()`` the job parameters (beyond the
    network, data, batch and seed) that determine its result; ``covers(settings)``
    whether a row stored with those settings holds every score this scorer asks for (so
    requests share rows); ``columns()`` the score names; ``score(model, x, y)`` returns
    ``{name: value, name_seconds: s}`` for each of them; ``from_settings`` rebuilds the
    scorer from a job's parameters (in a worker process).
    """

    kind: ClassVar[str]

    def settings(self) -> dict[str, Any]: ...

    def covers(self, settings: dict[str, Any]) -> bool: ...

    def columns(self) -> list[str]: ...

    def score(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, float]: ...

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Scorer": ...


@dataclass(frozen=True)
class ProxyScorer:
    """Zero-cost proxies by registry name (`proxies.compute`), with the registry defaults
    unless ``options`` gives some proxy its own keyword arguments (e.g. GradSign's
    ``reduction="mean"``). Options are part of the row's settings only when given, so rows
    of default proxies keep their identity; a row covers a request when it holds every
    requested proxy with the same options.

    >>> scorer = ProxyScorer(("gradsign", "params"))
    >>> scorer.settings(), scorer.covers({"proxies": ["params", "snip", "gradsign"]})
    ({'proxies': ['gradsign', 'params']}, True)
    >>> mean = ProxyScorer(("gradsign",), {"gradsign": {"reduction": "mean"}})
    >>> mean.settings()["options"], mean.covers({"proxies": ["gradsign"]})
    ({'gradsign': {'reduction': 'mean'}}, False)
    """

    proxies: tuple[str, ...]
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    kind: ClassVar[str] = "space-score"

    def __post_init__(self):
        if isinstance(self.proxies, str) or not self.proxies:
            raise ValueError(f"proxies must name at least one proxy, e.g. ('gradsign',), got {self.proxies!r}")
        object.__setattr__(self, "proxies", tuple(resolve_proxies(list(self.proxies))))
        unknown = sorted(set(self.options) - set(self.proxies))
        if unknown:
            raise ValueError(f"options name proxies {unknown} that are not among proxies {list(self.proxies)}")
        object.__setattr__(self, "options", {k: dict(v) for k, v in self.options.items() if v})

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"proxies": list(self.proxies)}
        if self.options:
            settings["options"] = {k: dict(v) for k, v in self.options.items()}
        return settings

    def covers(self, settings: dict[str, Any]) -> bool:
        stored = settings.get("options", {})
        return set(self.proxies) <= set(settings.get("proxies", ())) and all(
            stored.get(name, {}) == self.options.get(name, {}) for name in self.proxies)

    def columns(self) -> list[str]:
        return list(self.proxies)

    def score(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, float]:
        row: dict[str, float] = {}
        for name in self.proxies:
            start = time.perf_counter()
            row[name] = proxies.compute(name, model, inputs, targets, **self.options.get(name, {}))
            row[f"{name}_seconds"] = time.perf_counter() - start
        return row

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "ProxyScorer":
        return cls(tuple(settings["proxies"]), settings.get("options", {}))


SCORERS: Registry[type] = Registry("scorer kind")
SCORERS.add(ProxyScorer.kind, ProxyScorer)
SCORERS.add(PsiScorer.kind, PsiScorer)


def score_network(spec: NetworkSpec, split: datasets.DataSplit, proxy_names: list[str], *, batch: int,
                  seed: int, device: str | torch.device = "cpu") -> dict:
    """One row: the network, its seed, the device, and each proxy's score and time in
    seconds. The split is moved to ``device`` if it is elsewhere (move it once yourself,
    `empirical.data.DataSplit.to`, when scoring many networks)."""
    device = resolve_device(device)
    model = build_network(spec, split, seed, device)
    x, y = scoring_batch(split.to(device), batch, seed, flat=spec.space == "mlp")
    row = {"network": spec.label(), "space": spec.space, "data": split.name, "batch": batch, "seed": seed,
           "device": str(device)}
    row.update(ProxyScorer(tuple(proxy_names)).score(model, x, y))
    return row
