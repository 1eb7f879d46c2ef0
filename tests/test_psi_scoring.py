"""Exact Ψ as an architecture score (empirical.psi_scoring): the scorer's Ψ_2, Ψ_1 and A3
agreement equal theory's on optima computed here directly; an all-none cell is NaN with
its reason (and its output is checked to be constant in the input); unconverged optima
are flagged, never silently averaged; a run killed part-way resumes without lost or
duplicated rows; bad input names the argument."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import theory
from empirical import architectures, space_scoring
from empirical.cli import main
from empirical.psi_scoring import PsiScorer, network_psi, no_input_path
from empirical.scoring import ProxyScorer, scoring_batch
from empirical.spaces import nb201
from empirical.store import DB_NAME, ResultsStore
from tests.helpers_kill import count_rows, kill_after_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# Two cells whose 8 Gauss–Newton optima all converge at C=2 (seed 3), and one with an
# unconverged sample.
CONVERGING = ["|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|",
              "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|"]
TINY = dict(data="digits", batch=8, seed=3, C=2, N=1)


def _direct(arch, *, n=8, seed=3, C=2, solver="gauss_newton", loss="mse", **options):
    """The independent route: build the network by hand and call theory directly."""
    split = space_scoring.load_scoring_data("digits")
    torch.manual_seed(seed)
    model = nb201.build(arch, C=C, N=1, num_classes=10, in_channels=1).double()
    x, y = scoring_batch(split, n, seed, flat=False)
    x = x.double()
    targets = F.one_hot(y, 10).double() if loss == "mse" else y
    opt = theory.sample_wise_optima(model, x, targets, loss, solver, **options)
    return model, x, targets, opt


def _rows(run_dir) -> dict[str, dict]:
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    assert len(rows) == len({r["hash"] for r in rows}) == len({r["params"]["arch"] for r in rows})
    return {r["params"]["arch"]: r for r in rows}


def test_scorer_psi_equals_theory_on_directly_computed_optima(tmp_path):
    scorer = PsiScorer()
    _, counts = space_scoring.score_space(tmp_path, CONVERGING, scorer=scorer, progress=False, **TINY)
    assert counts == {"archs": 2, "skipped": 0, "ok": 2, "failed": 0}
    rows = _rows(tmp_path)
    for arch in CONVERGING:
        model, x, targets, opt = _direct(arch)
        assert bool(opt.converged.all())
        row = rows[arch]
        assert row["kind"] == "space-psi" and row["params"]["psi"] == scorer.settings()["psi"]
        result = row["result"]
        assert result["psi_status"] == "ok" and result["psi_reason"] is None
        assert result["converged_fraction"] == 1.0 and result["n"] == 8
        assert math.isclose(result["psi_2"], theory.psi(opt, 2), rel_tol=1e-9)
        assert math.isclose(result["psi_1"], theory.psi(opt, 1), rel_tol=1e-9)
        a3 = theory.sign_side_agreement(model, x, targets, opt, "mse")["rate"]
        assert math.isclose(result["a3_agreement"], a3, rel_tol=1e-9)
        assert result["solver_options"] == {"eps": 1e-10, "max_iter": 50, "tol": 1e-10}
        assert (result["solver"], result["loss"], result["dtype"], result["params"]) == \
            ("gauss_newton", "mse", "float64", "all")
    # Other settings are other rows; the proxies' rows are another kind.
    jobs = [space_scoring.arch_jobs(CONVERGING[:1], scorer=s, **TINY)[0].job_hash
            for s in (scorer, PsiScorer(dtype="float32"), PsiScorer(solver_options={"max_iter": 5}),
                      PsiScorer("proximal", "ce"), ProxyScorer(("gradsign",)))]
    assert len(set(jobs)) == len(jobs)
    table = space_scoring.space_table(tmp_path, scorer=scorer, expand=False).set_index("arch")
    assert table.loc[CONVERGING, "psi_2"].tolist() == [rows[a]["result"]["psi_2"] for a in CONVERGING]


def test_cross_entropy_with_the_proximal_solver_matches_theory():
    _ = torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    row = network_psi(net, x, y, solver="proximal", loss="ce", solver_options={"max_iter": 3000})
    opt = theory.sample_wise_optima(net, x, y, "ce", "proximal", max_iter=3000)
    assert row["psi_status"] == "ok" and bool(opt.converged.all())
    assert math.isclose(row["psi_2"], theory.psi(opt, 2), rel_tol=1e-9)
    assert math.isclose(row["psi_1"], theory.psi(opt, 1), rel_tol=1e-9)


def test_cli_eps_stop_cross_entropy_with_psi_options_equals_theory(tmp_path):
    """The CE variant as the CLI runs it: eps_stop with --psi-option lr/eps, the options
    stored with each row, Ψ equal to theory's on optima computed directly."""
    run_dir = tmp_path / "ce"
    assert main(["space-score", "--psi", "--psi-n", "8", "--psi-loss", "ce", "--psi-solver", "eps_stop",
                 "--psi-option", "lr=0.3", "--psi-option", "eps=0.05", "--psi-max-iter", "400",
                 "--seed", "3", "--C", "2", "--N", "1", "--unique", "--sample", "3", "--out", str(run_dir),
                 "--no-progress"]) == 0
    rows = _rows(run_dir)
    compared = 0
    for arch, row in rows.items():
        result = row["result"]
        if result["psi_status"] == "no_input_path":
            continue
        assert result["solver_options"] == {"eps": 0.05, "lr": 0.3, "max_iter": 400}
        assert row["params"]["psi"]["options"] == {"eps": 0.05, "lr": 0.3, "max_iter": 400}
        _, _, _, opt = _direct(arch, solver="eps_stop", loss="ce", lr=0.3, eps=0.05, max_iter=400)
        kept = opt.converged.bool()
        assert result["n_converged"] == int(kept.sum()) > 0
        if bool(kept.all()):
            assert math.isclose(result["psi_2"], theory.psi(opt, 2), rel_tol=1e-6)
            assert math.isclose(result["psi_1"], theory.psi(opt, 1), rel_tol=1e-6)
            compared += 1
    assert compared >= 1


def test_psi_option_errors_name_the_option(tmp_path, capsys):
    base = ["space-score", "--psi", "--psi-n", "8", "--C", "2", "--N", "1", "--unique", "--sample", "1",
            "--out", str(tmp_path / "x"), "--no-progress"]
    for extra, message in ((["--psi-option", "lr"], "--psi-option must be KEY=VALUE"),
                           (["--psi-option", "lr=fast"], "--psi-option lr: 'fast' is not a number"),
                           (["--psi-option", "lr=0.1"], r"no option(s) ['lr']"),
                           (["--psi-option", "max_iter=3", "--psi-max-iter", "4"], "pass max_iter once"),
                           (["--psi-solver", "eps_stop", "--psi-loss", "ce", "--psi-option", "eps=1",
                             "--psi-option", "eps=2"], "--psi-option eps given twice")):
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err


def test_unconverged_optima_are_flagged_not_silently_averaged():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    split = space_scoring.load_scoring_data("digits")
    torch.manual_seed(3)
    model = nb201.build(arch, C=2, N=1, num_classes=10, in_channels=1)
    x, y = scoring_batch(split, 8, 3, flat=False)
    _, _, _, opt = _direct(arch, max_iter=8)
    kept = opt.converged.bool()
    assert 0 < int(kept.sum()) < 8, "this cell must leave some samples unconverged after 8 steps"
    row = PsiScorer(solver_options={"max_iter": 8}).score(model, x, y)
    assert row["psi_status"] == "partial" and row["converged_fraction"] == int(kept.sum()) / 8
    assert f"{8 - int(kept.sum())} of 8 optima did not converge" in row["psi_reason"]
    assert math.isclose(row["psi_2"], theory.psi(opt, 2, on_unconverged="exclude"), rel_tol=1e-9)
    assert not math.isclose(row["psi_2"], theory.psi(opt.theta, 2), rel_tol=1e-6)  # not over all 8
    none = PsiScorer(solver_options={"max_iter": 0}).score(model, x, y)
    assert none["psi_status"] == "unconverged" and math.isnan(none["psi_2"]) and math.isnan(none["psi_1"])
    assert "none of the 8 optima converged" in none["psi_reason"]


def _outputs_one_by_one(model, x):
    with torch.no_grad():
        return torch.stack([model(x[i:i + 1])[0] for i in range(len(x))])


def test_an_all_none_cell_is_nan_with_its_reason_and_its_output_is_constant_in_the_input(tmp_path):
    space_scoring.score_space(tmp_path, [ALL_NONE, CONVERGING[1]], scorer=PsiScorer(), progress=False, **TINY)
    rows = _rows(tmp_path)
    result = rows[ALL_NONE]["result"]
    assert rows[ALL_NONE]["status"] == "ok" and result["psi_status"] == "no_input_path"
    assert math.isnan(result["psi_2"]) and math.isnan(result["psi_1"]) and "no path" in result["psi_reason"]
    # Independently: the network's output is the same for different inputs, and its input
    # gradient is zero; a cell with a path is not (so the check can fail).
    split = space_scoring.load_scoring_data("digits")
    x, _ = scoring_batch(split, 8, 3, flat=False)
    for arch, constant in ((ALL_NONE, True), (CONVERGING[1], False)):
        torch.manual_seed(3)
        model = nb201.build(arch, C=2, N=1, num_classes=10, in_channels=1)
        out = _outputs_one_by_one(model, torch.cat([x, torch.randn(2, *x.shape[1:])]))
        assert bool((out == out[0]).all()) == constant
        probe = x[:1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(probe).sum(), probe)
        assert bool((grad == 0).all()) == constant
        assert (no_input_path(model) is not None) == constant


def _cli(run_dir, limit):
    return [sys.executable, "-m", "empirical.cli", "space-score", "--psi", "--psi-n", "8", "--psi-max-iter", "6",
            "--seed", "3", "--C", "2", "--N", "1", "--unique", "--sample", str(limit), "--archs-per-job", "2",
            "--out", str(run_dir), "--no-progress"]


def test_sigkill_part_way_then_resume_gives_no_lost_or_duplicated_rows(tmp_path):
    n = 14
    run_dir = tmp_path / "killed"
    db = run_dir / DB_NAME
    kill_after_rows(_cli(run_dir, n), ROOT, db, rows=2, timeout=240)
    survivors = count_rows(db)
    assert 2 <= survivors < n, "the kill must land part-way through the run"
    rerun = subprocess.run(_cli(run_dir, n), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"architectures: {n} ({survivors} already stored, {n} ok, 0 failed)" in rerun.stdout

    archs = architectures.subset(nb201.unique_archs(), n, 3)
    reference = tmp_path / "reference"
    space_scoring.score_space(reference, archs, scorer=PsiScorer(solver_options={"max_iter": 6}),
                              archs_per_job=5, progress=False, **TINY)
    killed, expected = _rows(run_dir), _rows(reference)
    assert sorted(killed) == sorted(expected) == sorted(archs)
    for arch in archs:
        got, want = killed[arch]["result"], expected[arch]["result"]
        assert killed[arch]["hash"] == expected[arch]["hash"] and got["psi_status"] == want["psi_status"]
        for key in ("psi_2", "psi_1"):
            assert (math.isnan(got[key]) and math.isnan(want[key])) or math.isclose(got[key], want[key], rel_tol=1e-9)


def test_bad_input_names_the_argument(tmp_path, capsys):
    with pytest.raises(ValueError, match="solver must be one of"):
        PsiScorer(solver="newton")
    with pytest.raises(ValueError, match="loss must be one of"):
        PsiScorer(loss="hinge")
    with pytest.raises(ValueError, match="loss='ce' does not fit solver='gauss_newton'"):
        PsiScorer(loss="ce")
    with pytest.raises(ValueError, match="dtype must be one of"):
        PsiScorer(dtype="float16")
    with pytest.raises(ValueError, match=r"no option\(s\) \['lr'\]"):
        PsiScorer(solver_options={"lr": 0.1})
    with pytest.raises(ValueError, match="batch 5000 exceeds the 1347 training samples"):
        space_scoring.score_space(tmp_path, CONVERGING, scorer=PsiScorer(), progress=False,
                                  **dict(TINY, batch=5000))
    assert main(["space-score", "--psi", "--psi-n", "5000", "--out", str(tmp_path)]) == 2
    assert "--psi-n 5000 exceeds the 1347 training samples" in capsys.readouterr().err
    net = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="inputs are torch.float64 but the model's parameters are torch.float32"):
        network_psi(net, x, y)
    mixed = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3).double())
    with pytest.raises(ValueError, match="model: its parameters have 2 dtypes"):
        network_psi(mixed, x.float(), y)
    frozen = nn.Sequential(nn.Linear(4, 3)).requires_grad_(False)
    with pytest.raises(ValueError, match="model has no trainable parameters"):
        network_psi(frozen, x, y, dtype="float64")
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        network_psi(net, x, torch.tensor([0, 1, 2, 3, 1]), dtype="float64")
