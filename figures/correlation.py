"""Figures of a correlation study: table -> matplotlib Figure (the caller saves PNG and PDF).

* `proxy_scatter`: one panel per proxy, proxy score (x) against the trained accuracy (y),
  one point per architecture, as the GradSign paper plots it (Zhang & Jia, ICLR 2022,
  Fig. 3); scores spanning more than two decades get a symmetric-log x axis.
* `rho_bars`: Spearman's ρ per proxy with its bootstrap CI as error bars.

Both read stored columns only; they compute nothing beyond axis limits.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["proxy_scatter", "rho_bars"]


def _wide_range(values: np.ndarray) -> bool:
    finite = np.abs(values[np.isfinite(values)])
    positive = finite[finite > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 100


def proxy_scatter(frame: pd.DataFrame, proxies: list[str], truth: str = "test_acc", *,
                  rho: dict[str, float] | None = None, ncols: int = 4) -> Figure:
    """Panels of ``proxy`` score vs ``truth``, one per proxy; ``rho`` (optional) adds each
    proxy's Spearman ρ to its title. NaN scores are left out of a panel."""
    if not proxies:
        raise ValueError("proxies must name at least one column to plot")
    missing = [c for c in list(proxies) + [truth] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; available: {list(frame.columns)}")
    ncols = max(1, min(ncols, len(proxies)))
    nrows = math.ceil(len(proxies) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    y_all = pd.to_numeric(frame[truth], errors="coerce").to_numpy(dtype=float)
    for ax, name in zip(axes.flat, proxies):
        x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(x) & np.isfinite(y_all)
        ax.scatter(x[keep], y_all[keep], s=6, alpha=0.5, linewidths=0)
        if _wide_range(x[keep]):
            finite = np.abs(x[keep][x[keep] != 0])
            ax.set_xscale("symlog", linthresh=float(finite.min()) if len(finite) else 1.0)
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        title = name if rho is None or name not in rho or not math.isfinite(rho[name]) else f"{name} (ρ = {rho[name]:.2f})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("score", fontsize=8)
        ax.set_ylabel(truth, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(proxies):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def rho_bars(summary: pd.DataFrame, *, column: str = "spearman", ci_column: str = "spearman_ci",
             title: str | None = None) -> Figure:
    """Horizontal bars of ``column`` per proxy (row order kept) with ``ci_column`` (a pair
    per row) as error bars; undefined values are drawn as empty rows."""
    for c in ("proxy", column, ci_column):
        if c not in summary.columns:
            raise ValueError(f"column {c!r} is not in the summary; available: {list(summary.columns)}")
    values = summary[column].to_numpy(dtype=float)
    low = np.array([ci[0] for ci in summary[ci_column]], dtype=float)
    high = np.array([ci[1] for ci in summary[ci_column]], dtype=float)
    finite = np.isfinite(values) & np.isfinite(low) & np.isfinite(high)
    errors = np.vstack([np.where(finite, values - low, 0.0), np.where(finite, high - values, 0.0)])
    positions = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(summary) + 1.2))
    ax.barh(positions, np.where(np.isfinite(values), values, 0.0), xerr=errors, capsize=3,
            color=["C0" if v >= 0 else "C3" for v in np.nan_to_num(values)])
    ax.set_yticks(positions, summary["proxy"].tolist())
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-1, 1)
    ax.set_xlabel({"spearman": "Spearman ρ", "kendall": "Kendall τ"}.get(column, column) + " (95% bootstrap CI)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
