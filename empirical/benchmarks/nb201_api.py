"""Trained accuracies from the user's own NAS-Bench-201 benchmark file (nothing is
downloaded; the toolkit ships no NAS-Bench-201 data).

Supported layout: the ``torch.save``d dict of ``NAS-Bench-201-v1_0-e61699.pth`` and
``NAS-Bench-201-v1_1-096897.pth`` (Dong & Yang, ICLR 2020), read without the official
``nas_201_api`` package (whose loader unpickles arbitrary objects)::

    {
      "meta_archs": [arch_str, ...],               # index -> NAS-Bench-201 arch string
      "arch2infos": {                              # index -> training schedules
        index: {
          "full": {                                # hp="200": the 200-epoch schedule
            "all_results": {
              (dataset, seed): {                   # e.g. ("cifar10", 777)
                "params": float, "flop": float,   # millions
                "train_acc1es": {epoch: acc},      # percent
                "eval_acc1es": {"ori-test@<epoch>": acc, "x-valid@<epoch>": acc, ...},
                ...
              }, ...
            }, ...
          },
          "less": {...},                           # hp="12": the 12-epoch schedule
        }, ...
      },
      ...
    }

Per architecture and ``dataset``, each metric is the mean over the seeds present of its
value at the last epoch recorded: ``test_acc`` from ``ori-test@E``, ``valid_acc`` from
``x-valid@E`` (NaN where absent), ``train_acc`` from ``train_acc1es[E]``, where ``E`` is
the largest epoch among the ``ori-test@`` keys (else among ``x-valid@``). Accuracies
stay in percent, as the file stores them.

Loading safely: the file is opened with ``torch.load(weights_only=True)``, which rebuilds
only tensors and plain containers and refuses any other object, so a crafted file cannot
run code. A file that needs full unpickling is refused unless ``allow_pickle=True``
(``--trust-file`` on the command line): pass it only for a file from a source you trust.
NATS-Bench's ``.pickle.pbz2`` directories are not supported.
"""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["HP", "DATASETS", "load_file", "accuracies"]

HP = {"200": "full", "12": "less"}
DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")


def load_file(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict:
    """The benchmark file's dict, loaded with ``weights_only=True`` unless ``allow_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NAS-Bench-201 file {str(path)!r} not found; pass the path of your "
                         "NAS-Bench-201-v1_0-e61699.pth or NAS-Bench-201-v1_1-096897.pth (nothing is downloaded)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{str(path)!r} holds objects beyond tensors and plain containers, which the safe loader "
            f"refuses ({str(err).splitlines()[0]}); if you trust the file's source, pass "
            "allow_pickle=True (command line: --trust-file)") from None
    if not isinstance(data, dict) or "meta_archs" not in data or "arch2infos" not in data:
        raise ValueError(f"{str(path)!r} is not a NAS-Bench-201 benchmark file: expected a dict with "
                         "'meta_archs' and 'arch2infos' (see empirical.benchmarks.nb201_api)")
    return data


def _last_epoch(keys, prefix: str) -> int | None:
    epochs = [int(k.split("@", 1)[1]) for k in keys if isinstance(k, str) and k.startswith(prefix + "@")]
    return max(epochs) if epochs else None


def _metrics(result: dict) -> dict[str, float]:
    evals = result.get("eval_acc1es", {})
    last = _last_epoch(evals, "ori-test")
    if last is None:
        last = _last_epoch(evals, "x-valid")
    train = result.get("train_acc1es", {})
    return {
        "test_acc": float(evals.get(f"ori-test@{last}", math.nan)),
        "valid_acc": float(evals.get(f"x-valid@{last}", math.nan)),
        "train_acc": float(train.get(last, math.nan)) if last is not None else math.nan,
        "params": float(result.get("params", math.nan)),
        "flops": float(result.get("flop", math.nan)),
    }


def accuracies(path: str | os.PathLike, *, dataset: str = "cifar10", hp: str = "200",
               allow_pickle: bool = False) -> pd.DataFrame:
    """One row per architecture trained on ``dataset`` under schedule ``hp``: ``arch, index,
    seeds, test_acc, valid_acc, train_acc, params, flops`` (means over seeds; module docstring).

    A missing file is refused before anything is read:

    >>> accuracies("no-such-file.pth")
    Traceback (most recent call last):
        ...
    ValueError: NAS-Bench-201 file 'no-such-file.pth' not found; pass the path of your NAS-Bench-201-v1_0-e61699.pth or NAS-Bench-201-v1_1-096897.pth (nothing is downloaded)
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if hp not in HP:
        raise ValueError(f"hp must be one of {tuple(HP)} (epochs of the schedule), got {hp!r}")
    data = load_file(path, allow_pickle=allow_pickle)
    archs = data["meta_archs"]
    records = []
    for index, infos in data["arch2infos"].items():
        schedule = infos.get(HP[hp]) if isinstance(infos, dict) else None
        if not schedule:
            continue
        runs = [r for (name, _seed), r in schedule.get("all_results", {}).items() if name == dataset]
        if not runs:
            continue
        values = [_metrics(r) for r in runs]
        record = {"arch": archs[int(index)], "index": int(index), "seeds": len(runs)}
        for key in values[0]:
            column = np.array([v[key] for v in values], dtype=float)
            record[key] = float(np.nanmean(column)) if np.isfinite(column).any() else math.nan
        records.append(record)
    if not records:
        raise ValueError(f"{str(path)!r} has no results for dataset {dataset!r} with hp={hp!r}")
    return pd.DataFrame.from_records(records).sort_values("index").reset_index(drop=True)
