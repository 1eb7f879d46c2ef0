"""Toy job functions for the executor / store / resume tests (importable by workers).

`toy_job` draws a seeded torch vector, so its numbers depend on the job's seed and
params only; `toy_job` fails on purpose when ``params["fail"]`` says how.
"""
from __future__ import annotations

import os
import time

import torch

from empirical.config import Grid
from empirical.executors import RunSummary, failure, run_jobs
from empirical.plan import Job, expand, seeded
from empirical.store import ResultsStore


def toy_job(job: Job) -> dict:
    params = job.params
    mode = params.get("fail", "none")
    if mode == "raise":
        raise ArithmeticError(f"toy failure for n={params['n']}")
    if mode == "marker":
        return failure(f"toy gave up for n={params['n']}")
    time.sleep(params.get("sleep", 0.0))
    with seeded(job.seed):
        draw = torch.randn(params["n"], dtype=torch.float64) * params["scale"]
    return {
        "total": float(draw.sum()),
        "first": draw[0],  # a 0-d tensor: the executor converts it to a float
        "stats": {"max": float(draw.max()), "n": params["n"]},
    }




def dies_job(job: Job) -> dict:
    """Kills its worker process outright when params["die"], like a segfault or the OOM killer."""
    if job.params["die"]:
        time.sleep(0.5)  # let the other worker finish its jobs first
        os._exit(3)
    return {"i": job.params["i"]}


def thread_limits_job(job: Job) -> dict:
    """Reports the thread limits the executor gave this job's process."""
    return {"torch_threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"),
            "mkl": os.environ.get("MKL_NUM_THREADS")}


def mixed_job(job: Job):
    """`toy_job`; jobs of kind "toy_list" wrongly return a list, kind "threads" jobs
    run `thread_limits_job`."""
    if job.kind == "threads":
        return thread_limits_job(job)
    return [job.seed] if job.kind == "toy_list" else toy_job(job)


def toy_config(n_jobs: int = 12, sleep: float = 0.0) -> dict:
    """A validated-style config giving `n_jobs` jobs: grids over n and scale, 2 seeds."""
    if n_jobs % 2:
        raise ValueError("n_jobs must be even (2 seeds per grid point)")
    return {"kind": "toy", "seeds": [0, 1], "n": Grid(list(range(3, 3 + n_jobs // 2))),
            "scale": 1.5, "sleep": sleep}


def run_toy(run_dir: str, *, n_jobs: int = 12, sleep: float = 0.0, executor: str = "local",
            workers: int = 1) -> RunSummary:
    """The driver the resume test starts (and kills) in a subprocess."""
    with ResultsStore(run_dir) as store:
        return run_jobs(expand(toy_config(n_jobs, sleep)), toy_job, store, executor=executor,
                 workers=workers, progress=False)
