"""empirical.search: the searches on hand-built tables (distinct evaluations, budgets,
determinism, perfect assistance finds the best), mutation by Hamming distance, and the
summary of runs against a direct computation."""
import numpy as np
import pytest

from empirical import search
from empirical.search import (ReinforcePolicy, _mutants, _nearest, bohb, op_matrix, policy_gradient, random_search,
                              regularized_evolution, reinforce, run_search, table_policy)
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
    ops = op_matrix(nb201.unique_archs()[:50])
    trace = random_search(accuracy, np.zeros(50), ops, 50, 1, np.random.default_rng(2))
    assert sorted(trace.tolist()) == sorted(accuracy.tolist())  # every arch exactly once
    # A proxy equal to the truth with N = K candidates evaluates the best arch first.
    assisted = random_search(accuracy, accuracy, ops, 3, 50, np.random.default_rng(3))
    assert assisted[0] == accuracy.max()
    with pytest.raises(ValueError, match="budget"):
        random_search(accuracy, accuracy, ops, 51, 1, rng)


def test_rea_budget_determinism_and_perfect_assistance():
    archs = nb201.unique_archs()[:200]
    ops = op_matrix(archs)
    accuracy = np.random.default_rng(4).uniform(size=200)
    curves = run_search("rea", accuracy, accuracy, ops, budget=30, candidates=1, runs=5, seed=9, population=10, sample=5)
    again = run_search("rea", accuracy, accuracy, ops, budget=30, candidates=1, runs=5, seed=9)  # the defaults
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


# ----------------------------------------------------------------------------- REINFORCE


def _log_policy(theta, ops, k):
    """log π(k) written out: s_k − log Σ_j exp(s_j), s_j = Σ_e θ[e, op_e(j)]."""
    s = [sum(theta[e, ops[j, e]] for e in range(ops.shape[1])) for j in range(len(ops))]
    return s[k] - np.log(np.sum(np.exp(s)))


def test_table_policy_and_its_gradient_against_the_formula_and_finite_differences():
    ops = op_matrix(ARCHS[:3])
    theta = np.random.default_rng(0).normal(size=(6, 5))
    pi = table_policy(theta, ops)
    assert pi == pytest.approx([np.exp(_log_policy(theta, ops, k)) for k in range(3)], abs=1e-12)
    grad = policy_gradient(pi, ops, 1, 5)
    numeric = np.zeros_like(theta)
    for e in range(6):
        for o in range(5):
            step = np.zeros_like(theta)
            step[e, o] = 1e-6
            numeric[e, o] = (_log_policy(theta + step, ops, 1) - _log_policy(theta - step, ops, 1)) / 2e-6
    assert grad == pytest.approx(numeric, abs=1e-7)


def test_reinforce_policy_update_by_hand():
    """Two architectures that differ on edge 0 only (none vs skip). Step 1: the baseline is
    the first reward itself, so no update. Step 2 by hand: π = softmax of θ's edge-0 logits,
    advantage r2 − b2 with the bias-corrected EMA b2 = (0.9·0.1·r1 + 0.1·r2) / (0.9·0.1 + 0.1),
    and Adam after a zero first gradient: m̂ = 0.1 g / (1 − 0.9²), v̂ = 0.001 g² / (1 − 0.999²), so
    each moved logit steps by lr · (0.1 / 0.19) / sqrt(0.001 / 0.001999) ≈ 0.744 lr towards the reward."""
    ops = op_matrix(ARCHS[:2])
    accuracy = np.array([0.3, 0.9])
    lr = 0.05
    rng = np.random.default_rng(1)
    trace = reinforce(accuracy, np.zeros(2), ops, 3, 1, rng, lr=lr, momentum=0.9)
    # Replay the same stream by hand.
    hand = np.random.default_rng(1)
    theta = 1e-3 * hand.standard_normal((6, 5))
    before_gap = theta[0, 1] - theta[0, 0]
    pi = np.exp(theta[0, [0, 1]]) / np.exp(theta[0, [0, 1]]).sum()  # the other edges cancel
    a1 = hand.choice(2, size=1, p=pi)[0]
    a2 = hand.choice(2, size=1, p=pi)[0]
    r1, r2 = accuracy[a1], accuracy[a2]
    b2 = (0.9 * 0.1 * r1 + 0.1 * r2) / (0.9 * 0.1 + 0.1)
    g = np.zeros((6, 5))
    g[0, ops[a2, 0]] += (r2 - b2) * 1.0
    g[0, 0] -= (r2 - b2) * pi[0]
    g[0, 1] -= (r2 - b2) * pi[1]
    # Step 1 had g = 0, so Adam's moments after step 2 are 0.1·g and 0.001·g²; bias-corrected
    # over two steps they are g·0.1/(1 − 0.81) and g²·0.001/(1 − 0.999²).
    m_hat, v_hat = 0.1 * g / (1 - 0.9 ** 2), 0.001 * g * g / (1 - 0.999 ** 2)
    theta = theta + lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    before = pi
    pi = np.exp(theta[0, [0, 1]]) / np.exp(theta[0, [0, 1]]).sum()
    a3 = hand.choice(2, size=1, p=pi)[0]
    assert trace.tolist() == [r1, r2, accuracy[a3]]
    # This stream draws the worse architecture first, then the better one: both edge-0
    # logits move by that step, towards the better one.
    assert (a1, a2) == (0, 1) and r2 > b2
    step = lr * (0.1 / 0.19) / np.sqrt(0.001 / (1 - 0.999 ** 2))
    assert theta[0, 1] - theta[0, 0] == pytest.approx(before_gap + 2 * step, abs=1e-6)
    assert pi[1] > before[1]
    # The policy object itself, fed the same two steps, holds exactly the hand's θ.
    policy = ReinforcePolicy(ops, 1e-3 * np.random.default_rng(1).standard_normal((6, 5)), lr=lr, momentum=0.9)
    start = policy.theta.copy()
    policy.update(0, r1)
    assert np.array_equal(policy.theta, start) and policy.baseline() == pytest.approx(r1)
    policy.update(1, r2)
    assert policy.baseline() == pytest.approx(b2)
    assert policy.theta == pytest.approx(theta, abs=1e-12)


def test_reinforce_is_deterministic_respects_the_budget_and_learns():
    archs = nb201.unique_archs()[:300]
    ops = op_matrix(archs)
    accuracy = (ops == nb201.OPS.index("nor_conv_3x3")).sum(axis=1) / 6.0  # reward: conv3x3 edges
    a = reinforce(accuracy, np.zeros(300), ops, 200, 1, np.random.default_rng(1), lr=0.1)
    b = reinforce(accuracy, np.zeros(300), ops, 200, 1, np.random.default_rng(1), lr=0.1)
    assert len(a) == 200 and np.array_equal(a, b)
    assert a[-50:].mean() > a[:50].mean() + 0.1  # the policy moved towards conv3x3 edges
    # Vanilla ignores the score; assisted (N large, score = truth) evaluates the best drawn.
    other = reinforce(accuracy, np.random.default_rng(9).normal(size=300), ops, 200, 1, np.random.default_rng(1),
                      lr=0.1)
    assert np.array_equal(a, other)
    best = reinforce(accuracy, accuracy, ops, 5, 300, np.random.default_rng(2))
    assert best[0] == accuracy.max()


# ----------------------------------------------------------------------------- BOHB


def test_bohb_maps_proposals_to_the_nearest_table_architecture():
    ops = op_matrix(ARCHS)
    assert _nearest(np.array([1, 0, 0, 0, 0, 0]), ops, np.random.default_rng(0)) == 1  # in the table
    assert _nearest(np.array([3, 3, 3, 3, 3, 0]), ops, np.random.default_rng(0)) == 3  # one edge off
    picks = {_nearest(np.array([1, 1, 1, 1, 1, 1]), ops, np.random.default_rng(s)) for s in range(30)}
    assert picks == {2}  # distance 4 from arch 2, 5 from arch 1, 6 from arches 0 and 3


def test_bohb_is_deterministic_respects_the_budget_and_its_model_helps():
    archs = nb201.unique_archs()[:400]
    ops = op_matrix(archs)
    accuracy = (ops == nb201.OPS.index("nor_conv_3x3")).sum(axis=1) / 6.0
    a = bohb(accuracy, np.zeros(400), ops, 30, 1, np.random.default_rng(3))
    assert len(a) == 30 and np.array_equal(a, bohb(accuracy, np.zeros(400), ops, 30, 1, np.random.default_rng(3)))
    other = bohb(accuracy, np.random.default_rng(9).normal(size=400), ops, 30, 1, np.random.default_rng(3))
    assert np.array_equal(a, other)  # vanilla ignores the score
    # After the 7 random points the model proposes better architectures than uniform draws.
    model = np.mean([bohb(accuracy, np.zeros(400), ops, 30, 1, np.random.default_rng(s))[7:].mean() for s in range(6)])
    assert model > accuracy.mean() + 0.1
    best = bohb(accuracy, accuracy, ops, 3, 400, np.random.default_rng(5))
    assert best[0] == accuracy.max()  # assisted: 400 uniform candidates, the top-score one evaluated
    curves = run_search("bohb", accuracy, accuracy, ops, budget=10, candidates=2, runs=2, seed=1)
    assert curves.shape == (2, 10) and np.all(np.diff(curves, axis=1) >= 0)
