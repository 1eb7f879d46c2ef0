"""`gradsign compare-truths`: the side-by-side table carries each run's numbers unchanged."""
import json

import pandas as pd
import pytest

from empirical.cli import main


def _run(directory, rows, caption):
    directory.mkdir()
    (directory / "correlation.json").write_text(json.dumps(rows))
    (directory / "correlation.md").write_text(caption + "\n\n| table |\n")


def _row(proxy, rho, partial, top, reference=False):
    return {"proxy": proxy, "spearman": rho, "spearman_ci": [rho - 0.1, rho + 0.1],
            "partial_spearman": partial, "partial_spearman_ci": [partial - 0.05, partial + 0.05] if partial is not None else None,
            "top_half_spearman": top, "top_half_spearman_ci": [top - 0.2, top + 0.2], "reference": reference}


def test_side_by_side_report(tmp_path, capsys):
    _run(tmp_path / "a", [_row("gradsign", 0.4, 0.3, 0.05), _row("params", 0.32, None, 0.06, True)], "truth A caption")
    _run(tmp_path / "b", [_row("params", 0.5, None, 0.2, True), _row("gradsign", 0.6, 0.35, 0.25)], "truth B caption")
    cv_meta = {"reliability": {"halves": [[0], [1]], "test_acc_all": {"spearman": 0.9, "spearman_ci": [0.88, 0.92], "n": 1000},
                               "test_acc_top_half": {"spearman": 0.55, "spearman_ci": [0.48, 0.61], "n": 500}}}
    (tmp_path / "cv.json").write_text(json.dumps(cv_meta))
    assert main(["compare-truths", str(tmp_path / "a"), str(tmp_path / "b"), "--label-a", "A", "--label-b", "B",
                 "--reliability-b", str(tmp_path / "cv.json"), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "side_by_side.csv", keep_default_na=False)
    assert table["proxy"].tolist() == ["gradsign", "params (size reference)"]
    gs = table.iloc[0]
    assert gs["ρ, A"] == "0.400 [0.300, 0.500]" and gs["ρ, B"] == "0.600 [0.500, 0.700]"
    assert gs["partial ρ given log #params, B"] == "0.350 [0.300, 0.400]"
    assert table.iloc[1]["partial ρ given log #params, A"] == "n/a"
    assert gs["top-half ρ, B"] == "0.250 [0.050, 0.450]"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "truth A caption" in report and "truth B caption" in report
    assert "test_acc_all 0.900 [0.880, 0.920]" in report and "test_acc_top_half 0.550 [0.480, 0.610]" in report
    assert "A: not given" in report


def test_bad_input(tmp_path, capsys):
    _run(tmp_path / "a", [_row("gradsign", 0.4, 0.3, 0.05), _row("zen", 0.3, 0.1, 0.0)], "A")
    _run(tmp_path / "b", [_row("gradsign", 0.6, 0.35, 0.25)], "B")
    assert main(["compare-truths", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    assert "['zen'] of A are not in B" in capsys.readouterr().err
    assert main(["compare-truths", str(tmp_path / "a"), str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "has no correlation.json" in capsys.readouterr().err
