"""Figures of the bound-validation experiment: results table -> matplotlib Figure.

Every function takes the run's table (``empirical.results.load(run, status="ok")``: one
row per network, nested metrics as dotted columns, lists as JSON text) and returns a
Figure. They compute nothing beyond selecting and plotting stored columns; the
landscape figure plots the arrays each job stored under ``landscape.*``.

`FIGURES` maps each figure's file name to its function.
"""
from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = ["FIGURES", "agreement_by_layer", "bound_vs_measured", "landscape", "proxies_vs_accuracy",
           "psi_vs_gradsign"]

_MARKERS = ("o", "s", "^", "D", "v", "P")


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Logarithmic axes with labels on the decades only (minor labels collide)."""
    for flag, axis, set_scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if flag:
            set_scale("log")
            axis.set_minor_formatter(NullFormatter())


def _datasets(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["data.name"].dropna().unique()) if "data.name" in frame else ["all"]


def _subset(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame if "data.name" not in frame else frame[frame["data.name"] == name]


def bound_vs_measured(frame: pd.DataFrame) -> Figure:
    """Bound value against the loss it bounds, log–log, with the line y = x.

    Left: the predictor θ̄*, which the bounds speak of; points above the line are
    networks where the bound held. Right: the trained θ̂ (train loss for Theorem 1, test
    loss for Theorem 2), for scale only: the bounds are tens to thousands of times its
    loss, so lying above the line says nothing about them. One colour per bound, one
    marker per data set.
    """
    names = [m.group(1) for c in frame.columns if (m := re.fullmatch(r"bound\.(.+)\.value", c))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sets = _datasets(frame)
    for ax, where, label in ((axes[0], "theta_bar", "at θ̄* (mean of sample-wise optima)"),
                             (axes[1], "trained", "at trained θ̂ (scale only)")):
        lows, highs = [], []
        for b, name in enumerate(names):
            for s, data_name in enumerate(sets):
                sub = _subset(frame, data_name)
                x, y = _numbers(sub, f"bound.{name}.{where}"), _numbers(sub, f"bound.{name}.value")
                keep = (x > 0) & (y > 0)
                ax.scatter(x[keep], y[keep], s=18, alpha=0.7, color=colours[b % len(colours)],
                           marker=_MARKERS[s % len(_MARKERS)], label=f"{name} · {data_name}")
                lows += [x[keep].min(initial=np.inf), y[keep].min(initial=np.inf)]
                highs += [x[keep].max(initial=0), y[keep].max(initial=0)]
        lo, hi = min(lows, default=1e-3), max(highs, default=1.0)
        if np.isfinite(lo) and hi > 0:
            ax.plot([lo / 2, hi * 2], [lo / 2, hi * 2], color="black", lw=1, label="y = x (bound = measured)")
        _log_axes(ax)
        ax.set_xlabel(f"measured loss {label}")
        ax.set_title(f"Bound vs measured loss {label}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("bound value (measured constants)")
    axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Bounds vs measured losses: at θ̄* points above y = x are networks where the bound held; "
                 "at θ̂ the bounds are far looser and the comparison carries no information", fontsize=10)
    return fig


def psi_vs_gradsign(frame: pd.DataFrame) -> Figure:
    """Ψ_1 and Ψ_2 of the sample-wise optima against GradSign at θ_0 (one colour per data set).

    GradSign grows with the number of weights, Ψ with the spread of the optima, so the
    axes are logarithmic.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, column, label in ((axes[0], "psi_1", "Ψ_1"), (axes[1], "psi_2", "Ψ_2")):
        for s, name in enumerate(_datasets(frame)):
            sub = _subset(frame, name)
            ax.scatter(_numbers(sub, "proxy.gradsign"), _numbers(sub, column), s=18, alpha=0.75,
                       marker=_MARKERS[s % len(_MARKERS)], label=name)
        _log_axes(ax)
        ax.set_xlabel("GradSign at θ_0")
        ax.set_ylabel(f"{label} (exact, sample-wise optima)")
        ax.set_title(f"{label} vs GradSign", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Ψ vs GradSign: one point per network")
    return fig


def proxies_vs_accuracy(frame: pd.DataFrame) -> Figure:
    """Test accuracy of the trained network against GradSign and against Ψ_2 (rows without
    an accuracy, i.e. regression, are left out)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, column, label in ((axes[0], "proxy.gradsign", "GradSign at θ_0"),
                              (axes[1], "psi_2", "Ψ_2 (exact)")):
        for s, name in enumerate(_datasets(frame)):
            sub = _subset(frame, name)
            acc = _numbers(sub, "trained.test_acc")
            keep = np.isfinite(acc)
            if keep.any():
                ax.scatter(_numbers(sub, column)[keep], acc[keep], s=18, alpha=0.75,
                           marker=_MARKERS[s % len(_MARKERS)], label=name)
        _log_axes(ax, y=False)
        ax.set_xlabel(label)
        ax.set_title(f"Test accuracy vs {label.split(' ')[0]}", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy of the trained network θ̂")
    axes[0].legend(fontsize=8)
    fig.suptitle("GradSign and Ψ vs test accuracy: one point per network")
    return fig


def agreement_by_layer(frame: pd.DataFrame) -> Figure:
    """Sign–side agreement rate per weight layer (1 = input side), one box per layer over all
    networks, with each network's rate as a point (one colour per data set)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    per_layer: dict[int, list[float]] = {}
    sets = _datasets(frame)
    for s, name in enumerate(sets):
        sub = _subset(frame, name)
        xs, ys = [], []
        for text in sub.get("agreement.weight_rates", pd.Series(dtype=object)):
            if not isinstance(text, str):
                continue
            for layer, rate in enumerate(json.loads(text), start=1):
                if rate is None or not np.isfinite(rate):
                    continue
                per_layer.setdefault(layer, []).append(rate)
                xs.append(layer + 0.25 * (s - (len(sets) - 1) / 2) / max(len(sets), 1))
                ys.append(rate)
        ax.scatter(xs, ys, s=10, alpha=0.6, marker=_MARKERS[s % len(_MARKERS)], label=name, zorder=3)
    layers = sorted(per_layer)
    if layers:
        ax.boxplot([per_layer[k] for k in layers], positions=layers, widths=0.5, showfliers=False)
        ax.set_xticks(layers, [str(k) for k in layers])
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="A3 exactly (rate 1)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance (rate 0.5)")
    ax.set_xlabel("weight layer (1 = input side)")
    ax.set_ylabel("P[sign(θ_0 − θ*_i) = sign(∂l_i(θ_0))]")
    ax.set_title("Sign–side agreement (A3) by layer")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def _landscape_panel(ax, row: pd.Series, title: str) -> None:
    t = np.asarray(json.loads(row["landscape.t"]))
    losses = np.asarray(json.loads(row["landscape.loss"]))
    t_star = np.asarray(json.loads(row["landscape.t_star"]))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, curve in enumerate(losses):
        colour = colours[i % len(colours)]
        ax.plot(t, curve, color=colour, lw=1, alpha=0.8)
        ax.axvline(t_star[i], color=colour, lw=0.8, ls=":", alpha=0.8)
    ax.plot(t_star, np.zeros_like(t_star), "k|", ms=14, label="projections of θ*_i")
    ax.axvline(0.0, color="black", lw=1.2, label="θ_0")
    ax.axvline(float(row["landscape.t_bar"]), color="red", lw=1.2, ls="--", label="θ̄*")
    ax.set_xlabel("t along u = (θ̄* − θ_0)/‖θ̄* − θ_0‖")
    ax.set_ylabel("l_i(θ_0 + t u)")
    off_line = np.asarray(json.loads(row["landscape.off_line"]))
    ax.set_title(f"{title}\nmedian distance of θ*_i from the line {np.median(off_line):.3g}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)


def landscape(frame: pd.DataFrame) -> Figure:
    """Dense vs sparse sample-wise landscapes of real networks: l_i along the line from θ_0
    through θ̄*, with each θ*_i projected on it, for the network with the smallest and the
    largest Ψ_2 of the data set with the most networks."""
    rows = frame[frame["landscape.t"].notna()] if "landscape.t" in frame else frame.iloc[:0]
    # A shared t axis: the spread of the projected optima is what the panels compare.
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharex=True)
    if rows.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no landscape arrays stored", ha="center", va="center")
        return fig
    name = rows["data.name"].value_counts().idxmax() if "data.name" in rows else "all"
    sub = _subset(rows, name)
    psi = _numbers(sub, "psi_2")
    dense, sparse = sub.iloc[int(np.nanargmin(psi))], sub.iloc[int(np.nanargmax(psi))]

    def describe(row, kind):
        net = (f"{row.get('model.family', '')} w={row.get('model.width', '')} d={row.get('model.depth', '')} "
               f"{row.get('model.activation', '')} scale={row.get('model.init_scale', '')}")
        which = "smallest" if kind == "dense" else "largest"
        return f"{kind}: {which} Ψ_2 = {row['psi_2']:.3g}; {net}"

    _landscape_panel(axes[0], dense, describe(dense, "dense"))
    _landscape_panel(axes[1], sparse, describe(sparse, "sparse"))
    fig.suptitle(f"Sample-wise losses along θ_0 → θ̄* ({name}): dense vs sparse optima", y=1.0)
    fig.tight_layout()
    return fig


FIGURES = {
    "bound_vs_measured": bound_vs_measured,
    "psi_vs_gradsign": psi_vs_gradsign,
    "proxies_vs_accuracy": proxies_vs_accuracy,
    "agreement_by_layer": agreement_by_layer,
    "landscape": landscape,
}
