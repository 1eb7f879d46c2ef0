"""Score a search space (NAS-Bench-201, NAS-Bench-101, the NDS cell spaces) architecture
by architecture, resumably, into one results store: the pipeline every architecture
score goes through.

What is computed is a *scorer* (`empirical.scoring.Scorer`; `ProxyScorer` for zero-cost
proxies, the row kind ``space-score``). One store row per architecture: the row's job is
``Job(scorer.kind, {space, arch, C, N, data, batch, **scorer.settings()}, seed)`` (for
proxies ``{..., proxies}``), plus ``init`` when the initialisation scheme is not
``default`` (so rows scored before the scheme was a setting keep their hashes), plus
``cell`` for the spaces whose key alone does not build the network (``nb101``: the
spec; ``nds-<space>``: the genotype with its width and depth; see
`empirical.architectures`, which also says what the size ``C, N`` means per space). Its
hash therefore covers the architecture, what is scored, the data, the batch size, the
seed and the network size. A request is served by any stored row whose settings are the
request's and whose scores *cover* it (`Scorer.covers`: a row of proxies {gradsign, snip}
serves a request for gradsign), so callers asking for the same scores share rows.

Architectures are scored in *batch jobs* of several architectures (default 25) to
amortise the per-job cost of the executors (process hand-off, one store transaction per
job, data loading); the batch job returns one result per architecture and
`PerArchRows`, a view of the `ResultsStore`, writes them as separate rows. A batch is
formed from architectures that have no row yet, and every architecture is scored from
its own seed (weights: ``torch.manual_seed(seed)``; scoring batch:
`empirical.scoring.scoring_batch`), so a score does not depend on which batch it ran in:
a run killed part-way and resumed gives the same numbers.

``unique=True`` scores one representative per NAS-Bench-201 isomorphism class
(`nb201.unique_archs`, 6,466 of the 15,625 cells) and `space_table` maps the scores back
to every member of the class (column ``representative``). `score_frame` returns the
scores of a list of architectures in the caller's order, scoring what is missing.

Devices (``device=``, `empirical.devices`): checked before any job runs; each batch job
moves its data to the device once per process and builds every network on the CPU
before moving it there, so θ_0 and the scoring batch are the same on every device. The
device is how a row was computed, not what it is: it is not part of the row's hash (a
row computed on one device serves a request made on another) and is recorded in the
row's timings (``device``).

Data (``data=``):

* ``digits``: scikit-learn's 1x8x8 digits (`empirical.data.load`, split seed 0);
* ``random-cifar``: seeded standard-normal inputs of CIFAR shape 3x32x32 with uniform
  random labels over 10 classes (512 train samples, generator seed 0): timing at the
  original input size, no real data needed;
* ``cifar10``: the CIFAR-10 python batches in ``cifar_path`` (``data_batch_1``; see
  `load_cifar10`), per-channel standardised.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from empirical import architectures
from empirical import data as datasets
from empirical.devices import resolve_device
from empirical.executors import run_jobs
from empirical.plan import Job, seeded
from empirical.scoring import INITS, SCORERS, NetworkSpec, ProxyScorer, Scorer, build_network, scoring_batch
from empirical.spaces import nb201
from empirical.store import ResultsStore
from proxies.checks import check_choice, check_int

__all__ = [
    "DATA", "KIND", "BATCH_KIND", "load_scoring_data", "load_cifar10", "random_cifar", "network_settings",
    "arch_jobs", "batch_jobs", "score_batch", "PerArchRows", "stored_rows", "stored_spaces", "score_space", "space_table",
    "score_frame",
]

log = logging.getLogger(__name__)

DATA = ("digits", "random-cifar", "cifar10")
KIND = ProxyScorer.kind
BATCH_KIND = "space-score-batch"
_RANDOM_CIFAR = {"n_train": 512, "n_test": 64, "shape": (3, 32, 32), "classes": 10, "seed": 0}
_CIFAR_MEAN_STD_FLOOR = 1e-12


def random_cifar() -> datasets.DataSplit:
    """Standard-normal 3x32x32 inputs, labels uniform over 10 classes, from seed 0."""
    spec = _RANDOM_CIFAR
    gen = torch.Generator().manual_seed(spec["seed"])
    n = spec["n_train"] + spec["n_test"]
    X = torch.randn(n, *spec["shape"], generator=gen)
    y = torch.randint(0, spec["classes"], (n,), generator=gen)
    return datasets.DataSplit(
        name="random-cifar", X_train=X[:spec["n_train"]], y_train=y[:spec["n_train"]],
        X_test=X[spec["n_train"]:], y_test=y[spec["n_train"]:], num_classes=spec["classes"],
        input_shape=spec["shape"], seed=spec["seed"],
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other class is refused, so a
    crafted file cannot run code (``pickle`` would import and call whatever it names)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2; it only re-encodes text
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as handle:
        try:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
        except pickle.UnpicklingError as err:
            raise ValueError(f"{path}: {err}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (expected a dict, got {type(batch).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: it lacks 'data' and 'labels' entries")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: 'data' must be (n, 3072) uint8 with n labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(cifar_path: str | os.PathLike | None) -> datasets.DataSplit:
    """CIFAR-10 from the python version's pickled batches (``cifar-10-python.tar.gz``,
    unpacked): ``cifar_path`` is the ``cifar-10-batches-py`` directory or its parent.

    Scoring needs only a batch of training images: ``data_batch_1`` (10,000 images) is
    the train part and ``test_batch`` the test part when present (else the last 1,000
    images of ``data_batch_1``). Images are scaled to [0, 1] and standardised per channel
    with the train part's mean and std. Files are read with an unpickler that accepts
    only numpy arrays and plain containers.
    """
    if cifar_path is None:
        raise ValueError("--data cifar10 needs --cifar-path DIR, the unpacked 'cifar-10-batches-py' "
                         "directory of CIFAR-10's python version (nothing is downloaded)")
    root = Path(cifar_path)
    candidates = [root, root / "cifar-10-batches-py"]
    folder = next((c for c in candidates if (c / "data_batch_1").is_file()), None)
    if folder is None:
        raise ValueError(f"no CIFAR-10 python batch 'data_batch_1' in {str(root)!r} or its "
                         "'cifar-10-batches-py' subdirectory; point --cifar-path at the unpacked "
                         "python version of CIFAR-10 (nothing is downloaded)")
    X, y = _read_cifar_batch(folder / "data_batch_1")
    if (folder / "test_batch").is_file():
        X_test, y_test = _read_cifar_batch(folder / "test_batch")
    else:
        cut = max(1, len(X) // 10)
        X, X_test, y, y_test = X[:-cut], X[-cut:], y[:-cut], y[-cut:]
    X = X.astype(np.float32) / 255.0
    X_test = X_test.astype(np.float32) / 255.0
    mean = X.mean(axis=(0, 2, 3), keepdims=True)
    std = X.std(axis=(0, 2, 3), keepdims=True)
    std = np.where(std < _CIFAR_MEAN_STD_FLOOR, 1.0, std)
    return datasets.DataSplit(
        name="cifar10", X_train=torch.from_numpy((X - mean) / std), y_train=torch.from_numpy(y),
        X_test=torch.from_numpy((X_test - mean) / std), y_test=torch.from_numpy(y_test),
        num_classes=10, input_shape=(3, 32, 32), seed=0,
    )


@functools.lru_cache(maxsize=4)
def load_scoring_data(data: str, cifar_path: str | None = None) -> datasets.DataSplit:
    """The split that ``data`` names (see the module docstring); cached per process."""
    if data == "digits":
        return datasets.load("digits", seed=0)
    if data == "random-cifar":
        return random_cifar()
    if data == "cifar10":
        return load_cifar10(cifar_path)
    raise ValueError(f"data must be one of {DATA}, got {data!r}")


@functools.lru_cache(maxsize=4)
def _scoring_data_on(data: str, cifar_path: str | None, device: str) -> datasets.DataSplit:
    """`load_scoring_data` moved to ``device``: once per process and device."""
    return load_scoring_data(data, cifar_path).to(device)


def _check_settings(space: str, data: str, batch: int, seed: int, C: int | None, N: int | None,
                    init: str) -> None:
    check_choice("space", space, architectures.SPACES)
    check_choice("data", data, DATA)
    check_int("batch", batch, minimum=1)
    architectures.check_size(space, C, N)
    check_int("seed", seed, minimum=0)
    check_choice("init", init, INITS)


def _cells(space: str, archs: list[str], cells: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The cell of every architecture (None for nb201). Each is checked against its key
    when its network is built (a mismatch is that architecture's failed row), not here:
    computing 423,624 NB101 hashes up front would cost minutes on every resume."""
    if space == "nb201":
        if cells is not None:
            raise ValueError("nb201 architectures are their arch strings: pass no cells")
        return None
    if cells is None:
        raise ValueError(f"space {space!r} needs cells= (arch -> cell, see empirical.architectures)")
    missing = [a for a in archs if a not in cells]
    if missing:
        raise ValueError(f"{len(missing)} architecture(s) have no cell in cells=, first: {missing[0]!r}")
    return cells


def _scorer(proxies: list[str] | None, scorer: Scorer | None) -> Scorer:
    if (proxies is None) == (scorer is None):
        raise ValueError("pass either proxies= (proxy names) or scorer= (an empirical.scoring scorer)")
    if scorer is not None:
        return scorer
    if isinstance(proxies, str) or not proxies:
        raise ValueError(f"proxies must name at least one proxy, e.g. 'gradsign' or 'gradsign,snip', got {proxies!r}")
    return ProxyScorer(tuple(proxies))


def network_settings(*, space: str = "nb201", C: int, N: int, data: str, batch: int,
                     init: str = "default") -> dict[str, Any]:
    """The job parameters that fix the network at θ_0 and its scoring batch (module docstring).

    >>> network_settings(C=8, N=1, data="digits", batch=64)
    {'space': 'nb201', 'C': 8, 'N': 1, 'data': 'digits', 'batch': 64}
    """
    settings = {"space": space, "C": C, "N": N, "data": data, "batch": batch}
    if init != "default":
        settings["init"] = init
    return settings


def _network_key(params: Mapping[str, Any]) -> tuple:
    return (params["space"], params["C"], params["N"], params["data"], params["batch"], params.get("init", "default"))


def arch_jobs(archs: list[str], *, proxies: list[str] | None = None, scorer: Scorer | None = None, data: str,
              batch: int = 64, seed: int = 0, C: int | None = 8, N: int | None = 1, space: str = "nb201",
              init: str = "default", cells: Mapping[str, Any] | None = None) -> list[Job]:
    """The per-architecture jobs: one store row each (module docstring). ``cells`` maps
    each architecture of an nb101 or NDS space to its cell (`empirical.architectures`)."""
    scorer = _scorer(proxies, scorer)
    _check_settings(space, data, batch, seed, C, N, init)
    cells = _cells(space, archs, cells)
    common = {**network_settings(space=space, C=C, N=N, data=data, batch=batch, init=init), **scorer.settings()}
    if cells is None:
        return [Job(scorer.kind, {**common, "arch": arch}, seed) for arch in archs]
    return [Job(scorer.kind, {**common, "arch": arch, "cell": cells[arch]}, seed) for arch in archs]


def batch_jobs(jobs: list[Job], archs_per_job: int, cifar_path: str | None = None,
               device: str = "cpu") -> list[Job]:
    """Group per-architecture jobs (same settings) into batch jobs of ``archs_per_job``,
    to run on ``device``."""
    check_int("archs_per_job", archs_per_job, minimum=1)
    out = []
    for start in range(0, len(jobs), archs_per_job):
        members = jobs[start:start + archs_per_job]
        params = members[0].params
        params.pop("arch")
        if params.pop("cell", None) is not None:
            params["cells"] = [m.params["cell"] for m in members]
        params.update(archs=[m.params["arch"] for m in members], cifar_path=cifar_path, kind=members[0].kind,
                      device=str(device))
        out.append(Job(BATCH_KIND, params, members[0].seed))
    return out


def score_batch(job: Job) -> dict:
    """Job function of a batch job: ``{"rows": {arch: row}}``, each row either
    ``{"status": "ok", "result": {score: value, score_seconds: s}}`` or
    ``{"status": "failed", "reason": ...}``; an architecture's failure spares the rest."""
    p = job.params
    scorer = SCORERS.get(p["kind"]).from_settings(p)
    device = resolve_device(p.get("device", "cpu"))
    split = _scoring_data_on(p["data"], p.get("cifar_path"), str(device))
    cells = p.get("cells") or [None] * len(p["archs"])
    rows: dict[str, dict] = {}
    for arch, cell in zip(p["archs"], cells):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        try:
            spec = NetworkSpec(p["space"], arch=arch, C=p["C"], N=p["N"], init=p.get("init", "default"), cell=cell)
            with seeded(job.seed):
                model = build_network(spec, split, job.seed, device)
                x, y = scoring_batch(split, p["batch"], job.seed, flat=False)
                rows[arch] = {"status": "ok", "result": scorer.score(model, x, y)}
        except Exception as err:  # one architecture's failure is its own row
            rows[arch] = {"status": "failed", "reason": f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}"}
        rows[arch]["wall_s"] = time.perf_counter() - start_wall
        rows[arch]["cpu_s"] = time.process_time() - start_cpu
        rows[arch]["device"] = str(device)
    return {"rows": rows}


class PerArchRows:
    """The `ResultsStore` seen through batch jobs: `run_jobs` records a batch job here and
    each of its architectures becomes its own row (its per-architecture `Job`)."""

    def __init__(self, store: ResultsStore, members: Mapping[str, list[Job]]):
        self.store = store
        self.members = dict(members)  # batch job hash -> its per-architecture jobs

    def done_hashes(self, *, include_failed: bool = True) -> set[str]:
        """Batch jobs none of whose architectures is still missing a row."""
        done = self.store.done_hashes(include_failed=include_failed)
        return {h for h, jobs in self.members.items() if all(j.job_hash in done for j in jobs)}

    def record(self, job: Job, *, status: str, result: Mapping[str, Any] | None = None,
               reason: str | None = None, timings: Mapping[str, Any] | None = None,
               replace_failed: bool = False) -> bool:
        written = False
        batch_timings = dict(timings or {})
        for arch_job in self.members[job.job_hash]:
            arch = arch_job.params["arch"]
            if status == "ok":
                row = result["rows"][arch]
                arch_timings = {**batch_timings, "batch_wall_s": batch_timings.get("wall_s"),
                                "wall_s": row["wall_s"], "cpu_s": row["cpu_s"], "device": row.get("device")}
                written |= self.store.record(arch_job, status=row["status"], result=row.get("result"),
                                             reason=row.get("reason"), timings=arch_timings,
                                             replace_failed=replace_failed)
            else:
                written |= self.store.record(arch_job, status="failed", reason=reason, timings=batch_timings,
                                             replace_failed=replace_failed)
        return written


def stored_spaces(run_dir: str | os.PathLike) -> list[str]:
    """The spaces of the run's ``space-score`` rows, sorted."""
    with ResultsStore(run_dir, create=False) as store:
        return sorted({r["params"]["space"] for r in store.rows() if r["kind"] == KIND})


def stored_rows(store: ResultsStore, scorer: Scorer, network: Mapping[str, Any], seed: int) -> dict[str, dict]:
    """arch -> the first 'ok' row of ``scorer.kind`` with these `network_settings` and seed
    whose scores cover the scorer's (`Scorer.covers`)."""
    key = _network_key(network)
    found: dict[str, dict] = {}
    for row in store.rows(status="ok"):
        params = row["params"]
        if (row["kind"] == scorer.kind and row["seed"] == seed and _network_key(params) == key
                and scorer.covers(params)):
            found.setdefault(params["arch"], row)
    return found


def score_space(run_dir: str | os.PathLike, archs: list[str], *, proxies: list[str] | None = None,
                scorer: Scorer | None = None, data: str, batch: int = 64, seed: int = 0, C: int | None = 8,
                N: int | None = 1, init: str = "default", space: str = "nb201",
                cells: Mapping[str, Any] | None = None, cifar_path: str | None = None, archs_per_job: int = 25,
                executor: str = "local", workers: int = 1, threads_per_job: int | None = None,
                progress: bool = True, retry_failed: bool = False, device: str = "cpu"):
    """Score ``archs`` of ``space`` (``proxies=`` names or a ``scorer=``; ``cells`` for
    nb101 and NDS) into ``run_dir``'s store on ``device``, skipping those with a covering
    row (and, unless ``retry_failed``, those whose row failed); returns the `run_jobs`
    summary counted in batch jobs plus the per-architecture counts ``archs, skipped, ok,
    failed``."""
    scorer = _scorer(proxies, scorer)
    device = str(resolve_device(device))  # fail here, naming the problem, not in every job
    check_choice("data", data, DATA)
    check_int("batch", batch, minimum=1)
    # Fail here, with the message, not in every job (the split is cached per process).
    available = load_scoring_data(data, cifar_path).X_train.shape[0]
    if batch > available:
        raise ValueError(f"batch {batch} exceeds the {available} training samples of {data}")
    jobs = arch_jobs(list(dict.fromkeys(archs)), scorer=scorer, data=data, batch=batch, seed=seed, C=C, N=N,
                     init=init, space=space, cells=cells)
    network = network_settings(space=space, C=C, N=N, data=data, batch=batch, init=init)
    with ResultsStore(run_dir) as store:
        covered = stored_rows(store, scorer, network, seed)
        done = store.done_hashes(include_failed=not retry_failed)
        todo = [j for j in jobs if j.job_hash not in done and j.params["arch"] not in covered]
        batches = batch_jobs(todo, archs_per_job, cifar_path, device)
        members = {b.job_hash: todo[i * archs_per_job:(i + 1) * archs_per_job] for i, b in enumerate(batches)}
        summary = run_jobs(batches, score_batch, PerArchRows(store, members), executor=executor,
                           workers=workers, progress=progress, retry_failed=retry_failed,
                           threads_per_job=threads_per_job)
        covered = stored_rows(store, scorer, network, seed)
        hashes = {j.job_hash for j in jobs}
        failed = {r["params"]["arch"] for r in store.rows(status="failed") if r["hash"] in hashes}
    ok = sum(j.params["arch"] in covered for j in jobs)
    counts = {"archs": len(jobs), "skipped": len(jobs) - len(todo), "ok": ok,
              "failed": sum(j.params["arch"] in failed - set(covered) for j in jobs)}
    return summary, counts


def space_table(run_dir: str | os.PathLike, *, proxies: list[str] | None = None, data: str | None = None,
                batch: int | None = None, seed: int | None = None, init: str | None = None,
                space: str | None = None, expand: bool = True, scorer: Scorer | None = None) -> pd.DataFrame:
    """The run's per-architecture proxy scores (or, with ``scorer=``, that scorer's) as a DataFrame.

    Rows of kind ``space-score`` with status 'ok', filtered by the given settings (each
    None: any; ``proxies``: rows that cover them with default options, giving those
    columns); the rows must then agree on one setting (space, proxies, options, data, batch,
    C, N, init, seed), else ValueError.
    Columns: ``arch, representative, scored`` (True where the row is the scored
    architecture itself), ``cell`` (nb101 and NDS: the cell the row was built from, as
    JSON), one column per proxy and ``<proxy>_seconds``, ``wall_s, cpu_s``.
    ``scorer=`` (not a `ProxyScorer`; pass no ``proxies``) takes the rows of its kind that
    it covers instead, with its ``table_columns()`` (else its ``columns()``).
    With ``expand`` (nb201 only), every architecture of NAS-Bench-201 whose class
    representative was scored gets a row carrying the representative's scores (all
    15,625 after a full ``unique`` run); a directly scored architecture keeps its own row.
    """
    if scorer is not None and (proxies is not None or isinstance(scorer, ProxyScorer)):
        raise ValueError("space_table: pass proxies= for proxy scores, or scorer= for another scorer, not both")
    kind = KIND if scorer is None else scorer.kind
    with ResultsStore(run_dir, create=False) as store:
        rows = [r for r in store.rows(status="ok") if r["kind"] == kind]
    wanted = {"data": data, "batch": batch, "space": space}
    settings = set()
    records: dict[str, dict] = {}
    cells: dict[str, str] = {}
    for r in rows:
        params = r["params"]
        if any(v is not None and params[k] != v for k, v in wanted.items()):
            continue
        if seed is not None and r["seed"] != seed:
            continue
        if init is not None and params.get("init", "default") != init:
            continue
        if scorer is None:
            options = params.get("options", {})
            if proxies is not None and (not set(proxies) <= set(params["proxies"]) or set(options) & set(proxies)):
                continue  # a proxy scored with non-default options is another score
            names = list(proxies) if proxies is not None else params["proxies"]
            what = (tuple(names), json.dumps(options if proxies is None else {}, sort_keys=True))
            ordered = {k: r["result"][k] for name in names for k in (name, f"{name}_seconds")}
        else:
            if not scorer.covers(params):
                continue
            what = (json.dumps(scorer.settings(), sort_keys=True), "")
            ordered = {k: r["result"].get(k) for k in getattr(scorer, "table_columns", scorer.columns)()}
        settings.add((params["space"], *what, params["data"], params["batch"], params["C"], params["N"],
                      params.get("init", "default"), r["seed"]))
        records.setdefault(params["arch"], {**ordered, "wall_s": (r["timings"] or {}).get("wall_s"),
                                            "cpu_s": (r["timings"] or {}).get("cpu_s")})
        if "cell" in params:
            cells.setdefault(params["arch"], json.dumps(params["cell"], sort_keys=True, separators=(",", ":")))
    if len(settings) > 1:
        raise ValueError(f"run {str(run_dir)!r} holds scores under {len(settings)} settings "
                         f"(space, proxies, options, data, batch, C, N, init, seed) = {sorted(settings, key=str)}; "
                         "pass space=, proxies=, data=, batch=, init= and seed= to pick one")
    if settings and next(iter(settings))[0] != "nb201":
        return pd.DataFrame.from_records([{"arch": arch, "representative": arch, "scored": True,
                                           "cell": cells.get(arch), **values} for arch, values in records.items()])
    rep_of = nb201.representatives()
    out = []
    if expand:
        for arch in nb201.all_archs():
            source = arch if arch in records else rep_of[arch]
            if source in records:
                out.append({"arch": arch, "representative": rep_of[arch], "scored": source == arch,
                            **records[source]})
    else:
        for arch, values in records.items():
            out.append({"arch": arch, "representative": rep_of[arch], "scored": True, **values})
    return pd.DataFrame.from_records(out)


def score_frame(archs: list[str], *, store_dir: str | os.PathLike, proxies: list[str] | None = None,
                scorer: Scorer | None = None, data: str, batch: int, seed: int = 0, C: int | None, N: int | None,
                init: str = "default", space: str = "nb201", cells: Mapping[str, Any] | None = None,
                cifar_path: str | None = None, workers: int = 1, archs_per_job: int = 25, progress: bool = True,
                device: str = "cpu") -> pd.DataFrame:
    """The scores of ``archs`` as a DataFrame in the caller's order (``arch`` and one column
    per score), computing only what the store at ``store_dir`` does not hold yet (one
    torch thread per job, on ``device``). Raises ValueError if an architecture could not
    be scored."""
    scorer = _scorer(proxies, scorer)
    score_space(store_dir, archs, scorer=scorer, data=data, batch=batch, seed=seed, C=C, N=N, init=init,
                space=space, cells=cells, cifar_path=cifar_path, archs_per_job=archs_per_job, workers=workers,
                threads_per_job=1, progress=progress, device=device)
    network = network_settings(space=space, C=C, N=N, data=data, batch=batch, init=init)
    hashes = {j.job_hash for j in arch_jobs(archs, scorer=scorer, data=data, batch=batch, seed=seed, C=C, N=N,
                                            init=init, space=space, cells=cells)}
    with ResultsStore(store_dir) as store:
        found = stored_rows(store, scorer, network, seed)
        failed = {r["params"]["arch"]: r["reason"] for r in store.rows(status="failed") if r["hash"] in hashes}
    missing = [a for a in dict.fromkeys(archs) if a not in found]
    if missing:
        reason = failed.get(missing[0], "no row").splitlines()[0]
        raise ValueError(f"{len(missing)} architecture(s) could not be scored in {str(store_dir)!r}, first: "
                         f"{missing[0]}: {reason}")
    columns = scorer.columns()
    return pd.DataFrame.from_records([{"arch": a, **{c: found[a]["result"][c] for c in columns}} for a in archs],
                                     columns=["arch"] + columns)
