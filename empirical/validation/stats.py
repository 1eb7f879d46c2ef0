"""Confidence intervals for the bound-validation report (all seeded).

- `proportion_ci`: a fraction k/n with its Wilson score interval
  (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``);
- `correlation_ci`: Spearman's ρ or Kendall's τ_b of paired samples with a percentile
  bootstrap interval over resampled pairs (`empirical.correlation`, shared with the NAS study);
- `location_ci`: the median or mean of a sample with a percentile bootstrap interval.

Every bootstrap draws from ``numpy.random.default_rng(seed)``: same data and seed, same
interval. Pairs or values that are NaN are dropped first; fewer than ``MIN_SAMPLES``
left, or a constant variable, gives NaN (reported as "n/a", never as a number).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from empirical import correlation

__all__ = ["Estimate", "MIN_SAMPLES", "correlation_ci", "location_ci", "proportion_ci"]

MIN_SAMPLES = 5
N_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval and the number of samples behind it."""

    value: float
    low: float
    high: float
    n: int

    @property
    def defined(self) -> bool:
        return math.isfinite(self.value)

    def excludes(self, x: float) -> bool:
        """Whether the interval lies wholly on one side of `x`."""
        return self.defined and math.isfinite(self.low) and (self.low > x or self.high < x)

    def format(self, digits: int = 2, percent: bool = False) -> str:
        if not self.defined:
            return "n/a"
        if not math.isfinite(self.low):
            shown = f"{100 * self.value:.0f}%" if percent else f"{self.value:.{digits}g}"
            return f"{shown} (n={self.n}: too few for a CI)"
        if percent:
            return f"{100 * self.value:.0f}% [{100 * self.low:.0f}, {100 * self.high:.0f}]"
        return f"{self.value:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


_NAN = Estimate(math.nan, math.nan, math.nan, 0)


def proportion_ci(k: int, n: int) -> Estimate:
    """k/n with its 95% Wilson score interval (NaN when n = 0).

    Example:
        >>> proportion_ci(10, 10).format(percent=True)
        '100% [72, 100]'
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return _NAN
    interval = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return Estimate(k / n, float(interval.low), float(interval.high), int(n))


def correlation_ci(x, y, method: str = "spearman", *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> Estimate:
    """Rank correlation of paired samples with a 95% percentile-bootstrap interval.

    method: "spearman" (ρ) or "kendall" (τ_b). Point estimates and intervals come from
    `empirical.correlation` (the NAS study's implementation), with ``n_resamples``
    resamples of the pairs from ``default_rng(seed)``.

    Example:
        >>> est = correlation_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], seed=0)
        >>> round(est.value, 3)
        0.829
    """
    functions = {"spearman": correlation.spearman, "kendall": correlation.kendall}
    if method not in functions:
        raise ValueError(f"method must be 'spearman' or 'kendall', got {method!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = x.size
    if n < MIN_SAMPLES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, n)
    low, high, _ = correlation.bootstrap_ci(x, y, method, n_boot=n_resamples, level=CONFIDENCE, seed=seed)
    return Estimate(functions[method](x, y), low, high, n)


def location_ci(values, statistic: str = "median", *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> Estimate:
    """Median or mean of `values` (NaN dropped) with a 95% percentile-bootstrap interval."""
    functions = {"median": np.median, "mean": np.mean}
    if statistic not in functions:
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_SAMPLES:
        return Estimate(float(functions[statistic](x)) if x.size else math.nan, math.nan, math.nan, x.size)
    fn = functions[statistic]
    if np.ptp(x) == 0:
        return Estimate(float(x[0]), float(x[0]), float(x[0]), x.size)
    result = stats.bootstrap((x,), lambda v, axis: fn(v, axis=axis), vectorized=True, n_resamples=n_resamples,
                             confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
    interval = result.confidence_interval
    return Estimate(float(fn(x)), float(interval.low), float(interval.high), x.size)
