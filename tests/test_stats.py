"""empirical.stats: rank statistics against scipy, partial correlations against their
residual and literal-formula routes, every bootstrap against a literal resampling loop,
the Wilson interval against its closed form, top-k precision by hand, and the tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from empirical import stats
from figures.correlation import proxy_scatter, rho_bars


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(7)
    x = rng.normal(size=60)
    y = 0.6 * x + rng.normal(size=60)
    x[::7] = np.round(x[::7], 0)  # some ties
    y[::5] = np.round(y[::5], 0)
    return x, y


@pytest.fixture(scope="module")
def triples():
    """y depends on x mostly through a shared size-like covariate z."""
    rng = np.random.default_rng(11)
    z = rng.lognormal(size=80)
    x = np.log(z) + 0.7 * rng.normal(size=80)
    y = np.log(z) + 0.3 * x + rng.normal(size=80)
    x[::9] = np.round(x[::9])  # ties
    return x, y, z


# ----------------------------------------------------------------------------- correlations


def test_spearman_and_kendall_equal_scipy(pairs):
    x, y = pairs
    assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert stats.kendall(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)


def test_nonfinite_pairs_are_dropped_and_constant_is_undefined(pairs):
    x, y = pairs[0].copy(), pairs[1].copy()
    x[3], y[10] = np.nan, np.inf
    keep = np.isfinite(x) & np.isfinite(y)
    assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    out = stats.rank_correlations(x, y, n_boot=50)
    assert out["n"] == 58 and out["n_nan"] == 2
    assert math.isnan(stats.spearman(np.ones(5), np.arange(5)))


def _residuals(v, z):
    design = np.column_stack([np.ones_like(z), z])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    return v - design @ coef


def test_partial_spearman_is_the_pearson_correlation_of_rank_residuals(triples):
    x, y, z = triples
    rx, ry, rz = (sps.rankdata(v) for v in (x, y, z))
    expected = np.corrcoef(_residuals(rx, rz), _residuals(ry, rz))[0, 1]
    assert stats.partial_spearman(x, y, z) == pytest.approx(expected, abs=1e-12)
    # Only the ranks of z matter: log z gives the same number.
    assert stats.partial_spearman(x, y, np.log(z)) == pytest.approx(expected, abs=1e-12)
    # Partialling out z removes most of the shared-size correlation here.
    assert abs(stats.partial_spearman(x, y, z)) < stats.spearman(x, y)


def test_partial_kendall_is_the_literal_formula_over_scipy_taus(triples):
    x, y, z = triples
    t_xy, t_xz, t_yz = (sps.kendalltau(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    expected = (t_xy - t_xz * t_yz) / math.sqrt((1 - t_xz ** 2) * (1 - t_yz ** 2))
    assert stats.partial_kendall(x, y, z) == pytest.approx(expected, abs=1e-12)


def test_partial_correlation_is_undefined_when_the_covariate_ranks_like_x(triples):
    x, y, _ = triples
    assert math.isnan(stats.partial_spearman(x, y, 2 * x + 1))
    assert math.isnan(stats.partial_kendall(x, y, x ** 3))
    assert math.isnan(stats.partial_spearman([1, 2], [2, 1], [1, 1]))


def test_partial_correlation_ci_equals_a_literal_resampling_loop(triples):
    x, y, z = triples
    est = stats.correlation_ci(x, y, "spearman", covariate=z, n_boot=200, seed=5)
    index = np.random.default_rng(5).integers(0, len(x), size=(200, len(x)))
    values = []
    for i in index:
        rx, ry, rz = (sps.rankdata(v[i]) for v in (x, y, z))
        values.append(np.corrcoef(_residuals(rx, rz), _residuals(ry, rz))[0, 1])
    assert est.value == pytest.approx(stats.partial_spearman(x, y, z), abs=1e-12) and est.n == 80
    assert (est.low, est.high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-10)
    tau = stats.correlation_ci(x, y, "kendall", covariate=z, n_boot=60, seed=2)
    index = np.random.default_rng(2).integers(0, len(x), size=(60, len(x)))
    values = []
    for i in index:
        t_xy, t_xz, t_yz = (sps.kendalltau(a[i], b[i]).statistic for a, b in ((x, y), (x, z), (y, z)))
        values.append((t_xy - t_xz * t_yz) / math.sqrt((1 - t_xz ** 2) * (1 - t_yz ** 2)))
    assert (tau.low, tau.high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)


def test_bootstrap_ci_equals_a_literal_resampling_loop(pairs):
    x, y = pairs
    rho = stats.correlation_ci(x, y, "spearman", n_boot=300, seed=11)
    rng = np.random.default_rng(11)
    index = rng.integers(0, len(x), size=(300, len(x)))
    values = np.array([sps.spearmanr(x[i], y[i]).statistic for i in index])
    assert rho.ci == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)
    tau = stats.correlation_ci(x, y, "kendall", n_boot=100, seed=2)
    rng = np.random.default_rng(2)
    index = rng.integers(0, len(x), size=(100, len(x)))
    values = np.array([sps.kendalltau(x[i], y[i]).statistic for i in index])
    assert tau.ci == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)
    assert rho.low < stats.spearman(x, y) < rho.high
    # same seed, same interval
    assert stats.correlation_ci(x, y, "spearman", n_boot=300, seed=11) == rho


def test_correlation_ci_point_estimates_are_scipys_and_intervals_are_seeded():
    rng = np.random.default_rng(4)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    y[[2, 7]] = np.nan  # dropped pairwise
    keep = np.isfinite(y)
    rho = stats.correlation_ci(x, y, "spearman", seed=1)
    tau = stats.correlation_ci(x, y, "kendall", seed=1, n_boot=200)
    assert rho.value == pytest.approx(sps.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    assert tau.value == pytest.approx(sps.kendalltau(x[keep], y[keep]).statistic, abs=1e-12)
    assert rho.n == tau.n == 23
    assert rho.low < rho.value < rho.high and tau.low < tau.value < tau.high
    assert stats.correlation_ci(x, y, "spearman", seed=1) == rho
    # A literal percentile bootstrap from another seed lands on the same interval up to
    # Monte-Carlo error.
    index = np.random.default_rng(99).integers(0, 23, size=(1500, 23))
    xs, ys = x[keep], y[keep]
    draws = [sps.spearmanr(xs[i], ys[i]).statistic for i in index]
    low, high = np.nanquantile(draws, [0.025, 0.975])
    assert rho.low == pytest.approx(low, abs=0.08) and rho.high == pytest.approx(high, abs=0.08)


def test_correlation_ci_is_undefined_for_too_few_or_constant_values():
    assert not stats.correlation_ci([1, 2, 3], [3, 2, 1], min_samples=5).defined
    assert not stats.correlation_ci([1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6]).defined
    with pytest.raises(ValueError, match="method must be one of"):
        stats.correlation_ci([1, 2, 3], [3, 2, 1], "pearson")
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        stats.correlation_ci([1, 2, 3], [3, 2, 1], n_boot=0)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        stats.correlation_ci([1, 2, 3], [3, 2, 1], level=1.0)


# ----------------------------------------------------------------------------- paired differences, verdict


def test_paired_difference_matches_a_literal_bootstrap_loop():
    rng = np.random.default_rng(5)
    truth = rng.normal(size=40)
    a = truth + rng.normal(scale=0.5, size=40)
    b = truth + rng.normal(scale=1.5, size=40)
    d = stats.paired_spearman_difference(a, b, truth, n_boot=300, seed=7)
    # The same resampling, written out: index rows from default_rng(seed).integers.
    index = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    values = [sps.spearmanr(a[i], truth[i])[0] - sps.spearmanr(b[i], truth[i])[0] for i in index]
    assert d.value == pytest.approx(sps.spearmanr(a, truth)[0] - sps.spearmanr(b, truth)[0])
    assert d.ci == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert d.low > 0  # a tracks the truth much more closely than b


def test_paired_difference_drops_undefined_items():
    a = np.array([1.0, 2, 3, np.nan, 5])
    b = np.array([5.0, 4, 3, 2, 1])
    t = np.array([1.0, 2, 3, 4, 5])
    d = stats.paired_spearman_difference(a, b, t, n_boot=20)
    assert d.value == pytest.approx(2.0) and d.n == 4


@pytest.mark.parametrize("diffs, expected", [
    ({"a": (0.2, 0.1, 0.3), "b": (0.1, 0.01, 0.2)}, "held"),
    ({"a": (0.2, 0.1, 0.3), "b": (-0.1, -0.2, -0.01)}, "did not hold"),
    ({"a": (0.2, 0.1, 0.3), "b": (0.0, -0.1, 0.1)}, "within noise"),
    ({"a": (0.2, -0.1, 0.3), "b": (-0.2, -0.4, -0.1)}, "did not hold"),
])
def test_claim_verdict(diffs, expected):
    assert stats.claim_verdict({k: stats.Estimate(*v, 10) for k, v in diffs.items()}) == expected


# ----------------------------------------------------------------------------- locations, proportions


def test_location_ci_against_a_literal_bootstrap():
    values = np.random.default_rng(5).lognormal(size=40)
    est = stats.location_ci(values, "median", seed=3)
    assert est.value == np.median(values)
    index = np.random.default_rng(7).integers(0, 40, size=(4000, 40))
    low, high = np.quantile(np.median(values[index], axis=1), [0.025, 0.975])
    assert est.low == pytest.approx(low, abs=0.1) and est.high == pytest.approx(high, abs=0.1)
    mean = stats.location_ci(values, "mean", seed=3)
    assert mean.value == pytest.approx(values.mean()) and mean.low < mean.value < mean.high
    assert "too few for a CI" in stats.location_ci([1.0, 2.0], "median", min_samples=5).format(".2g")
    assert stats.mean_ci(values, seed=3) == mean
    assert stats.location_ci([2.0] * 6, "mean").ci == (2.0, 2.0)


def test_mean_difference_ci_against_the_normal_approximation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(0.7, 2.0, 400)
    d = stats.mean_difference_ci(a, b, n_boot=4000, seed=1)
    se = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert d.value == pytest.approx(a.mean() - b.mean()) and d.n == 800
    # For large samples the percentile bootstrap agrees with delta ± 1.96 se.
    assert d.low == pytest.approx(d.value - 1.96 * se, abs=0.15 * se * 1.96)
    assert d.high == pytest.approx(d.value + 1.96 * se, abs=0.15 * se * 1.96)


@pytest.mark.parametrize("k, n", [(0, 12), (7, 12), (12, 12), (30, 120), (7, 20)])
def test_proportion_ci_is_the_wilson_interval(k, n):
    z = sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    est = stats.proportion_ci(k, n)
    assert est.value == p and est.n == n
    assert est.low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert est.high == pytest.approx(min(1.0, centre + half), abs=1e-12)


def test_proportion_ci_of_nothing_is_undefined_and_bad_counts_are_refused():
    assert stats.proportion_ci(0, 0).format() == "n/a"
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 2\]"):
        stats.proportion_ci(3, 2)


def test_estimate_format_and_columns():
    est = stats.Estimate(0.0213, -0.0004, 0.04, 500)
    assert est.format("+.2f", scale=100, unit=" points") == "+2.13 points [-0.04, +4.00]"
    assert est.columns("delta") == {"delta": 0.0213, "delta_low": -0.0004, "delta_high": 0.04}
    assert stats.Estimate.from_columns(est.columns("delta"), "delta", 500) == est
    assert not est.excludes(0.0) and est.excludes(-0.01)
    assert stats.Estimate(math.nan, 0, 1, 3).format() == "n/a"


# ----------------------------------------------------------------------------- rankings and tables


def test_top_k_precision_by_hand():
    truth = [0.9, 0.1, 0.8, 0.7, 0.2, 0.3, 0.6, 0.5, 0.4, 0.05]
    score = [10, 9, 1, 8, 2, 3, 7, 4, 5, 6]
    # k = ceil(0.3 * 10) = 3; top truth: idx {0, 2, 3}; top score: idx {0, 1, 3} -> overlap 2
    assert stats.top_k_precision(score, truth, 0.3) == pytest.approx(2 / 3)
    # k = ceil(0.1 * 10) = 1: idx 0 in both
    assert stats.top_k_precision(score, truth, 0.1) == 1.0
    # ties broken by position: scores all equal -> the first k positions
    assert stats.top_k_precision([1] * 4, [4, 3, 2, 1], 0.5) == 1.0
    assert stats.top_k_precision([1] * 4, [1, 2, 3, 4], 0.5) == 0.0
    with pytest.raises(ValueError, match="fraction must be"):
        stats.top_k_precision(score, truth, 0)


def test_top_half_and_study(pairs):
    x, y = pairs
    mask = stats.top_half(y)
    assert mask.sum() == 30 and y[mask].min() >= y[~mask].max()
    frame = pd.DataFrame({"a": x, "b": -x, "truth": y})
    summary = stats.study(frame, ["a", "b"], "truth", n_boot=100, seed=0)
    assert summary["spearman"].tolist() == pytest.approx([stats.spearman(x, y), -stats.spearman(x, y)])
    assert summary.loc[0, "top_half_spearman"] == pytest.approx(sps.spearmanr(x[mask], y[mask]).statistic)
    assert summary.loc[0, "top_half_n"] == 30
    text = stats.to_markdown(summary)
    assert text.splitlines()[0].startswith("| proxy | n | Spearman ρ [95% CI]")
    assert f"| a | 60 | {summary.loc[0, 'spearman']:.3f} [" in text
    with pytest.raises(ValueError, match=r"columns \['c'\] are not in the table"):
        stats.study(frame, ["c"], "truth")


def test_study_with_a_covariate_adds_partial_columns(triples):
    x, y, z = triples
    frame = pd.DataFrame({"a": x, "truth": y, "size": z})
    summary = stats.study(frame, ["a"], "truth", covariate="size", n_boot=100, seed=0)
    assert summary.loc[0, "partial_spearman"] == pytest.approx(stats.partial_spearman(x, y, z))
    assert summary.loc[0, "partial_kendall"] == pytest.approx(stats.partial_kendall(x, y, z))
    assert summary.loc[0, "partial_n"] == 80
    assert "partial ρ [95% CI]" in stats.to_markdown(summary)
    with pytest.raises(ValueError, match=r"columns \['flops'\] are not in the table"):
        stats.study(frame, ["a"], "truth", covariate="flops")


def test_reference_comparison_uses_common_rows_and_paired_differences(pairs):
    x, y = pairs
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"good": y + 0.3 * rng.normal(size=60), "weak": x})
    frame.loc[4, "weak"] = np.nan
    comparison = stats.reference_comparison(frame, ["good", "weak"], y, "good", n_boot=100, seed=3)
    table, diffs = comparison.table, comparison.differences
    keep = np.ones(60, dtype=bool)
    keep[4] = False
    assert table["n"].tolist() == [59, 59] and table["n_undefined"].tolist() == [0, 1]
    assert table.loc[0, "spearman"] == pytest.approx(sps.spearmanr(frame["good"][keep], y[keep]).statistic)
    expected = stats.paired_spearman_difference(frame["good"][keep], frame["weak"][keep], y[keep], n_boot=100, seed=3)
    assert diffs["weak"] == expected and table.loc[1, "delta"] == expected.value
    assert math.isnan(table.loc[0, "delta"]) and "top10_precision" in table
    assert comparison.partial_differences == {} and "partial_spearman" not in table


def test_reference_comparison_with_a_covariate_and_the_paired_partial_difference(triples):
    x, y, z = triples
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": x, "b": y + rng.normal(size=80), "size": z})
    comparison = stats.reference_comparison(frame, ["a", "b", "size"], y, "a", covariate=np.log(z), n_boot=120,
                                            seed=4)
    table = comparison.table.set_index("proxy")
    assert table.loc["a", "partial_spearman"] == pytest.approx(stats.partial_spearman(x, y, z))
    assert table.loc["b", "size_spearman"] == pytest.approx(stats.spearman(frame["b"], z))
    assert math.isnan(table.loc["size", "partial_spearman"]) and set(comparison.partial_differences) == {"b"}
    d = comparison.partial_differences["b"]
    index = np.random.default_rng(4).integers(0, 80, size=(120, 80))
    literal = [stats.partial_spearman(x[i], y[i], z[i]) - stats.partial_spearman(frame["b"].to_numpy()[i], y[i], z[i])
               for i in index]
    assert d.value == pytest.approx(stats.partial_spearman(x, y, z) - stats.partial_spearman(frame["b"], y, z))
    assert d.ci == pytest.approx(tuple(np.quantile(literal, [0.025, 0.975])), abs=1e-12)


def test_figures_draw_from_the_tables(pairs):
    x, y = pairs
    frame = pd.DataFrame({"a": np.exp(4 * x), "b": x, "truth": y})
    summary = stats.study(frame, ["a", "b"], "truth", n_boot=50)
    fig = proxy_scatter(frame, ["a", "b"], "truth", rho=dict(zip(summary.proxy, summary.spearman)))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and axes[0].get_xscale() == "symlog" and axes[1].get_xscale() == "linear"
    assert len(axes[0].collections[0].get_offsets()) == 60
    bars = rho_bars(summary)
    heights = [patch.get_width() for patch in bars.axes[0].patches]
    assert heights == pytest.approx(summary["spearman"].tolist())
