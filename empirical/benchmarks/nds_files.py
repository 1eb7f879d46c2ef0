"""Trained accuracies from the user's own NDS files (Radosavovic et al., ICCV 2019), for
the five cell spaces: ``DARTS.json``, ``ENAS.json``, ``PNAS.json``, ``NASNet.json``,
``Amoeba.json`` (and their ``_fix-w-d`` / ``_lr-wd`` sweeps). Nothing is downloaded.

Layout (facebookresearch/nds, as its notebooks and NNI's ``nds/db_gen.py`` read it):
the file is JSON, either a list of records or an object ``{"top": [...], "mid": [...]}``
of two such lists (read in that order). Each record is one trained network::

    {"net": {"genotype": {"normal": [[op, input], ...], "normal_concat": [...],
                          "reduce": [[op, input], ...], "reduce_concat": [...]},
             "width": 32, "depth": 12, "aux": false, "drop_prob": 0.0, ...},
     "test_ep_top1": [top-1 error in percent after each epoch, ...],
     "min_test_top1": 6.6,            # optional: the lowest of them
     "params": 4190314, "flops": 664400586,   # optional
     "rng_seed": 1, "optim": {...}, "train_ep_top1": [...], ...}

``load`` gives one row per architecture (genotype, width, depth, aux): ``arch, index,
genotype, width, depth, aux, runs, test_acc, best_test_acc, params, flops, epochs``.
``arch`` is a stable key (the first 16 hex digits of the SHA-1 of the canonical JSON of
the four), ``index`` the position of its first record in the file, ``genotype`` the
canonical NDS-layout JSON (``empirical.spaces.nds.parse_genotype`` reads it back).
``test_acc = 1 - test_ep_top1[-1] / 100`` (the final epoch, as NNI's and NASWOT's
readers use it) and ``best_test_acc = 1 - min(test_ep_top1) / 100`` are fractions, the
toolkit's accuracy convention, averaged over the ``runs`` records of one architecture
(``best_test_acc`` from ``min_test_top1`` where the record has it). ``params`` and
``flops`` are NaN where absent.

The ImageNet sweeps (``*_in.json``) have the same layout and load the same way, but
``empirical.spaces.nds.build`` builds the CIFAR network only. Records of NDS's non-cell
spaces (ResNet, ResNeXt, Vanilla: no ``net.genotype``) are refused with a
``ValueError``; ``space=`` also checks every genotype against that space's op set. The
files are plain JSON: nothing is unpickled. ``drop_prob`` and the training recipe
(``optim``) are not part of the key.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from proxies.checks import check_int
from empirical.spaces import nds

__all__ = ["load", "arch_key"]


def arch_key(genotype, width: int, depth: int, aux: bool) -> str:
    """The 16-hex-digit key of one architecture (module docstring)."""
    text = json.dumps({"genotype": json.loads(nds.genotype_to_json(genotype)), "width": width, "depth": depth,
                       "aux": aux}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _records(data, path: Path) -> list:
    if isinstance(data, dict) and "top" in data and "mid" in data:
        if not isinstance(data["top"], list) or not isinstance(data["mid"], list):
            raise ValueError(f"{str(path)!r}: 'top' and 'mid' must be lists of records")
        return data["top"] + data["mid"]
    if isinstance(data, list):
        return data
    raise ValueError(f"{str(path)!r} is not an NDS file: expected a JSON list of records or an object with "
                     "'top' and 'mid' lists (see empirical.benchmarks.nds_files)")


def _number(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _parse_record(record, index: int, path: Path, space: str | None) -> tuple[str, dict]:
    where = f"record {index} of {str(path)!r}"
    if not isinstance(record, dict) or not isinstance(record.get("net"), dict):
        raise ValueError(f"{where} is not an NDS record: expected an object with a 'net' object")
    net = record["net"]
    if "genotype" not in net:
        raise ValueError(f"{where} has no net.genotype: only NDS's cell spaces (DARTS, ENAS, PNAS, NASNet, "
                         "Amoeba) are supported, not ResNet, ResNeXt or Vanilla")
    try:
        genotype = nds.validate(space, net["genotype"]) if space else nds.parse_genotype(net["genotype"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    width, depth, aux = net.get("width"), net.get("depth"), net.get("aux", False)
    for name, value in (("net.width", width), ("net.depth", depth)):
        try:
            check_int(name, value, minimum=1)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if not isinstance(aux, bool):
        raise ValueError(f"{where}: net.aux must be true or false, got {aux!r}")
    errors = record.get("test_ep_top1")
    if not isinstance(errors, list) or not errors:
        raise ValueError(f"{where} lacks test_ep_top1, the per-epoch test top-1 error in percent")
    errors = [_number(e, "test_ep_top1 entries", where) for e in errors]
    if not all(0 <= e <= 100 for e in errors):
        raise ValueError(f"{where}: test_ep_top1 holds errors in percent, in [0, 100]; got {errors[-1]!r} ...")
    best = min(errors) if "min_test_top1" not in record else _number(record["min_test_top1"], "min_test_top1", where)
    extra = {k: _number(record[k], k, where) if k in record else math.nan for k in ("params", "flops")}
    row = {"genotype": nds.genotype_to_json(genotype), "width": width, "depth": depth, "aux": aux,
           "test_acc": 1.0 - errors[-1] / 100.0, "best_test_acc": 1.0 - best / 100.0, "epochs": len(errors),
           **extra}
    return arch_key(genotype, width, depth, aux), row


def load(path: str | os.PathLike, *, space: str | None = None) -> pd.DataFrame:
    """One row per architecture of an NDS cell-space file (module docstring), in file order.

    ``space`` (one of ``empirical.spaces.nds.SPACES``) checks every genotype against that
    space's op set. A file of another layout raises ``ValueError`` naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NDS file {str(path)!r} not found; pass the path of your DARTS.json, ENAS.json, "
                         "PNAS.json, NASNet.json or Amoeba.json (nothing is downloaded)")
    if space is not None and space not in nds.SPACES:
        raise ValueError(f"space must be one of {', '.join(map(repr, nds.SPACES))}, got {space!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not an NDS file: not UTF-8 JSON ({err})") from None
    records = _records(data, path)
    if not records:
        raise ValueError(f"{str(path)!r} holds no records")
    rows: dict[str, dict] = {}
    for index, record in enumerate(records):
        key, row = _parse_record(record, index, path, space)
        if key in rows:
            rows[key]["_runs"].append(row)
        else:
            rows[key] = {"arch": key, "index": index, "_runs": [row]}
    out = []
    for entry in rows.values():
        runs = entry.pop("_runs")
        first = runs[0]
        out.append({**entry, "genotype": first["genotype"], "width": first["width"], "depth": first["depth"],
                    "aux": first["aux"], "runs": len(runs),
                    "test_acc": float(np.mean([r["test_acc"] for r in runs])),
                    "best_test_acc": float(np.mean([r["best_test_acc"] for r in runs])),
                    "params": first["params"], "flops": first["flops"], "epochs": first["epochs"]})
    return pd.DataFrame.from_records(out)
