"""Proxy scores of a benchmark's architectures, computed once and cached in a results store.

One job per (arch, size, data, scoring batch n, initialisation scheme, proxies, seed),
written for the knobs of the ablations (the initialisation scheme), with the data of
`empirical.space_scoring.load_scoring_data`:
the network is built at θ_0 from ``seed`` (``torch.manual_seed(seed)`` before building,
as `empirical.scoring.build_network` does), re-initialised by ``init`` if that is not
``default``, and scored on the first ``n`` samples of a ``seed``-seeded permutation of
the training split (`empirical.scoring.scoring_batch`; so the batches of one seed are
nested: the n=8 batch is the start of the n=16 batch). Rows live in
``<store>/results.sqlite`` (`empirical.store.ResultsStore`); a later request reuses every
stored row whose proxies cover it, so entries that ask for the same scores share them.

Initialisation schemes (``INITS``), applied to the freshly built network that the job
owns (no caller's model is touched):

* ``default``: PyTorch's layer defaults (NAS-Bench-201's own networks use these);
* ``kaiming``: ``W ~ N(0, 2/fan_in)`` (He et al. 2015, ReLU gain) for every Conv2d and
  Linear weight, biases 0;
* ``xavier``: ``W ~ N(0, 2/(fan_in + fan_out))`` (Glorot & Bengio 2010), biases 0.
BatchNorm keeps weight 1, bias 0 under every scheme.
"""
from __future__ import annotations

import math
import os
import time

import pandas as pd
import torch
from torch import nn

import proxies
from empirical.executors import run_jobs
from empirical.plan import Job, seeded
from empirical.scoring import NetworkSpec, build_network, scoring_batch
from empirical.space_scoring import load_scoring_data
from empirical.store import ResultsStore

__all__ = ["INITS", "KIND", "initialise", "score_job", "score_archs"]

KIND = "paper-repro-score"
INITS = ("default", "kaiming", "xavier")


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Re-draw the Conv2d/Linear weights of a network we just built, by `scheme`, from
    torch's global RNG (seed it first); returns the same module. See the module docstring."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
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


def score_job(job: Job) -> dict:
    """Scores of one network: ``{proxy: value, ..., "seconds": {proxy: s}}``."""
    p = job.params
    split = load_scoring_data(p["data"], p.get("cifar_path"))
    spec = NetworkSpec("nb201", arch=p["arch"], C=p["C"], N=p["N"])
    with seeded(job.seed):
        model = initialise(build_network(spec, split, job.seed), p["init"])
    x, y = scoring_batch(split, p["batch"], job.seed, flat=False)
    row: dict = {"seconds": {}}
    for name in p["proxies"]:
        start = time.perf_counter()
        value = proxies.compute(name, model, x, y)
        row["seconds"][name] = time.perf_counter() - start
        row[name] = value if math.isfinite(value) else math.nan
    return row


def _key(params: dict, seed: int) -> tuple:
    return (params["arch"], params["C"], params["N"], params["data"], params.get("cifar_path"), params["batch"],
            params["init"], seed)


def score_archs(archs: list[str], proxy_names: list[str], *, store_dir: str | os.PathLike, C: int, N: int,
                data: str, batch: int, init: str = "default", seed: int = 0, workers: int = 1,
                progress: bool = True, cifar_path: str | None = None) -> pd.DataFrame:
    """One row per arch (in the given order) with a column per proxy, computing only what
    the store at `store_dir` does not hold yet. `data`: ``digits``, ``random-cifar`` or
    ``cifar10`` (with `cifar_path`; `empirical.space_scoring.load_scoring_data`).
    Raises ValueError if a job failed."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    for name in proxy_names:
        proxies.get(name)
    with ResultsStore(store_dir) as store:
        cached: dict[tuple, dict] = {}
        for row in store.rows(status="ok"):
            if row["kind"] == KIND:
                cached.setdefault(_key(row["params"], row["seed"]), {}).update(row["result"])
        base = {"C": C, "N": N, "data": data, "batch": batch, "init": init, "proxies": list(proxy_names)}
        if cifar_path is not None:
            base["cifar_path"] = str(cifar_path)
        todo = [Job(KIND, {**base, "arch": arch}, seed) for arch in dict.fromkeys(archs)
                if not set(proxy_names) <= set(cached.get(_key({**base, "arch": arch}, seed), {}))]
        if todo:
            run_jobs(todo, score_job, store, workers=workers, threads_per_job=1, progress=progress)
            failed = [r for r in store.rows(status="failed") if r["hash"] in {j.job_hash for j in todo}]
            if failed:
                raise ValueError(f"{len(failed)} scoring job(s) failed in {store_dir}, first: "
                                 f"{failed[0]['params']['arch']}: {failed[0]['reason'].splitlines()[0]}")
            for row in store.rows(status="ok"):
                if row["kind"] == KIND:
                    cached.setdefault(_key(row["params"], row["seed"]), {}).update(row["result"])
    records = []
    for arch in archs:
        result = cached[_key({**base, "arch": arch}, seed)]
        records.append({"arch": arch, **{name: result[name] for name in proxy_names}})
    return pd.DataFrame.from_records(records, columns=["arch"] + list(proxy_names))
