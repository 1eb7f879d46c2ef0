"""paper_repro: every entry at toy size, and the statistics and searches they rest on,
each checked against an independent route (scipy, hand-built cases, direct scoring)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import paper_repro
import proxies
from empirical.scoring import NetworkSpec, build_network, scoring_batch
from empirical.store import ResultsStore
from paper_repro import paper_numbers
from paper_repro.__main__ import main
from paper_repro.common import load_benchmark, toy_benchmark
from paper_repro.scores import initialise, score_archs
from paper_repro.search import _mutants, op_matrix, random_search, regularized_evolution, run_search
from paper_repro.stats import claim_verdict, mean_difference_ci, paired_spearman_difference, proportion_ci

ENTRIES = ["rank-correlation", "batch-size", "init", "assisted-search", "landscape-illustration"]


# ----------------------------------------------------------------------------- entries


@pytest.fixture(scope="module")
def shared_scores(tmp_path_factory):
    return tmp_path_factory.mktemp("scores")


def _run(entry, out, scores, *extra):
    assert main([entry, "--toy", "--out", str(out), "--scores", str(scores), "--no-progress", *extra]) == 0
    return (out / "report.md").read_text()


def test_registry_lists_every_entry():
    assert paper_repro.names() == ENTRIES
    with pytest.raises(ValueError, match="unknown entry 'nope'"):
        paper_repro.get("nope")


def test_rank_correlation_toy(tmp_path, shared_scores):
    text = _run("rank-correlation", tmp_path, shared_scores, "--proxies", "gradsign,snip,synflow")
    for needle in ("## Settings", "seed", "bootstrap", "95%", "Decision rule", "SYNTHETIC",
                   "not yet checked against the paper"):
        assert needle in text
    assert any(f"): {v.upper()}**" in text for v in ("held", "did not hold", "within noise"))
    assert (tmp_path / "correlations.png").stat().st_size > 0
    table = pd.read_csv(tmp_path / "correlations.csv").set_index("proxy")
    scores = pd.read_csv(tmp_path / "scores.csv")
    # Independent route: scipy's Spearman and Kendall on the saved scores.
    for name in ("gradsign", "snip", "synflow"):
        assert table.loc[name, "spearman"] == pytest.approx(stats.spearmanr(scores[name], scores["accuracy"])[0])
        assert table.loc[name, "kendall"] == pytest.approx(stats.kendalltau(scores[name], scores["accuracy"])[0])
        assert table.loc[name, "spearman_low"] <= table.loc[name, "spearman"] <= table.loc[name, "spearman_high"]
    delta = table.loc["gradsign", "spearman"] - table.loc["snip", "spearman"]
    assert table.loc["snip", "delta"] == pytest.approx(delta)


def test_batch_size_toy(tmp_path, shared_scores):
    text = _run("batch-size", tmp_path, shared_scores)
    assert "| n |" in text and "reference" in text and "SYNTHETIC" in text
    table = pd.read_csv(tmp_path / "rho_by_n.csv")
    assert table["batch"].tolist() == [4, 8, 16]
    scores = pd.read_csv(tmp_path / "scores.csv")
    for n, rho in zip(table["batch"], table["spearman"]):
        assert rho == pytest.approx(stats.spearmanr(scores[f"gradsign_batch_{n}"], scores["accuracy"])[0])
    assert (tmp_path / "rho_by_n.png").exists()


def test_init_toy(tmp_path, shared_scores):
    text = _run("init", tmp_path, shared_scores)
    assert "kaiming" in text and "xavier" in text
    scores = pd.read_csv(tmp_path / "scores.csv")
    # Different schemes give different networks, hence different scores.
    assert not np.allclose(scores["gradsign_init_default"], scores["gradsign_init_kaiming"])


def test_assisted_search_toy(tmp_path, shared_scores):
    text = _run("assisted-search", tmp_path, shared_scores, "--runs", "12")
    assert "random search + GradSign (N=3)" in text and "REA + GradSign (N=3)" in text
    assert "Wilson" in text and "12 per method" in text
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("method")
    runs = pd.read_csv(tmp_path / "runs.csv")
    for method, best in runs.groupby("method")["best"]:
        assert summary.loc[method, "mean"] == pytest.approx(best.mean())
        assert summary.loc[method, "std"] == pytest.approx(best.std(ddof=1))


def test_landscape_toy(tmp_path, shared_scores):
    text = _run("landscape-illustration", tmp_path, shared_scores)
    assert "Dense network" in text and "Ψ_2" in text
    population = pd.read_csv(tmp_path / "population.csv")
    assert population["Ψ_2"].is_monotonic_increasing
    assert (tmp_path / "landscape.png").exists()


def test_landscape_from_an_existing_store(tmp_path, shared_scores):
    first = tmp_path / "first"
    _run("landscape-illustration", first, shared_scores)
    text = _run("landscape-illustration", tmp_path / "second", shared_scores, "--store", str(first / "population"))
    assert "bound-validation run" in text


def test_gradsign_repro_command_routes_to_the_entry(tmp_path, shared_scores):
    from empirical.cli import main as cli_main

    assert cli_main(["repro", "assisted-search", "--toy", "--out", str(tmp_path), "--scores", str(shared_scores),
                     "--runs", "4", "--no-progress"]) == 0
    assert (tmp_path / "report.md").exists()


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert main(["rank-correlation", "--toy", "--out", str(tmp_path), "--proxies", "snip,synflow"]) == 2
    assert "--proxies must include gradsign" in capsys.readouterr().err
    assert main(["batch-size", "--toy", "--out", str(tmp_path), "--sizes", "8,8"]) == 2
    assert "--sizes" in capsys.readouterr().err


# ----------------------------------------------------------------------------- scores


def test_score_archs_matches_direct_scoring_and_caches(tmp_path):
    bench = toy_benchmark(4, seed=1)
    kwargs = dict(store_dir=tmp_path, C=4, N=1, data="digits", batch=8, seed=3)
    frame = score_archs(bench.archs, ["gradsign"], progress=False, **kwargs)
    from empirical import data as datasets

    split = datasets.load("digits", seed=0)
    for arch, value in zip(bench.archs, frame["gradsign"]):
        torch.manual_seed(3)
        model = build_network(NetworkSpec("nb201", arch=arch, C=4, N=1), split, 3)
        x, y = scoring_batch(split, 8, 3, flat=False)
        assert value == proxies.gradsign(model, x, y)
    with ResultsStore(tmp_path) as store:
        rows = len(store)
    again = score_archs(list(reversed(bench.archs)), ["gradsign"], progress=False, **kwargs)
    assert again["gradsign"].tolist() == frame["gradsign"].tolist()[::-1]
    with ResultsStore(tmp_path) as store:
        assert len(store) == rows


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


def test_toy_benchmark_is_seeded_and_marked_synthetic():
    a, b = toy_benchmark(6, seed=2), toy_benchmark(6, seed=2)
    assert a.archs == b.archs and np.array_equal(a.accuracy, b.accuracy) and a.synthetic
    assert load_benchmark("toy").synthetic
    with pytest.raises(ValueError, match="benchmark must be one of"):
        load_benchmark("cifar")


# ----------------------------------------------------------------------------- statistics


def test_paired_difference_matches_a_literal_bootstrap_loop():
    rng = np.random.default_rng(5)
    truth = rng.normal(size=40)
    a = truth + rng.normal(scale=0.5, size=40)
    b = truth + rng.normal(scale=1.5, size=40)
    delta, low, high = paired_spearman_difference(a, b, truth, n_boot=300, seed=7)
    # The same resampling, written out: index rows from default_rng(seed).integers.
    index = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    values = [stats.spearmanr(a[i], truth[i])[0] - stats.spearmanr(b[i], truth[i])[0] for i in index]
    assert delta == pytest.approx(stats.spearmanr(a, truth)[0] - stats.spearmanr(b, truth)[0])
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert low > 0  # a tracks the truth much more closely than b


def test_paired_difference_drops_undefined_items():
    a = np.array([1.0, 2, 3, np.nan, 5])
    b = np.array([5.0, 4, 3, 2, 1])
    t = np.array([1.0, 2, 3, 4, 5])
    delta, _, _ = paired_spearman_difference(a, b, t, n_boot=20)
    assert delta == pytest.approx(2.0)


@pytest.mark.parametrize("diffs, expected", [
    ({"a": (0.2, 0.1, 0.3), "b": (0.1, 0.01, 0.2)}, "held"),
    ({"a": (0.2, 0.1, 0.3), "b": (-0.1, -0.2, -0.01)}, "did not hold"),
    ({"a": (0.2, 0.1, 0.3), "b": (0.0, -0.1, 0.1)}, "within noise"),
    ({"a": (0.2, -0.1, 0.3), "b": (-0.2, -0.4, -0.1)}, "did not hold"),
])
def test_claim_verdict(diffs, expected):
    assert claim_verdict(diffs) == expected


def test_mean_difference_ci_against_the_normal_approximation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(0.7, 2.0, 400)
    delta, low, high = mean_difference_ci(a, b, n_boot=4000, seed=1)
    se = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert delta == pytest.approx(a.mean() - b.mean())
    # For large samples the percentile bootstrap agrees with delta ± 1.96 se.
    assert low == pytest.approx(delta - 1.96 * se, abs=0.15 * se * 1.96)
    assert high == pytest.approx(delta + 1.96 * se, abs=0.15 * se * 1.96)


def test_proportion_ci_is_wilson():
    low, high = proportion_ci(7, 20)
    p, n, z = 7 / 20, 20, stats.norm.ppf(0.975)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))


# ----------------------------------------------------------------------------- searches


ARCHS = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]


def test_op_matrix_and_nearest_mutants():
    ops = op_matrix(ARCHS)
    assert ops.shape == (4, 6) and ops[0].tolist() == [0] * 6 and ops[3].tolist() == [3] * 6
    rng = np.random.default_rng(0)
    # Hamming distances from arch 0: 1 (arch 1), 2 (arch 2), 6 (arch 3).
    assert set(_mutants(0, ops, 50, rng).tolist()) == {1}
    # From arch 3 every other arch differs on all 6 edges: all are nearest.
    assert set(_mutants(3, ops, 200, rng).tolist()) == {0, 1, 2}
    # From arch 1: arch 0 and arch 2 are both at distance 1.
    assert set(_mutants(1, ops, 200, rng).tolist()) == {0, 2}


def test_random_search_evaluates_distinct_archs_and_perfect_assistance_finds_the_best():
    rng = np.random.default_rng(1)
    accuracy = rng.uniform(size=50)
    trace = random_search(accuracy, np.zeros(50), 50, 1, np.random.default_rng(2))
    assert sorted(trace.tolist()) == sorted(accuracy.tolist())  # every arch exactly once
    # A proxy equal to the truth with N = K candidates evaluates the best arch first.
    assisted = random_search(accuracy, accuracy, 3, 50, np.random.default_rng(3))
    assert assisted[0] == accuracy.max()
    with pytest.raises(ValueError, match="budget"):
        random_search(accuracy, accuracy, 51, 1, rng)


def test_rea_budget_determinism_and_perfect_assistance():
    from empirical.spaces import nb201

    archs = nb201.unique_archs()[:200]
    ops = op_matrix(archs)
    accuracy = np.random.default_rng(4).uniform(size=200)
    curves = run_search("rea", accuracy, accuracy, ops, budget=30, candidates=1, runs=5, seed=9)
    again = run_search("rea", accuracy, accuracy, ops, budget=30, candidates=1, runs=5, seed=9)
    assert curves.shape == (5, 30) and np.array_equal(curves, again)
    assert np.all(np.diff(curves, axis=1) >= 0)  # best-so-far never decreases
    best = run_search("rea", accuracy, accuracy, ops, budget=30, candidates=200, runs=3, seed=9)
    assert np.all(best[:, 0] == accuracy.max())  # the first member is the top-proxy arch
    trace = regularized_evolution(accuracy, accuracy, ops, 12, 1, np.random.default_rng(0), population=4, sample=2)
    assert len(trace) == 12
    with pytest.raises(ValueError, match="sample <= population <= budget"):
        regularized_evolution(accuracy, accuracy, ops, 3, 1, np.random.default_rng(0), population=4, sample=2)


# ----------------------------------------------------------------------------- paper numbers


def test_paper_numbers_cover_the_proxies_and_cite_their_source():
    from paper_repro.rank_correlation import PROXIES

    for name in PROXIES:
        number = paper_numbers.spearman(name)
        assert 0 < number.value < 1 and "Table 2" in number.source
    assert paper_numbers.spearman("naswot") is None
    assert "not yet checked" in paper_numbers.source_note(paper_numbers.spearman("gradsign"))
    assert json.dumps(paper_numbers.ASSISTED_NAS_CLAIM["max_improvement_points"])


def test_rank_correlation_on_a_user_nb201_file(tmp_path):
    """A small file in NAS-Bench-201's layout: the entry reads its accuracies, scores the
    networks on random CIFAR-shaped inputs and correlates."""
    from empirical.spaces import nb201

    archs = nb201.unique_archs()[100:106]
    rng = np.random.default_rng(0)
    infos = {}
    for i in range(len(archs)):
        result = {"params": 1.0, "flop": 1.0, "train_acc1es": {199: 90.0},
                  "eval_acc1es": {"ori-test@199": float(rng.uniform(50, 90))}}
        infos[i] = {"full": {"all_results": {("cifar10", 777): result}}}
    path = tmp_path / "nb201.pth"
    torch.save({"meta_archs": archs, "arch2infos": infos}, path)
    out = tmp_path / "out"
    assert main(["rank-correlation", "--nb201-file", str(path), "--nb201-C", "2", "--nb201-N", "1", "--batch", "4",
                 "--proxies", "gradsign,synflow", "--n-boot", "50", "--out", str(out), "--no-progress"]) == 0
    text = (out / "report.md").read_text()
    assert "NAS-Bench-201 file" in text and "random-cifar" in text
    scores = pd.read_csv(out / "scores.csv")
    expected = [infos[i]["full"]["all_results"][("cifar10", 777)]["eval_acc1es"]["ori-test@199"] / 100
                for i in range(len(archs))]
    assert sorted(scores["accuracy"]) == pytest.approx(sorted(expected))
