"""Whole bound-validation runs: SIGKILL and resume, Ray == local, figures from the store, demo."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from empirical.cli import main
from empirical.commands import demo
from empirical.executors import run_experiment
from empirical.store import DB_NAME, ResultsStore
from empirical.validation import schema
from empirical.validation.job import validation_job
from empirical.validation.run import run_validation
from tests.helpers_kill import count_rows, kill_after_rows

ROOT = Path(__file__).resolve().parents[1]
N_JOBS = 8
TOY = """
seeds = [0]
[data]
name = "iris"
n = 8
n_heldout = 6
[model]
width = [4, 6]
depth = [1, 2]
activation = ["tanh", "relu"]
[theory]
points_per_segment = 0
power_max_iter = 20
landscape_points = 5
landscape_samples = 2
[train]
epochs = 10
"""


def comparable(run_dir):
    """Rows without timings (stage wall times live under result["seconds"])."""
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    out = []
    for r in rows:
        result = None if r["result"] is None else {k: v for k, v in r["result"].items() if k != "seconds"}
        out.append((r["hash"], r["status"], r["reason"], r["seed"], r["params"], result))
    return sorted(out, key=lambda row: row[0])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "toy.toml"
    path.write_text(TOY)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The uninterrupted run, in this process (one job at a time)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run = run_validation(config, out, workers=1, progress=False)
    assert (run.summary.total, run.summary.ok, run.summary.failed) == (N_JOBS, N_JOBS, 0)
    return run


def test_sigkill_part_way_then_rerun_gives_the_uninterrupted_rows(config, reference, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "empirical.cli", "validate", str(config), "--out", str(out),
               "--workers", "2", "--no-progress"]
    kill_after_rows(command, ROOT, out / DB_NAME, rows=2, timeout=300)
    survivors = count_rows(out / DB_NAME)
    assert 2 <= survivors < N_JOBS, "the kill must land part-way through the run"
    assert not (out / "report.md").exists()

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_JOBS} jobs: {survivors} already stored, {N_JOBS - survivors} ok, 0 failed" in rerun.stdout
    assert comparable(out) == comparable(reference.run_dir)  # none lost, none duplicated, same numbers
    assert (out / "report.md").exists() and (out / "figures" / "landscape.png").exists()


def test_ray_executor_gives_the_local_rows(config, reference, tmp_path):
    pytest.importorskip("ray")
    cfg = schema.load(config)
    cfg["run"] = {**cfg["run"], "executor": "ray", "workers": 2}
    # Rows only (the report and figures are the same code path as the local run's).
    summary = run_experiment(cfg, validation_job, tmp_path / "ray", progress=False)
    assert summary.ok == N_JOBS
    assert comparable(tmp_path / "ray") == comparable(reference.run_dir)


def test_figures_command_regenerates_report_and_figures_from_the_store(reference, tmp_path, capsys):
    run_dir = reference.run_dir
    report = (run_dir / "report.md").read_text()
    for path in reference.figures:
        path.unlink()
    (run_dir / "report.md").unlink()
    assert main(["figures", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text() == report  # same store, same seeds: same report
    for path in reference.figures:
        assert path.stat().st_size > 1000, path
    assert {p.suffix for p in reference.figures} == {".png", ".pdf"}
    assert "figure:" in capsys.readouterr().out


def test_report_states_bounds_correlations_and_assumptions(reference):
    text = (reference.run_dir / "report.md").read_text()
    assert "8 networks, 8 measured, 0 failed" in text
    for needle in ("Theorem 1, per-sample β_i", "Theorem 1, uniform β", "Theorem 2 (held-out optima)",
                   "| GradSign vs −Ψ_2 |", "| −Ψ_2 vs test accuracy of θ̂ |", "A1: β_hess ≥ β_eff",
                   "A3: sign–side agreement rate", "### What held and what did not"):
        assert needle in text, needle


def test_report_does_not_depend_on_the_order_rows_were_stored_in(reference):
    # Parallel workers store rows in completion order; the bootstrap intervals must not see it.
    from empirical import results
    from empirical.validation import report

    frame = results.load(reference.run_dir)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["hash"].equals(frame["hash"])
    assert report.render(shuffled, title="t") == report.render(frame, title="t")


def test_figures_module_imports_nothing_from_the_toolkit():
    tree = ast.parse((ROOT / "figures" / "validation.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"proxies", "theory", "empirical", "paper_repro"}


def test_demo_runs_the_quick_preset(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_run(config, out, **kwargs):
        calls.append((Path(config), Path(out), kwargs))
        return reference_like(Path(out))

    monkeypatch.setattr(demo, "run_validation", fake_run)
    assert main(["demo", "--out", str(tmp_path / "q")]) == 0
    assert calls == [(ROOT / "presets" / "quick.toml", tmp_path / "q", {"workers": None})]
    out = capsys.readouterr().out
    assert f"report:  {tmp_path / 'q' / 'report.md'}" in out and "figures:" in out


def reference_like(run_dir):
    from empirical.executors import RunSummary
    from empirical.validation.run import ValidationRun

    return ValidationRun(run_dir, RunSummary(12, 0, 12, 0), run_dir / "report.md",
                         (run_dir / "figures" / "landscape.png",))
