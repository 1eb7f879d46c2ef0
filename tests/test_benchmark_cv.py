"""The nb201-digits-cv ground truth at toy size (3 classes, 2 folds, 2 repeats, 1 epoch):
stratified folds, the fold job against building and training by hand, determinism,
kill -9 and resume of `gradsign build-benchmark`, the split-half reliability against a
literal loop, the written files, the ValueErrors, and the built files as a truth (`load_benchmark`,
`gradsign correlate --truth nb201-digits-cv`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.datasets import load_digits

from empirical import space_scoring, stats
from empirical.benchmarks import digits_folds, nb201_digits, nb201_digits_cv as cv
from empirical.benchmarks.benchmark import load_benchmark
from empirical.cli import build_parser, main as cli
from empirical.commands.space_score import architectures_of
from empirical.plan import Job
from empirical.spaces import nb201
from empirical.stats import Estimate
from empirical.store import DB_NAME, ResultsStore
from empirical.training import train
from paper_repro import assisted_search, registry
from tests.helpers_kill import kill_after_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = {"classes": 3, "repeats": 2, "folds": 2, "epochs": 1}
TOY_RECIPE = dataclasses.replace(cv.RECIPE, epochs=1)
ARCH = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def build_args(run_dir, workers=1):
    return ["build-benchmark", "--benchmark", "nb201-digits-cv", "--out", str(run_dir / "run"),
            "--classes", str(TOY["classes"]), "--repeats", str(TOY["repeats"]), "--folds", str(TOY["folds"]),
            "--epochs", str(TOY["epochs"]), "--workers", str(workers), "--no-progress",
            "--trainings", str(run_dir / "t.csv.gz"), "--csv", str(run_dir / "c.csv"),
            "--json", str(run_dir / "m.json")]


def stored(run_dir):
    """The store's rows without wall times: (hash, kind, seed, status, params, result)."""
    with ResultsStore(run_dir / "run", create=False) as store:
        rows = store.rows()
    return sorted((r["hash"], r["kind"], r["seed"], r["status"], r["params"],
                   {k: v for k, v in r["result"].items() if k != "seconds"}) for r in rows)


def same(a, b) -> bool:
    """Equal as JSON text (NaN equals NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted toy build in this process, one worker."""
    run_dir = tmp_path_factory.mktemp("reference")
    assert cli(build_args(run_dir)) == 0
    return run_dir


# ----------------------------------------------------------------------------- folds


def test_digits_folds_are_disjoint_covering_and_stratified():
    y = load_digits().target
    for k, seed in ((4, 0), (4, 3), (5, 1), (2, 0)):
        folds = digits_folds.digits_folds(k, seed)
        assert len(folds) == k
        tests = [set(test.tolist()) for _, test in folds]
        assert sum(len(t) for t in tests) == len(set().union(*tests)) == len(y) == digits_folds.N_IMAGES
        for (train_idx, test_idx), test in zip(folds, tests):
            assert set(train_idx.tolist()) == set(range(len(y))) - test
            assert len(train_idx) + len(test_idx) == len(y)
        sizes = [len(t) for t in tests]
        assert max(sizes) - min(sizes) <= 1
        for label in range(10):
            per_fold = [sum(y[i] == label for i in t) for t in tests]
            assert max(per_fold) - min(per_fold) <= 1, (k, seed, label, per_fold)
    first = digits_folds.digits_folds(4, 0)
    again = digits_folds.digits_folds(4, 0)
    other = digits_folds.digits_folds(4, 1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))


def test_fold_split_is_standardised_with_its_own_training_statistics():
    bunch = load_digits()
    X, y = bunch.data, bunch.target
    for fold in range(4):
        train_idx, test_idx = digits_folds.digits_folds(4, 2)[fold]
        split = digits_folds.fold_split(4, 2, fold)
        mean, std = X[train_idx].mean(), X[train_idx].std()
        assert np.allclose(split.X_train.numpy().reshape(-1, 64), (X[train_idx] - mean) / std, atol=1e-6)
        assert np.allclose(split.X_test.numpy().reshape(-1, 64), (X[test_idx] - mean) / std, atol=1e-6)
        assert split.y_train.tolist() == y[train_idx].tolist() and split.y_test.tolist() == y[test_idx].tolist()
        assert split.input_shape == (1, 8, 8) and split.num_classes == 10


def test_fold_errors_name_the_bad_argument():
    for k in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="^k must be"):
            digits_folds.digits_folds(k, 0)
    for seed in (-1, 1.5, "0", None):
        with pytest.raises(ValueError, match="^seed must be"):
            digits_folds.digits_folds(4, seed)
    with pytest.raises(ValueError, match="^fold must be"):
        digits_folds.fold_split(4, 0, 4)
    with pytest.raises(ValueError, match="y must be a 1-D array"):
        digits_folds.stratified_folds([0, 1, 0], k=4, seed=0)


# ----------------------------------------------------------------------------- jobs


def test_plan_nests_class_repeat_fold_and_seeds_each_repeat():
    jobs = cv.plan([ARCH, nb201_digits.ALWAYS[0]], repeats=[0, 1, 2], folds=3, recipe=TOY_RECIPE)
    keys = [(j.params["arch"], j.params["repeat"], j.params["fold"]) for j in jobs]
    assert keys == [(a, r, f) for a in (ARCH, nb201_digits.ALWAYS[0]) for r in range(3) for f in range(3)]
    assert all(j.seed == j.params["repeat"] == j.params["fold_seed"] for j in jobs)
    assert len({j.job_hash for j in jobs}) == len(jobs)
    assert len(cv.plan([ARCH])) == 24 and cv.plan([ARCH])[0].params["recipe"]["epochs"] == 3


def test_train_job_equals_building_and_training_on_a_hand_made_fold():
    job = cv.plan([ARCH], repeats=[1], folds=2, recipe=TOY_RECIPE)[1]  # repeat 1, fold 1
    out = cv.train_job(job)
    split = digits_folds.fold_split(2, 1, 1)
    torch.manual_seed(1)
    net = nb201.build(ARCH, C=8, N=1, num_classes=10, in_channels=1)
    direct = train(net, split, TOY_RECIPE, seed=1)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "final_batch_loss", "steps"):
        assert out[key] == direct[key], key
    assert out["params"] == sum(p.numel() for p in net.parameters())
    assert out["steps"] == len(digits_folds.digits_folds(2, 1)[1][0]) // 128


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not():
    jobs = cv.plan([ARCH], repeats=[0, 1], folds=2, recipe=TOY_RECIPE)
    first = [cv.train_job(j) for j in jobs]
    again = [cv.train_job(Job(j.kind, j.params, j.seed)) for j in jobs]
    for a, b in zip(first, again):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert first[0]["test_loss"] != first[2]["test_loss"]  # repeat 1: other folds, other weights


# ----------------------------------------------------------------------------- build


def test_sigkill_mid_build_then_resume_equals_the_uninterrupted_build(tmp_path, reference):
    # killed with 2 pool workers, resumed with 1, compared with 1 in this process
    def command(workers):
        return [sys.executable, "-m", "empirical.cli", *build_args(tmp_path, workers=workers)]

    env = {**os.environ, "PYTHONPATH": ROOT}
    n_jobs = TOY["classes"] * TOY["repeats"] * TOY["folds"]
    kill_after_rows(command(2), ROOT, tmp_path / "run" / DB_NAME, rows=2, timeout=240)
    with ResultsStore(tmp_path / "run", create=False) as store:
        survivors = len(store)
    assert 2 <= survivors < n_jobs, "the kill must land part-way through the build"
    assert not (tmp_path / "c.csv").exists()

    rerun = subprocess.run(command(1), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"jobs: {n_jobs} ({survivors} already done, {n_jobs - survivors} ok, 0 failed)" in rerun.stdout
    assert stored(tmp_path) == stored(reference)
    mine, theirs = cv.load_trainings(tmp_path / "t.csv.gz"), cv.load_trainings(reference / "t.csv.gz")
    pd.testing.assert_frame_equal(mine.drop(columns="seconds"), theirs.drop(columns="seconds"))
    pd.testing.assert_frame_equal(cv.load(tmp_path / "c.csv").drop(columns="seconds"),
                                  cv.load(reference / "c.csv").drop(columns="seconds"))
    assert same(cv.metadata(tmp_path / "m.json")["reliability"], cv.metadata(reference / "m.json")["reliability"])


def test_written_files_round_trip_and_agree_with_the_store(tmp_path, reference):
    trainings, classes, meta = (cv.load_trainings(reference / "t.csv.gz"), cv.load(reference / "c.csv"),
                                cv.metadata(reference / "m.json"))
    assert list(trainings.columns) == ["arch", "repeat", "seed", "fold", "train_loss", "train_acc",
                                       "test_loss", "test_acc", "seconds"]
    assert len(trainings) == meta["trainings"] == 3 * 2 * 2 and len(classes) == meta["classes"] == 3
    assert sorted(classes["arch"]) == sorted(nb201_digits.select_classes(3, 0))
    with ResultsStore(reference / "run", create=False) as store:
        rows = store.rows(status="ok")
    for row in rows:  # every stored training, rounded to 6 digits, is a line of the file
        p = row["params"]
        line = trainings[(trainings["arch"] == p["arch"]) & (trainings["repeat"] == p["repeat"])
                         & (trainings["fold"] == p["fold"])]
        assert len(line) == 1 and int(line["seed"].iloc[0]) == row["seed"] == p["repeat"]
        assert line["test_acc"].iloc[0] == round(row["result"]["test_acc"], 6)
        per_class = classes[classes["arch"] == p["arch"]].iloc[0]
        assert per_class["params"] == row["result"]["params"]
    for row in classes.itertuples():
        mine = [r["result"]["test_loss"] for r in rows if r["params"]["arch"] == row.arch]
        assert len(mine) == 4 and row.test_loss == pytest.approx(sum(mine) / 4, abs=1e-6)
    assert same(meta["reliability"], cv.reliability(trainings, n_boot=2000))
    assert meta["recipe"] == TOY_RECIPE.to_dict() and meta["protocol"] is False
    assert meta["folds"]["k"] == 2 and meta["repeats"] == [0, 1] and [p["chosen"] for p in meta["pilot"]["protocols"]].count(True) == 1
    assert meta["rebuild_command"] == cv.REBUILD_COMMAND and "--benchmark nb201-digits-cv" in meta["command"]
    # gzip without a timestamp: rewriting the same run gives the same bytes
    again = tmp_path / "t.csv.gz"
    cv.write(reference / "run", n_classes=3, selection_seed=0, command="x", repeats=[0, 1], folds=2,
             recipe=TOY_RECIPE, trainings_path=again, classes_path=tmp_path / "c.csv", json_path=tmp_path / "m.json")
    assert again.read_bytes() == (reference / "t.csv.gz").read_bytes()
    assert (reference / "t.csv.gz").stat().st_size < 5_000_000


# ----------------------------------------------------------------------------- reliability


def synthetic_trainings(n_classes=14, repeats=4, folds=2, seed=0):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.2, 0.9, n_classes)
    records = []
    for c in range(n_classes):
        for r in range(repeats):
            for f in range(folds):
                acc = quality[c] + rng.normal(0, 0.08)
                records.append({"arch": f"arch{c:02d}", "repeat": r, "seed": r, "fold": f,
                                "train_loss": 1.0, "train_acc": acc, "test_loss": 2.0 - 2 * acc + rng.normal(0, 0.1),
                                "test_acc": acc, "seconds": 1.0})
    return pd.DataFrame.from_records(records)


def literal_split_half(frame, metric, first, second, n_boot, seed):
    """Per-class means by hand, the top half by a sort, spearmanr on every resample."""
    archs = sorted(set(frame["arch"]))
    rows = frame.to_dict("records")

    def mean_over(arch, column, repeats):
        values = [r[column] for r in rows if r["arch"] == arch and r["repeat"] in repeats]
        return sum(values) / len(values)

    a = [mean_over(arch, metric, first) for arch in archs]
    b = [mean_over(arch, metric, second) for arch in archs]
    overall = [mean_over(arch, "test_acc", first + second) for arch in archs]
    best = sorted(range(len(archs)), key=lambda i: -overall[i])[:math.ceil(len(archs) / 2)]
    out = {}
    for name, items in (("all", list(range(len(archs)))), ("top_half", sorted(best))):
        x, y = [a[i] for i in items], [b[i] for i in items]
        index = np.random.default_rng(seed).integers(0, len(items), size=(n_boot, len(items)))
        resampled = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for row in index:
                rho = spearmanr([x[i] for i in row], [y[i] for i in row]).statistic
                if np.isfinite(rho):
                    resampled.append(rho)
        low, high = np.quantile(resampled, [0.025, 0.975])
        out[name] = (spearmanr(x, y).statistic, low, high, len(items))
    return out


@pytest.mark.parametrize("halves", [None, ([0, 2], [1, 3])])
def test_reliability_equals_a_literal_split_half_loop(halves):
    frame = synthetic_trainings()
    got = cv.reliability(frame, halves=halves, n_boot=200, seed=3)
    first, second = ([0, 1], [2, 3]) if halves is None else halves
    assert got["halves"] == [first, second] and got["spearman_brown"] is False
    for metric in ("test_acc", "test_loss"):
        want = literal_split_half(frame, metric, first, second, n_boot=200, seed=3)
        for name in ("all", "top_half"):
            value, low, high, n = want[name]
            entry = got[f"{metric}_{name}"]
            assert entry["n"] == n
            assert entry["spearman"] == pytest.approx(value, abs=1e-12)
            assert entry["spearman_ci"] == pytest.approx([low, high], abs=1e-12)
    assert got["n_top_half"] == 7 and got["test_acc_all"]["n"] == 14


def test_reliability_by_repeats_is_the_split_half_loop_of_each_even_prefix():
    frame = synthetic_trainings(repeats=5)
    frame["seconds"] = np.arange(len(frame), dtype=float)
    got = cv.reliability_by_repeats(frame, n_boot=200, seed=3)
    assert [g["repeats"] for g in got] == [[0, 1], [0, 1, 2, 3]]
    for entry, (first, second) in zip(got, (([0], [1]), ([0, 1], [2, 3]))):
        subset = frame[frame["repeat"].isin(first + second)]
        want = literal_split_half(subset, "test_acc", first, second, n_boot=200, seed=3)
        assert entry["reliability"]["halves"] == [first, second]
        assert entry["reliability"]["test_acc_all"]["spearman"] == pytest.approx(want["all"][0], abs=1e-12)
        assert entry["reliability"]["test_acc_top_half"]["spearman"] == pytest.approx(want["top_half"][0], abs=1e-12)
        per_class = [subset[subset["arch"] == a]["seconds"].sum() for a in sorted(subset["arch"].unique())]
        assert entry["training_seconds_per_class"] == pytest.approx(np.mean(per_class))
        assert entry["trainings_per_class"] == 2 * len(first + second)


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_value_errors_naming_the_argument(tmp_path, reference, capsys):
    with pytest.raises(ValueError, match="repeats must be a non-empty list"):
        cv.plan([ARCH], repeats=[])
    with pytest.raises(ValueError, match="repeats must be a non-empty list"):
        cv.plan([ARCH], repeats=[0, 0])
    with pytest.raises(ValueError, match="^folds must be"):
        cv.plan([ARCH], folds=1)
    with pytest.raises(ValueError, match="recipe must be"):
        cv.plan([ARCH], recipe={"epochs": 3})
    frame = synthetic_trainings(repeats=2)
    with pytest.raises(ValueError, match="halves must be two non-empty disjoint"):
        cv.reliability(frame, halves=([0, 1], [1]))
    with pytest.raises(ValueError, match="halves must be two non-empty disjoint"):
        cv.reliability(frame, halves=([0], [5]))
    with pytest.raises(ValueError, match="at least 2 repeats"):
        cv.reliability(frame[frame["repeat"] == 0])
    with pytest.raises(ValueError, match="lacks the columns"):
        cv.reliability(frame.drop(columns="test_loss"))
    # nothing complete for these settings (3 folds): nothing written, no placeholder
    with pytest.raises(ValueError, match="nothing written"):
        cv.write(reference / "run", n_classes=3, selection_seed=0, command="x", repeats=[0, 1], folds=3,
                 recipe=TOY_RECIPE, trainings_path=tmp_path / "t.csv.gz", classes_path=tmp_path / "c.csv",
                 json_path=tmp_path / "m.json")
    assert not list(tmp_path.iterdir())
    shipped = [cv.TRAININGS_PATH, cv.CLASSES_PATH, cv.JSON_PATH]
    existed = [p.exists() for p in shipped]
    with pytest.raises(ValueError, match="chosen protocol only"):
        cv.write(reference / "run", n_classes=3, selection_seed=0, command="x", repeats=[0, 1], folds=2,
                 recipe=TOY_RECIPE)
    for argv, message in (
            (["--benchmark", "nb201-digits-cv", "--classes", "3", "--epochs", "1"], "outside the shipped files"),
            (["--benchmark", "nb201-digits-cv", "--seeds", "0"], "--seeds applies to nb201-digits;"),
            (["--repeats", "2"], "--repeats applies to --benchmark nb201-digits-cv only")):
        assert cli(["build-benchmark", "--out", str(tmp_path / "r"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert [p.exists() for p in shipped] == existed and not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="not built yet"):
        cv.load(tmp_path / "missing.csv")


def test_importing_an_earlier_build_then_extending_it_equals_building_from_scratch(tmp_path, reference):
    """Import the 2-repeat toy build, build 3 repeats on top (only repeat 2 trains), and
    compare with 3 repeats built from nothing: the same trainings to the files' 6 digits."""
    extended, scratch = tmp_path / "extended", tmp_path / "scratch"
    def three_repeats(run_dir):
        args = build_args(run_dir)
        args[args.index("--repeats") + 1] = "3"
        return args

    args = three_repeats(extended)
    sources = [str(reference / "t.csv.gz"), str(reference / "c.csv"), str(reference / "m.json")]
    assert cli(args + ["--import-from", *sources]) == 0
    with ResultsStore(extended / "run", create=False) as store:
        rows = store.rows(status="ok")
    imported = [r for r in rows if (r["timings"] or {}).get("imported_from")]
    assert len(imported) == 3 * 2 * 2 and len(rows) == 3 * 3 * 2
    assert {r["params"]["repeat"] for r in imported} == {0, 1}
    assert cv.import_trainings(extended / "run", trainings_path=sources[0], classes_path=sources[1],
                               json_path=sources[2], repeats=[0, 1, 2], folds=2, recipe=TOY_RECIPE) == 0
    assert cli(three_repeats(scratch)) == 0
    mine, theirs = cv.load_trainings(extended / "t.csv.gz"), cv.load_trainings(scratch / "t.csv.gz")
    metrics = ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert mine[["arch", "repeat", "seed", "fold"]].equals(theirs[["arch", "repeat", "seed", "fold"]])
    assert np.allclose(mine[metrics], theirs[metrics], rtol=0, atol=1.5e-6)
    meta = cv.metadata(extended / "m.json")
    how = {(e["how"], tuple(e["repeats"])): e["trainings"] for e in meta["trainings_provenance"]}
    assert how == {("imported", (0, 1)): 12, ("trained", (2,)): 6} and "--import-from" in meta["command"]
    assert cv.metadata(scratch / "m.json")["trainings_provenance"][0]["how"] == "trained"


def test_import_refuses_another_protocol(tmp_path, reference, capsys):
    sources = {"trainings_path": reference / "t.csv.gz", "classes_path": reference / "c.csv",
               "json_path": reference / "m.json"}
    with pytest.raises(ValueError, match="recipe"):
        cv.import_trainings(tmp_path / "run", repeats=[0, 1], folds=2, recipe=cv.RECIPE, **sources)
    with pytest.raises(ValueError, match="folds"):
        cv.import_trainings(tmp_path / "run", repeats=[0, 1], folds=3, recipe=TOY_RECIPE, **sources)
    assert cli(["build-benchmark", "--out", str(tmp_path / "x"), "--import-shipped"]) == 2
    assert "--import-shipped applies to --benchmark nb201-digits-cv only" in capsys.readouterr().err


def test_shipped_files_when_built_follow_the_protocol():
    if not cv.CLASSES_PATH.exists():
        pytest.skip("nb201-digits-cv has not been built yet (no placeholder files ship)")
    trainings, classes, meta = cv.load_trainings(), cv.load(), cv.metadata()
    assert meta["protocol"] is True and meta["recipe"] == cv.RECIPE.to_dict()
    per_class = len(cv.REPEATS) * cv.FOLDS
    assert meta["repeats"] == list(cv.REPEATS) and meta["trainings_per_class"] == per_class
    assert len(trainings) == per_class * len(classes) == per_class * meta["classes"]
    assert (trainings.groupby("arch").size() == per_class).all()
    means = trainings.groupby("arch")["test_acc"].mean().reindex(classes["arch"]).to_numpy()
    assert np.allclose(classes["test_acc"], means, atol=2e-6)
    for path in (cv.TRAININGS_PATH, cv.CLASSES_PATH, cv.JSON_PATH):
        assert path.stat().st_size < 5_000_000
    assert same(meta["reliability"], cv.reliability(trainings, n_boot=meta["reliability"]["n_boot"]))


# ----------------------------------------------------------------------------- as a truth


def toy_paths(run_dir):
    return {"classes_path": run_dir / "c.csv", "trainings_path": run_dir / "t.csv.gz", "json_path": run_dir / "m.json"}


def test_load_benchmark_reads_the_built_files_with_per_repeat_columns(reference):
    bench = load_benchmark("nb201-digits-cv", paths=toy_paths(reference))
    meta = cv.metadata(reference / "m.json")
    rows = cv.load_trainings(reference / "t.csv.gz").to_dict("records")
    assert bench.name == "nb201-digits-cv" and bench.space == "nb201" and (bench.C, bench.N) == (8, 1)
    assert bench.archs == cv.load(reference / "c.csv")["arch"].tolist() and len(bench.archs) == 3
    for metric in ("test_acc", "test_loss", "train_acc", "train_loss"):
        for i, arch in enumerate(bench.archs):
            everything = [r[metric] for r in rows if r["arch"] == arch]
            assert bench.column(metric)[i] == pytest.approx(sum(everything) / len(everything), abs=2e-6)
            for repeat in (0, 1):  # a literal mean over the folds of the repeat
                folds = [r[metric] for r in rows if r["arch"] == arch and r["repeat"] == repeat]
                assert len(folds) == TOY["folds"]
                assert bench.column(f"{metric}_r{repeat}")[i] == pytest.approx(sum(folds) / len(folds), abs=1e-12)
    assert {"params", "flops"} <= set(bench.table.columns)
    assert bench.seed_columns() == ["test_acc_r0", "test_acc_r1"]
    assert bench.seed_columns("test_loss") == ["test_loss_r0", "test_loss_r1"]
    rel, top = meta["reliability"]["test_acc_all"], meta["reliability"]["test_acc_top_half"]
    rho = bench.reliability()
    assert (rho.value, rho.low, rho.high, rho.n) == (rel["spearman"], *rel["spearman_ci"], rel["n"])
    note = bench.reliability_note()
    assert "split-half Spearman" in note and "repeats 0 and of repeats 1" in note and "2-fold" in note
    assert rho.format() in note and "top half" in note
    top_est = Estimate(top["spearman"], top["spearman_ci"][0], top["spearman_ci"][1], top["n"])
    assert top_est.format() in note and "training seeds" not in note
    assert "cross-validation" in bench.description and "repeats [0, 1]" in bench.description


def test_load_benchmark_names_the_missing_file(tmp_path, reference, monkeypatch):
    paths = {**toy_paths(reference), "trainings_path": tmp_path / "none.csv.gz"}
    with pytest.raises(ValueError, match="trainings table .*none.csv.gz.* is missing"):
        load_benchmark("nb201-digits-cv", paths=paths)
    monkeypatch.setattr(cv, "JSON_PATH", tmp_path / "absent.json")
    with pytest.raises(ValueError, match="metadata .*absent.json.* is missing .not built yet"):
        load_benchmark("nb201-digits-cv")
    with pytest.raises(ValueError, match="paths applies to benchmark 'nb201-digits-cv' only"):
        load_benchmark("nb201-digits", paths=paths)
    with pytest.raises(ValueError, match="paths takes the keys"):
        load_benchmark("nb201-digits-cv", paths={"csv": tmp_path})


def test_correlate_with_the_cv_truth(tmp_path, reference, monkeypatch, capsys):
    for name, path in (("CLASSES_PATH", "c.csv"), ("TRAININGS_PATH", "t.csv.gz"), ("JSON_PATH", "m.json")):
        monkeypatch.setattr(cv, name, reference / path)
    archs = cv.load(reference / "c.csv")["arch"].tolist()
    run = tmp_path / "run"
    space_scoring.score_space(run, archs, proxies=["grad_norm"], data="digits", batch=8, seed=0, C=2, N=1,
                              progress=False)
    bench = load_benchmark("nb201-digits-cv")
    scores = space_scoring.space_table(run, expand=False).set_index("arch").loc[bench.archs, "grad_norm"]
    for metric in ("test_acc", "test_acc_r1"):
        out = tmp_path / metric
        assert cli(["correlate", str(run), "--truth", "nb201-digits-cv", "--metric", metric, "--n-boot", "20",
                    "--no-figures", "--out", str(out)]) == 0
        summary = pd.read_json(out / "correlation.json").set_index("proxy")
        assert summary.loc["grad_norm", "spearman"] == pytest.approx(
            stats.spearman(scores.to_numpy(), bench.column(metric)))
        assert f"Rank correlation with nb201-digits-cv {metric} over 3 architectures" in (out / "correlation.md").read_text()
    assert cli(["correlate", str(run), "--truth", "nb201-digits-cvx", "--no-figures"]) == 2
    assert "'nb201-digits-cv'" in capsys.readouterr().err


def test_space_score_subset_of_the_cv_benchmark_is_the_digits_selection():
    def archs(subset):
        return architectures_of(build_parser().parse_args(["space-score", "--subset", subset]), 8, 1)[0]

    assert archs("nb201-digits-cv") == archs("nb201-digits") == nb201_digits.select_classes()
    assert len(archs("nb201-digits-cv")) == 1000


def test_paper_repro_entries_take_the_cv_benchmark_and_name_its_repeats(reference):
    parser = argparse.ArgumentParser()
    registry.add_entry_parsers(parser.add_subparsers())
    for entry in ("rank-correlation", "assisted-search"):
        assert parser.parse_args([entry, "--benchmark", "nb201-digits-cv"]).benchmark == "nb201-digits-cv"
        assert parser.parse_args([entry]).benchmark == "nb201-digits"
    bench = load_benchmark("nb201-digits-cv", paths=toy_paths(reference))
    assert assisted_search._truth_unit(bench).startswith("cross-validation repeat")
    assert assisted_search._truth_unit(load_benchmark("nb201-digits")) == "training seed"
    assert assisted_search._truth_unit(load_benchmark("toy")) == "ground truth"
