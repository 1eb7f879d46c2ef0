"""The results store: one SQLite file per run directory, one row per job hash.

Durability: the database runs in WAL mode with ``synchronous=FULL`` and every row is
written in its own ``BEGIN IMMEDIATE … COMMIT`` transaction, so a row is either wholly
committed (and fsynced) or absent; killing the writer, even with SIGKILL, never leaves a
partial row and never loses a committed one.  ``hash`` is the PRIMARY KEY, so a second
insert of the same job cannot duplicate it.

Only the driver process writes (see `empirical.executors`); readers may open the same
file concurrently.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Mapping

from empirical.plan import Job, to_json_data
from empirical import provenance

__all__ = ["DB_NAME", "ResultsStore", "STATUSES"]

DB_NAME = "results.sqlite"
STATUSES = ("ok", "failed")
_SCHEMA_VERSION = 1
_COLUMNS = ("hash", "kind", "status", "reason", "config", "params", "seed", "result",
            "timings", "versions", "git_revision", "created_at")
_JSON_COLUMNS = ("config", "params", "result", "timings", "versions")

_CREATE = """
CREATE TABLE IF NOT EXISTS results (
    hash         TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason       TEXT,
    config       TEXT,
    params       TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    result       TEXT,
    timings      TEXT,
    versions     TEXT,
    git_revision TEXT,
    created_at   TEXT NOT NULL
)
"""


def _json_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    # NaN is a legitimate metric (e.g. an undefined correlation); Python's json reads it back.
    return json.dumps(to_json_data(value, what, allow_nan=True), sort_keys=True, separators=(",", ":"))


class ResultsStore:
    """Rows of one run directory, in ``<run_dir>/results.sqlite``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run_dir, ResultsStore(run_dir) as store:
    ...     store.record(Job("demo", {"width": 8}, seed=0), status="ok", result={"psi": 0.3})
    ...     [(row["status"], row["result"]) for row in store.rows()]
    True
    [('ok', {'psi': 0.3})]
    """

    def __init__(self, run_dir: str | os.PathLike, *, create: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not self.path.exists():
            if not create:
                raise ValueError(f"run_dir {str(self.run_dir)!r} holds no {DB_NAME}; check the path")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per row.
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_CREATE)
        self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        self._provenance: tuple[str, str] | None = None

    def _default_provenance(self) -> tuple[str, str]:
        if self._provenance is None:
            self._provenance = (json.dumps(provenance.versions(), sort_keys=True), provenance.git_revision())
        return self._provenance

    def record(
        self,
        job: Job,
        *,
        status: str,
        result: Mapping[str, Any] | None = None,
        reason: str | None = None,
        timings: Mapping[str, Any] | None = None,
        versions: Mapping[str, str] | None = None,
        git_revision: str | None = None,
        replace_failed: bool = False,
    ) -> bool:
        """Write one finished job in one transaction; return True if a row was written.

        status: 'ok' (then `result` holds the metrics) or 'failed' (then `reason` says why).
        versions / git_revision default to this process's (`empirical.provenance`).
        An existing row for the same hash is kept and False returned, except that with
        `replace_failed` a 'failed' row is replaced (a retried job).
        """
        if not isinstance(job, Job):
            raise ValueError(f"job must be an empirical.plan.Job, got {type(job).__name__}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if status == "failed" and not reason:
            raise ValueError("a failed row needs a reason; pass reason='what went wrong'")
        if status == "ok" and result is None:
            raise ValueError("an 'ok' row needs result= (the job's metrics dict)")
        default_versions, default_revision = self._default_provenance()
        row = (
            job.job_hash,
            job.kind,
            status,
            reason,
            job.config_json,
            job.params_json,
            job.seed,
            _json_text(result, "result"),
            _json_text(timings, "timings"),
            default_versions if versions is None else _json_text(versions, "versions"),
            default_revision if git_revision is None else git_revision,
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        )
        placeholders = ", ".join("?" for _ in _COLUMNS)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if replace_failed:
                conn.execute("DELETE FROM results WHERE hash = ? AND status = 'failed'", (job.job_hash,))
            cursor = conn.execute(
                f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT(hash) DO NOTHING",
                row,
            )
            written = cursor.rowcount == 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return written

    def done_hashes(self, *, include_failed: bool = True) -> set[str]:
        """Hashes that have a row (only 'ok' rows if not `include_failed`)."""
        query = "SELECT hash FROM results" + ("" if include_failed else " WHERE status = 'ok'")
        return {h for (h,) in self._conn.execute(query)}

    def rows(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """All rows in insertion order, JSON columns decoded to Python objects."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be None or one of {STATUSES}, got {status!r}")
        query = f"SELECT {', '.join(_COLUMNS)} FROM results"
        args: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        out = []
        for values in self._conn.execute(query + " ORDER BY rowid", args):
            row = dict(zip(_COLUMNS, values))
            for key in _JSON_COLUMNS:
                if row[key] is not None:
                    row[key] = json.loads(row[key])
            out.append(row)
        return out

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.run_dir)!r})"
