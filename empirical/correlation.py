"""Rank agreement between a proxy and a ground truth: Spearman's ρ and Kendall's τ_b with
seeded bootstrap confidence intervals, and top-k precision.

* Spearman ρ: Pearson correlation of the average ranks (ties get the mean of their
  ranks), ``ρ = cov(R(x), R(y)) / (σ_R(x) σ_R(y))``.
* Kendall τ_b (Kendall 1945, with ties): ``τ_b = (P - Q) / sqrt((P + Q + T_x)(P + Q + T_y))``
  over pairs, P concordant, Q discordant, T_x ties in x only, T_y ties in y only.
* Bootstrap (percentile method, Efron & Tibshirani 1993 §13): draw ``n_boot`` samples of
  the n pairs with replacement from ``numpy.random.default_rng(seed)``, compute the
  statistic on each, and report the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles.
  Resamples whose statistic is undefined (a constant column) are left out and counted.
* Top-k precision (Abdelfattah et al., ICLR 2021, "top-10%"): with ``k = ceil(fraction·n)``,
  the share of the k best items by the truth that are also among the k best by the score,
  ``|top_k(score) ∩ top_k(truth)| / k``. Ties are broken by position (earlier first) so the
  result is deterministic.

Pairs where either value is NaN (a proxy undefined on a network) are dropped first; the
count is reported.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["spearman", "kendall", "bootstrap_ci", "top_k_precision", "rank_correlations", "top_half",
           "study", "to_markdown"]


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep], int((~keep).sum())


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ρ of each row pair of (b, n) arrays: Pearson correlation of per-row average ranks."""
    rx = stats.rankdata(x, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(axis=-1) / np.where(denom > 0, denom, 1), np.nan)


def spearman(x, y) -> float:
    """Spearman's ρ of the non-NaN pairs (NaN if either side is constant or n < 2).

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40])
    1.0
    """
    x, y, _ = _pairs(x, y)
    if len(x) < 2:
        return math.nan
    return float(_spearman_rows(x[None], y[None])[0])


def kendall(x, y) -> float:
    """Kendall's τ_b of the non-NaN pairs (NaN if either side is constant or n < 2).

    >>> kendall([1, 2, 3], [3, 2, 1])
    -1.0
    """
    x, y, _ = _pairs(x, y)
    if len(x) < 2:
        return math.nan
    return float(stats.kendalltau(x, y, variant="b").statistic)


def bootstrap_ci(x, y, statistic, *, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, int]:
    """Percentile bootstrap CI of ``statistic(x, y)`` over resampled pairs.

    ``statistic``: ``"spearman"`` (vectorised over resamples), ``"kendall"``, or a
    function of two arrays. Returns ``(low, high, n_undefined)``.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x, y, _ = _pairs(x, y)
    n = len(x)
    if n < 2:
        return math.nan, math.nan, n_boot
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_boot, n))
    if statistic == "spearman":
        values = _spearman_rows(x[index], y[index])
    else:
        fn = kendall if statistic == "kendall" else statistic
        if not callable(fn):
            raise ValueError(f"statistic must be 'spearman', 'kendall' or a function, got {statistic!r}")
        values = np.array([fn(x[i], y[i]) for i in index], dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return math.nan, math.nan, n_boot
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), int(n_boot - len(finite))


def _top_k_index(values: np.ndarray, k: int) -> set[int]:
    # Stable sort of -values: among equal values the earlier position comes first.
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def top_k_precision(score, truth, fraction: float = 0.1) -> float:
    """``|top_k(score) ∩ top_k(truth)| / k`` with ``k = ceil(fraction · n)`` over the non-NaN pairs.

    >>> top_k_precision([5, 4, 3, 2, 1], [5, 1, 4, 3, 2], fraction=0.4)
    0.5
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    s, t, _ = _pairs(score, truth)
    if len(s) == 0:
        return math.nan
    k = math.ceil(fraction * len(s))
    return len(_top_k_index(s, k) & _top_k_index(t, k)) / k


def rank_correlations(score, truth, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      top_fraction: float = 0.1) -> dict:
    """Spearman and Kendall with bootstrap CIs, and top-k precision, as one JSON-ready dict:
    ``n, n_nan, spearman, spearman_ci, kendall, kendall_ci, top_k_precision, top_fraction,
    n_boot, level, bootstrap_seed``."""
    s, t, n_nan = _pairs(score, truth)
    sp_low, sp_high, _ = bootstrap_ci(s, t, "spearman", n_boot=n_boot, level=level, seed=seed)
    kt_low, kt_high, _ = bootstrap_ci(s, t, "kendall", n_boot=n_boot, level=level, seed=seed)
    return {
        "n": int(len(s)),
        "n_nan": n_nan,
        "spearman": spearman(s, t),
        "spearman_ci": [sp_low, sp_high],
        "kendall": kendall(s, t),
        "kendall_ci": [kt_low, kt_high],
        "top_k_precision": top_k_precision(s, t, top_fraction),
        "top_fraction": top_fraction,
        "n_boot": n_boot,
        "level": level,
        "bootstrap_seed": seed,
    }


def top_half(truth) -> np.ndarray:
    """Boolean mask of the ``ceil(n/2)`` best items by ``truth`` (NaN never selected; ties
    broken by position)."""
    truth = np.asarray(truth, dtype=float)
    valid = np.flatnonzero(~np.isnan(truth))
    order = valid[np.argsort(-truth[valid], kind="stable")]
    mask = np.zeros(len(truth), dtype=bool)
    mask[order[:math.ceil(len(valid) / 2)]] = True
    return mask


def study(frame, proxies: list[str], truth: str, *, n_boot: int = 1000, level: float = 0.95,
          seed: int = 0, top_fraction: float = 0.1):
    """One row per proxy: `rank_correlations` of the proxy's scores against column ``truth``
    over all rows of ``frame``, and (columns prefixed ``top_half_``) over the rows in the
    `top_half` by the truth. Returns a pandas DataFrame."""
    import pandas as pd

    missing = [c for c in list(proxies) + [truth] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; available: {list(frame.columns)}")
    mask = top_half(frame[truth].to_numpy())
    records = []
    for name in proxies:
        score = frame[name].to_numpy(dtype=float)
        target = frame[truth].to_numpy(dtype=float)
        record = {"proxy": name, **rank_correlations(score, target, n_boot=n_boot, level=level, seed=seed,
                                                     top_fraction=top_fraction)}
        half = rank_correlations(score[mask], target[mask], n_boot=n_boot, level=level, seed=seed,
                                 top_fraction=top_fraction)
        record.update({f"top_half_{k}": half[k] for k in ("n", "n_nan", "spearman", "spearman_ci", "kendall",
                                                         "kendall_ci", "top_k_precision")})
        records.append(record)
    return pd.DataFrame.from_records(records)


def _with_ci(value: float, ci) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def to_markdown(summary) -> str:
    """The `study` table as Markdown: ρ and τ with CIs, top-k precision, overall and top half."""
    pct = f"{100 * summary['top_fraction'].iloc[0]:g}" if len(summary) else "10"
    header = ["proxy", "n", "Spearman ρ [95% CI]", "Kendall τ [95% CI]", f"top-{pct}% precision",
              "top-half ρ [95% CI]", "top-half τ [95% CI]", f"top-half top-{pct}%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.itertuples():
        cells = [
            row.proxy, str(row.n), _with_ci(row.spearman, row.spearman_ci), _with_ci(row.kendall, row.kendall_ci),
            f"{row.top_k_precision:.3f}" if math.isfinite(row.top_k_precision) else "n/a",
            _with_ci(row.top_half_spearman, row.top_half_spearman_ci),
            _with_ci(row.top_half_kendall, row.top_half_kendall_ci),
            f"{row.top_half_top_k_precision:.3f}" if math.isfinite(row.top_half_top_k_precision) else "n/a",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
