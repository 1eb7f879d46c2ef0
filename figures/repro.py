"""Figures of the paper-reproduction entries: pure functions of results tables.

Each function takes a pandas DataFrame (or plain lists) that already holds every number
it draws and returns a matplotlib Figure; nothing is computed here beyond layout.
`save` writes a PNG with fixed metadata so that reruns give byte-stable files.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["correlation_bars", "ablation_curve", "ablation_bars", "search_results", "landscape_panels", "save"]


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` to `path` (PNG) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def _errors(frame, value: str, low: str, high: str) -> np.ndarray:
    v = frame[value].to_numpy(dtype=float)
    return np.vstack([v - frame[low].to_numpy(dtype=float), frame[high].to_numpy(dtype=float) - v])


def correlation_bars(frame, title: str = ""):
    """Spearman ρ and Kendall τ per proxy with 95% CI error bars; the paper's ρ as markers.

    frame columns: ``proxy, spearman, spearman_low, spearman_high, kendall, kendall_low,
    kendall_high`` and optionally ``paper_spearman`` (NaN where the paper has none).
    """
    x = np.arange(len(frame))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(frame) + 2), 3.8))
    ax.bar(x - width / 2, frame["spearman"], width, yerr=_errors(frame, "spearman", "spearman_low", "spearman_high"),
           capsize=3, label="Spearman ρ (ours, 95% CI)", color="tab:blue")
    ax.bar(x + width / 2, frame["kendall"], width, yerr=_errors(frame, "kendall", "kendall_low", "kendall_high"),
           capsize=3, label="Kendall τ (ours, 95% CI)", color="tab:orange")
    if "paper_spearman" in frame and frame["paper_spearman"].notna().any():
        ax.scatter(x - width / 2, frame["paper_spearman"], marker="D", color="black", zorder=3,
                   label="paper's ρ (NB201 CIFAR-10)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, frame["proxy"], rotation=20)
    ax.set_ylabel("rank correlation with test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def ablation_curve(frame, x: str, xlabel: str, title: str = "", log_x: bool = True):
    """ρ (with 95% CI band) against a numeric setting. frame columns: ``x, spearman,
    spearman_low, spearman_high``."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = frame[x].to_numpy(dtype=float)
    ax.plot(xs, frame["spearman"], marker="o", color="tab:blue", label="GradSign Spearman ρ")
    ax.fill_between(xs, frame["spearman_low"], frame["spearman_high"], alpha=0.25, color="tab:blue",
                    label="95% bootstrap CI")
    if log_x:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(int(v)) for v in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Spearman ρ with test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_bars(frame, x: str, xlabel: str, title: str = ""):
    """ρ with 95% CI error bars per categorical setting. frame columns: ``x, spearman,
    spearman_low, spearman_high``."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    pos = np.arange(len(frame))
    ax.bar(pos, frame["spearman"], yerr=_errors(frame, "spearman", "spearman_low", "spearman_high"),
           capsize=4, color="tab:blue")
    ax.set_xticks(pos, frame[x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GradSign Spearman ρ (95% CI)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def search_results(runs, curves, top_threshold: float, title: str = ""):
    """Left: best test accuracy found per run, one box per method, with the space's top-1%
    threshold. Right: mean best-so-far accuracy against the number of evaluations with a
    95% CI band. runs columns: ``method, best``; curves columns: ``method, evaluations,
    mean, low, high``."""
    methods = list(dict.fromkeys(runs["method"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0))
    left.boxplot([runs.loc[runs["method"] == m, "best"].to_numpy() for m in methods], showmeans=True)
    left.set_xticks(np.arange(1, len(methods) + 1), methods, rotation=25, fontsize=8)
    left.axhline(top_threshold, color="tab:red", ls="--", lw=1, label="top-1% threshold")
    left.set_ylabel("best test accuracy found")
    left.legend(fontsize=8)
    for m in methods:
        c = curves[curves["method"] == m]
        right.plot(c["evaluations"], c["mean"], label=m)
        right.fill_between(c["evaluations"], c["low"], c["high"], alpha=0.2)
    right.axhline(top_threshold, color="tab:red", ls="--", lw=1)
    right.set_xlabel("evaluations (trained networks queried)")
    right.set_ylabel("mean best-so-far test accuracy")
    right.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def landscape_panels(panels: list[dict], title: str = ""):
    """One panel per network: sample-wise losses l_i(θ_0 + t·u) against t, each sample's
    optimum projected on the line (t*_i, l*_i), θ_0 at t = 0 and θ̄* at t = t̄.

    Each panel dict: ``title, t (T,), loss (k, T), t_star (k,), loss_star (k,), t_bar``.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), sharey=False)
    axes = np.atleast_1d(axes)
    for ax, panel in zip(axes, panels):
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(panel["loss"])))
        for color, curve, ts, ls in zip(colors, panel["loss"], panel["t_star"], panel["loss_star"]):
            ax.plot(panel["t"], curve, color=color, lw=1)
            ax.scatter([ts], [ls], color=color, marker="*", s=50, zorder=3)
        ax.axvline(0, color="grey", ls=":", lw=1, label="θ_0")
        ax.axvline(panel["t_bar"], color="black", ls="--", lw=1, label="θ̄* (mean of optima)")
        ax.set_xlabel("t  (θ = θ_0 + t·u,  u ∝ θ̄* − θ_0)")
        ax.set_ylabel("sample-wise loss l_i")
        ax.set_title(panel["title"], fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
