"""Shared core of the ablation entries (``batch-size``, ``init``): GradSign's ρ with the
benchmark's accuracy under each setting of one knob, with CIs and paired differences.

For each setting the same architectures are scored with the same ``--seed`` (same θ_0
draw under a given scheme, same nested batches; `empirical.space_scoring.score_frame`),
so the settings differ only in the knob. ρ gets a percentile bootstrap CI over
architectures and Δρ against the reference setting the paired bootstrap
(`empirical.stats`). Network size is shown beside it: #params and flops ranked against
the same accuracy (`size_table`), and GradSign's partial ρ and τ controlling for log
#params under each setting.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from empirical.benchmarks.benchmark import Benchmark, load_benchmark
from empirical.space_scoring import score_frame
from empirical.stats import Estimate, paired_spearman_difference, rank_correlations
from paper_repro.common import default_out

__all__ = ["REFERENCES", "add_subset_arguments", "best_setting", "markdown", "prepare", "rho_table",
           "scores_by_setting", "size_markdown", "size_sentence", "size_table", "spread_sentence"]

REFERENCES = ("params", "flops")


def add_subset_arguments(parser: argparse.ArgumentParser, default_archs: int) -> None:
    parser.add_argument("--max-archs", type=int, default=default_archs,
                        help=f"seeded random subset of the benchmark's architectures (default {default_archs}; "
                             "0 = all)")


def prepare(args: argparse.Namespace, name: str) -> tuple[Benchmark, Path]:
    bench = load_benchmark("nb201-digits" if not args.toy else "toy", seed=args.seed)
    out = Path(default_out(name) if args.out is None else args.out)
    return bench.subset(args.max_archs or None, args.seed), out


def scores_by_setting(bench: Benchmark, knob: str, settings: list, fixed: dict, *, args: argparse.Namespace,
                      store: Path) -> pd.DataFrame:
    """``arch, test_acc``, GradSign under each setting of `knob` (column
    ``gradsign_<knob>_<value>``, the other scoring options in `fixed`), and the size
    references ``params, flops`` of the networks (which no setting changes)."""
    common = dict(store_dir=store, C=bench.C, N=bench.N, data=bench.data, seed=args.seed, workers=args.workers,
                  progress=not args.no_progress, device=args.device)
    columns = {}
    for value in settings:
        frame = score_frame(bench.archs, proxies=["gradsign"], **common, **{**fixed, knob: value})
        columns[f"gradsign_{knob}_{value}"] = frame["gradsign"].to_numpy(dtype=float)
    sizes = score_frame(bench.archs, proxies=list(REFERENCES), **common, **{**fixed, knob: settings[0]})
    return pd.DataFrame({"arch": bench.archs, "test_acc": bench.test_acc, **columns,
                         **{name: sizes[name].to_numpy(dtype=float) for name in REFERENCES}})


def rho_table(scores: pd.DataFrame, knob: str, settings: list, reference, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Per setting of `knob`: GradSign's ρ and τ with CIs against ``test_acc``, Δρ =
    ρ(setting) − ρ(reference) by paired bootstrap (0 for the reference itself), and the
    partial ρ and τ controlling for log #params (``partial_spearman``, ``partial_kendall``)."""
    truth = scores["test_acc"].to_numpy(dtype=float)
    size = np.log(scores["params"].to_numpy(dtype=float))
    base = scores[f"gradsign_{knob}_{reference}"].to_numpy(dtype=float)
    records = []
    for value in settings:
        column = scores[f"gradsign_{knob}_{value}"].to_numpy(dtype=float)
        rc = rank_correlations(column, truth, covariate=size, n_boot=n_boot, seed=seed)
        delta = (Estimate(0.0, 0.0, 0.0, rc["n"]) if value == reference
                 else paired_spearman_difference(column, base, truth, n_boot=n_boot, seed=seed))
        records.append({knob: value, "n_archs": rc["n"],
                        **Estimate(rc["spearman"], *rc["spearman_ci"], rc["n"]).columns("spearman"),
                        **Estimate(rc["kendall"], *rc["kendall_ci"], rc["n"]).columns("kendall"),
                        **delta.columns("delta"),
                        **Estimate(rc["partial_spearman"], *rc["partial_spearman_ci"], rc["partial_n"])
                        .columns("partial_spearman"),
                        **Estimate(rc["partial_kendall"], *rc["partial_kendall_ci"], rc["partial_n"])
                        .columns("partial_kendall")})
    return pd.DataFrame.from_records(records)


def size_table(scores: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """The size references ranked like GradSign: per reference, ρ and τ with CIs against ``test_acc``."""
    truth = scores["test_acc"].to_numpy(dtype=float)
    records = []
    for name in REFERENCES:
        rc = rank_correlations(scores[name].to_numpy(dtype=float), truth, n_boot=n_boot, seed=seed)
        records.append({"reference": name, "n_archs": rc["n"],
                        **Estimate(rc["spearman"], *rc["spearman_ci"], rc["n"]).columns("spearman"),
                        **Estimate(rc["kendall"], *rc["kendall_ci"], rc["n"]).columns("kendall")})
    return pd.DataFrame.from_records(records)


def size_markdown(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{"size reference": r["reference"], "archs": r["n_archs"],
                          "Spearman ρ [95% CI]": Estimate.from_columns(r, "spearman", r["n_archs"]).format(),
                          "Kendall τ [95% CI]": Estimate.from_columns(r, "kendall", r["n_archs"]).format()}
                         for r in table.to_dict("records")])


def markdown(table: pd.DataFrame, knob: str, label: str, reference) -> pd.DataFrame:
    rows = []
    for r in table.to_dict("records"):
        rows.append({
            label: r[knob],
            "archs": r["n_archs"],
            "GradSign Spearman ρ [95% CI]": Estimate.from_columns(r, "spearman", r["n_archs"]).format(),
            "Kendall τ [95% CI]": Estimate.from_columns(r, "kendall", r["n_archs"]).format(),
            f"Δρ vs {reference} [95% CI]": "reference" if r[knob] == reference
            else Estimate.from_columns(r, "delta", r["n_archs"]).format(),
            "partial ρ given log #params [95% CI]": Estimate.from_columns(r, "partial_spearman", r["n_archs"]).format(),
            "partial τ given log #params [95% CI]": Estimate.from_columns(r, "partial_kendall", r["n_archs"]).format(),
        })
    return pd.DataFrame(rows)


def spread_sentence(table: pd.DataFrame, knob: str, reference) -> str:
    """Which settings differ from the reference beyond noise (Δρ CI excluding 0)."""
    others = table[table[knob] != reference]
    better = [str(v) for v, lo in zip(others[knob], others["delta_low"]) if lo > 0]
    worse = [str(v) for v, hi in zip(others[knob], others["delta_high"]) if hi < 0]
    parts = []
    if better:
        parts.append(f"significantly higher ρ than {reference}: {', '.join(better)}")
    if worse:
        parts.append(f"significantly lower ρ than {reference}: {', '.join(worse)}")
    if not parts:
        return f"No setting's ρ differs from the reference ({reference}) beyond noise (every Δρ 95% CI contains 0)."
    return "Settings with " + "; ".join(parts) + " (Δρ 95% CI excluding 0); the others are within noise."


def size_sentence(table: pd.DataFrame, sizes: pd.DataFrame) -> str:
    """GradSign's partial ρ over the settings beside the size references' own ρ."""
    partial = table["partial_spearman"].to_numpy(dtype=float)
    refs = "; ".join(f"{r['reference']} ρ = {Estimate.from_columns(r, 'spearman').format()}"
                     for r in sizes.to_dict("records"))
    return (f"Network size alone ranks the architectures with {refs}. Controlling for log #params, GradSign's "
            f"partial ρ lies between {np.nanmin(partial):.3f} and {np.nanmax(partial):.3f} over the settings "
            "(per-setting CIs in the table).")


def best_setting(table: pd.DataFrame, knob: str):
    return table[knob].tolist()[int(np.nanargmax(table["spearman"].to_numpy()))]
