"""Results of a run as a pandas DataFrame, and export to CSV / Parquet.

Columns of `load`, one row per job: ``hash, kind, status, reason, seed``; then the
params, nested tables flattened to dotted names (``model.width``), in sorted order; then
the metrics under their own names, without prefix (nested dicts flattened the same way,
sorted); then ``timing.<name>``, ``version.<library>``, ``git_revision``, ``created_at``.
Lists are stored as canonical JSON text, so CSV and Parquet hold the same cells and both
round-trip.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from empirical.store import ResultsStore

__all__ = ["export", "flatten", "load"]

_LEADING = ("hash", "kind", "status", "reason", "seed")
_TRAILING = ("git_revision", "created_at")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> flat dict with dotted keys; lists become canonical JSON text.

    >>> flatten({"model": {"width": 8, "widths": [8, 16]}, "lr": 0.1})
    {'model.width': 8, 'model.widths': '[8,16]', 'lr': 0.1}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            out[name] = value
    return out


def load(run_dir: str | os.PathLike, *, status: str | None = None) -> pd.DataFrame:
    """The run's rows as a DataFrame, ordered by job hash (not by completion, which parallel
    workers vary: seeded statistics over the rows then give the same numbers every time);
    see the module docstring for columns.

    status: None for all rows, 'ok' or 'failed' for those only.
    Raises ValueError if a metric has the same name as a param or a bookkeeping column
    (rename the metric in the job function).
    """
    store = ResultsStore(run_dir, create=False)
    try:
        rows = store.rows(status=status)
    finally:
        store.close()
    reserved = set(_LEADING) | set(_TRAILING)
    records = []
    param_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for row in rows:
        params = flatten(row["params"])
        metrics = flatten(row["result"] or {})
        clash = (set(metrics) & (set(params) | reserved)) or (set(params) & reserved)
        if clash:
            raise ValueError(
                f"run {str(run_dir)!r}, job {row['hash'][:12]}: column name(s) {sorted(clash)} are used "
                "both as a metric and as a param or bookkeeping column; rename the metric"
            )
        param_names.update(dict.fromkeys(params))
        metric_names.update(dict.fromkeys(metrics))
        record = {key: row[key] for key in _LEADING}
        record.update(params)
        record.update(metrics)
        record.update(flatten(row["timings"] or {}, "timing."))
        record.update(flatten(row["versions"] or {}, "version."))
        record.update({key: row[key] for key in _TRAILING})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=list(_LEADING + _TRAILING))
    extra = [c for c in frame.columns if c.startswith(("timing.", "version.")) and c not in param_names
             and c not in metric_names]
    order = list(_LEADING) + list(param_names) + list(metric_names) + extra + list(_TRAILING)
    return frame[order].sort_values("hash", kind="stable").reset_index(drop=True)


def export(run_dir: str | os.PathLike, *, csv: str | os.PathLike | None = None,
           parquet: str | os.PathLike | None = None) -> pd.DataFrame:
    """Write `load(run_dir)` to CSV and/or Parquet; return the frame written.

    Read back with ``pd.read_csv(path)`` (floats are written in round-trip precision)
    and ``pd.read_parquet(path)``.  Parquet needs pyarrow (the ``test`` extra).
    """
    if csv is None and parquet is None:
        raise ValueError("export needs a destination: pass csv=PATH and/or parquet=PATH")
    frame = load(run_dir)
    if csv is not None:
        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv, index=False)
    if parquet is not None:
        try:
            import pyarrow  # noqa: F401  (pandas picks the engine; say clearly what is missing)
        except ImportError:
            raise ValueError("Parquet export needs pyarrow: pip install 'gradsign-toolkit[test]'") from None
        Path(parquet).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(parquet, index=False)
    return frame
