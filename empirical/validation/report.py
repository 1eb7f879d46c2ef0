"""RUN/report.md: what held and what did not, per data set, every number with its 95% CI.

`render(frame)` takes the run's table (`empirical.results.load`, failed rows included)
and writes, for each data set:

- failures, counted and grouped by reason;
- for every bound: the networks where it held at the predictor θ̄* (L_S(θ̄*), or the test
  loss of θ̄* for a population bound) and, separately, at the trained θ̂ (L_S(θ̂), or the
  test loss of θ̂), as k/N with a Wilson interval; the bound/measured ratios (median with
  a bootstrap interval, and the 5–95% range of the population);
- Spearman and Kendall rank correlations, each with a bootstrap interval, among GradSign,
  gradsign_sq, −Ψ_2, −Ψ_1, the trained network's train loss, test loss and test accuracy;
- A1 (β_hess ≥ β_eff on every sample), A2 (stationarity residuals) and the sign–side
  agreement rate of A3, overall and per layer;
- plain statements of the above.

Intervals come from `empirical.validation.stats` with fixed seeds, so the same store
gives the same report.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from empirical.validation.stats import Estimate, correlation_ci, location_ci, proportion_ci

__all__ = ["QUANTITIES", "render"]

# (label, column, orientation): orientation +1 where a larger value of the labelled
# quantity predicts a better network (−Ψ: the column holds Ψ, negated when read).
QUANTITIES = (
    ("GradSign", "proxy.gradsign", 1),
    ("gradsign_sq", "proxy.gradsign_sq", 1),
    ("−Ψ_2", "psi_2", 1),
    ("−Ψ_1", "psi_1", 1),
    ("train loss of θ̂", "trained.train_loss", -1),
    ("test loss of θ̂", "trained.test_loss", -1),
    ("test accuracy of θ̂", "trained.test_acc", 1),
)
# GradSign and Ψ_1 are sums over coordinates, so across networks of different sizes both
# grow with the parameter count; these per-coordinate forms take that common factor out.
NORMALISED = (
    ("GradSign / #weights", ("proxy.gradsign", "n_weights"), 1),
    ("gradsign_sq / #weights", ("proxy.gradsign_sq", "n_weights"), 1),
    ("−Ψ_1 / m", ("psi_1", "n_params"), 1),
    ("−Ψ_2 / m", ("psi_2", "n_params"), 1),
    ("test accuracy of θ̂", ("trained.test_acc", None), 1),
    ("test loss of θ̂", ("trained.test_loss", None), -1),
)
BOUND_LABELS = {
    "theorem1_per_sample": "Theorem 1, per-sample β_i",
    "theorem1_uniform": "Theorem 1, uniform β",
    "theorem1_first_order": "Theorem 1, first-order form",
    "theorem2": "Theorem 2 (held-out optima)",
    "lipschitz_per_sample": "Lipschitz, per sample",
    "lipschitz_psi1": "Lipschitz, Ψ_1",
}


def _bound_names(frame: pd.DataFrame) -> list[str]:
    names = []
    for column in frame.columns:
        match = re.fullmatch(r"bound\.(.+)\.value", column)
        if match:
            names.append(match.group(1))
    return names


def _bools(series: pd.Series) -> np.ndarray:
    return series.map(lambda v: bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else False).to_numpy()


def _count(frame: pd.DataFrame, column: str) -> Estimate:
    if column not in frame:
        return proportion_ci(0, 0)
    flags = _bools(frame[column])
    return proportion_ci(int(flags.sum()), len(flags))


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _population(frame: pd.DataFrame) -> list[str]:
    lines = []
    for column in frame.columns:
        if not column.startswith(("data.", "model.", "theory.", "train.")):
            continue
        values = sorted({json.dumps(v) if not isinstance(v, str) else v
                         for v in frame[column].tolist() if not (isinstance(v, float) and math.isnan(v))})
        if values:
            lines.append(f"`{column}` = {', '.join(values)}")
    return lines


def _failures(failed: pd.DataFrame) -> list[str]:
    reasons = Counter(str(r).splitlines()[0][:200] for r in failed["reason"])
    return [f"- {count} × {reason}" for reason, count in reasons.most_common()]


def _range(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "n/a"
    low, high = np.percentile(values, [5, 95])
    return f"{low:.3g}–{high:.3g}"


def _bound_section(ok: pd.DataFrame, statements: list[str]) -> list[str]:
    lines = [
        "| bound | held at θ̄* (95% CI) | held at trained θ̂ (95% CI) | bound / measured at θ̄*: median [CI]; 5–95% | "
        "bound / measured at θ̂: median [CI]; 5–95% |",
        "|---|---|---|---|---|",
    ]
    for name in _bound_names(ok):
        label = BOUND_LABELS.get(name, name)
        bar = _count(ok, f"bound.{name}.theta_bar_holds")
        hat = _count(ok, f"bound.{name}.trained_holds")
        ratio_bar = _column(ok, f"bound.{name}.ratio_theta_bar")
        ratio_hat = _column(ok, f"bound.{name}.ratio_trained")
        med_bar, med_hat = location_ci(ratio_bar, seed=1), location_ci(ratio_hat, seed=2)
        lines.append(
            f"| {label} | {_k_of_n(bar)} | {_k_of_n(hat)} | {med_bar.format(3)}; {_range(ratio_bar)} | "
            f"{med_hat.format(3)}; {_range(ratio_hat)} |"
        )
        population = (ok.get(f"bound.{name}.measures", pd.Series(["train"])).iloc[0] == "population")
        what_bar = "the test loss of θ̄*" if population else "L_S(θ̄*)"
        what_hat = "the test loss of θ̂" if population else "L_S(θ̂)"
        statements.append(
            f"{label}: {what_bar} ≤ bound in {_k_of_n(bar)} networks; {what_hat} ≤ bound in {_k_of_n(hat)}. "
            f"The bound was a median {med_bar.format(3)} times {what_bar}."
        )
    return lines


def _k_of_n(est: Estimate) -> str:
    if est.n == 0:
        return "n/a"
    return f"{round(est.value * est.n)}/{est.n} ({est.format(percent=True)})"


def _verdict(est: Estimate, predicted: int) -> str:
    if not est.defined:
        return "n/a"
    if not est.excludes(0.0):
        return "CI includes 0"
    sign = 1 if est.value > 0 else -1
    return "as predicted" if sign == predicted else "opposite to prediction"


def _values(ok: pd.DataFrame, label: str, column) -> np.ndarray:
    """The quantity as labelled: Ψ columns negated, per-coordinate forms divided."""
    numerator, denominator = column if isinstance(column, tuple) else (column, None)
    values = _column(ok, numerator)
    if denominator is not None:
        values = values / _column(ok, denominator)
    return -values if label.startswith("−") else values


def _correlation_section(ok: pd.DataFrame, statements: list[str], quantities=QUANTITIES,
                         key_pairs: frozenset = frozenset()) -> list[str]:
    available = [(label, col, o) for label, col, o in quantities
                 if np.isfinite(_values(ok, label, col)).sum() >= 2]
    lines = [
        "| pair | Spearman ρ [95% CI] | Kendall τ [95% CI] | n | direction the theory predicts | verdict (Spearman) |",
        "|---|---|---|---|---|---|",
    ]
    seed = 0
    for i, (label_a, col_a, o_a) in enumerate(available):
        for label_b, col_b, o_b in available[i + 1:]:
            a, b = _values(ok, label_a, col_a), _values(ok, label_b, col_b)
            rho = correlation_ci(a, b, "spearman", seed=seed)
            tau = correlation_ci(a, b, "kendall", seed=seed + 1)
            seed += 2
            predicted = o_a * o_b
            verdict = _verdict(rho, predicted)
            lines.append(f"| {label_a} vs {label_b} | {rho.format()} | {tau.format()} | {rho.n} | "
                         f"{'positive' if predicted > 0 else 'negative'} | {verdict} |")
            if (label_a, label_b) in key_pairs:
                statements.append(f"{label_a} vs {label_b}: Spearman ρ = {rho.format()}, Kendall τ = "
                                  f"{tau.format()} (n = {rho.n}): {verdict}.")
    return lines


KEY_PAIRS = frozenset({
    ("GradSign", "−Ψ_2"), ("GradSign", "−Ψ_1"), ("GradSign", "test accuracy of θ̂"),
    ("−Ψ_2", "test accuracy of θ̂"), ("−Ψ_2", "train loss of θ̂"), ("−Ψ_2", "test loss of θ̂"),
    ("gradsign_sq", "−Ψ_2"), ("gradsign_sq", "test accuracy of θ̂"),
    ("GradSign / #weights", "−Ψ_1 / m"), ("GradSign / #weights", "−Ψ_2 / m"),
    ("GradSign / #weights", "test accuracy of θ̂"), ("−Ψ_2 / m", "test accuracy of θ̂"),
})


def _assumption_section(ok: pd.DataFrame, statements: list[str]) -> list[str]:
    a1_all = _count(ok, "a1.holds")
    a1_frac = location_ci(_column(ok, "a1.consistent_fraction"), "mean", seed=3)
    a1_ratio = location_ci(_column(ok, "a1.ratio_median"), seed=4)
    a1_min = location_ci(_column(ok, "a1.ratio_min"), seed=5)
    a2_all = _count(ok, "a2.holds")
    a2_res = location_ci(np.log10(np.maximum(_column(ok, "a2.max_residual"), 1e-300)), seed=6)
    rate = location_ci(_column(ok, "agreement.rate"), "mean", seed=7)
    lines = [
        "| check | result (95% CI) |",
        "|---|---|",
        f"| A1: β_hess ≥ β_eff on every sample of the network | {_k_of_n(a1_all)} networks |",
        f"| A1: fraction of samples with β_hess ≥ β_eff, mean over networks | {a1_frac.format(3)} |",
        f"| A1: per-network median of β_hess/β_eff, median over networks | {a1_ratio.format(3)} |",
        f"| A1: per-network minimum of β_hess/β_eff, median over networks | {a1_min.format(3)} |",
        f"| A2: residual ≤ tol on every sample | {_k_of_n(a2_all)} networks |",
        f"| A2: log10 of the largest stationarity residual, median over networks | {a2_res.format(3)} |",
        f"| A3: sign–side agreement rate, mean over networks | {rate.format(3)} |",
    ]
    layer_rates = _layer_rates(ok)
    for layer, values in sorted(layer_rates.items()):
        est = location_ci(values, "mean", seed=10 + layer)
        lines.append(f"| A3: agreement rate of weight layer {layer} (1 = input side), mean | {est.format(3)} |")
    statements.append(f"A1 (β_hess ≥ β_eff at every sample) held in {_k_of_n(a1_all)} networks; on average "
                      f"{a1_frac.format(3)} of a network's samples were consistent.")
    statements.append(f"A2 (stationary optima, residual ≤ tol) held in {_k_of_n(a2_all)} networks.")
    exact = proportion_ci(int((_column(ok, "agreement.rate") == 1).sum()), len(ok))
    statements.append(f"Sign–side agreement (A3) rate: mean {rate.format(3)} over networks; A3 itself (rate 1) "
                      f"held in {_k_of_n(exact)} networks.")
    return lines


def _layer_rates(ok: pd.DataFrame) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    if "agreement.weight_rates" not in ok:
        return out
    for text in ok["agreement.weight_rates"]:
        if not isinstance(text, str):
            continue
        for index, value in enumerate(json.loads(text), start=1):
            out.setdefault(index, []).append(value)
    return out


def _timings(frame: pd.DataFrame) -> str:
    wall = _column(frame, "timing.wall_s")
    wall = wall[np.isfinite(wall)]
    if wall.size == 0:
        return "no timings recorded"
    return f"job wall time: total {wall.sum():.0f} s, median {np.median(wall):.1f} s, max {wall.max():.1f} s"


def render(frame: pd.DataFrame, title: str = "run") -> str:
    """The Markdown report of one run's table (see the module docstring)."""
    lines = [f"# Bound validation: {title}", ""]
    if frame.empty:
        return "\n".join(lines + ["The run has no rows yet.", ""])
    # Rows come in completion order, which parallel workers vary; the bootstrap intervals
    # resample by position, so fix the order (by job hash) for the same report every time.
    frame = frame.sort_values("hash", kind="stable").reset_index(drop=True)
    total = len(frame)
    failed = frame[frame["status"] == "failed"]
    revisions = sorted(set(map(str, frame["git_revision"])))
    versions = {c[len("version."):]: sorted(set(map(str, frame[c]))) for c in frame.columns if c.startswith("version.")}
    lines += [
        f"{total} networks, {total - len(failed)} measured, {len(failed)} failed. {_timings(frame)}.",
        f"Git revision(s): {', '.join(revisions)}. Versions: "
        + "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(versions.items())) + ".",
        "",
        "Population (values taken over the grid):",
        "",
        *[f"- {line}" for line in _population(frame)],
        "",
        "How to read this: θ̄* is the mean of the sample-wise optima, the predictor the bounds speak of; θ̂ is",
        "the network trained from θ_0 on the same samples S. Train bounds are compared with L_S, Theorem 2 with",
        "the loss on the whole test split (Theorem 2 bounds an expectation over draws of S; each network",
        "is one draw). Fractions carry Wilson 95% intervals, medians and correlations",
        "percentile-bootstrap 95% intervals (1000 resamples, fixed seeds). \"CI includes 0\" means the sign",
        "of a correlation is not established by this population.",
        "",
    ]
    for name in sorted(frame["data.name"].dropna().unique()):
        subset = frame[frame["data.name"] == name]
        ok = subset[subset["status"] == "ok"]
        bad = subset[subset["status"] == "failed"]
        statements: list[str] = []
        lines += [f"## {name}", "", f"{len(subset)} networks: {len(ok)} measured, {len(bad)} failed.", ""]
        if len(bad):
            lines += ["### Failures", "", *_failures(bad), ""]
        if ok.empty:
            continue
        lines += ["### Bounds", "", *_bound_section(ok, statements), ""]
        lines += ["### Rank correlations", "", *_correlation_section(ok, statements, QUANTITIES, KEY_PAIRS), ""]
        lines += ["### Rank correlations of the per-coordinate forms", "",
                  "GradSign and Ψ_1 sum over coordinates, so across networks of different sizes both grow with",
                  "the parameter count. Divided by the number of weights (GradSign) or parameters (Ψ):", "",
                  *_correlation_section(ok, statements, NORMALISED, KEY_PAIRS), ""]
        lines += ["### Assumptions", "", *_assumption_section(ok, statements), ""]
        lines += ["### What held and what did not", "", *[f"- {s}" for s in statements], ""]
    return "\n".join(lines)
