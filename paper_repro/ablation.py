"""Shared core of the ablation entries (``batch-size``, ``init``): GradSign's ρ with the
benchmark's accuracy under each setting of one knob, with CIs and paired differences.

For each setting the same architectures are scored with the same ``--seed`` (same θ_0
draw under a given scheme, same nested batches), so the settings differ only in the
knob. ρ gets a percentile bootstrap CI over architectures (`empirical.correlation`);
Δρ against the reference setting uses the paired bootstrap of `paper_repro.stats`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from empirical.correlation import rank_correlations
from paper_repro.common import Benchmark, default_out, format_ci, load_benchmark
from paper_repro.rank_correlation import subset
from paper_repro.scores import score_archs
from paper_repro.stats import paired_spearman_difference

__all__ = ["add_subset_arguments", "prepare", "rho_table", "markdown"]


def add_subset_arguments(parser: argparse.ArgumentParser, default_archs: int) -> None:
    parser.add_argument("--max-archs", type=int, default=default_archs,
                        help=f"seeded random subset of the benchmark's architectures (default {default_archs}; "
                             "0 = all)")


def prepare(args: argparse.Namespace, name: str) -> tuple[Benchmark, Path]:
    bench = load_benchmark("nb201-digits" if not args.toy else "toy", seed=args.seed)
    bench = subset(bench, args.max_archs or None, args.seed)
    out = Path(default_out(name) if args.out is None else args.out)
    return bench, out


def rho_table(bench: Benchmark, settings: list, score_kwargs: dict, knob: str, reference, *,
              args: argparse.Namespace, store: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, scores): per setting of `knob`, GradSign's ρ and τ [CI] and Δρ vs `reference`."""
    columns = {}
    for value in settings:
        kwargs = {**score_kwargs, knob: value}
        frame = score_archs(bench.archs, ["gradsign"], store_dir=store, C=bench.C, N=bench.N, data=bench.data,
                            seed=args.seed, workers=args.workers, progress=not args.no_progress, **kwargs)
        columns[value] = frame["gradsign"].to_numpy(dtype=float)
    truth = bench.accuracy
    records = []
    for value in settings:
        rc = rank_correlations(columns[value], truth, n_boot=args.n_boot, seed=args.seed)
        if value == reference:
            delta = (0.0, 0.0, 0.0)
        else:
            delta = paired_spearman_difference(columns[value], columns[reference], truth,
                                               n_boot=args.n_boot, seed=args.seed)
        records.append({knob: value, "n_archs": rc["n"], "spearman": rc["spearman"],
                        "spearman_low": rc["spearman_ci"][0], "spearman_high": rc["spearman_ci"][1],
                        "kendall": rc["kendall"], "kendall_low": rc["kendall_ci"][0],
                        "kendall_high": rc["kendall_ci"][1], "delta": delta[0], "delta_low": delta[1],
                        "delta_high": delta[2]})
    scores = pd.DataFrame({"arch": bench.archs, "accuracy": truth,
                           **{f"gradsign_{knob}_{v}": columns[v] for v in settings}})
    return pd.DataFrame.from_records(records), scores


def markdown(table: pd.DataFrame, knob: str, label: str, reference) -> pd.DataFrame:
    rows = []
    for r in table.to_dict("records"):
        rows.append({
            label: r[knob],
            "archs": r["n_archs"],
            "GradSign Spearman ρ [95% CI]": format_ci(r["spearman"], (r["spearman_low"], r["spearman_high"])),
            "Kendall τ [95% CI]": format_ci(r["kendall"], (r["kendall_low"], r["kendall_high"])),
            f"Δρ vs {reference} [95% CI]": "reference" if r[knob] == reference
            else format_ci(r["delta"], (r["delta_low"], r["delta_high"])),
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


def best_setting(table: pd.DataFrame, knob: str):
    return table[knob].tolist()[int(np.nanargmax(table["spearman"].to_numpy()))]
