"""empirical.search: the searches on hand-built tables (distinct evaluations, budgets,
determinism, perfect assistance finds the best), mutation by Hamming distance, and the
summary of runs against a direct computation."""
import numpy as np
import pytest

from empirical import search
from empirical.search import _mutants, op_matrix, random_search, regularized_evolution, run_search
from empirical.spaces import nb201
from empirical.stats import mean_ci, proportion_ci

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
    with pytest.raises(ValueError, match="algorithm must be one of"):
        run_search("annealing", accuracy, accuracy, ops, budget=3, candidates=1, runs=1, seed=0)


def test_summary_of_runs_and_the_top_threshold():
    accuracy = np.array([0.1, 0.9, 0.8, 0.9, 0.5])
    threshold, k = search.top_threshold(accuracy, 0.4)  # k = ceil(0.4 * 5) = 2: the 2nd best, a tie
    assert (threshold, k) == (0.9, 2)
    curves = {"a": np.array([[0.1, 0.9], [0.5, 0.8], [0.8, 0.9]]), "b": np.array([[0.5, 0.5], [0.1, 0.1]])}
    table = search.summarise_runs(curves, threshold, n_boot=50, seed=1).set_index("method")
    best_a = np.array([0.9, 0.8, 0.9])
    assert table.loc["a", "mean"] == pytest.approx(best_a.mean()) and table.loc["a", "std"] == pytest.approx(
        best_a.std(ddof=1))
    assert table.loc["a", "top1_fraction"] == pytest.approx(2 / 3)
    assert (table.loc["a", "mean_low"], table.loc["a", "mean_high"]) == mean_ci(best_a, n_boot=50, seed=1).ci
    assert (table.loc["b", "top1_low"], table.loc["b", "top1_high"]) == proportion_ci(0, 2).ci
    band = search.curve_table(curves).set_index(["method", "evaluations"])
    assert band.loc[("a", 2), "mean"] == pytest.approx(best_a.mean())
    assert band.loc[("a", 2), "high"] - band.loc[("a", 2), "mean"] == pytest.approx(
        1.96 * best_a.std(ddof=1) / np.sqrt(3))
