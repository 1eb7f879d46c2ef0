"""The nb201-digits benchmark (selection, job, table, shipped files), the NAS-Bench-201
file reader (safe loading, a tiny file in the supported layout), and `gradsign correlate`."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from empirical import space_scoring, stats
from empirical.benchmarks import nb201_api, nb201_digits
from empirical.benchmarks.benchmark import file_benchmark, load_benchmark, toy_benchmark
from empirical.cli import main
from empirical.data import load
from empirical.plan import Job
from empirical.spaces import nb201
from empirical.store import ResultsStore
from empirical.training import train


def test_selection_is_stratified_deterministic_and_keeps_the_extremes():
    chosen = nb201_digits.select_classes(300, seed=4)
    assert chosen == nb201_digits.select_classes(300, seed=4) != nb201_digits.select_classes(300, seed=5)
    assert len(chosen) == len(set(chosen)) == 300
    assert set(chosen) <= set(nb201.unique_archs()) and set(nb201_digits.ALWAYS) <= set(chosen)
    # stratum sizes by a literal count over the classes (the two forced classes aside),
    # then the water-filling property of the other 298: every stratum not taken whole
    # gets within one of the largest allocation.
    sizes = Counter(sum(op in ("nor_conv_1x1", "nor_conv_3x3") for op, _ in nb201.parse(a))
                    for a in nb201.unique_archs() if a not in nb201_digits.ALWAYS)
    counts = Counter(nb201_digits.conv_edges(a) for a in chosen if a not in nb201_digits.ALWAYS)
    assert sum(counts.values()) == 298 and len(sizes) == 7
    largest = max(counts.values())
    for k, size in sizes.items():
        assert counts[k] <= size
        if counts[k] < size:
            assert counts[k] >= largest - 1
    with pytest.raises(ValueError, match="n_classes must be an integer"):
        nb201_digits.select_classes(1)


def test_train_job_equals_building_and_training_directly():
    arch = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    job = nb201_digits.plan([arch], [1])[0]
    out = nb201_digits.train_job(job)
    torch.manual_seed(1)
    net = nb201.build(arch, C=8, N=1, num_classes=10, in_channels=1)
    direct = train(net, load("digits", seed=0), nb201_digits.RECIPE, seed=1)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert out[key] == direct[key]
    assert out["params"] == sum(p.numel() for p in net.parameters())
    assert out["steps"] == 4 * (1347 // 128)


def _fake_result(test_acc, seed):
    return {"params": 100.0, "flops": 1000.0, "train_loss": 0.1 * seed, "train_acc": 0.9, "test_loss": 0.2,
            "test_acc": test_acc, "seconds": 1.0 + seed, "final_batch_loss": 0.1, "steps": 40, "diverged": False}


def test_table_and_write_from_stored_rows(tmp_path):
    archs = nb201.unique_archs()[100:106]
    rng = np.random.default_rng(0)
    acc = {(a, s): float(rng.uniform(0.5, 1.0)) for a in archs for s in (0, 1)}
    with ResultsStore(tmp_path) as store:
        for job in nb201_digits.plan(archs, [0, 1]):
            if job.params["arch"] == archs[-1] and job.seed == 1:
                continue  # an unfinished class: left out of the table
            store.record(job, status="ok", result=_fake_result(acc[job.params["arch"], job.seed], job.seed))
        store.record(Job("other", {"x": 1}, 0), status="ok", result={"test_acc": 0.0})
    frame, meta = nb201_digits.write(tmp_path, seeds=[0, 1], n_classes=6, selection_seed=0, command="test",
                                     csv_path=tmp_path / "b.csv", json_path=tmp_path / "b.json")
    assert sorted(frame["arch"]) == sorted(archs[:-1])
    for row in frame.itertuples():
        assert row.test_acc_s0 == acc[row.arch, 0] and row.test_acc_s1 == acc[row.arch, 1]
        assert row.test_acc == pytest.approx((acc[row.arch, 0] + acc[row.arch, 1]) / 2)
        assert row.seconds == 1.5 and row.conv_edges == nb201_digits.conv_edges(row.arch)
    shipped = nb201_digits.load(tmp_path / "b.csv")
    assert list(shipped.columns) == list(frame.columns) and len(shipped) == 5
    assert json.loads((tmp_path / "b.json").read_text()) == meta
    rel = meta["reliability"]
    assert rel["spearman"] == pytest.approx(stats.spearman(frame["test_acc_s0"], frame["test_acc_s1"]))
    assert meta["recipe"] == nb201_digits.RECIPE.to_dict() and meta["classes"] == 5


def test_shipped_benchmark_is_consistent():
    if not nb201_digits.CSV_PATH.exists():
        pytest.skip("nb201_digits.csv has not been built yet")
    frame, meta = nb201_digits.load(), nb201_digits.metadata()
    assert len(frame) == meta["classes"] and frame["arch"].is_unique
    assert set(frame["arch"]) <= set(nb201.unique_archs())
    assert nb201_digits.CSV_PATH.stat().st_size < 2_000_000
    seeds = meta["seeds"]
    mean = sum(frame[f"test_acc_s{s}"] for s in seeds) / len(seeds)
    assert np.allclose(frame["test_acc"], mean, atol=2e-6)
    for arch, params in frame[["arch", "params"]].head(3).itertuples(index=False):
        net = nb201.build(arch, C=meta["C"], N=meta["N"], num_classes=10, in_channels=1)
        assert params == sum(p.numel() for p in net.parameters())
    assert ((frame["test_acc"] >= 0) & (frame["test_acc"] <= 1)).all()
    assert meta["recipe"] == nb201_digits.RECIPE.to_dict()


def test_reliability_recomputed_through_empirical_stats_equals_the_shipped_metadata():
    """nb201_digits.json was written by the statistics code before the consolidation
    (empirical/correlation.py): the same resamples give the same numbers."""
    if not nb201_digits.CSV_PATH.exists():
        pytest.skip("nb201_digits.csv has not been built yet")
    shipped = nb201_digits.metadata()["reliability"]
    again = nb201_digits.reliability(nb201_digits.load(), tuple(shipped["seeds"]))
    for key in ("n", "spearman", "spearman_ci", "kendall", "kendall_ci", "top_k_precision"):
        assert again[key] == shipped[key], key


def _nb201_file(path, archs, acc, extra=None):
    """A tiny benchmark file in the supported layout (see nb201_api's docstring)."""
    arch2infos = {}
    for index, arch in enumerate(archs):
        results = {}
        for seed in (777, 888):
            results[("cifar10", seed)] = {
                "params": 0.1 + index, "flop": 1.0 + index,
                "train_acc1es": {0: 10.0, 199: 90.0 + seed % 7},
                "eval_acc1es": {"ori-test@0": 10.0, "ori-test@199": acc[index] + (seed - 777) / 111},
            }
        results[("cifar100", 777)] = {"eval_acc1es": {"ori-test@199": 1.0}, "train_acc1es": {199: 1.0}}
        arch2infos[index] = {"full": {"all_results": results}, "less": {"all_results": {}}}
    data = {"meta_archs": list(archs), "arch2infos": arch2infos, "evaluated_indexes": set(range(len(archs)))}
    if extra is not None:
        data["extra"] = extra
    torch.save(data, path)


class Custom:
    pass


def test_nb201_file_reader_by_hand(tmp_path):
    archs = nb201.all_archs()[::3125]
    acc = [70.0, 80.0, 60.0, 90.0, 85.0]
    _nb201_file(tmp_path / "nb.pth", archs, acc)
    frame = nb201_api.accuracies(tmp_path / "nb.pth", dataset="cifar10")
    assert frame["arch"].tolist() == list(archs) and (frame["seeds"] == 2).all()
    assert frame["test_acc"].tolist() == pytest.approx([a + 0.5 for a in acc])  # mean over 777, 888
    assert frame["train_acc"].tolist() == pytest.approx([90.0 + (777 % 7 + 888 % 7) / 2] * 5)
    assert frame["params"].tolist() == pytest.approx([0.1, 1.1, 2.1, 3.1, 4.1])
    assert frame["valid_acc"].isna().all()
    assert nb201_api.accuracies(tmp_path / "nb.pth", dataset="cifar100")["test_acc"].tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="no results for dataset 'ImageNet16-120'"):
        nb201_api.accuracies(tmp_path / "nb.pth", dataset="ImageNet16-120")
    with pytest.raises(ValueError, match="hp must be one of"):
        nb201_api.accuracies(tmp_path / "nb.pth", hp="100")


def test_nb201_file_reader_refuses_objects_unless_trusted(tmp_path, capsys):
    archs = nb201.all_archs()[:3]
    _nb201_file(tmp_path / "obj.pth", archs, [1.0, 2.0, 3.0], extra=Custom())
    with pytest.raises(ValueError, match="--trust-file"):
        nb201_api.accuracies(tmp_path / "obj.pth")
    assert len(nb201_api.accuracies(tmp_path / "obj.pth", allow_pickle=True)) == 3
    with pytest.raises(ValueError, match="not found; pass the path"):
        nb201_api.accuracies(tmp_path / "absent.pth")
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="is not a NAS-Bench-201 benchmark file"):
        nb201_api.accuracies(tmp_path / "other.pth")
    assert main(["correlate", str(tmp_path), "--truth", f"nb201-file:{tmp_path / 'absent.pth'}"]) == 2
    assert "not found" in capsys.readouterr().err


def test_correlate_command_end_to_end(tmp_path, capsys):
    archs = nb201.unique_archs()[::700][:8]
    run = tmp_path / "run"
    space_scoring.score_space(run, archs, proxies=["params", "grad_norm"], data="digits", batch=8, seed=0,
                              C=2, N=1, progress=False)
    rng = np.random.default_rng(3)
    acc = rng.uniform(50, 95, size=len(archs)).tolist()
    _nb201_file(tmp_path / "nb.pth", archs, acc)
    code = main(["correlate", str(run), "--truth", f"nb201-file:{tmp_path / 'nb.pth'}", "--n-boot", "200",
                 "--top", "0.25"])
    assert code == 0
    printed = capsys.readouterr().out
    text = (run / "correlation.md").read_text()
    assert text in printed and "over 8 architectures" in text and "n_boot=200" in text
    truth = np.array(acc) + 0.5
    scores = space_scoring.space_table(run, expand=False).set_index("arch").loc[list(archs)]
    size = np.log(0.1 + np.arange(len(archs)))  # the file's params column (millions), by index
    flops = 1.0 + np.arange(len(archs))
    for name, label, values in (("params", "params (size reference)", scores["params"]),
                                ("grad_norm", "grad_norm", scores["grad_norm"]), ("flops", "flops (size reference)", flops)):
        rho = stats.spearman(values, truth)
        low, high = stats.correlation_ci(np.asarray(values), truth, "spearman", n_boot=200, seed=0).ci
        partial = stats.correlation_ci(np.asarray(values), truth, "spearman", covariate=size, n_boot=200, seed=0)
        assert f"| {label} | 8 | {rho:.3f} [{low:.3f}, {high:.3f}] |" in text
        assert f"| {partial.format()} |" in text
    summary = pd.read_json(run / "correlation.json")
    # params and grad_norm from the run; flops, which it did not score, from the benchmark
    assert summary["proxy"].tolist() == ["params", "grad_norm", "flops"]
    assert summary["reference"].tolist() == [True, False, True]
    assert summary.loc[1, "partial_spearman"] == pytest.approx(stats.partial_spearman(scores["grad_norm"], truth, size))
    assert summary.loc[1, "partial_kendall"] == pytest.approx(stats.partial_kendall(scores["grad_norm"], truth, size))
    assert "partial ρ and τ control for log params (the benchmark)" in text
    assert math.isclose(summary.loc[0, "top_k_precision"],
                        stats.top_k_precision(scores["params"], truth, 0.25))
    for name in ("correlation_scatter", "correlation_rho"):
        for ext in ("png", "pdf"):
            assert (run / f"{name}.{ext}").stat().st_size > 1000
    # a loss-like metric: ranked by its negative, so ρ flips sign
    assert main(["correlate", str(run), "--truth", f"nb201-file:{tmp_path / 'nb.pth'}", "--n-boot", "50",
                 "--lower-is-better", "--no-figures", "--out", str(tmp_path / "neg")]) == 0
    flipped = pd.read_json(tmp_path / "neg" / "correlation.json")
    assert flipped["spearman"].tolist() == pytest.approx([-v for v in summary["spearman"]])
    assert "-test_acc over 8 architectures" in (tmp_path / "neg" / "correlation.md").read_text()


def test_correlate_bad_input_names_the_problem(tmp_path, capsys):
    archs = nb201.unique_archs()[::700][:5]
    run = tmp_path / "run"
    space_scoring.score_space(run, archs, proxies=["grad_norm"], data="digits", batch=8, seed=0, C=2, N=1,
                              progress=False)
    _nb201_file(tmp_path / "nb.pth", archs, [50.0, 60.0, 70.0, 80.0, 90.0])
    truth = ["--truth", f"nb201-file:{tmp_path / 'nb.pth'}", "--n-boot", "20", "--no-figures"]
    assert main(["correlate", str(run), *truth, "--proxies", "grad_norm,zen"]) == 2
    assert "--proxies 'grad_norm,zen': ['zen'] is not a proxy column of run" in capsys.readouterr().err
    assert main(["correlate", str(run), *truth, "--size", "n_weights"]) == 2
    assert "--size column 'n_weights' for the partial correlations is neither" in capsys.readouterr().err
    few = tmp_path / "few"
    _nb201_file(tmp_path / "two.pth", archs[:2], [50.0, 60.0])
    space_scoring.score_space(few, archs[:2], proxies=["grad_norm"], data="digits", batch=8, seed=0, C=2, N=1,
                              progress=False)
    assert main(["correlate", str(few), "--truth", f"nb201-file:{tmp_path / 'two.pth'}", "--no-figures"]) == 2
    assert "only 2 architectures of the run have a ground truth" in capsys.readouterr().err
    # the size control from a proxy of the run when the truth has no such column
    assert main(["correlate", str(run), *truth, "--size", "grad_norm", "--out", str(tmp_path / "own")]) == 0
    assert "control for log grad_norm (the run)" in (tmp_path / "own" / "correlation.md").read_text()


def test_toy_benchmark_is_seeded_and_marked_synthetic():
    a, b = toy_benchmark(6, seed=2), toy_benchmark(6, seed=2)
    assert a.archs == b.archs and np.array_equal(a.test_acc, b.test_acc) and a.synthetic
    convs = np.array([nb201_digits.conv_edges(arch) for arch in a.archs])
    noise = a.test_acc - (0.2 + 0.1 * convs)
    assert ((noise >= 0) & (noise < 0.05)).all()
    assert load_benchmark("toy").synthetic
    with pytest.raises(ValueError, match="benchmark must be one of"):
        load_benchmark("cifar")
    small = a.subset(4, seed=1)
    assert len(small.archs) == 4 and set(small.archs) <= set(a.archs) and "subset of 4" in small.description
    with pytest.raises(ValueError, match="max_archs must be an integer >= 4"):
        a.subset(3, seed=1)


def test_benchmarks_hold_accuracies_as_fractions(tmp_path):
    bench = load_benchmark("nb201-digits")
    assert np.array_equal(bench.test_acc, nb201_digits.load()["test_acc"].to_numpy())
    assert bench.reliability().format() in bench.reliability_note()
    archs = nb201.all_archs()[::3125]
    _nb201_file(tmp_path / "nb.pth", archs, [70.0, 80.0, 60.0, 90.0, 85.0])
    from_file = file_benchmark(str(tmp_path / "nb.pth"))
    assert from_file.test_acc.tolist() == pytest.approx([0.705, 0.805, 0.605, 0.905, 0.855])
    assert from_file.column("train_acc").max() <= 1 and from_file.reliability() is None
    with pytest.raises(ValueError, match="column 'loss' is not in benchmark nb201-file"):
        from_file.column("loss")
