"""`gradsign psi-study PSI_RUN PROXY_RUN --truth T --out DIR`: does exact Ψ rank
NAS-Bench-201 cells, and does GradSign track Ψ beyond network size?

PSI_RUN is a ``space-score --psi`` run (``scores.csv`` with ``psi_2, psi_1,
psi_status``), PROXY_RUN a ``space-score`` run with ``gradsign`` and ``gradsign_sq``
(and ``params``, else the truth's), both on the same architectures and θ_0 (seed). Over
the architectures where Ψ is defined (status ``ok`` or ``partial``; ``no_input_path`` and
``unconverged`` are counted and left out), ``DIR/report.md`` gives Spearman and Kendall
with 95 % bootstrap CIs among −Ψ_2, −Ψ_1, GradSign, gradsign_sq, #params, test accuracy
and −test loss, the same with log #params partialled out, ρ per stratum (number of
convolution edges), the paired Δρ of −Ψ_2 against GradSign, the same on the ``ok``
architectures only, figures (Ψ_2 against GradSign and against test accuracy, coloured
by #params) and a verdict in words. ``DIR/pairs.csv`` and ``DIR/strata.csv`` hold the tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from empirical import provenance, stats
from empirical.benchmarks.benchmark import BENCHMARKS, load_benchmark
from empirical.benchmarks.nb201_digits import conv_edges

VARIABLES = ("−Ψ_2", "−Ψ_1", "GradSign", "gradsign_sq", "#params", "test accuracy", "−test loss")
PAIRS = (("−Ψ_2", "test accuracy"), ("−Ψ_1", "test accuracy"), ("GradSign", "test accuracy"),
         ("gradsign_sq", "test accuracy"), ("#params", "test accuracy"), ("−Ψ_2", "−test loss"),
         ("GradSign", "−test loss"), ("GradSign", "−Ψ_2"), ("GradSign", "−Ψ_1"), ("−Ψ_2", "−Ψ_1"),
         ("−Ψ_2", "#params"), ("GradSign", "#params"))
DEFINED = ("ok", "partial")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "psi-study",
        help="exact Ψ vs GradSign vs trained accuracy on NAS-Bench-201 cells",
        description="Join a `space-score --psi` run, a proxy run and a ground truth; rank correlations "
                    "with CIs, raw and given log #params, per stratum, figures and a verdict.",
    )
    parser.add_argument("psi_run", metavar="PSI_RUN", help="space-score --psi run directory")
    parser.add_argument("proxy_run", metavar="PROXY_RUN", help="space-score run with gradsign and gradsign_sq")
    parser.add_argument("--truth", default="nb201-digits", choices=[b for b in BENCHMARKS if b != "toy"])
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for report.md, tables, figures")
    parser.set_defaults(func=main)


def _scores(run: str, columns: list[str]) -> pd.DataFrame:
    path = Path(run) / "scores.csv"
    if not path.exists():
        raise ValueError(f"{run!r} has no scores.csv: pass a `gradsign space-score --out` directory")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}")
    return table.drop_duplicates("arch")


def joined(psi: pd.DataFrame, proxies: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture in all three tables, with the study's variables (signs
    such that the theory predicts positive correlations with accuracy)."""
    frame = truth[["arch", "test_acc", "test_loss", "params"]].merge(
        proxies[["arch", "gradsign", "gradsign_sq"]], on="arch").merge(
        psi[["arch", "psi_2", "psi_1", "psi_status", "converged_fraction"]], on="arch")
    if len(frame) < 3:
        raise ValueError(f"only {len(frame)} architectures are in the Ψ run, the proxy run and the truth")
    out = pd.DataFrame({"arch": frame["arch"], "psi_status": frame["psi_status"],
                        "converged_fraction": frame["converged_fraction"],
                        "−Ψ_2": -frame["psi_2"], "−Ψ_1": -frame["psi_1"], "GradSign": frame["gradsign"],
                        "gradsign_sq": frame["gradsign_sq"], "#params": frame["params"],
                        "test accuracy": frame["test_acc"], "−test loss": -frame["test_loss"]})
    out["conv edges"] = [conv_edges(a) for a in out["arch"]]
    return out


def pair_table(frame: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    log_params = np.log(frame["#params"].to_numpy(dtype=float))
    undefined = stats.Estimate(np.nan, np.nan, np.nan, 0)
    for a, b in PAIRS:
        x, y = frame[a].to_numpy(dtype=float), frame[b].to_numpy(dtype=float)
        est = {key: stats.correlation_ci(x, y, key, n_boot=n_boot, seed=seed) for key in ("spearman", "kendall")}
        # #params given log #params is undefined
        est["partial_spearman"] = undefined if "#params" in (a, b) else stats.correlation_ci(
            x, y, "spearman", covariate=log_params, n_boot=n_boot, seed=seed)
        rows.append({"pair": f"{a} vs {b}", **est["spearman"].columns("spearman"), "n": est["spearman"].n,
                     **est["kendall"].columns("kendall"), **est["partial_spearman"].columns("partial_spearman")})
    return pd.DataFrame(rows)


def strata_table(frame: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for edges, part in frame.groupby("conv edges"):
        row = {"conv edges": int(edges), "archs": len(part)}
        for a, b in (("−Ψ_2", "test accuracy"), ("GradSign", "test accuracy"), ("GradSign", "−Ψ_2")):
            est = stats.correlation_ci(part[a].to_numpy(dtype=float), part[b].to_numpy(dtype=float),
                                       n_boot=n_boot, seed=seed, min_samples=3)
            row[f"ρ({a}, {b})"] = est.format()
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row, key: str) -> str:
    return stats.Estimate.from_columns(row, key).format()


def _figures(frame: pd.DataFrame, out: Path) -> list[str]:
    names = []
    for name, x, xlabel in (("psi2_vs_gradsign", "GradSign", "GradSign"),
                            ("psi2_vs_accuracy", "test accuracy", "test accuracy (ground truth)")):
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        points = ax.scatter(frame[x], -frame["−Ψ_2"], c=np.log10(frame["#params"]), s=9, cmap="viridis")
        ax.set_yscale("log")
        if x == "GradSign":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Ψ_2 (exact, sample-wise optima)")
        fig.colorbar(points, ax=ax, label="log10 #params")
        fig.tight_layout()
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=120)
        plt.close(fig)
        names.append(f"{name}.png")
    return names


def _verdict(pairs: pd.DataFrame, delta, delta_partial) -> list[str]:
    by = pairs.set_index("pair")
    gs_psi = by.loc["GradSign vs −Ψ_2"]
    lines = []
    if delta.low > 0:
        lines.append(f"−Ψ_2 ranks the architectures by test accuracy **better** than GradSign: Δρ = {delta.format()}.")
    elif delta.high < 0:
        lines.append(f"−Ψ_2 ranks the architectures by test accuracy **worse** than GradSign: Δρ = {delta.format()}.")
    else:
        lines.append(f"−Ψ_2 and GradSign rank by test accuracy **within noise** of each other: Δρ = {delta.format()}.")
    lines.append(f"Given log #params, Δρ(partial) = {delta_partial.format()}.")
    low, high = gs_psi["partial_spearman_low"], gs_psi["partial_spearman_high"]
    if low > 0:
        lines.append(f"GradSign tracks −Ψ_2 **beyond network size**: partial ρ = {_cell(gs_psi, 'partial_spearman')} "
                     f"(raw ρ = {_cell(gs_psi, 'spearman')}).")
    elif high < 0:
        lines.append(f"Given network size, GradSign runs **opposite** to −Ψ_2: partial ρ = {_cell(gs_psi, 'partial_spearman')} "
                     f"(raw ρ = {_cell(gs_psi, 'spearman')}).")
    else:
        lines.append(f"Given network size, GradSign and −Ψ_2 are **not related** beyond noise: partial ρ = "
                     f"{_cell(gs_psi, 'partial_spearman')} (raw ρ = {_cell(gs_psi, 'spearman')}).")
    return lines


def main(args: argparse.Namespace) -> int:
    psi = _scores(args.psi_run, ["arch", "psi_2", "psi_1", "psi_status", "converged_fraction"])
    proxies = _scores(args.proxy_run, ["arch", "gradsign", "gradsign_sq"])
    bench = load_benchmark(args.truth)
    every = joined(psi, proxies, bench.table)
    status_counts = every["psi_status"].value_counts().to_dict()
    frame = every[every["psi_status"].isin(DEFINED)].reset_index(drop=True)
    if len(frame) < 3:
        raise ValueError(f"only {len(frame)} architectures have a defined Ψ (statuses {status_counts})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = pair_table(frame, n_boot=args.n_boot, seed=args.seed)
    pairs.to_csv(out / "pairs.csv", index=False)
    strata = strata_table(frame, n_boot=args.n_boot, seed=args.seed)
    strata.to_csv(out / "strata.csv", index=False)
    acc = frame["test accuracy"].to_numpy(dtype=float)
    log_params = np.log(frame["#params"].to_numpy(dtype=float))
    delta = stats.paired_spearman_difference(frame["−Ψ_2"], frame["GradSign"], acc, n_boot=args.n_boot, seed=args.seed)
    delta_partial = stats.paired_spearman_difference(frame["−Ψ_2"], frame["GradSign"], acc, covariate=log_params,
                                                     n_boot=args.n_boot, seed=args.seed)
    ok = frame[frame["psi_status"] == "ok"]
    ok_pairs = pair_table(ok, n_boot=args.n_boot, seed=args.seed) if len(ok) >= 3 else None
    figures = _figures(frame, out)
    revisions = sorted(set(psi.get("git_revision", pd.Series(dtype=str)).dropna())) or ["(not in scores.csv)"]
    revision = provenance.git_revision()
    warning = provenance.dirty_warning(revision)
    settings = {c: sorted(set(psi[c].dropna().astype(str))) for c in ("psi_solver", "psi_loss", "psi_dtype", "n")
                if c in psi.columns}
    lines = [f"# Exact Ψ on NAS-Bench-201 cells, beside GradSign and {args.truth}", "",
             f"Git revision: {revision}." + (f" {warning}" if warning else ""), "",
             f"- Ψ run `{args.psi_run}` ({settings}); proxy run `{args.proxy_run}`; truth {bench.description}.",
             f"- Ground-truth reliability: {bench.reliability_note()}.",
             f"- Architectures joined: {len(every)}; Ψ statuses {status_counts}; studied: {len(frame)} "
             f"({', '.join(DEFINED)}; `partial`: Ψ over the converged optima only, median converged fraction "
             f"{frame['converged_fraction'].median():.3f}).",
             f"- 95% percentile bootstrap CIs over architectures, {args.n_boot} resamples, seed {args.seed}; partial ρ "
             "controls for log #params.", "", "## Verdict", ""]
    lines += [f"- {line}" for line in _verdict(pairs, delta, delta_partial)]
    lines += ["", "## Rank correlations (studied architectures)", "",
              "| pair | n | Spearman ρ [95% CI] | Kendall τ [95% CI] | partial ρ given log #params [95% CI] |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['pair']} | {int(r['n'])} | {_cell(r, 'spearman')} | {_cell(r, 'kendall')} | "
              f"{_cell(r, 'partial_spearman')} |" for _, r in pairs.iterrows()]
    if ok_pairs is not None:
        lines += ["", f"## The same on the {len(ok)} architectures whose optima all converged (status ok)", "",
                  "| pair | n | Spearman ρ [95% CI] | partial ρ given log #params [95% CI] |", "|---|---|---|---|"]
        lines += [f"| {r['pair']} | {int(r['n'])} | {_cell(r, 'spearman')} | {_cell(r, 'partial_spearman')} |"
                  for _, r in ok_pairs.iterrows()]
    lines += ["", "## Per stratum (number of convolution edges)", "",
              "| " + " | ".join(strata.columns) + " |", "|" + "---|" * len(strata.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in strata.itertuples(index=False)]
    lines += ["", *[f"![{name}]({name})" for name in figures], ""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0
