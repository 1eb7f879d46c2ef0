"""Kill -9 a running driver part-way, rerun it, and get exactly the uninterrupted rows."""
import os
import sqlite3
import subprocess
import sys

from empirical.store import DB_NAME, ResultsStore
from tests.helpers_jobs import run_toy
from tests.helpers_kill import kill_after_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_JOBS, SLEEP = 12, 0.3


def driver_command(run_dir):
    code = ("from tests.helpers_jobs import run_toy; "
            f"print(run_toy({str(run_dir)!r}, n_jobs={N_JOBS}, sleep={SLEEP}, workers=2))")
    return [sys.executable, "-c", code]


def comparable(run_dir):
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    return sorted((r["hash"], r["kind"], r["seed"], r["status"], r["params"], r["result"]) for r in rows)


def test_sigkill_part_way_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    run_dir = tmp_path / "killed"
    db = run_dir / DB_NAME
    kill_after_rows(driver_command(run_dir), ROOT, db, rows=3, timeout=180)

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with ResultsStore(run_dir, create=False) as store:
        survivors = {r["hash"]: r["created_at"] for r in store.rows()}
    assert 3 <= len(survivors) < N_JOBS, "the kill must land part-way through the run"
    assert all(r[3] == "ok" and r[5] is not None for r in comparable(run_dir))  # no partial rows

    rerun = subprocess.run(driver_command(run_dir), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    # Only the jobs without a row ran again.
    assert rerun.stdout.strip() == (f"RunSummary(total={N_JOBS}, skipped={len(survivors)}, "
                                    f"ok={N_JOBS - len(survivors)}, failed=0)")

    # The uninterrupted reference run: in this process, one worker.
    run_toy(str(tmp_path / "reference"), n_jobs=N_JOBS, sleep=SLEEP, workers=1)
    assert comparable(run_dir) == comparable(tmp_path / "reference")
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    assert len(rows) == N_JOBS and len({r["hash"] for r in rows}) == N_JOBS
    # Rows committed before the kill were kept, not recomputed.
    assert all(r["created_at"] == survivors[r["hash"]] for r in rows if r["hash"] in survivors)
