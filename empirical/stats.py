"""The toolkit's statistics, in one place: rank correlations (plain and partial), seeded
confidence intervals, paired differences, top-k precision, and the tables built on them.

Every estimator returns an `Estimate` ``(value, low, high, n)``, and every report prints
one with `Estimate.format`. Every interval takes the same keywords: ``n_boot``
(resamples), ``level`` (coverage, 0.95) and ``seed``. Items where any input is NaN or
±inf (a proxy undefined on a network) are dropped first; ``n`` counts what is left.

* Spearman ρ: the Pearson correlation of the average ranks R (ties get the mean of their
  ranks), ``ρ = cov(R(x), R(y)) / (σ_R(x) σ_R(y))``.
* Kendall τ_b (Kendall 1945, with ties): ``τ_b = (P − Q) / sqrt((P + Q + T_x)(P + Q + T_y))``
  over pairs, P concordant, Q discordant, T_x ties in x only, T_y ties in y only.
* Partial rank correlations of x and y controlling for a covariate z (e.g. log #params):
  ``r_xy·z = (r_xy − r_xz r_yz) / sqrt((1 − r_xz²)(1 − r_yz²))``, with Spearman ρ's
  (partial Spearman: the Pearson correlation of the residuals of R(x) and R(y) after a
  least-squares fit on R(z)) or Kendall τ_b's (Kendall's partial τ, Kendall 1942). Both
  see z only through its ranks, so controlling for log #params is controlling for #params.
  Undefined (NaN) when z ranks exactly like x or y.
* Percentile bootstrap (Efron & Tibshirani 1993, §13): the resamples are the rows of
  ``numpy.random.default_rng(seed).integers(0, n, size=(n_boot, n))``, each a draw of
  the n items with replacement (pairs, or triples for a partial correlation, so a
  plain and a partial interval with one seed share their resamples); the interval is the
  ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the statistic over the resamples
  where it is defined (the others are left out).
* `paired_spearman_difference`: ρ(a, truth) − ρ(b, truth) bootstrapped on the same
  resampled items, so the interval accounts for the two ρ sharing their items.
* `location_ci` (median or mean), `mean_ci` and `mean_difference_ci` (two independent
  samples): ``scipy.stats.bootstrap(method="percentile", rng=default_rng(seed))``.
* `proportion_ci`: k/n with the Wilson score interval (``scipy.stats.binomtest``).
* `top_k_precision` (Abdelfattah et al., ICLR 2021, "top-10%"): with ``k = ceil(fraction·n)``,
  ``|top_k(score) ∩ top_k(truth)| / k``; ties broken by position (earlier first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from proxies.checks import check_choice, check_int, check_number

__all__ = [
    "Estimate", "spearman", "kendall", "partial_spearman", "partial_kendall", "correlation_ci", "location_ci",
    "mean_ci", "mean_difference_ci", "proportion_ci", "paired_spearman_difference", "claim_verdict",
    "top_k_precision", "top_half", "rank_correlations", "Comparison", "reference_comparison", "study", "to_markdown",
]

METHODS = ("spearman", "kendall")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval ``[low, high]`` and the number of items behind it.

    >>> Estimate(0.7123, 0.65, 0.761, 40).format()
    '0.712 [0.650, 0.761]'
    >>> Estimate(0.5, 0.2778, 0.75, 12).format(".0f", scale=100, unit="%")
    '50% [28, 75]'
    >>> Estimate(0.42, math.nan, math.nan, 3).format(".2g")
    '0.42 (n=3: too few for a CI)'
    """

    value: float
    low: float
    high: float
    n: int

    @property
    def defined(self) -> bool:
        return math.isfinite(self.value)

    @property
    def ci(self) -> tuple[float, float]:
        return self.low, self.high

    def excludes(self, x: float) -> bool:
        """Whether the interval lies wholly on one side of `x`."""
        return self.defined and math.isfinite(self.low) and (self.low > x or self.high < x)

    def format(self, spec: str = ".3f", *, scale: float = 1.0, unit: str = "") -> str:
        """``value [low, high]``, each ``scale ×`` and formatted with ``spec``, ``unit``
        after the value; ``n/a`` if undefined; a note instead of an interval without one."""
        if not self.defined:
            return "n/a"
        shown = f"{scale * self.value:{spec}}{unit}"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{shown} (n={self.n}: too few for a CI)"
        return f"{shown} [{scale * self.low:{spec}}, {scale * self.high:{spec}}]"

    def columns(self, name: str) -> dict[str, float]:
        """``{name: value, name_low: low, name_high: high}``, for a flat table row."""
        return {name: self.value, f"{name}_low": self.low, f"{name}_high": self.high}

    @classmethod
    def from_columns(cls, row, name: str, n: int = 0) -> "Estimate":
        """The Estimate that `columns` wrote into ``row`` (a mapping) under ``name``.

        >>> Estimate.from_columns({"rho": 0.5, "rho_low": 0.1, "rho_high": 0.8}, "rho").format()
        '0.500 [0.100, 0.800]'
        """
        return cls(row[name], row[f"{name}_low"], row[f"{name}_high"], n)


def _undefined(n: int) -> Estimate:
    return Estimate(math.nan, math.nan, math.nan, n)


def _finite(*arrays) -> tuple[list[np.ndarray], int]:
    """The arrays (1-D, equal length) restricted to the items finite in all; and how many were dropped."""
    values = [np.asarray(a, dtype=float) for a in arrays]
    if any(v.ndim != 1 for v in values) or len({v.shape for v in values}) != 1:
        raise ValueError(f"inputs must be 1-D arrays of equal length, got shapes {[v.shape for v in values]}")
    keep = np.logical_and.reduce([np.isfinite(v) for v in values])
    return [v[keep] for v in values], int((~keep).sum())


def _check_bootstrap(n_boot, level, seed) -> None:
    check_int("n_boot", n_boot, minimum=1)
    check_number("level", level)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    check_int("seed", seed, minimum=0)


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# ----------------------------------------------------------------------------- correlations


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ρ of each row pair of (b, n) arrays: Pearson correlation of per-row average ranks."""
    rx = stats.rankdata(x, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(axis=-1) / np.where(denom > 0, denom, 1), np.nan)


def _kendall_pair(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.kendalltau(x, y, variant="b").statistic)


def _partial(r_xy, r_xz, r_yz):
    """``(r_xy − r_xz r_yz) / sqrt((1 − r_xz²)(1 − r_yz²))``, NaN where z ranks like x or y
    (|r| = 1 up to rounding: 1 − r² below 1e-12 counts as 0)."""
    r_xy, r_xz, r_yz = (np.asarray(r, dtype=float) for r in (r_xy, r_xz, r_yz))
    free_x, free_y = 1 - r_xz ** 2, 1 - r_yz ** 2
    denom = np.sqrt(np.where(free_x > 1e-12, free_x, 0.0) * np.where(free_y > 1e-12, free_y, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (r_xy - r_xz * r_yz) / np.where(denom > 0, denom, 1), np.nan)


def spearman(x, y) -> float:
    """Spearman's ρ of the finite pairs (NaN if either side is constant or n < 2).

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40])
    1.0
    """
    (x, y), _ = _finite(x, y)
    if len(x) < 2:
        return math.nan
    return float(_spearman_rows(x[None], y[None])[0])


def kendall(x, y) -> float:
    """Kendall's τ_b of the finite pairs (NaN if either side is constant or n < 2).

    >>> kendall([1, 2, 3], [3, 2, 1])
    -1.0
    """
    (x, y), _ = _finite(x, y)
    if len(x) < 2:
        return math.nan
    return _kendall_pair(x, y)


def partial_spearman(x, y, z) -> float:
    """Partial Spearman ρ of x and y controlling for z, over the finite triples (n ≥ 3).

    ρ_xy = 0.8, ρ_xz = 0.9, ρ_yz = 0.6, so (0.8 − 0.54) / sqrt(0.19 · 0.64):

    >>> round(partial_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 2, 3, 5, 4]), 4)
    0.7456
    """
    (x, y, z), _ = _finite(x, y, z)
    if len(x) < 3:
        return math.nan
    rows = [_spearman_rows(a[None], b[None])[0] for a, b in ((x, y), (x, z), (y, z))]
    return float(_partial(*rows))


def partial_kendall(x, y, z) -> float:
    """Kendall's partial τ of x and y controlling for z, over the finite triples (n ≥ 3).

    τ_xy = 0.6, τ_xz = 0.8, τ_yz = 0.4, so (0.6 − 0.32) / sqrt(0.36 · 0.84):

    >>> round(partial_kendall([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 2, 3, 5, 4]), 4)
    0.5092
    """
    (x, y, z), _ = _finite(x, y, z)
    if len(x) < 3:
        return math.nan
    return float(_partial(_kendall_pair(x, y), _kendall_pair(x, z), _kendall_pair(y, z)))


def _resampled_correlations(x, y, z, method: str, index: np.ndarray) -> np.ndarray:
    """The statistic on every resample (row of `index`)."""
    if method == "spearman":
        r_xy = _spearman_rows(x[index], y[index])
        if z is None:
            return r_xy
        return _partial(r_xy, _spearman_rows(x[index], z[index]), _spearman_rows(y[index], z[index]))
    if z is None:
        return np.array([_kendall_pair(x[i], y[i]) for i in index], dtype=float)
    return np.array([_partial(_kendall_pair(x[i], y[i]), _kendall_pair(x[i], z[i]), _kendall_pair(y[i], z[i]))
                     for i in index], dtype=float)


def correlation_ci(x, y, method: str = "spearman", *, covariate=None, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0, min_samples: int = 2) -> Estimate:
    """Spearman ρ or Kendall τ_b of x and y (partial, controlling for ``covariate``, if given)
    with a percentile-bootstrap interval over resampled items (module docstring).

    Fewer than ``min_samples`` finite items, or a constant x or y, gives an undefined Estimate.

    >>> est = correlation_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], seed=0)
    >>> round(est.value, 3), est.n
    (0.829, 6)
    """
    check_choice("method", method, METHODS)
    check_int("min_samples", min_samples, minimum=2)
    _check_bootstrap(n_boot, level, seed)
    partial = covariate is not None
    arrays, _ = _finite(x, y, covariate) if partial else _finite(x, y)
    x, y = arrays[0], arrays[1]
    z = arrays[2] if partial else None
    n = len(x)
    if n < max(min_samples, 3 if partial else 2) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return _undefined(n)
    if partial:
        value = partial_spearman(x, y, z) if method == "spearman" else partial_kendall(x, y, z)
    else:
        value = spearman(x, y) if method == "spearman" else kendall(x, y)
    low, high = _percentile(_resampled_correlations(x, y, z, method, _resamples(n, n_boot, seed)), level)
    return Estimate(value, low, high, n)


def paired_spearman_difference(a, b, truth, *, covariate=None, n_boot: int = 1000, level: float = 0.95,
                               seed: int = 0) -> Estimate:
    """Δρ = ρ(a, truth) − ρ(b, truth) over the items where all inputs are finite, with a
    paired percentile-bootstrap interval (both ρ on the same resampled items); with
    ``covariate``, the difference of the partial ρ controlling for it.

    >>> paired_spearman_difference([1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4], n_boot=50).value
    2.0
    """
    _check_bootstrap(n_boot, level, seed)
    if covariate is None:
        (a, b, truth), _ = _finite(a, b, truth)
        delta = spearman(a, truth) - spearman(b, truth)
    else:
        (a, b, truth, z), _ = _finite(a, b, truth, covariate)
        delta = partial_spearman(a, truth, z) - partial_spearman(b, truth, z)
    n = len(a)
    if n < (2 if covariate is None else 3):
        return Estimate(delta, math.nan, math.nan, n)
    index = _resamples(n, n_boot, seed)
    if covariate is None:
        values = _spearman_rows(a[index], truth[index]) - _spearman_rows(b[index], truth[index])
    else:
        t, zz = truth[index], z[index]
        r_tz = _spearman_rows(t, zz)
        values = (_partial(_spearman_rows(a[index], t), _spearman_rows(a[index], zz), r_tz)
                  - _partial(_spearman_rows(b[index], t), _spearman_rows(b[index], zz), r_tz))
    low, high = _percentile(values, level)
    return Estimate(float(delta), low, high, n)


def claim_verdict(differences: dict[str, Estimate]) -> str:
    """"held", "did not hold" or "within noise" for "the reference beats every other",
    from {other: Δ = reference − other}: held if every Δ's interval lies above 0, did not
    hold if some Δ's interval lies below 0, within noise otherwise (or if any is undefined).

    >>> claim_verdict({"snip": Estimate(0.1, 0.05, 0.2, 9), "synflow": Estimate(0.02, -0.01, 0.05, 9)})
    'within noise'
    """
    if not differences:
        raise ValueError("differences is empty: compare the reference with at least one other")
    if any(math.isnan(d.low) or math.isnan(d.high) for d in differences.values()):
        return "within noise"
    if any(d.high < 0 for d in differences.values()):
        return "did not hold"
    if all(d.low > 0 for d in differences.values()):
        return "held"
    return "within noise"


# ----------------------------------------------------------------------------- locations, proportions


def location_ci(values, statistic: str = "median", *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                min_samples: int = 2) -> Estimate:
    """Median or mean of the finite `values` with a percentile-bootstrap interval (no
    interval with fewer than ``min_samples`` values; a constant sample has a point interval).

    >>> location_ci([1.0, 2.0, 4.0, 8.0], "mean", n_boot=200).value
    3.75
    """
    functions = {"median": np.median, "mean": np.mean}
    check_choice("statistic", statistic, tuple(functions))
    _check_bootstrap(n_boot, level, seed)
    fn = functions[statistic]
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < min_samples:
        return Estimate(float(fn(x)) if x.size else math.nan, math.nan, math.nan, x.size)
    if np.ptp(x) == 0:
        value = float(fn(x))  # np.mean of equal values may differ from them in the last bit
        return Estimate(value, value, value, x.size)
    result = stats.bootstrap((x,), lambda v, axis: fn(v, axis=axis), vectorized=True, n_resamples=n_boot,
                             confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    interval = result.confidence_interval
    return Estimate(float(fn(x)), float(interval.low), float(interval.high), x.size)


def mean_ci(values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Estimate:
    """`location_ci` of the mean."""
    return location_ci(values, "mean", n_boot=n_boot, level=level, seed=seed)


def mean_difference_ci(a, b, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Estimate:
    """mean(a) − mean(b) of two independent samples, with a percentile-bootstrap interval
    resampling each sample on its own (``scipy.stats.bootstrap(paired=False)``); ``n`` is
    ``len(a) + len(b)``.

    >>> mean_difference_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], n_boot=100).value
    1.0
    """
    _check_bootstrap(n_boot, level, seed)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    delta = float(a.mean() - b.mean())
    n = len(a) + len(b)
    if len(a) < 2 or len(b) < 2:
        return Estimate(delta, math.nan, math.nan, n)
    if np.all(a == a[0]) and np.all(b == b[0]):
        return Estimate(delta, delta, delta, n)

    def statistic(x, y, axis=-1):
        return x.mean(axis=axis) - y.mean(axis=axis)

    res = stats.bootstrap((a, b), statistic, n_resamples=n_boot, confidence_level=level, method="percentile",
                          vectorized=True, paired=False, rng=np.random.default_rng(seed))
    return Estimate(delta, float(res.confidence_interval.low), float(res.confidence_interval.high), n)


def proportion_ci(k: int, n: int, *, level: float = 0.95) -> Estimate:
    """k/n with its Wilson score interval (undefined when n = 0).

    >>> proportion_ci(10, 10).format(".0f", scale=100, unit="%")
    '100% [72, 100]'
    """
    check_int("n", n, minimum=0)
    check_int("k", k, minimum=0, maximum=n)
    if n == 0:
        return _undefined(0)
    interval = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return Estimate(k / n, float(interval.low), float(interval.high), int(n))


# ----------------------------------------------------------------------------- rankings


def _top_k_index(values: np.ndarray, k: int) -> set[int]:
    # Stable sort of -values: among equal values the earlier position comes first.
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def top_k_precision(score, truth, fraction: float = 0.1) -> float:
    """``|top_k(score) ∩ top_k(truth)| / k`` with ``k = ceil(fraction · n)`` over the finite pairs.

    >>> top_k_precision([5, 4, 3, 2, 1], [5, 1, 4, 3, 2], fraction=0.4)
    0.5
    """
    check_number("fraction", fraction, minimum=0, maximum=1, strict=True)
    (s, t), _ = _finite(score, truth)
    if len(s) == 0:
        return math.nan
    k = math.ceil(fraction * len(s))
    return len(_top_k_index(s, k) & _top_k_index(t, k)) / k


def top_half(truth) -> np.ndarray:
    """Boolean mask of the ``ceil(n/2)`` best items by ``truth`` (NaN never selected; ties
    broken by position).

    >>> top_half([0.1, 0.9, 0.5, float("nan"), 0.7]).tolist()
    [False, True, False, False, True]
    """
    truth = np.asarray(truth, dtype=float)
    valid = np.flatnonzero(~np.isnan(truth))
    order = valid[np.argsort(-truth[valid], kind="stable")]
    mask = np.zeros(len(truth), dtype=bool)
    mask[order[:math.ceil(len(valid) / 2)]] = True
    return mask


def rank_correlations(score, truth, *, covariate=None, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      top_fraction: float = 0.1) -> dict:
    """Spearman and Kendall with bootstrap intervals, and top-k precision, as one
    JSON-ready dict: ``n, n_nan, spearman, spearman_ci, kendall, kendall_ci,
    top_k_precision, top_fraction, n_boot, level, bootstrap_seed``; with ``covariate``
    also ``partial_n, partial_spearman(_ci), partial_kendall(_ci)`` (controlling for it).

    >>> out = rank_correlations([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], n_boot=100)
    >>> out["n"], out["spearman"], out["top_k_precision"]
    (5, 0.8, 0.0)
    """
    (s, t), n_nan = _finite(score, truth)
    options = {"n_boot": n_boot, "level": level, "seed": seed}
    rho = correlation_ci(s, t, "spearman", **options)
    tau = correlation_ci(s, t, "kendall", **options)
    record = {
        "n": int(len(s)),
        "n_nan": n_nan,
        "spearman": spearman(s, t),
        "spearman_ci": list(rho.ci),
        "kendall": kendall(s, t),
        "kendall_ci": list(tau.ci),
        "top_k_precision": top_k_precision(s, t, top_fraction),
        "top_fraction": top_fraction,
        "n_boot": n_boot,
        "level": level,
        "bootstrap_seed": seed,
    }
    if covariate is not None:
        p_rho = correlation_ci(score, truth, "spearman", covariate=covariate, **options)
        p_tau = correlation_ci(score, truth, "kendall", covariate=covariate, **options)
        record.update(partial_n=p_rho.n, partial_spearman=p_rho.value, partial_spearman_ci=list(p_rho.ci),
                      partial_kendall=p_tau.value, partial_kendall_ci=list(p_tau.ci))
    return record


HALF_KEYS = ("n", "n_nan", "spearman", "spearman_ci", "kendall", "kendall_ci", "top_k_precision")


def study(frame: pd.DataFrame, proxies: list[str], truth: str, *, covariate: str | None = None, n_boot: int = 1000,
          level: float = 0.95, seed: int = 0, top_fraction: float = 0.1) -> pd.DataFrame:
    """One row per proxy: `rank_correlations` of the proxy's scores against column
    ``truth`` over all rows of ``frame`` (partial ones controlling for column
    ``covariate`` if given), and (columns prefixed ``top_half_``) over the rows in the
    `top_half` by the truth."""
    missing = [c for c in list(proxies) + [truth] + ([covariate] if covariate else []) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; available: {list(frame.columns)}")
    target = frame[truth].to_numpy(dtype=float)
    z = None if covariate is None else frame[covariate].to_numpy(dtype=float)
    mask = top_half(target)
    options = {"n_boot": n_boot, "level": level, "seed": seed, "top_fraction": top_fraction}
    records = []
    for name in proxies:
        score = frame[name].to_numpy(dtype=float)
        record = {"proxy": name, **rank_correlations(score, target, covariate=z, **options)}
        half = rank_correlations(score[mask], target[mask], **options)
        record.update({f"top_half_{k}": half[k] for k in HALF_KEYS})
        records.append(record)
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class Comparison:
    """The table of `reference_comparison` and its paired differences {column: Δ}, raw
    and (with a covariate) of the partial ρ; undefined partial differences are left out."""

    table: pd.DataFrame
    differences: dict[str, Estimate]
    partial_differences: dict[str, Estimate]


def reference_comparison(frame: pd.DataFrame, columns: list[str], truth, reference: str, *, covariate=None,
                         n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                         top_fraction: float = 0.1) -> Comparison:
    """Each of ``columns`` of ``frame`` against ``truth`` (an array, one value per row),
    over the rows where every column, the truth and the covariate are finite (so all ρ
    share their items): Spearman ρ and Kendall τ with intervals, top-k precision, and Δρ =
    ρ(reference) − ρ(column) by `paired_spearman_difference`.

    With ``covariate`` (e.g. log #params, one value per row) also, per column: its
    Spearman ρ with the covariate (``size_spearman``), the partial ρ and τ controlling for
    it, and the paired difference of partial ρ (``partial_delta``).

    The table has one row per column: ``proxy, n, n_undefined`` (non-finite values of that
    column over all rows), ``spearman, kendall, delta`` (and the covariate's columns) each
    with ``_low, _high``, and ``top<100·fraction>_precision``.
    """
    check_choice("reference", reference, tuple(columns))
    truth = np.asarray(truth, dtype=float)
    values = frame[list(columns)].to_numpy(dtype=float)
    keep = np.isfinite(values).all(axis=1) & np.isfinite(truth)
    z = None
    if covariate is not None:
        z = np.asarray(covariate, dtype=float)
        keep &= np.isfinite(z)
        z = z[keep]
    target, best = truth[keep], values[keep, list(columns).index(reference)]
    options = {"n_boot": n_boot, "level": level, "seed": seed}
    records, differences, partial_differences = [], {}, {}
    for j, name in enumerate(columns):
        score = values[keep, j]
        rc = rank_correlations(score, target, covariate=z, top_fraction=top_fraction, **options)
        record = {"proxy": name, "n": rc["n"], "n_undefined": int((~np.isfinite(values[:, j])).sum()),
                  **Estimate(rc["spearman"], *rc["spearman_ci"], rc["n"]).columns("spearman"),
                  **Estimate(rc["kendall"], *rc["kendall_ci"], rc["n"]).columns("kendall"),
                  f"top{100 * top_fraction:g}_precision": rc["top_k_precision"]}
        if name == reference:
            record.update(_undefined(rc["n"]).columns("delta"))
        else:
            differences[name] = paired_spearman_difference(best, score, target, **options)
            record.update(differences[name].columns("delta"))
        if z is not None:
            record.update(correlation_ci(score, z, "spearman", **options).columns("size_spearman"))
            record.update(Estimate(rc["partial_spearman"], *rc["partial_spearman_ci"], rc["partial_n"])
                          .columns("partial_spearman"))
            record.update(Estimate(rc["partial_kendall"], *rc["partial_kendall_ci"], rc["partial_n"])
                          .columns("partial_kendall"))
            partial = (_undefined(rc["n"]) if name == reference
                       else paired_spearman_difference(best, score, target, covariate=z, **options))
            if name != reference and partial.defined:
                partial_differences[name] = partial
            record.update(partial.columns("partial_delta"))
        records.append(record)
    return Comparison(pd.DataFrame.from_records(records), differences, partial_differences)


def _cell(value: float, ci, n: int = 0) -> str:
    return Estimate(value, ci[0], ci[1], n).format()


def to_markdown(summary: pd.DataFrame) -> str:
    """The `study` table as Markdown: ρ and τ with intervals, top-k precision, overall,
    partial (where `study` had a covariate) and in the top half; rows flagged in a boolean
    ``reference`` column are marked as size references."""
    pct = f"{100 * summary['top_fraction'].iloc[0]:g}" if len(summary) else "10"
    partial = "partial_spearman" in summary.columns
    header = ["proxy", "n", "Spearman ρ [95% CI]", "Kendall τ [95% CI]", f"top-{pct}% precision"]
    if partial:
        header += ["partial ρ [95% CI]", "partial τ [95% CI]"]
    header += ["top-half ρ [95% CI]", "top-half τ [95% CI]", f"top-half top-{pct}%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    references = summary["reference"].tolist() if "reference" in summary.columns else [False] * len(summary)
    for row, reference in zip(summary.itertuples(), references):
        cells = [row.proxy + (" (size reference)" if reference else ""), str(row.n), _cell(row.spearman, row.spearman_ci, row.n),
                 _cell(row.kendall, row.kendall_ci, row.n),
                 f"{row.top_k_precision:.3f}" if math.isfinite(row.top_k_precision) else "n/a"]
        if partial:
            cells += [_cell(row.partial_spearman, row.partial_spearman_ci, row.partial_n),
                      _cell(row.partial_kendall, row.partial_kendall_ci, row.partial_n)]
        cells += [_cell(row.top_half_spearman, row.top_half_spearman_ci, row.top_half_n),
                  _cell(row.top_half_kendall, row.top_half_kendall_ci, row.top_half_n),
                  f"{row.top_half_top_k_precision:.3f}" if math.isfinite(row.top_half_top_k_precision) else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
