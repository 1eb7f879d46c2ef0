"""`gradsign psi-study`: its correlations against scipy on the joined table; statuses."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from empirical.benchmarks import nb201_digits
from empirical.cli import main


def _runs(tmp_path, n=60, seed=0):
    truth = nb201_digits.load().iloc[:n]
    rng = np.random.default_rng(seed)
    psi2 = np.exp(rng.normal(size=n)) / truth["params"].to_numpy()
    status = np.array(["ok"] * n, dtype=object)
    status[:3] = "no_input_path"
    status[3:8] = "partial"
    psi = pd.DataFrame({"arch": truth["arch"], "psi_2": psi2, "psi_1": psi2 * rng.uniform(5, 9, n),
                        "psi_status": status, "converged_fraction": np.where(status == "partial", 0.97, 1.0),
                        "psi_seconds": 1.0})
    psi.loc[:2, ["psi_2", "psi_1"]] = np.nan
    gs = truth["params"].to_numpy() * rng.uniform(0.5, 1.5, n)
    proxies = pd.DataFrame({"arch": truth["arch"], "gradsign": gs, "gradsign_sq": gs ** 2 + rng.normal(size=n),
                            "gradsign_seconds": 0.1, "gradsign_sq_seconds": 0.1})
    (tmp_path / "psi").mkdir()
    (tmp_path / "prox").mkdir()
    psi.to_csv(tmp_path / "psi" / "scores.csv", index=False)
    proxies.to_csv(tmp_path / "prox" / "scores.csv", index=False)
    return truth, psi, proxies


def _partial_spearman(x, y, z):
    """Pearson correlation of the residuals of the ranks regressed on the ranks of z."""
    rx, ry, rz = (sps.rankdata(v) for v in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz])
    res = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    return np.corrcoef(*res)[0, 1]


def test_psi_study_against_scipy(tmp_path, capsys):
    truth, psi, proxies = _runs(tmp_path)
    out = tmp_path / "out"
    assert main(["psi-study", str(tmp_path / "psi"), str(tmp_path / "prox"), "--n-boot", "200",
                 "--out", str(out)]) == 0
    pairs = pd.read_csv(out / "pairs.csv").set_index("pair")
    kept = psi["psi_status"].isin(["ok", "partial"]).to_numpy()
    acc = truth["test_acc"].to_numpy()[kept]
    neg_psi2 = -psi["psi_2"].to_numpy()[kept]
    gs = proxies["gradsign"].to_numpy()[kept]
    params = truth["params"].to_numpy()[kept]
    row = pairs.loc["−Ψ_2 vs test accuracy"]
    assert row["n"] == kept.sum() == 57
    assert row["spearman"] == pytest.approx(sps.spearmanr(neg_psi2, acc)[0], abs=1e-12)
    assert row["kendall"] == pytest.approx(sps.kendalltau(neg_psi2, acc)[0], abs=1e-12)
    assert row["spearman_low"] <= row["spearman"] <= row["spearman_high"]
    gp = pairs.loc["GradSign vs −Ψ_2"]
    assert gp["partial_spearman"] == pytest.approx(_partial_spearman(gs, neg_psi2, np.log(params)), abs=1e-9)
    assert np.isnan(pairs.loc["GradSign vs #params", "partial_spearman"])
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "'no_input_path': 3" in report and "studied: 57" in report
    assert "status ok" in report and (out / "psi2_vs_gradsign.png").stat().st_size > 1000
    strata = pd.read_csv(out / "strata.csv")
    assert strata["archs"].sum() == 57


def test_psi_study_bad_input(tmp_path, capsys):
    _runs(tmp_path)
    assert main(["psi-study", str(tmp_path / "nope"), str(tmp_path / "prox"), "--out", str(tmp_path / "o")]) == 2
    assert "has no scores.csv" in capsys.readouterr().err
    assert main(["psi-study", str(tmp_path / "prox"), str(tmp_path / "prox"), "--out", str(tmp_path / "o")]) == 2
    assert "lacks the columns ['psi_2', 'psi_1', 'psi_status', 'converged_fraction']" in capsys.readouterr().err
