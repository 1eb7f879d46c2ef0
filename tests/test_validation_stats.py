"""Confidence intervals of the validation report against closed forms and literal loops."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from empirical.validation.stats import correlation_ci, location_ci, proportion_ci


@pytest.mark.parametrize("k, n", [(0, 12), (7, 12), (12, 12), (30, 120)])
def test_proportion_ci_is_the_wilson_interval(k, n):
    z = sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    est = proportion_ci(k, n)
    assert est.value == p and est.n == n
    assert est.low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert est.high == pytest.approx(min(1.0, centre + half), abs=1e-12)


def test_proportion_ci_of_nothing_is_undefined_and_bad_counts_are_refused():
    assert proportion_ci(0, 0).format() == "n/a"
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion_ci(3, 2)


def test_correlation_ci_point_estimates_are_scipys_and_intervals_are_seeded():
    rng = np.random.default_rng(4)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    y[[2, 7]] = np.nan  # dropped pairwise
    keep = np.isfinite(y)
    rho = correlation_ci(x, y, "spearman", seed=1)
    tau = correlation_ci(x, y, "kendall", seed=1, n_resamples=200)
    assert rho.value == pytest.approx(sps.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    assert tau.value == pytest.approx(sps.kendalltau(x[keep], y[keep]).statistic, abs=1e-12)
    assert rho.n == tau.n == 23
    assert rho.low < rho.value < rho.high and tau.low < tau.value < tau.high
    assert correlation_ci(x, y, "spearman", seed=1) == rho
    # A literal percentile bootstrap (scipy per resample) lands on the same interval up to
    # Monte-Carlo error.
    index = np.random.default_rng(99).integers(0, 23, size=(1500, 23))
    xs, ys = x[keep], y[keep]
    draws = [sps.spearmanr(xs[i], ys[i]).statistic for i in index]
    low, high = np.nanquantile(draws, [0.025, 0.975])
    assert rho.low == pytest.approx(low, abs=0.08) and rho.high == pytest.approx(high, abs=0.08)


def test_correlation_ci_is_undefined_for_too_few_or_constant_values():
    assert not correlation_ci([1, 2, 3], [3, 2, 1]).defined
    assert not correlation_ci([1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6]).defined


def test_location_ci_against_a_literal_bootstrap():
    values = np.random.default_rng(5).lognormal(size=40)
    est = location_ci(values, "median", seed=3)
    assert est.value == np.median(values)
    index = np.random.default_rng(7).integers(0, 40, size=(4000, 40))
    low, high = np.quantile(np.median(values[index], axis=1), [0.025, 0.975])
    assert est.low == pytest.approx(low, abs=0.1) and est.high == pytest.approx(high, abs=0.1)
    mean = location_ci(values, "mean", seed=3)
    assert mean.value == pytest.approx(values.mean()) and mean.low < mean.value < mean.high
    assert "too few for a CI" in location_ci([1.0, 2.0], "median").format()
