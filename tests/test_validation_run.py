"""Whole bound-validation runs: SIGKILL and resume, Ray == local, figures from the store, demo."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

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
                   "A3: sign–side agreement rate", "### What held and what did not",
                   "### Theorem 1 (per-sample β) and A1: one measurement", "no \"held at θ̂\" count",
                   "### Proposition 3", "A1 consistent, ReLU networks (blind to kinks: weak evidence)"):
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


# ------------------------------------------------------------------ report.md against its store

NUMBER = r"(-?\d+(?:\.\d+)?(?:e[+-]\d+)?)"


def _printed_matches(printed: str, value: float) -> bool:
    """Whether `value` rounds to the printed number: within half a unit of its last digit."""
    mantissa, _, exponent = printed.partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (-decimals) * 10.0 ** int(exponent or 0)
    return abs(float(printed) - value) <= 0.5 * unit * (1 + 1e-9)


def _cell(text: str, row_label: str, column: int) -> str:
    """The `column`-th cell (1 = first after the label) of the table row starting with `row_label`."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {row_label} |")]
    assert len(rows) == 1, (row_label, rows)
    return rows[0].split(" | ")[column].strip(" |")


def _leading(cell: str) -> str:
    return re.match(NUMBER, cell).group(1)


def test_report_numbers_equal_values_recomputed_from_the_store(reference):
    """Every checked number of report.md, recomputed here from the raw stored rows (not from
    the DataFrame the report reads) with numpy/scipy."""
    text = (reference.run_dir / "report.md").read_text()
    with ResultsStore(reference.run_dir, create=False) as store:
        rows = [r["result"] for r in store.rows(status="ok")]
    n = len(rows)
    assert f"{n} networks, {n} measured, 0 failed" in text

    medians_at_trained = []
    labels = (("theorem1_per_sample", "Theorem 1, per-sample β_i"), ("theorem1_uniform", "Theorem 1, uniform β"),
              ("theorem2", "Theorem 2 (held-out optima)"))
    for name, label in labels:
        bounds = [r["bound"][name] for r in rows]
        held = sum(b["theta_bar"] <= b["value"] for b in bounds)
        assert _cell(text, label, 1).startswith(f"{held}/{n} (")
        at_bar = np.median([b["value"] / b["theta_bar"] for b in bounds])
        assert _printed_matches(_leading(_cell(text, label, 2)), at_bar)
        hat = [b["value"] / (r["trained"]["test_loss"] if name == "theorem2" else r["trained"]["train_loss"])
               for b, r in zip(bounds, rows)]
        assert _printed_matches(_leading(_cell(text, label, 3)), np.median(hat))
        medians_at_trained.append(np.median(hat))
    low, high = re.search(rf"the bounds were a median {NUMBER}–{NUMBER} times", text).groups()
    assert _printed_matches(low, min(medians_at_trained)) and _printed_matches(high, max(medians_at_trained))

    # Theorem 1 (per-sample β) and A1: the counts and the identity.
    held = [r["bound"]["theorem1_per_sample"]["theta_bar_holds"] for r in rows]
    consistent = [all(b >= e for b, e in zip(r["a1"]["beta_hess"], r["a1"]["beta_eff"])) for r in rows]
    assert _cell(text, "A1 consistent on every sample", 1).startswith(f"{sum(consistent)}/{n} (")
    assert _cell(text, "held, A1 inconsistent on some sample", 1).startswith(
        f"{sum(h and not c for h, c in zip(held, consistent))}/{n} (")
    errors = []
    for r in rows:
        a1, bound = r["a1"], r["bound"]["theorem1_per_sample"]
        weighted = [w * (b - e) for b, e, w in zip(a1["beta_hess"], a1["beta_eff"], a1["d2"]) if w > 0]
        margin = sum(weighted) / (2 * len(a1["d2"]))
        rhs = margin + r["a2"]["lam"] * r["psi_2"] / 2 - r["a2"]["first_order"]
        errors.append(abs(bound["value"] - bound["theta_bar"] - rhs) / bound["value"])
    identity_label = r"the identity: largest \|bound − measured − right-hand side\| / bound over networks"
    printed_error = float(_leading(_cell(text, identity_label, 1)))
    assert printed_error < 1e-9 and max(errors) < 1e-9
    relu = sum(p["model"]["activation"] == "relu" for p in _params(reference.run_dir))
    assert _cell(text, "ReLU networks (A1 cannot see kinks: power iteration at sampled points misses them)",
                 1) == f"{relu} of {n}"
    eig = [r["a1"]["eig_converged_fraction"] for r in rows]
    cell = _cell(text, "A1: power iteration converged, fraction of segment points, mean over networks; min", 1)
    assert _printed_matches(_leading(cell), np.mean(eig)) and _printed_matches(cell.rpartition("; ")[2], min(eig))

    # Proposition 3.
    ratio = [r["psi_1"] / r["sign_split"]["lower_bound"] for r in rows]
    assert _cell(text, "Ψ_1 ≥ the sign-split lower bound", 1).startswith(
        f"{sum(r['psi_1'] >= r['sign_split']['lower_bound'] for r in rows)}/{n} (")
    assert _printed_matches(_leading(_cell(text, "Ψ_1 / lower bound: median [CI]; 5–95%", 1)), np.median(ratio))

    # A rank correlation and the A3 rate.
    rho = stats.spearmanr([r["proxy"]["gradsign"] for r in rows], [-r["psi_2"] for r in rows]).statistic
    assert _printed_matches(_leading(_cell(text, "GradSign vs −Ψ_2", 1)), rho)
    rate = np.mean([r["agreement"]["rate"] for r in rows])
    assert _printed_matches(_leading(_cell(text, "A3: sign–side agreement rate, mean over networks", 1)), rate)


def _params(run_dir):
    with ResultsStore(run_dir, create=False) as store:
        return [r["params"] for r in store.rows(status="ok")]
