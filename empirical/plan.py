"""Experiment plans: a validated config expands into a deterministic list of `Job`s.

A `Job` is (kind, params, seed): everything that determines its result.  Its identity
is `job_hash`, the SHA-256 of the canonical JSON of those three (sorted keys, no
whitespace, floats in Python's shortest round-trip repr, NaN/inf refused), so the same
job has the same hash in every process, on every machine, in every run; the results
store is keyed by it, which is what makes runs resumable.

Config conventions understood by `expand` (see `empirical.config`):
``kind`` (str) names the experiment; ``seeds`` (list of int, or one int) gives one job
per seed; tables named in `exclude` (default ``run``: executor settings) are not
params; everything else, after grid expansion, is the job's params.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np
import torch

from proxies.checks import check_int
from empirical.config import Grid, grid_points

__all__ = ["Job", "canonical_json", "expand", "seeded", "to_json_data"]


def to_json_data(value: Any, path: str = "", *, allow_nan: bool = False) -> Any:
    """JSON-ready copy of `value`: tuples become lists, 0-d numpy arrays / torch tensors
    and numpy scalars become Python numbers; anything else that is not JSON data raises
    ValueError naming `path`.  NaN/inf are refused unless `allow_nan` (a metric may be
    NaN; a job's identity may not)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not allow_nan and not math.isfinite(value):
            raise ValueError(f"{path or '<value>'}: {value!r} has no stable identity; NaN/inf are not allowed here")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path or '<value>'}: keys must be strings, got {key!r}")
            out[key] = to_json_data(item, f"{path}.{key}" if path else key, allow_nan=allow_nan)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_data(item, f"{path}[{i}]", allow_nan=allow_nan) for i, item in enumerate(value)]
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "torch") and getattr(value, "ndim", None) == 0:
        return to_json_data(value.item(), path, allow_nan=allow_nan)
    raise ValueError(
        f"{path or '<value>'}: {type(value).__name__} {value!r} is not JSON data; "
        "use bool, int, float, str, None, lists and string-keyed dicts"
    )


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, repr-stable floats.

    >>> canonical_json({"b": 1.0, "a": [1, (2, 3)]})
    '{"a":[1,[2,3]],"b":1.0}'
    """
    return json.dumps(to_json_data(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


class Job(Mapping):
    """One unit of work: ``kind``, ``params`` (a JSON dict) and an integer ``seed``.

    Immutable: `params` returns a fresh copy on every access.  Mapping access gives the
    same three fields (``job["params"]``).  Equality and hashing go by `job_hash`.
    `config` is the whole config the job came from; it is recorded with the result but
    is not part of the job's identity.

    >>> Job("toy", {"width": 8}, seed=0).job_hash[:12]
    '2dd71d897e0f'
    """

    __slots__ = ("_kind", "_params_json", "_seed", "_config_json", "_hash")
    _KEYS = ("kind", "params", "seed")

    def __init__(self, kind: str, params: Mapping[str, Any], seed: int, *, config: Mapping | None = None):
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a dict, got {type(params).__name__}")
        seed = check_int("seed", seed, minimum=0)
        params_json = canonical_json(params)
        config_json = None if config is None else canonical_json(config)
        identity = canonical_json({"kind": kind, "params": json.loads(params_json), "seed": seed})
        self._init(kind, params_json, seed, config_json, hashlib.sha256(identity.encode()).hexdigest())

    def _init(self, kind, params_json, seed, config_json, job_hash) -> None:
        for name, value in zip(self.__slots__, (kind, params_json, seed, config_json, job_hash)):
            object.__setattr__(self, name, value)

    @classmethod
    def _restore(cls, kind, params_json, seed, config_json, job_hash) -> "Job":
        job = cls.__new__(cls)
        job._init(kind, params_json, seed, config_json, job_hash)
        return job

    def __reduce__(self):
        return (Job._restore, (self._kind, self._params_json, self._seed, self._config_json, self._hash))

    def __setattr__(self, name, value):
        raise AttributeError("Job is immutable; build a new Job instead")

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self._params_json)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def config(self) -> dict[str, Any] | None:
        return None if self._config_json is None else json.loads(self._config_json)

    @property
    def job_hash(self) -> str:
        """sha256 hex digest of canonical_json({"kind", "params", "seed"})."""
        return self._hash

    @property
    def params_json(self) -> str:
        """The params as canonical JSON text."""
        return self._params_json

    @property
    def config_json(self) -> str | None:
        """The config as canonical JSON text (None if the job has no config)."""
        return self._config_json

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other._hash == self._hash

    def __hash__(self) -> int:
        return hash(self._hash)

    def __repr__(self) -> str:
        return f"Job(kind={self._kind!r}, params={self._params_json}, seed={self._seed}, hash={self._hash[:12]})"


def expand(config: Mapping[str, Any], *, kind: str | None = None, exclude: tuple[str, ...] = ("run",)) -> list[Job]:
    """All jobs of a config: one per (grid point, seed), grid points outer, seeds inner.

    config: a config returned by `empirical.config.validate` (grid values are `Grid`
        lists).  Its ``kind`` key names the job kind unless `kind` is given; ``seeds``
        (int or list of int; default [0]) gives the seeds; top-level keys in `exclude`
        are dropped from the params.
    The order is deterministic: grid axes in the config's key order, last axis fastest.
    Duplicate jobs (same hash) are kept once, at their first position.

    >>> from empirical.config import Grid
    >>> [j.params for j in expand({"kind": "toy", "seeds": [0], "width": Grid([8, 16])})]
    [{'width': 8}, {'width': 16}]
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    if kind is None:
        kind = config.get("kind")
        if isinstance(kind, Grid):
            raise ValueError("kind: one config expands to one job kind; got a grid")
        if not isinstance(kind, str):
            raise ValueError("kind: the config names no job kind; add kind = \"...\" or pass kind=")
    seeds = config.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds: must be an integer or a non-empty list of integers, got {seeds!r}")
    record = dict(config)
    params_config = {k: v for k, v in config.items() if k not in ("kind", "seeds") and k not in exclude}
    jobs: dict[str, Job] = {}
    for point in grid_points(params_config):
        for seed in seeds:
            job = Job(kind, point, seed, config=record)
            jobs.setdefault(job.job_hash, job)
    return list(jobs.values())


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's `random`, NumPy's global RNG and torch's CPU RNG; restore them after.

    Job functions wrap their random draws in ``with seeded(job.seed):`` so a job gives
    the same numbers in any process, under any executor.

    >>> import torch
    >>> with seeded(3): a = torch.rand(2)
    >>> with seeded(3): b = torch.rand(2)
    >>> bool((a == b).all())
    True
    """
    check_int("seed", seed, minimum=0)
    saved = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.set_rng_state(saved[2])
