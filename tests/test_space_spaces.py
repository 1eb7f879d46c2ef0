"""NAS-Bench-101 and the NDS cell spaces through the scoring pipeline and the command
line, at toy size: rows keyed by the benchmark's keys with their cells, scores equal to
building and scoring each network by hand, truth files written here in the published
layouts and joined by `correlate`, resume after SIGKILL, and the refusals."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as scipy_stats

import proxies
from empirical import architectures, space_scoring
from empirical.benchmarks import nds_files
from empirical.cli import main
from empirical.scoring import NetworkSpec
from empirical.spaces import nb101, nds
from empirical.store import DB_NAME, ResultsStore
from tests.helpers_kill import count_rows, kill_after_rows
from tests.test_nb101_records import model_metrics, record, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ["--data", "digits", "--batch", "8", "--seed", "2", "--proxies", "gradsign,params", "--no-progress"]


def _by_hand(space: str, cell: dict, C, N, seed: int = 2, batch: int = 8) -> tuple[float, float]:
    """The independent route: build the network from its cell with the space's own
    builder, seed, draw the batch, call the proxies."""
    split = space_scoring.load_scoring_data("digits")
    torch.manual_seed(seed)
    if space == "nb101":
        model = nb101.build(cell["matrix"], cell["ops"], stem_channels=C, num_stacks=3, cells_per_stack=N,
                            in_channels=1)
    else:
        model = nds.build(space.removeprefix("nds-"), cell["genotype"], C=cell["width"] if C is None else C,
                          layers=cell["depth"] if N is None else N, in_channels=1)
    index = torch.randperm(split.n_train, generator=torch.Generator().manual_seed(seed))[:batch]
    x, y = split.X_train[index], split.y_train[index]
    return proxies.gradsign(model, x, y), float(sum(p.numel() for p in model.parameters()))


def _rows(run_dir) -> dict[str, dict]:
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    assert len(rows) == len({r["hash"] for r in rows}) == len({r["params"]["arch"] for r in rows})
    return {r["params"]["arch"]: r for r in rows}


# ----------------------------------------------------------------- NAS-Bench-101


NB101_SPECS = [nb101.sample(1, seed)[0] for seed in (3, 4, 5, 6, 7)]


@pytest.fixture
def nb101_file(tmp_path):
    """A record file in the benchmark's layout: the 5 cells, 108 epochs, 2 repeats each,
    and one 36-epoch run that the 108-epoch table must leave out."""
    payloads, accuracy = [], {}
    for i, spec in enumerate(NB101_SPECS):
        accuracy[spec.hash()] = 0.80 + 0.02 * i
        for repeat in range(2):
            test = accuracy[spec.hash()] + (0.01 if repeat else -0.01)
            evals = [(0.0, 0.0, 0.1, 0.1, 0.1), (54.0, 50.0, 0.5, 0.5, 0.5), (108.0, 100.0, 0.99, test, test)]
            payloads.append(record(spec.hash(), 108, spec.matrix, spec.ops, model_metrics(1000 + i, evals)))
    payloads.append(record(NB101_SPECS[0].hash(), 36, NB101_SPECS[0].matrix, NB101_SPECS[0].ops,
                           model_metrics(1000, [(36.0, 1.0, 0.3, 0.3, 0.3)])))
    return write(tmp_path / "nasbench_only108.tfrecord", payloads), accuracy


def test_nb101_truth_file_scored_and_correlated_on_the_hash(tmp_path, nb101_file, capsys):
    path, accuracy = nb101_file
    run = tmp_path / "run"
    assert main(["space-score", "--space", "nb101", "--truth-file", str(path), "--C", "8", "--N", "1",
                 *SETTINGS, "--archs-per-job", "2", "--out", str(run)]) == 0
    rows = _rows(run)
    assert set(rows) == set(accuracy)
    for spec in NB101_SPECS:
        row = rows[spec.hash()]
        assert row["params"]["cell"] == architectures.nb101_cell(spec) and row["params"]["space"] == "nb101"
        gradsign, params = _by_hand("nb101", row["params"]["cell"], 8, 1)
        assert row["result"]["gradsign"] == gradsign and row["result"]["params"] == params
    table = pd.read_csv(run / "scores.csv")
    assert sorted(table["arch"]) == sorted(accuracy) and json.loads(table["cell"].iloc[0])["ops"][0] == "input"
    capsys.readouterr()

    assert main(["correlate", str(run), "--truth", f"nb101-file:{path}", "--n-boot", "50", "--no-figures"]) == 0
    assert "NAS-Bench-101" in capsys.readouterr().out
    joined = pd.read_csv(run / "correlation_data.csv").set_index("arch")
    assert joined["test_acc"].to_dict() == pytest.approx(accuracy)
    summary = pd.read_json(run / "correlation.json").set_index("proxy")
    rho = scipy_stats.spearmanr(joined["gradsign"], joined["test_acc"]).statistic
    assert summary.loc["gradsign", "spearman"] == pytest.approx(rho)


def test_nb101_sample_without_a_file_stores_the_sampled_specs(tmp_path):
    run = tmp_path / "run"
    assert main(["space-score", "--space", "nb101", "--sample", "3", "--sample-seed", "9", *SETTINGS,
                 "--out", str(run)]) == 0
    rows = _rows(run)
    specs = nb101.sample(3, 9)
    assert sorted(rows) == sorted(s.hash() for s in specs)
    for spec in specs:  # the laptop size: stem 8, one cell per stack
        assert rows[spec.hash()]["params"]["C"] == 8 and rows[spec.hash()]["params"]["N"] == 1
        assert rows[spec.hash()]["result"]["gradsign"] == _by_hand("nb101", architectures.nb101_cell(spec), 8, 1)[0]


def _nb101_cli(run_dir, k):
    return [sys.executable, "-m", "empirical.cli", "space-score", "--space", "nb101", "--sample", str(k),
            "--sample-seed", "1", "--archs-per-job", "3", *SETTINGS, "--out", str(run_dir)]


def test_nb101_run_killed_part_way_resumes_to_the_uninterrupted_rows(tmp_path):
    k = 24
    run_dir = tmp_path / "killed"
    kill_after_rows(_nb101_cli(run_dir, k), ROOT, run_dir / DB_NAME, rows=3, timeout=240)
    survivors = count_rows(run_dir / DB_NAME)
    assert 3 <= survivors < k, "the kill must land part-way through the run"
    rerun = subprocess.run(_nb101_cli(run_dir, k), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"architectures: {k} ({survivors} already stored, {k} ok, 0 failed)" in rerun.stdout
    drawn = architectures.sample("nb101", k, 1)
    space_scoring.score_space(tmp_path / "reference", [a for a, _ in drawn], cells=dict(drawn), space="nb101",
                              proxies=["gradsign", "params"], data="digits", batch=8, seed=2, C=8, N=1,
                              archs_per_job=5, progress=False)

    def scores(run):
        return {a: (r["status"], r["params"]["cell"], r["result"]["gradsign"]) for a, r in _rows(run).items()}

    assert len(scores(run_dir)) == k and scores(run_dir) == scores(tmp_path / "reference")


# ------------------------------------------------------------------------------ NDS


def _nds_records(genotypes, width=4, depth=3):
    records = []
    for i, genotype in enumerate(genotypes):
        errors = [60.0, 20.0 - i, 10.0 - i]
        records.append({"net": {"genotype": json.loads(nds.genotype_to_json(genotype)), "width": width,
                                "depth": depth, "aux": i == 0, "drop_prob": 0.0},
                        "optim": {"base_lr": 0.1, "max_ep": 3}, "rng_seed": 1, "test_ep_top1": errors,
                        "train_ep_top1": [e / 2 for e in errors]})
    return records


@pytest.mark.parametrize("space", ["darts", "amoeba"])
def test_nds_file_scored_at_its_own_size_and_correlated_on_the_file_key(tmp_path, space, capsys):
    genotypes = nds.sample(space, 4, seed=5)
    path = tmp_path / f"{space}.json"
    path.write_text(json.dumps({"top": _nds_records(genotypes[:2]), "mid": _nds_records(genotypes[2:])}))
    truth = nds_files.load(path, space=space)
    run = tmp_path / "run"
    assert main(["space-score", "--space", f"nds-{space}", "--truth-file", str(path), "--C", "file", "--N", "file",
                 *SETTINGS, "--out", str(run)]) == 0
    rows = _rows(run)
    assert set(rows) == set(truth["arch"])
    for entry in truth.itertuples():
        row = rows[entry.arch]
        assert row["params"]["C"] is None and row["params"]["cell"]["width"] == 4
        assert row["params"]["cell"]["aux"] == entry.aux
        assert row["result"]["gradsign"] == _by_hand(f"nds-{space}", row["params"]["cell"], None, None)[0]
    capsys.readouterr()
    assert main(["correlate", str(run), "--truth", f"nds-file:{path}", "--n-boot", "50", "--no-figures"]) == 0
    joined = pd.read_csv(run / "correlation_data.csv").set_index("arch")
    assert joined["test_acc"].to_dict() == pytest.approx(truth.set_index("arch")["test_acc"].to_dict())


def test_nds_sample_without_a_file_keys_like_an_nds_file(tmp_path):
    run = tmp_path / "run"
    assert main(["space-score", "--space", "nds-enas", "--sample", "2", "--C", "4", "--N", "3", *SETTINGS,
                 "--out", str(run)]) == 0
    rows = _rows(run)
    genotypes = nds.sample("enas", 2, seed=2)  # --sample-seed defaults to --seed
    assert sorted(rows) == sorted(nds_files.arch_key(g, 4, 3, False) for g in genotypes)
    cell = rows[nds_files.arch_key(genotypes[0], 4, 3, False)]["params"]["cell"]
    assert nds.parse_genotype(cell["genotype"]) == genotypes[0]


def test_sampled_nds_genotypes_follow_the_stated_law():
    for space in nds.SPACES:
        for g in nds.sample(space, 20, seed=1):
            for pairs, concat in ((g.normal, g.normal_concat), (g.reduce, g.reduce_concat)):
                assert len(pairs) == 2 * nds.NODES[space] and "none" not in {op for op, _ in pairs}
                read = {i for _, i in pairs}
                nodes = list(range(2, 2 + nds.NODES[space]))
                if space == "darts":
                    assert list(concat) == nodes and all(pairs[2 * j][1] != pairs[2 * j + 1][1] for j in range(4))
                else:
                    assert list(concat) == [s for s in nodes if s not in read]
    genotypes = nds.sample("pnas", 30, seed=0)
    assert len({nds.genotype_to_json(g) for g in genotypes}) == 30


# ----------------------------------------------------------------------- refusals


@pytest.mark.parametrize("argv, message", [
    (["--space", "nb101"], "needs --truth-file PATH .* or --sample K"),
    (["--space", "nb101", "--sample", "2", "--unique"], "--unique applies to --space nb201 only"),
    (["--space", "nb101", "--sample", "2", "--C", "file"], "--C file applies to the NDS spaces only"),
    (["--space", "nds-darts", "--sample", "2", "--C", "file"], "have no size of their own"),
    (["--space", "nds-darts", "--sample", "2", "--N", "two"], "--N must be a positive integer or 'file'"),
    (["--space", "nb201", "--truth-file", "x.json"], "--truth-file lists the architectures of an nb101 or NDS"),
    (["--space", "nb101", "--truth-file", "missing.tfrecord"], "not found"),
])
def test_space_score_refusals_name_the_problem(tmp_path, capsys, argv, message):
    assert main(["space-score", *argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_truth_file_of_the_wrong_layout_is_refused(tmp_path, capsys):
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps({"records": []}))
    assert main(["space-score", "--space", "nds-darts", "--truth-file", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "is not an NDS file" in capsys.readouterr().err
    junk = tmp_path / "nasbench.tfrecord"
    junk.write_bytes(b"not a tfrecord at all")
    assert main(["space-score", "--space", "nb101", "--truth-file", str(junk), "--out", str(tmp_path / "r")]) == 2
    assert "TFRecord" in capsys.readouterr().err


def test_correlate_refuses_a_truth_of_another_space(tmp_path, nb101_file, capsys):
    run = tmp_path / "run"
    assert main(["space-score", "--space", "nb101", "--sample", "3", *SETTINGS, "--out", str(run)]) == 0
    assert main(["correlate", str(run), "--truth", "nb201-digits", "--no-figures"]) == 2
    assert "is a nb201 benchmark, but the run's rows are nb101" in capsys.readouterr().err
    assert main(["correlate", str(run), "--truth", f"nds-file:{nb101_file[0]}", "--no-figures"]) == 2
    assert "needs a run of an NDS space" in capsys.readouterr().err


def test_cells_and_keys_are_checked_against_each_other(tmp_path):
    cell = architectures.nb101_cell(NB101_SPECS[0])
    with pytest.raises(ValueError, match="is not the key of its nb101 cell"):
        NetworkSpec("nb101", arch="0" * 32, cell=cell, C=8, N=1)
    with pytest.raises(ValueError, match="needs the cell"):
        NetworkSpec("nb101", arch=NB101_SPECS[0].hash(), C=8, N=1)
    with pytest.raises(ValueError, match="not in the enas space"):
        NetworkSpec("nds-enas", cell=architectures.nds_cell(nds.GENOTYPES["darts_v2"], 4, 3), C=4, N=3)
    with pytest.raises(ValueError, match="C must be a positive integer"):
        NetworkSpec("nb101", cell=cell, C=None, N=1)
    with pytest.raises(ValueError, match="needs cells="):
        space_scoring.arch_jobs([NB101_SPECS[0].hash()], proxies=["params"], data="digits", space="nb101")
    with pytest.raises(ValueError, match="have no cell in cells="):
        space_scoring.arch_jobs(["x"], proxies=["params"], data="digits", space="nb101", cells={})
    # A row whose cell does not match its key is that architecture's failed row, not a crash.
    summary, counts = space_scoring.score_space(tmp_path, ["0" * 32], cells={"0" * 32: cell}, space="nb101",
                                                proxies=["params"], data="digits", batch=4, C=8, N=1, progress=False)
    assert counts["failed"] == 1
    with ResultsStore(tmp_path, create=False) as store:
        assert "is not the key of its nb101 cell" in store.rows()[0]["reason"]


def test_nb201_rows_keep_their_hashes_and_a_run_of_two_spaces_needs_space(tmp_path, capsys):
    base = space_scoring.arch_jobs(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], proxies=["gradsign", "params"],
                                   data="digits", batch=8, seed=3, C=2, N=1)[0]
    assert base.job_hash == "78e102b7c3569add629032d65de136edac80c45f78ee9daa12093b259c771529"
    run = tmp_path / "run"
    assert main(["space-score", "--limit", "2", "--C", "2", *SETTINGS, "--out", str(run)]) == 0
    assert main(["space-score", "--space", "nb101", "--sample", "2", *SETTINGS, "--out", str(run)]) == 0
    with pytest.raises(ValueError, match="2 settings"):
        space_scoring.space_table(run)
    assert len(space_scoring.space_table(run, space="nb101")) == 2
    capsys.readouterr()
    assert main(["correlate", str(run), "--no-figures"]) == 2
    assert "pick one with --space" in capsys.readouterr().err
    assert np.isfinite(space_scoring.space_table(run, space="nb201", expand=False)["gradsign"]).all()
