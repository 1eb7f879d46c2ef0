"""Executors: in-process, process pool and Ray give the same rows; failures are rows; resume skips."""
import os
import re

import pytest
import torch

from empirical.executors import FAILURE_KEY, RunSummary, available_cores, failure, run_experiment, run_jobs
from empirical.plan import Job, expand
from empirical.store import ResultsStore
from tests.helpers_jobs import dies_job, mixed_job, toy_config, toy_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mixed_jobs():
    """Eight good toy jobs plus one of each way to fail."""
    bad = [Job("toy", {"n": 4, "scale": 1.0, "fail": mode}, seed=0) for mode in ("raise", "marker")]
    return expand(toy_config(8)) + bad + [Job("toy_list", {"n": 1}, seed=0)]


def comparable(store):
    """What must agree between executors: everything but timings and timestamps."""
    rows = []
    for row in store.rows():
        reason = None if row["reason"] is None else row["reason"].split("\n")[0]
        rows.append((row["hash"], row["kind"], row["seed"], row["status"], reason, row["result"]))
    return sorted(rows, key=lambda r: r[0])


def test_values_match_an_independent_computation(tmp_path):
    jobs = expand(toy_config(6))
    with ResultsStore(tmp_path) as store:
        summary = run_jobs(jobs, toy_job, store, progress=False)
        rows = {r["hash"]: r for r in store.rows()}
    assert summary == RunSummary(total=6, skipped=0, ok=6, failed=0)
    for job in jobs:
        torch.manual_seed(job.seed)
        draw = torch.randn(job.params["n"], dtype=torch.float64) * 1.5
        result = rows[job.job_hash]["result"]
        assert result["total"] == draw.sum().item() and result["first"] == draw[0].item()
        assert result["stats"] == {"max": draw.max().item(), "n": job.params["n"]}


def test_failures_become_rows_and_the_run_goes_on(tmp_path):
    with ResultsStore(tmp_path) as store:
        summary = run_jobs(mixed_jobs(), mixed_job, store, progress=False)
        failed = {r["kind"] + ":" + r["params"].get("fail", "-"): r["reason"] for r in store.rows(status="failed")}
    assert summary == RunSummary(total=11, skipped=0, ok=8, failed=3)
    assert failed["toy:raise"].startswith("ArithmeticError: toy failure for n=4\n\nTraceback")
    assert failed["toy:marker"] == "toy gave up for n=4"
    assert failed["toy_list:-"].startswith("TypeError: job function 'mixed_job' returned list, expected a dict")
    assert failure("why") == {FAILURE_KEY: "why"}


def test_process_pool_gives_the_in_process_rows_and_shares_the_cores(tmp_path):
    with ResultsStore(tmp_path / "inproc") as store:
        run_jobs(mixed_jobs(), mixed_job, store, progress=False)
        expected = comparable(store)
    thread_jobs = [Job("threads", {"i": i}, seed=0) for i in range(2)]
    with ResultsStore(tmp_path / "pool") as store:
        summary = run_jobs(mixed_jobs() + thread_jobs, mixed_job, store, workers=2, progress=False)
        assert [r for r in comparable(store) if r[1] != "threads"] == expected
        rows = store.rows()
    assert summary == RunSummary(total=13, skipped=0, ok=10, failed=3)
    assert str(os.getpid()) not in {r["timings"]["worker"].split(":")[1] for r in rows}  # really in workers
    # Each of the 2 workers got its share of the cores, in torch and in the BLAS/OpenMP env.
    share = max(1, available_cores() // 2)
    assert [r["result"] for r in rows if r["kind"] == "threads"] == [
        {"torch_threads": share, "omp": str(share), "mkl": str(share)}] * 2


def test_a_dead_worker_stops_the_run_with_a_resume_hint(tmp_path):
    jobs = [Job("die", {"i": i, "die": i == 0}, seed=0) for i in range(4)]
    with ResultsStore(tmp_path) as store:
        with pytest.raises(RuntimeError, match="a worker process died .* rerun the same command to resume"):
            run_jobs(jobs, dies_job, store, workers=2, progress=False)
        kept = store.rows()
    assert all(r["status"] == "ok" and r["result"] == {"i": r["params"]["i"]} for r in kept)
    assert jobs[0].job_hash not in {r["hash"] for r in kept}


def test_resume_skips_stored_jobs_and_retry_replaces_failures(tmp_path):
    jobs = mixed_jobs()
    with ResultsStore(tmp_path) as store:
        first = run_jobs(jobs[:5], mixed_job, store, progress=False)
        before = {r["hash"]: r["created_at"] for r in store.rows()}
        second = run_jobs(jobs + jobs[:3], mixed_job, store, progress=False)  # duplicates run once
        assert (first.ok, second) == (5, RunSummary(total=11, skipped=5, ok=3, failed=3))
        assert len(store) == 11
        assert all(r["created_at"] == before[r["hash"]] for r in store.rows() if r["hash"] in before)
        again = run_jobs(jobs, mixed_job, store, progress=False)
        assert again == RunSummary(total=11, skipped=11, ok=0, failed=0)
        # A retry reruns the failed jobs only; they still fail, and their rows are replaced, not added.
        retried = run_jobs(jobs, mixed_job, store, progress=False, retry_failed=True)
        assert retried == RunSummary(total=11, skipped=8, ok=0, failed=3) and len(store) == 11


def test_run_experiment_takes_its_settings_from_the_run_table(tmp_path):
    config = dict(toy_config(4), run={"executor": "local", "workers": 1, "ray_address": None})
    assert run_experiment(config, toy_job, tmp_path, progress=False) == RunSummary(4, 0, 4, 0)
    assert run_experiment(config, toy_job, tmp_path, progress=False) == RunSummary(4, 4, 0, 0)
    with ResultsStore(tmp_path, create=False) as store:
        assert {r["hash"] for r in store.rows()} == {j.job_hash for j in expand(config)}
        assert store.rows()[0]["config"]["run"]["workers"] == 1
    with pytest.raises(ValueError, match=re.escape("run: unknown key(s) ['worker']")):
        run_experiment(dict(config, run={"worker": 2}), toy_job, tmp_path, progress=False)


def test_bad_arguments_are_rejected(tmp_path):
    jobs = expand(toy_config(2))
    with ResultsStore(tmp_path) as store:
        for kwargs, message in [
            (dict(executor="dask"), "executor must be 'local' or 'ray'"),
            (dict(workers=0), "workers must be a positive integer"),
            (dict(threads_per_job=0), "threads_per_job must be a positive integer"),
            (dict(ray_address="auto"), "ray_address is only used with executor='ray'"),
        ]:
            with pytest.raises(ValueError, match=re.escape(message)):
                run_jobs(jobs, toy_job, store, progress=False, **kwargs)
        with pytest.raises(ValueError, match="top-level function importable"):
            run_jobs(jobs, lambda job: {}, store, workers=2, progress=False)
        with pytest.raises(ValueError, match="jobs must be empirical.plan.Job"):
            run_jobs([{"kind": "toy"}], toy_job, store, progress=False)
        assert len(store) == 0


@pytest.fixture(scope="session")
def ray_runtime():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False,
                 job_config=ray.job_config.JobConfig(code_search_path=[ROOT]))
    yield ray
    if started:
        ray.shutdown()


def test_ray_gives_the_local_rows(tmp_path, ray_runtime):
    with ResultsStore(tmp_path / "local") as store:
        run_jobs(mixed_jobs(), mixed_job, store, progress=False)
        expected = comparable(store)
    with ResultsStore(tmp_path / "ray") as store:
        summary = run_jobs(mixed_jobs(), mixed_job, store, executor="ray", workers=2, progress=False)
        assert comparable(store) == expected
        assert all(r["timings"]["worker"].split(":")[1] != str(os.getpid()) for r in store.rows())
    assert summary == RunSummary(total=11, skipped=0, ok=8, failed=3)
