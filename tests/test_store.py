"""Results store: one row per job hash, failed rows, provenance, load / export round trips."""
import argparse
import json
import math
import re
import sqlite3

import pandas as pd
import pytest

from empirical.commands import export as export_command
from empirical.plan import Job
from empirical.provenance import git_revision, versions
from empirical.results import export, flatten, load
from empirical.store import DB_NAME, ResultsStore


def job(n, seed=0, **extra):
    return Job("toy", {"n": n, "model": {"widths": [n, 2 * n]}, **extra}, seed=seed, config={"kind": "toy"})


def test_double_insert_never_duplicates(tmp_path):
    with ResultsStore(tmp_path) as store:
        assert store.record(job(1), status="ok", result={"x": 1.0})
        assert not store.record(job(1), status="ok", result={"x": 2.0})
        assert not store.record(job(1), status="failed", reason="late duplicate")
        assert len(store) == 1 and store.rows()[0]["result"] == {"x": 1.0}
    # The primary key itself forbids a second row, whatever the writer does.
    conn = sqlite3.connect(tmp_path / DB_NAME)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO results (hash, kind, status, params, seed, created_at) "
                     "SELECT hash, kind, status, params, seed, created_at FROM results")
    conn.close()


def test_failed_rows_are_recorded_and_can_be_replaced(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record(job(1), status="ok", result={"x": 1.0})
        store.record(job(2), status="failed", reason="ValueError: boom")
        assert store.done_hashes() == {job(1).job_hash, job(2).job_hash}
        assert store.done_hashes(include_failed=False) == {job(1).job_hash}
        [failed] = store.rows(status="failed")
        assert failed["reason"] == "ValueError: boom" and failed["result"] is None
        # Retrying replaces a failed row, never an ok one.
        assert store.record(job(2), status="ok", result={"x": 2.0}, replace_failed=True)
        assert not store.record(job(1), status="ok", result={"x": 9.0}, replace_failed=True)
        assert [(r["status"], r["result"]) for r in store.rows()] == [("ok", {"x": 1.0}), ("ok", {"x": 2.0})]


def test_row_carries_job_and_provenance(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record(job(3, seed=4), status="ok", result={"x": 0.5}, timings={"wall_s": 0.25})
    with ResultsStore(tmp_path, create=False) as again:  # persisted, reopened
        [row] = again.rows()
    assert row["hash"] == job(3, seed=4).job_hash and row["kind"] == "toy" and row["seed"] == 4
    assert row["params"] == {"n": 3, "model": {"widths": [3, 6]}}
    assert row["config"] == {"kind": "toy"} and row["timings"] == {"wall_s": 0.25}
    assert row["versions"] == versions() and set(versions()) == {
        "python", "torch", "numpy", "scipy", "sklearn", "gradsign"}
    assert row["git_revision"] == git_revision() and re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown",
                                                                  row["git_revision"])
    assert row["created_at"].endswith("+00:00")
    assert git_revision(tmp_path) == "unknown"  # not a git checkout


@pytest.mark.parametrize("kwargs, message", [
    (dict(status="done", result={}), "status must be one of"),
    (dict(status="failed"), "a failed row needs a reason"),
    (dict(status="ok"), "an 'ok' row needs result="),
    (dict(status="ok", result={"x": object()}), "result.x: object"),
])
def test_record_rejects_bad_rows(tmp_path, kwargs, message):
    with ResultsStore(tmp_path) as store:
        with pytest.raises(ValueError, match=re.escape(message)):
            store.record(job(1), **kwargs)
        assert len(store) == 0


def test_missing_run_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="holds no results.sqlite"):
        load(tmp_path / "nope")


def test_database_uses_wal_and_full_sync(tmp_path):
    with ResultsStore(tmp_path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def fill(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record(job(1), status="ok", result={"psi": 0.25, "corr": {"kendall": 0.1}, "label": "a",
                                                    "ratio": 1 / 3},
                     timings={"wall_s": 1.5})
        store.record(job(2, seed=1), status="ok", result={"psi": float("nan"), "corr": {"kendall": -1e-12},
                                                           "label": "b", "ratio": 0.1 + 0.2},
                     timings={"wall_s": 2.0})
        store.record(job(3), status="failed", reason="RuntimeError: diverged", timings={"wall_s": 0.5})


def test_load_flattens_params_and_metrics(tmp_path):
    fill(tmp_path)
    frame = load(tmp_path)
    # params, then metrics, each in sorted (canonical JSON) order
    assert list(frame.columns[:10]) == ["hash", "kind", "status", "reason", "seed", "model.widths", "n",
                                        "corr.kendall", "label", "psi"]
    assert list(frame["n"]) == [1, 2, 3] and list(frame["model.widths"]) == ["[1,2]", "[2,4]", "[3,6]"]
    assert frame["psi"][0] == 0.25 and math.isnan(frame["psi"][1]) and math.isnan(frame["psi"][2])
    assert list(frame["status"]) == ["ok", "ok", "failed"] and frame["reason"][2] == "RuntimeError: diverged"
    assert list(frame["timing.wall_s"]) == [1.5, 2.0, 0.5] and frame["version.torch"][0] == versions()["torch"]
    assert len(load(tmp_path, status="ok")) == 2
    assert flatten({"a": {"b": {"c": 1}}, "d": [{"e": 1}]}) == {"a.b.c": 1, "d": '[{"e":1}]'}


def test_load_order_does_not_depend_on_completion_order(tmp_path):
    for name, order in (("forward", range(6)), ("backward", reversed(range(6)))):
        with ResultsStore(tmp_path / name) as store:
            for n in order:
                store.record(job(n), status="ok", result={"psi": n / 7})
    forward, backward = load(tmp_path / "forward"), load(tmp_path / "backward")
    assert list(forward["hash"]) == sorted(forward["hash"])
    pd.testing.assert_frame_equal(forward.drop(columns="created_at"), backward.drop(columns="created_at"))


def test_load_refuses_a_metric_named_like_a_param(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record(job(1), status="ok", result={"n": 5})
    with pytest.raises(ValueError, match=re.escape("column name(s) ['n'] are used both as a metric")):
        load(tmp_path)


def test_export_round_trips_through_csv_and_parquet(tmp_path):
    fill(tmp_path)
    frame = export(tmp_path, csv=tmp_path / "out" / "r.csv", parquet=tmp_path / "out" / "r.parquet")
    pd.testing.assert_frame_equal(frame, load(tmp_path))
    from_parquet = pd.read_parquet(tmp_path / "out" / "r.parquet")
    pd.testing.assert_frame_equal(from_parquet, frame)
    from_csv = pd.read_csv(tmp_path / "out" / "r.csv")
    assert list(from_csv.columns) == list(frame.columns)
    for column in frame.columns:
        want, got = frame[column], from_csv[column]
        if pd.api.types.is_float_dtype(want):
            assert want.equals(got.astype(float)), column  # exact floats, NaN in the same places
        else:
            assert [None if pd.isna(v) else v for v in want] == [None if pd.isna(v) else v for v in got], column
    with pytest.raises(ValueError, match="export needs a destination"):
        export(tmp_path)


def test_export_command(tmp_path, capsys):
    fill(tmp_path)
    parser = argparse.ArgumentParser(prog="gradsign")
    export_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(tmp_path), "--csv", str(tmp_path / "r.csv"),
                              "--parquet", str(tmp_path / "r.parquet")])
    assert args.func(args) == 0
    assert capsys.readouterr().out.count("wrote 3 rows") == 2
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 3 and len(pd.read_csv(tmp_path / "r.csv")) == 3
    with pytest.raises(ValueError, match="nothing to write"):
        args = parser.parse_args(["export", str(tmp_path)])
        args.func(args)


def test_result_json_keeps_nan_and_exact_floats(tmp_path):
    values = {"a": 0.1 + 0.2, "b": float("nan"), "c": -0.0, "d": 1e-320, "e": [1.5, float("inf")]}
    with ResultsStore(tmp_path) as store:
        store.record(job(1), status="ok", result=values)
        stored = store.rows()[0]["result"]
    assert stored["a"] == 0.1 + 0.2 and math.isnan(stored["b"]) and math.copysign(1, stored["c"]) == -1
    assert stored["d"] == 1e-320 and stored["e"] == [1.5, float("inf")]
    assert json.loads(json.dumps(stored["a"])) == stored["a"]
