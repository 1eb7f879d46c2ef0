"""``nb201-digits``: NAS-Bench-201 cells trained on scikit-learn's digits, a ground truth
for correlation studies that runs on any laptop without downloads.

Size and data. Every network is ``nb201.build(arch, C=8, N=1, num_classes=10,
in_channels=1)`` (one cell per stage, 8/16/32 channels; NAS-Bench-201 itself uses
C=16, N=5 on 32x32 images) on ``digits`` 1x8x8 images, split once with
``empirical.data.load("digits", seed=0)`` (1347 train / 450 test, stratified,
standardised with train statistics).

Recipe (``RECIPE``, one for every network): SGD, momentum 0.9, Nesterov, weight decay
5e-4, batch 128 (incomplete last batch dropped: 10 steps per epoch), learning rate 0.1
on a cosine schedule to 0 over 4 epochs, cross-entropy; accuracies and losses from full
passes over train and test in eval mode. Chosen so one training costs about a second of
one core (measured ~0.5-1.7 s CPU, all-skip to all-conv3x3).

Seeds. Training seed ``s`` draws the weight initialisation (``torch.manual_seed(s)``
before building, as `empirical.scoring.build_network` does) and the sample order
(`empirical.training.train`). Each class is trained with seeds 0 and 1.

Selection (``select_classes``). One representative per NAS-Bench-201 isomorphism class
(`nb201.unique_archs()`, 6,466 classes). Classes are stratified by the number of
convolution edges (``nor_conv_1x1`` or ``nor_conv_3x3``) in the representative's cell,
0..6, which spans the poor (no parametric op), middle and good regions. The requested
number of classes is spread as evenly as the strata allow (water-filling: a stratum
smaller than its share is taken whole and the rest is shared among the others); within
a stratum classes are drawn uniformly with ``numpy.random.default_rng(selection_seed)``.
The all-``none`` and all-``nor_conv_3x3`` classes are always included; the other
``n_classes - 2`` are allocated over the strata.

Files. ``nb201_digits.csv`` (next to this module): one row per class with per-seed
columns ``<metric>_s<seed>`` for ``train_loss, train_acc, test_loss, test_acc,
seconds`` and their means ``<metric>`` over seeds, plus ``params`` and ``flops``
(multiply-accumulates of one forward pass, the ``flops`` proxy). ``nb201_digits.json``:
recipe, sizes, versions, the command, the date, the selection rule and seed, and the
ground truth's own reliability (rank correlation of the two seeds' test accuracies).
Regenerate with::

    gradsign build-benchmark --out runs/nb201-digits --classes 1000 --seeds 0 1 --workers 1
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

import proxies
from proxies.checks import check_int
from empirical import data as datasets
from empirical import provenance
from empirical.plan import Job, seeded
from empirical.scoring import NetworkSpec, build_network
from empirical.spaces import nb201
from empirical.stats import rank_correlations
from empirical.store import ResultsStore
from empirical.training import Recipe, train

__all__ = [
    "C", "N", "DATA", "SPLIT_SEED", "RECIPE", "KIND", "CSV_PATH", "JSON_PATH", "METRICS",
    "conv_edges", "select_classes", "plan", "train_job", "train_cell", "table", "write", "load", "metadata",
]

C = 8
N = 1
DATA = "digits"
SPLIT_SEED = 0
RECIPE = Recipe(epochs=4, batch_size=128, lr=0.1, lr_min=0.0, momentum=0.9, nesterov=True,
                weight_decay=5e-4, drop_last=True, loss="ce")
KIND = "nb201-digits-train"
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "seconds")
ALWAYS = (
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
)
_HERE = Path(__file__).resolve().parent
CSV_PATH = _HERE / "nb201_digits.csv"
JSON_PATH = _HERE / "nb201_digits.json"


def conv_edges(arch: str) -> int:
    """Number of the cell's 6 edges carrying ``nor_conv_1x1`` or ``nor_conv_3x3``.

    >>> conv_edges("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")
    2
    """
    return sum(op.startswith("nor_conv") for op, _ in nb201.parse(arch))


def _allocate(sizes: list[int], total: int) -> list[int]:
    """Spread `total` over strata of `sizes` as evenly as possible (water-filling)."""
    counts = [0] * len(sizes)
    open_strata = [i for i, s in enumerate(sizes) if s > 0]
    left = total
    while left > 0 and open_strata:
        share, extra = divmod(left, len(open_strata))
        still_open = []
        for rank, i in enumerate(open_strata):
            want = share + (1 if rank < extra else 0)
            take = min(want, sizes[i] - counts[i])
            counts[i] += take
            left -= take
            if counts[i] < sizes[i]:
                still_open.append(i)
        if len(still_open) == len(open_strata) and left > 0 and share == 0:
            break
        open_strata = still_open
    return counts


def select_classes(n_classes: int = 1000, seed: int = 0) -> list[str]:
    """Representatives of `n_classes` isomorphism classes, stratified by `conv_edges`
    (see the module docstring), in a seeded shuffled order (so a partial build is a
    random subset of the selection)."""
    unique = nb201.unique_archs()
    check_int("n_classes", n_classes, minimum=len(ALWAYS), maximum=len(unique))
    check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    strata: dict[int, list[str]] = {k: [] for k in range(len(nb201.EDGES) + 1)}
    for arch in unique:
        if arch not in ALWAYS:
            strata[conv_edges(arch)].append(arch)
    counts = _allocate([len(strata[k]) for k in strata], n_classes - len(ALWAYS))
    chosen: list[str] = list(ALWAYS)
    for k, count in zip(strata, counts):
        picked = rng.choice(len(strata[k]), size=count, replace=False) if count else []
        chosen.extend(strata[k][i] for i in sorted(picked))
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]


def plan(classes: list[str], seeds: list[int]) -> list[Job]:
    """One job per (class, seed), the seeds of a class next to each other."""
    params = {"C": C, "N": N, "data": DATA, "split_seed": SPLIT_SEED, "recipe": RECIPE.to_dict()}
    return [Job(KIND, {**params, "arch": arch}, seed) for arch in classes for seed in seeds]


@functools.lru_cache(maxsize=4)
def _split(name: str, seed: int) -> datasets.DataSplit:
    return datasets.load(name, seed=seed)


def train_job(job: Job) -> dict:
    """Build, count and train one network; the job function of `build-benchmark`."""
    p = job.params
    return train_cell(p, _split(p["data"], p["split_seed"]), job.seed)


def train_cell(p: dict, split, seed: int) -> dict:
    """Build the cell of job params ``p`` (arch, C, N, recipe) from ``seed``, count its
    params and flops, train it on ``split``: the row both benchmarks store."""
    with seeded(seed):
        model = build_network(NetworkSpec("nb201", arch=p["arch"], C=p["C"], N=p["N"]), split, seed)
        x, y = split.X_train[:1], split.y_train[:1]
        counts = {"params": proxies.compute("params", model, x, y), "flops": proxies.compute("flops", model, x, y)}
        out = train(model, split, Recipe(**p["recipe"]), seed)
    return {**counts, **{k: out[k] for k in METRICS + ("final_batch_loss", "steps", "diverged")}}


def table(run_dir: str | os.PathLike, seeds: list[int] | None = None) -> pd.DataFrame:
    """One row per class with an 'ok' row for every seed in `seeds` (default: all seeds
    seen in the run), sorted by arch string; per-seed and mean columns (module docstring)."""
    store = ResultsStore(run_dir, create=False)
    try:
        rows = [r for r in store.rows(status="ok") if r["kind"] == KIND]
    finally:
        store.close()
    if seeds is None:
        seeds = sorted({r["seed"] for r in rows})
    by_arch: dict[str, dict] = {}
    for r in rows:
        if r["seed"] not in seeds:
            continue
        entry = by_arch.setdefault(r["params"]["arch"], {})
        entry[r["seed"]] = r["result"]
    records = []
    for arch, per_seed in by_arch.items():
        if set(per_seed) != set(seeds):
            continue
        first = per_seed[seeds[0]]
        record = {"arch": arch, "conv_edges": conv_edges(arch), "params": int(first["params"]),
                  "flops": int(first["flops"])}
        for metric in METRICS:
            values = [per_seed[s][metric] for s in seeds]
            for s, v in zip(seeds, values):
                record[f"{metric}_s{s}"] = v
            record[metric] = float(np.mean(values))
        records.append(record)
    columns = ["arch", "conv_edges", "params", "flops"] + [
        f"{m}_s{s}" for m in METRICS for s in seeds] + list(METRICS)
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame.sort_values("arch", kind="stable").reset_index(drop=True)


def reliability(frame: pd.DataFrame, seeds: tuple[int, int] = (0, 1), *, n_boot: int = 2000,
                seed: int = 0) -> dict:
    """Rank agreement of two training seeds' test accuracies over the classes (how
    reproducible the ground truth is): Spearman and Kendall with bootstrap 95% CIs."""
    a, b = frame[f"test_acc_s{seeds[0]}"].to_numpy(), frame[f"test_acc_s{seeds[1]}"].to_numpy()
    return {"seeds": list(seeds), **rank_correlations(a, b, n_boot=n_boot, seed=seed)}


def write(run_dir: str | os.PathLike, *, seeds: list[int], n_classes: int, selection_seed: int,
          command: str, csv_path: str | os.PathLike = CSV_PATH,
          json_path: str | os.PathLike = JSON_PATH) -> tuple[pd.DataFrame, dict]:
    """Write the benchmark's CSV (floats rounded to 6 digits) and JSON metadata from a
    build run; return (table, metadata)."""
    frame = table(run_dir, seeds)
    split = _split(DATA, SPLIT_SEED)
    meta = {
        "name": "nb201-digits",
        "space": "nb201",
        "C": C,
        "N": N,
        "data": DATA,
        "split_seed": SPLIT_SEED,
        "n_train": split.n_train,
        "n_test": split.n_test,
        "input_shape": list(split.input_shape),
        "recipe": RECIPE.to_dict(),
        "seeds": list(seeds),
        "seed_meaning": "torch.manual_seed(seed) before building (weights) and the epoch sample order",
        "selection": {
            "rule": "one representative per NAS-Bench-201 isomorphism class (nb201.unique_archs), "
                    "stratified by the number of conv edges (0..6) with the classes spread evenly "
                    "over strata (water-filling), uniform within a stratum; all-none and "
                    "all-nor_conv_3x3 always included",
            "seed": selection_seed,
            "classes_requested": n_classes,
        },
        "classes": int(len(frame)),
        "threads_per_training": 1,
        "training_seconds_mean": float(frame["seconds"].mean()) if len(frame) else None,
        "versions": provenance.versions(),
        "git_revision": provenance.git_revision(),
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if len(frame) >= 3 and len(seeds) >= 2:
        meta["reliability"] = reliability(frame, (seeds[0], seeds[1]))
    frame.round(6).to_csv(csv_path, index=False)
    Path(json_path).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    return frame, meta


def load(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The shipped mini-benchmark as a DataFrame, one row per class (module docstring).

    >>> frame = load()
    >>> len(frame), frame["arch"].is_unique
    (1000, True)
    >>> none_cell = frame.set_index("arch").loc[ALWAYS[0]]   # no path from input to output
    >>> int(none_cell["params"]), round(float(none_cell["test_acc"]), 3)
    (18594, 0.1)
    """
    path = Path(path) if path is not None else CSV_PATH
    if not path.is_file():
        raise ValueError(f"benchmark file {str(path)!r} is missing; regenerate it with "
                         "'gradsign build-benchmark --out runs/nb201-digits'")
    return pd.read_csv(path)


def metadata(path: str | os.PathLike | None = None) -> dict:
    """The JSON metadata next to the shipped CSV (recipe, sizes, selection, reliability)."""
    path = Path(path) if path is not None else JSON_PATH
    if not path.is_file():
        raise ValueError(f"benchmark metadata {str(path)!r} is missing; regenerate it with "
                         "'gradsign build-benchmark --out runs/nb201-digits'")
    return json.loads(path.read_text())
