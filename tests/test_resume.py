"""Kill -9 a running driver part-way, rerun it, and get exactly the uninterrupted rows."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

from empirical.store import DB_NAME, ResultsStore
from tests.helpers_jobs import run_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_JOBS, SLEEP = 12, 0.3


def driver_command(run_dir):
    code = ("from tests.helpers_jobs import run_toy; "
            f"print(run_toy({str(run_dir)!r}, n_jobs={N_JOBS}, sleep={SLEEP}, workers=2))")
    return [sys.executable, "-c", code]


def count_rows(path):
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # the driver has not created the table yet
        return 0
    finally:
        conn.close()


def comparable(run_dir):
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    return sorted((r["hash"], r["kind"], r["seed"], r["status"], r["params"], r["result"]) for r in rows)


def test_sigkill_part_way_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    run_dir = tmp_path / "killed"
    db = run_dir / DB_NAME
    driver = subprocess.Popen(driver_command(run_dir), cwd=ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while count_rows(db) < 3:
            assert driver.poll() is None, f"driver ended before it could be killed: {driver.stderr.read()!r}"
            assert time.monotonic() < deadline, "driver wrote no rows in 180 s"
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)
        assert driver.wait(timeout=60) == -signal.SIGKILL
    finally:
        # The pool's workers are orphaned by the kill: end them (they never write rows).
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        driver.stderr.close()

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
