"""Executors: run a list of jobs through a job function, writing rows as jobs finish.

`run_jobs` skips jobs whose hash already has a row (resume), runs the rest on the chosen
executor, and the driver alone writes each finished job to the `ResultsStore`, in the
order jobs complete.  A job that raises, returns `failure(reason)`, or returns something
that is not a JSON metrics dict becomes a 'failed' row with its reason; the run goes on.

Executors:

* ``local``: a `concurrent.futures.ProcessPoolExecutor` with the *spawn* start method.
  Fork is not used because forking a process whose torch/OpenMP thread pools are already
  running can deadlock the child; spawn starts clean interpreters, at the cost of
  importing torch once per worker.  Each worker limits torch, OpenMP, MKL and OpenBLAS
  to ``max(1, available_cores() // workers)`` threads, so N workers do not oversubscribe
  the cores.
  ``workers=1`` runs the jobs in the driver process itself (same numbers, easier to debug).
* ``ray``: each job is a Ray task (``num_cpus`` = threads per job).  ``ray_address``
  connects to an existing cluster; without it a local runtime with ``num_cpus=workers``
  is started (and shut down afterwards).  If Ray is already initialised, that runtime is
  used as is.  Ray is imported only here; install it with the ``ray`` extra.  Ray
  workers import job_fn by module name: the local runtime puts the driver's working
  directory and this repository on their path; on a cluster, install the module there.

Job functions are top-level importable functions ``job_fn(job) -> dict`` that seed their
own randomness from ``job.seed`` (`empirical.plan.seeded`), so every executor gives the
same numbers for the same job.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import logging
import multiprocessing
import os
import re
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from tqdm.auto import tqdm

from proxies.checks import check_int
from empirical.plan import Job, expand, to_json_data
from empirical.store import ResultsStore

__all__ = ["FAILURE_KEY", "RunSummary", "available_cores", "failure", "run_experiment", "run_jobs"]

log = logging.getLogger(__name__)

FAILURE_KEY = "__failed__"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def failure(reason: str) -> dict[str, str]:
    """What a job function returns to record the job as failed without raising.

    >>> failure("solver did not converge")
    {'__failed__': 'solver did not converge'}
    """
    if not isinstance(reason, str) or not reason:
        raise ValueError(f"reason must be a non-empty string, got {reason!r}")
    return {FAILURE_KEY: reason}


@dataclass(frozen=True)
class RunSummary:
    """Counts of one `run_jobs` call: jobs given (after de-duplication), skipped because
    already stored, and newly recorded as ok / failed."""

    total: int
    skipped: int
    ok: int
    failed: int


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _limit_threads(threads: int) -> None:
    """Worker initialiser: cap every thread pool this process may use at `threads`."""
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(threads)


def _execute(job_fn: Callable[[Job], Any], job: Job) -> tuple[str, dict | None, str | None, dict]:
    """Run one job and classify the outcome; runs in the worker.

    Returns (status, result, reason, timings).  The result is converted to JSON data
    here, so anything unserialisable fails the job rather than the driver.
    """
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
    wall, cpu = time.perf_counter(), time.process_time()
    status, result, reason = "ok", None, None
    try:
        value = job_fn(job)
        if not isinstance(value, dict):
            raise TypeError(f"job function {getattr(job_fn, '__name__', job_fn)!r} returned "
                            f"{type(value).__name__}, expected a dict of metrics")
        if FAILURE_KEY in value:
            status, reason = "failed", str(value[FAILURE_KEY])
        else:
            result = to_json_data(value, "result", allow_nan=True)
    except Exception as err:  # a failing job is data, not a reason to stop the run
        status = "failed"
        reason = f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}"
    timings = {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "started_at": started,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    return status, result, reason, timings


def _execute_limited(job_fn: Callable[[Job], Any], job: Job, threads: int):
    """Ray task body: cap the thread pools, then `_execute`."""
    _limit_threads(threads)
    return _execute(job_fn, job)


def _check_picklable(job_fn: Callable) -> None:
    """Spawned workers receive job_fn by reference: it must be importable by name."""
    module = getattr(job_fn, "__module__", None)
    qualname = getattr(job_fn, "__qualname__", "")
    if module is None or "<" in qualname:
        raise ValueError(
            f"job_fn must be a top-level function importable by worker processes, got {job_fn!r}; "
            "define it at module level (not a lambda or a nested function)"
        )
    if module == "__main__" and not hasattr(sys.modules["__main__"], "__file__"):
        raise ValueError(
            f"job_fn {qualname!r} is defined in an interactive __main__ that worker processes "
            "cannot import; move it into a module"
        )


def _pending_jobs(jobs: Iterable[Job], store: ResultsStore, retry_failed: bool) -> tuple[list[Job], int, int]:
    unique: dict[str, Job] = {}
    for job in jobs:
        if not isinstance(job, Job):
            raise ValueError(f"jobs must be empirical.plan.Job objects, got {type(job).__name__}")
        unique.setdefault(job.job_hash, job)
    done = store.done_hashes(include_failed=not retry_failed)
    todo = [job for h, job in unique.items() if h not in done]
    return todo, len(unique), len(unique) - len(todo)


def run_jobs(
    jobs: Iterable[Job],
    job_fn: Callable[[Job], dict],
    store: ResultsStore,
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    threads_per_job: int | None = None,
    retry_failed: bool = False,
) -> RunSummary:
    """Run every job not yet in `store`, recording each as it finishes.

    jobs: `Job`s (duplicates by hash run once).  job_fn: top-level function
    ``job_fn(job) -> dict`` of JSON metrics (or `failure(reason)`).
    executor: "local" (process pool, spawn) or "ray".  workers: parallel jobs (for ray
    without an address: the local runtime's CPUs).  threads_per_job: torch/BLAS threads
    per job, default ``max(1, available_cores() // workers)`` locally and 1 on Ray.
    retry_failed: rerun jobs whose stored row is 'failed' (the row is replaced).
    Returns a `RunSummary`.  If the driver is killed, rerunning the same call resumes.
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    check_int("workers", workers, minimum=1)
    if threads_per_job is not None:
        check_int("threads_per_job", threads_per_job, minimum=1)
    if ray_address is not None and executor != "ray":
        raise ValueError("ray_address is only used with executor='ray'")
    if not callable(job_fn):
        raise ValueError(f"job_fn must be a function job_fn(job) -> dict, got {job_fn!r}")
    todo, total, skipped = _pending_jobs(jobs, store, retry_failed)
    counts = {"ok": 0, "failed": 0}

    bar = tqdm(total=total, initial=skipped, disable=not progress, desc="jobs", unit="job")

    def finish(job: Job, outcome: tuple) -> None:
        status, result, reason, timings = outcome
        if store.record(job, status=status, result=result, reason=reason, timings=timings,
                        replace_failed=retry_failed):
            counts[status] += 1
            if status == "failed":
                log.warning("job %s failed: %s", job.job_hash[:12], reason.splitlines()[0])
        bar.update(1)
        bar.set_postfix(failed=counts["failed"], refresh=False)

    try:
        if todo and executor == "ray":
            _run_ray(todo, job_fn, finish, workers, ray_address, threads_per_job or 1)
        elif todo and workers == 1:
            for job in todo:
                finish(job, _execute(job_fn, job))
        elif todo:
            _check_picklable(job_fn)
            threads = threads_per_job or max(1, available_cores() // workers)
            _run_pool(todo, job_fn, finish, workers, threads)
    finally:
        bar.close()
    return RunSummary(total=total, skipped=skipped, ok=counts["ok"], failed=counts["failed"])


def run_experiment(
    config: Mapping[str, Any],
    job_fn: Callable[[Job], dict],
    run_dir: str | os.PathLike,
    *,
    progress: bool = True,
    retry_failed: bool = False,
) -> RunSummary:
    """`expand` a validated config and `run_jobs` it into ``<run_dir>/results.sqlite``.

    The executor settings come from the config's ``[run]`` table (see
    `empirical.config.run_section`: executor, workers, ray_address); absent keys take
    run_jobs' defaults.  Rerunning with the same config and run_dir resumes.
    """
    settings = dict(config.get("run") or {})
    unknown = set(settings) - {"executor", "workers", "ray_address", "threads_per_job"}
    if unknown:
        raise ValueError(f"run: unknown key(s) {sorted(unknown)}; allowed: executor, workers, "
                         "ray_address, threads_per_job")
    with ResultsStore(run_dir) as store:
        return run_jobs(expand(config), job_fn, store, progress=progress, retry_failed=retry_failed,
                        **{k: v for k, v in settings.items() if v is not None})


def _run_pool(todo: list[Job], job_fn, finish, workers: int, threads: int) -> None:
    context = multiprocessing.get_context("spawn")
    # A bounded window of submitted jobs keeps memory flat for very long plans and lets
    # an interrupt cancel the rest promptly.
    window = 4 * workers
    queue = iter(todo)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                initializer=_limit_threads, initargs=(threads,)) as pool:
        pending: dict[cf.Future, Job] = {}
        try:
            while True:
                for job in queue:
                    pending[pool.submit(_execute, job_fn, job)] = job
                    if len(pending) >= window:
                        break
                if not pending:
                    break
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    try:
                        outcome = future.result()
                    except cf.process.BrokenProcessPool as err:
                        raise RuntimeError(
                            "a worker process died (killed, out of memory, or crashed in native "
                            "code); finished jobs are saved, rerun the same command to resume"
                        ) from err
                    finish(job, outcome)
        except BaseException:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("executor='ray' needs Ray: pip install 'gradsign-toolkit[ray]'") from None
    return ray


def _run_ray(todo: list[Job], job_fn, finish, workers: int, address: str | None, threads: int) -> None:
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, log_to_driver=False)
        else:
            # Workers must import job_fn's module: give them the driver's import roots.
            roots = [os.getcwd(), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
            ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False,
                     job_config=ray.job_config.JobConfig(code_search_path=list(dict.fromkeys(roots))))
        started_here = True
    task = ray.remote(_execute_limited).options(num_cpus=threads, max_retries=0)
    window = 4 * workers
    queue = iter(todo)
    pending: dict[Any, Job] = {}
    try:
        while True:
            for job in queue:
                pending[task.remote(job_fn, job, threads)] = job
                if len(pending) >= window:
                    break
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:
                    # The task itself catches job errors; this is Ray losing the worker.
                    text = _ANSI_ESCAPE.sub("", f"{type(err).__name__}: {err}")
                    outcome = ("failed", None, text, {})
                finish(job, outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
