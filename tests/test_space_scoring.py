"""Space scoring: one row per architecture from batch jobs, resume after kill -9 with the
same numbers, Ray == local, class scores mapped to every member, rows shared between
requests they cover, the initialisation schemes, the data sources."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import math

import numpy as np
import pytest
import torch

import proxies
from empirical import space_scoring
from empirical.cli import main
from empirical.scoring import NetworkSpec, ProxyScorer, build_network, initialise, score_network, scoring_batch
from empirical.spaces import nb201
from empirical.store import DB_NAME, ResultsStore
from tests.helpers_kill import count_rows, kill_after_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(proxies=["gradsign", "params"], data="digits", batch=8, seed=3, C=2, N=1)


def _scores(run_dir) -> dict[str, tuple]:
    with ResultsStore(run_dir, create=False) as store:
        rows = store.rows()
    assert len(rows) == len({r["hash"] for r in rows}) == len({r["params"]["arch"] for r in rows})
    return {r["params"]["arch"]: (r["status"], r["result"]["gradsign"], r["result"]["params"]) for r in rows}


def test_batch_jobs_give_one_row_per_arch_equal_to_direct_scoring(tmp_path):
    archs = nb201.all_archs()[::1301][:7]
    summary, counts = space_scoring.score_space(tmp_path, archs, archs_per_job=3, progress=False, **TINY)
    assert summary.total == 3 and counts == {"archs": 7, "skipped": 0, "ok": 7, "failed": 0}
    got = _scores(tmp_path)
    split = space_scoring.load_scoring_data("digits")
    for arch in archs:  # the independent route: score_network on each arch by itself
        row = score_network(NetworkSpec("nb201", arch=arch, C=2, N=1), split, ["gradsign", "params"],
                            batch=8, seed=3)
        assert got[arch] == ("ok", row["gradsign"], row["params"])
    with ResultsStore(tmp_path, create=False) as store:
        hashes = {r["hash"] for r in store.rows()}
    assert hashes == {j.job_hash for j in space_scoring.arch_jobs(archs, **TINY)}
    # A second call finds every row and runs nothing.
    summary, counts = space_scoring.score_space(tmp_path, archs, archs_per_job=3, progress=False, **TINY)
    assert summary.total == 0 and counts["skipped"] == 7


def test_job_hash_covers_arch_proxies_data_batch_seed_and_init():
    base = space_scoring.arch_jobs(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], **TINY)[0]
    # Default-init rows keep the hash they had before the scheme was a setting (commit 1a4b141).
    assert base.job_hash == "78e102b7c3569add629032d65de136edac80c45f78ee9daa12093b259c771529"
    variants = [dict(TINY, proxies=["gradsign"]), dict(TINY, data="random-cifar"), dict(TINY, batch=16),
                dict(TINY, seed=4), dict(TINY, C=4), dict(TINY, init="kaiming")]
    hashes = {space_scoring.arch_jobs([base.params["arch"]], **v)[0].job_hash for v in variants}
    other_arch = space_scoring.arch_jobs([nb201.all_archs()[1]], **TINY)[0].job_hash
    assert len(hashes | {base.job_hash, other_arch}) == len(variants) + 2


def _cli(run_dir, limit):
    return [sys.executable, "-m", "empirical.cli", "space-score", "--proxies", "gradsign,params",
            "--data", "digits", "--batch", "8", "--seed", "3", "--C", "2", "--N", "1",
            "--limit", str(limit), "--archs-per-job", "4", "--out", str(run_dir), "--no-progress"]


def test_sigkill_part_way_then_resume_gives_exactly_the_uninterrupted_rows(tmp_path):
    n = 40
    run_dir = tmp_path / "killed"
    db = run_dir / DB_NAME
    kill_after_rows(_cli(run_dir, n), ROOT, db, rows=4, timeout=240)
    survivors = count_rows(db)
    assert 4 <= survivors < n, "the kill must land part-way through the run"

    rerun = subprocess.run(_cli(run_dir, n), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"architectures: {n} ({survivors} already stored, {n} ok, 0 failed)" in rerun.stdout

    # The uninterrupted reference, grouped differently (7 per job), in this process.
    archs = nb201.all_archs()[:n]
    space_scoring.score_space(tmp_path / "reference", archs, archs_per_job=7, progress=False, **TINY)
    killed, reference = _scores(run_dir), _scores(tmp_path / "reference")
    assert len(killed) == n and killed == reference


def test_ray_scores_50_archs_like_local(tmp_path):
    ray = pytest.importorskip("ray")
    archs = nb201.unique_archs()[::120][:50]
    settings = dict(TINY, proxies=["params", "flops", "grad_norm"])
    space_scoring.score_space(tmp_path / "local", archs, archs_per_job=10, progress=False, **settings)
    started = not ray.is_initialized()
    try:
        space_scoring.score_space(tmp_path / "ray", archs, archs_per_job=10, executor="ray", workers=2,
                                  progress=False, **settings)
    finally:
        if started and ray.is_initialized():
            ray.shutdown()

    def rows(run_dir):
        with ResultsStore(run_dir, create=False) as store:
            return sorted((r["hash"], r["status"], r["result"]["params"], r["result"]["flops"],
                           r["result"]["grad_norm"]) for r in store.rows())

    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert len(local) == 50 and remote == local


def test_unique_scores_are_mapped_to_every_class_member(tmp_path):
    reps = nb201.unique_archs()[:6]
    space_scoring.score_space(tmp_path, reps, archs_per_job=6, progress=False, **TINY)
    table = space_scoring.space_table(tmp_path)
    rep_scores = _scores(tmp_path)
    # Independent route: class membership from the canonical labels.
    labels = {nb201.canonical(r): r for r in reps}
    members = [a for a in nb201.all_archs() if nb201.canonical(a) in labels]
    assert sorted(table["arch"]) == sorted(members) and len(members) > len(reps)
    for row in table.itertuples():
        assert row.representative == labels[nb201.canonical(row.arch)]
        assert row.gradsign == rep_scores[row.representative][1]
        assert row.scored == (row.arch in reps)
    assert len(space_scoring.space_table(tmp_path, expand=False)) == 6


def test_space_table_refuses_mixed_settings(tmp_path):
    arch = [nb201.all_archs()[5]]
    space_scoring.score_space(tmp_path, arch, progress=False, **TINY)
    space_scoring.score_space(tmp_path, arch, progress=False, **dict(TINY, seed=4))
    with pytest.raises(ValueError, match="2 settings"):
        space_scoring.space_table(tmp_path)
    assert len(space_scoring.space_table(tmp_path, seed=4, expand=False)) == 1


def test_random_cifar_is_seeded_gaussian_of_cifar_shape():
    a, b = space_scoring.random_cifar(), space_scoring.random_cifar()
    assert a.X_train.shape == (512, 3, 32, 32) and a.num_classes == 10 and a.input_shape == (3, 32, 32)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_train, b.y_train)
    assert abs(float(a.X_train.mean())) < 0.01 and abs(float(a.X_train.std()) - 1) < 0.01
    assert set(a.y_train.tolist()) == set(range(10))


def _fake_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(path, "wb") as handle:  # the layout of CIFAR-10's python batches (bytes keys)
        pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": []}, handle,
                    protocol=2)
    return data, labels


def test_cifar10_reads_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = _fake_batch(folder / "data_batch_1", 20, 0)
    _fake_batch(folder / "test_batch", 6, 1)
    split = space_scoring.load_cifar10(tmp_path)  # the parent directory is accepted too
    assert split.X_train.shape == (20, 3, 32, 32) and split.X_test.shape == (6, 3, 32, 32)
    assert split.y_train.tolist() == labels
    images = data.reshape(20, 3, 32, 32).astype(np.float64) / 255
    mean = images.mean(axis=(0, 2, 3))
    std = images.std(axis=(0, 2, 3))
    # pixel (0, c, 5, 7) by hand: (x/255 - mean_c) / std_c
    for c in range(3):
        assert float(split.X_train[0, c, 5, 7]) == pytest.approx((images[0, c, 5, 7] - mean[c]) / std[c], rel=1e-4)
    out = subprocess.run(_cli(tmp_path / "run", 2) + ["--data", "cifar10", "--cifar-path", str(folder)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 ok" in out.stdout


def test_cifar10_missing_files_say_where_to_point(tmp_path, capsys):
    with pytest.raises(ValueError, match="needs --cifar-path"):
        space_scoring.load_cifar10(None)
    with pytest.raises(ValueError, match="no CIFAR-10 python batch 'data_batch_1'"):
        space_scoring.load_cifar10(tmp_path)
    assert main(["space-score", "--data", "cifar10", "--limit", "1", "--out", str(tmp_path / "r")]) == 2
    assert "needs --cifar-path" in capsys.readouterr().err


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def test_cifar10_reader_refuses_code_in_the_pickle(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Boom(), b"labels": []}, handle)
    with pytest.raises(ValueError, match="refusing to load posix.system|refusing to load os.system"):
        space_scoring.load_cifar10(tmp_path)


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="data must be one of"):
        space_scoring.arch_jobs(["x"], proxies=["gradsign"], data="mnist")
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        space_scoring.arch_jobs(["x"], proxies=["gradsign"], data="digits", batch=0)
    with pytest.raises(ValueError, match="archs_per_job must be a positive integer"):
        space_scoring.batch_jobs([], 0)
    with pytest.raises(ValueError, match="init must be one of"):
        space_scoring.arch_jobs(["x"], proxies=["gradsign"], data="digits", init="orthogonal")


def test_score_frame_matches_direct_scoring_and_shares_covering_rows(tmp_path):
    archs = nb201.unique_archs()[::900][:4]
    kwargs = dict(store_dir=tmp_path, C=4, N=1, data="digits", batch=8, seed=3, progress=False)
    frame = space_scoring.score_frame(archs, proxies=["gradsign", "params"], **kwargs)
    split = space_scoring.load_scoring_data("digits")
    for arch, value in zip(archs, frame["gradsign"]):  # the independent route: build and score by hand
        torch.manual_seed(3)
        model = build_network(NetworkSpec("nb201", arch=arch, C=4, N=1), split, 3)
        x, y = scoring_batch(split, 8, 3, flat=False)
        assert value == proxies.gradsign(model, x, y)
    with ResultsStore(tmp_path) as store:
        rows = len(store)
    # A request covered by the stored rows (a subset of their proxies, another order of
    # archs, a repeat) computes nothing and keeps the caller's order.
    again = space_scoring.score_frame(list(reversed(archs)) + archs[:1], proxies=["gradsign"], **kwargs)
    assert again["arch"].tolist() == list(reversed(archs)) + archs[:1]
    assert again["gradsign"].tolist() == frame["gradsign"].tolist()[::-1] + frame["gradsign"].tolist()[:1]
    with ResultsStore(tmp_path) as store:
        assert len(store) == rows
    table = space_scoring.space_table(tmp_path, proxies=["gradsign"], expand=False).set_index("arch")
    assert table.loc[archs, "gradsign"].tolist() == frame["gradsign"].tolist()
    # Another initialisation is another network: new rows, different scores.
    kaiming = space_scoring.score_frame(archs, proxies=["gradsign"], init="kaiming", **kwargs)
    with ResultsStore(tmp_path) as store:
        assert len(store) == rows + len(archs)
    assert not np.allclose(kaiming["gradsign"], frame["gradsign"])
    torch.manual_seed(3)
    model = build_network(NetworkSpec("nb201", arch=archs[0], C=4, N=1, init="kaiming"), split, 3)
    assert kaiming["gradsign"].iloc[0] == proxies.gradsign(model, *scoring_batch(split, 8, 3, flat=False))


def test_proxy_options_are_their_own_rows_and_columns(tmp_path):
    archs = nb201.unique_archs()[::1500][:3]
    kwargs = dict(store_dir=tmp_path, C=2, N=1, data="digits", batch=8, seed=1, progress=False)
    total = space_scoring.score_frame(archs, proxies=["gradsign"], **kwargs)
    mean = space_scoring.score_frame(archs, scorer=ProxyScorer(("gradsign",), {"gradsign": {"reduction": "mean"}}),
                                     **kwargs)
    split = space_scoring.load_scoring_data("digits")
    for arch, value in zip(archs, mean["gradsign"]):
        model = build_network(NetworkSpec("nb201", arch=arch, C=2, N=1), split, 1)
        assert value == proxies.gradsign(model, *scoring_batch(split, 8, 1, flat=False), reduction="mean")
    assert not np.allclose(mean["gradsign"], total["gradsign"])
    # The default-option rows alone make the run's table; the option rows are another score.
    table = space_scoring.space_table(tmp_path, proxies=["gradsign"], expand=False).set_index("arch")
    assert table.loc[archs, "gradsign"].tolist() == total["gradsign"].tolist()
    with pytest.raises(ValueError, match="2 settings"):
        space_scoring.space_table(tmp_path)


def test_score_frame_reports_an_architecture_that_cannot_be_scored(tmp_path):
    with pytest.raises(ValueError, match="could not be scored.*bad-arch"):
        space_scoring.score_frame(["bad-arch"], proxies=["params"], store_dir=tmp_path, C=2, N=1, data="digits",
                                  batch=4, progress=False)


def test_initialise_schemes_draw_the_documented_variances():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(400, 300), torch.nn.Linear(300, 200))
    initialise(model, "kaiming")
    w = model[0].weight.detach()
    # std of 120,000 normal draws: relative standard error ~0.2%.
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 400), rel=0.01)
    assert float(model[0].bias.detach().abs().max()) == 0.0
    initialise(model, "xavier")
    assert float(model[1].weight.detach().std()) == pytest.approx(math.sqrt(2 / (300 + 200)), rel=0.01)
    before = [p.clone() for p in model.parameters()]
    initialise(model, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="init must be one of"):
        initialise(model, "orthogonal")
