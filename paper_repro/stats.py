"""Confidence intervals the entries need beyond `empirical.correlation`.

* `paired_spearman_difference`: ρ(a, truth) − ρ(b, truth) with a *paired* percentile
  bootstrap: each resample draws architectures with replacement and both proxies are
  ranked on the same draw (`empirical.correlation.bootstrap_ci` over architecture
  indices), so the CI accounts for the two ρ sharing their architectures.
* `claim_verdict`: the decision rule for "proxy A beats every other proxy".
* `mean_ci` (percentile bootstrap of the mean, scipy.stats.bootstrap),
  `mean_difference_ci` (the same for a difference of two independent means) and
  `proportion_ci` (Wilson score interval, scipy.stats.binomtest).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from empirical.correlation import bootstrap_ci, spearman

__all__ = ["paired_spearman_difference", "claim_verdict", "mean_ci", "mean_difference_ci", "proportion_ci", "RULE"]

RULE = ("paired bootstrap over architectures of Δρ = ρ(GradSign) − ρ(other): the claim HELD if every "
        "other proxy's 95% CI of Δρ lies above 0, DID NOT HOLD if some proxy's 95% CI lies below 0 "
        "(that proxy ranks significantly better), and is WITHIN NOISE otherwise")


def paired_spearman_difference(a, b, truth, *, n_boot: int = 2000, level: float = 0.95,
                               seed: int = 0) -> tuple[float, float, float]:
    """(Δρ, low, high): Δρ = spearman(a, truth) − spearman(b, truth) over the items where
    all three are defined, with a paired percentile bootstrap CI.

    >>> d, lo, hi = paired_spearman_difference([1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4], n_boot=50)
    >>> d
    2.0
    """
    a, b, truth = (np.asarray(v, dtype=float) for v in (a, b, truth))
    if not (a.shape == b.shape == truth.shape) or a.ndim != 1:
        raise ValueError(f"a, b and truth must be 1-D of equal length, got {a.shape}, {b.shape}, {truth.shape}")
    keep = np.isfinite(a) & np.isfinite(b) & np.isfinite(truth)
    a, b, truth = a[keep], b[keep], truth[keep]
    delta = spearman(a, truth) - spearman(b, truth)

    def difference(index, t):
        i = index.astype(int)
        return spearman(a[i], t) - spearman(b[i], t)

    low, high, _ = bootstrap_ci(np.arange(len(a), dtype=float), truth, difference,
                                n_boot=n_boot, level=level, seed=seed)
    return float(delta), low, high


def claim_verdict(differences: dict[str, tuple[float, float, float]]) -> str:
    """"held", "did not hold" or "within noise" from {other: (Δρ, low, high)} (see `RULE`).

    >>> claim_verdict({"snip": (0.1, 0.05, 0.2), "synflow": (0.02, -0.01, 0.05)})
    'within noise'
    """
    if not differences:
        raise ValueError("differences is empty: compare GradSign with at least one other proxy")
    if any(math.isnan(lo) or math.isnan(hi) for _, lo, hi in differences.values()):
        return "within noise"
    if any(hi < 0 for _, _, hi in differences.values()):
        return "did not hold"
    if all(lo > 0 for _, lo, _ in differences.values()):
        return "held"
    return "within noise"


def mean_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=level,
                          method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_difference_ci(a, b, *, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high): percentile bootstrap resampling a and b
    independently (scipy.stats.bootstrap, paired=False)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    delta = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return delta, math.nan, math.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        return delta, delta, delta

    def statistic(x, y, axis=-1):
        return x.mean(axis=axis) - y.mean(axis=axis)

    res = stats.bootstrap((a, b), statistic, n_resamples=n_boot, confidence_level=level, method="percentile",
                          vectorized=True, paired=False, random_state=np.random.default_rng(seed))
    return delta, float(res.confidence_interval.low), float(res.confidence_interval.high)


def proportion_ci(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy.stats.binomtest)."""
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
