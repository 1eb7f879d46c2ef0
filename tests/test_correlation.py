"""Rank statistics against scipy, the bootstrap against a literal resampling loop, top-k
precision by hand, and the correlate command end to end on a small scored run."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from empirical import correlation


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(7)
    x = rng.normal(size=60)
    y = 0.6 * x + rng.normal(size=60)
    x[::7] = np.round(x[::7], 0)  # some ties
    y[::5] = np.round(y[::5], 0)
    return x, y


def test_spearman_and_kendall_equal_scipy(pairs):
    x, y = pairs
    assert correlation.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert correlation.kendall(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_nan_pairs_are_dropped_and_constant_is_undefined(pairs):
    x, y = pairs[0].copy(), pairs[1].copy()
    x[3], y[10] = np.nan, np.nan
    keep = ~(np.isnan(x) | np.isnan(y))
    assert correlation.spearman(x, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    out = correlation.rank_correlations(x, y, n_boot=50)
    assert out["n"] == 58 and out["n_nan"] == 2
    assert math.isnan(correlation.spearman(np.ones(5), np.arange(5)))


def test_bootstrap_ci_equals_a_literal_resampling_loop(pairs):
    x, y = pairs
    low, high, undefined = correlation.bootstrap_ci(x, y, "spearman", n_boot=300, seed=11)
    rng = np.random.default_rng(11)
    index = rng.integers(0, len(x), size=(300, len(x)))
    values = np.array([stats.spearmanr(x[i], y[i]).statistic for i in index])
    assert undefined == 0
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)
    k_low, k_high, _ = correlation.bootstrap_ci(x, y, "kendall", n_boot=100, seed=2)
    rng = np.random.default_rng(2)
    index = rng.integers(0, len(x), size=(100, len(x)))
    values = np.array([stats.kendalltau(x[i], y[i]).statistic for i in index])
    assert (k_low, k_high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)
    assert low < correlation.spearman(x, y) < high
    # same seed, same interval
    assert correlation.bootstrap_ci(x, y, "spearman", n_boot=300, seed=11)[:2] == (low, high)


def test_top_k_precision_by_hand():
    truth = [0.9, 0.1, 0.8, 0.7, 0.2, 0.3, 0.6, 0.5, 0.4, 0.05]
    score = [10, 9, 1, 8, 2, 3, 7, 4, 5, 6]
    # k = ceil(0.3 * 10) = 3; top truth: idx {0, 2, 3}; top score: idx {0, 1, 3} -> overlap 2
    assert correlation.top_k_precision(score, truth, 0.3) == pytest.approx(2 / 3)
    # k = ceil(0.1 * 10) = 1: idx 0 in both
    assert correlation.top_k_precision(score, truth, 0.1) == 1.0
    # ties broken by position: scores all equal -> the first k positions
    assert correlation.top_k_precision([1] * 4, [4, 3, 2, 1], 0.5) == 1.0
    assert correlation.top_k_precision([1] * 4, [1, 2, 3, 4], 0.5) == 0.0
    with pytest.raises(ValueError, match="fraction must be in"):
        correlation.top_k_precision(score, truth, 0)


def test_top_half_and_study(pairs):
    x, y = pairs
    mask = correlation.top_half(y)
    assert mask.sum() == 30 and y[mask].min() >= y[~mask].max()
    frame = pd.DataFrame({"a": x, "b": -x, "truth": y})
    summary = correlation.study(frame, ["a", "b"], "truth", n_boot=100, seed=0)
    assert summary["spearman"].tolist() == pytest.approx([correlation.spearman(x, y), -correlation.spearman(x, y)])
    assert summary.loc[0, "top_half_spearman"] == pytest.approx(stats.spearmanr(x[mask], y[mask]).statistic)
    assert summary.loc[0, "top_half_n"] == 30
    text = correlation.to_markdown(summary)
    assert text.splitlines()[0].startswith("| proxy | n | Spearman ρ [95% CI]")
    assert f"| a | 60 | {summary.loc[0, 'spearman']:.3f} [" in text
    with pytest.raises(ValueError, match=r"columns \['c'\] are not in the table"):
        correlation.study(frame, ["c"], "truth")


def test_figures_draw_from_the_tables(pairs):
    import matplotlib

    matplotlib.use("Agg")
    from figures.correlation import proxy_scatter, rho_bars

    x, y = pairs
    frame = pd.DataFrame({"a": np.exp(4 * x), "b": x, "truth": y})
    summary = correlation.study(frame, ["a", "b"], "truth", n_boot=50)
    fig = proxy_scatter(frame, ["a", "b"], "truth", rho=dict(zip(summary.proxy, summary.spearman)))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and axes[0].get_xscale() == "symlog" and axes[1].get_xscale() == "linear"
    assert len(axes[0].collections[0].get_offsets()) == 60
    bars = rho_bars(summary)
    heights = [patch.get_width() for patch in bars.axes[0].patches]
    assert heights == pytest.approx(summary["spearman"].tolist())
