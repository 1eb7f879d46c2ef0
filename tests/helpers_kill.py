"""Kill a run with SIGKILL part-way: the shared half of the resume tests."""
import os
import signal
import sqlite3
import subprocess
import time


def count_rows(db) -> int:
    """Rows committed to a results store so far (0 before the table exists)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # the driver has not created the table yet
        return 0
    finally:
        conn.close()


def kill_after_rows(command, cwd, db, rows: int, timeout: float) -> None:
    """Start `command`, SIGKILL its driver once `db` holds `rows` rows, then its process
    group (pool workers orphaned by the kill; they never write rows)."""
    driver = subprocess.Popen(command, cwd=cwd, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while count_rows(db) < rows:
            assert driver.poll() is None, f"the run ended before it could be killed: {driver.stderr.read()!r}"
            assert time.monotonic() < deadline, f"fewer than {rows} rows written in {timeout} s"
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)
        assert driver.wait(timeout=60) == -signal.SIGKILL
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        driver.stderr.close()
