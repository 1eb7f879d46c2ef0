"""Entry ``rank-correlation``: the paper's main tables (Spearman ρ and Kendall τ of each
gradient-based proxy against final accuracy), here on ``nb201-digits``.

Every architecture of the benchmark is built at θ_0 from ``--seed`` and scored by each
proxy on one batch of ``--batch`` training samples (`paper_repro.scores`); ρ and τ
against the benchmark's test accuracy come from `empirical.correlation` with percentile
bootstrap CIs over architectures. The claim "GradSign outperforms every other
gradient-based method" is judged by `paper_repro.stats.RULE`.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from empirical.correlation import rank_correlations
from paper_repro import paper_numbers
from paper_repro.common import (Benchmark, Report, default_out, file_benchmark, format_ci, load_benchmark,
                                score_store)
from paper_repro.registry import Entry, register
from paper_repro.scores import score_archs
from paper_repro.stats import RULE, claim_verdict, paired_spearman_difference

NAME = "rank-correlation"
PROXIES = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "synflow", "gradsign")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", default="nb201-digits", choices=("nb201-digits",),
                        help="tabular benchmark (--toy replaces it by the synthetic toy table)")
    parser.add_argument("--batch", type=int, default=None, help="samples per proxy batch (default 64; --toy: 8)")
    parser.add_argument("--proxies", default=",".join(PROXIES), help="comma list; must include gradsign")
    parser.add_argument("--max-archs", type=int, default=None,
                        help="score a seeded random subset of this many architectures (default: all of "
                             "nb201-digits; 200 of a NAS-Bench-201 file)")
    parser.add_argument("--nb201-file", metavar="PATH",
                        help="also possible: the user's NAS-Bench-201 .pth file as the benchmark (ground truth: "
                             "its 200-epoch test accuracy); networks at --nb201-C/--nb201-N on CIFAR-shaped inputs")
    parser.add_argument("--nb201-dataset", default="cifar10", help="data set of the file's accuracies")
    parser.add_argument("--cifar-path", metavar="DIR",
                        help="CIFAR-10 python batches to score on (default: seeded random CIFAR-shaped inputs)")
    parser.add_argument("--trust-file", action="store_true",
                        help="allow full unpickling of the NAS-Bench-201 file (only for a file you trust)")
    parser.add_argument("--nb201-C", type=int, default=16, help="channels of NB201 networks for --nb201-file")
    parser.add_argument("--nb201-N", type=int, default=5, help="cells per stage for --nb201-file")


def subset(bench: Benchmark, max_archs: int | None, seed: int) -> Benchmark:
    """`bench` restricted to a seeded random subset of `max_archs` architectures."""
    if max_archs is None or max_archs >= len(bench.table):
        return bench
    if max_archs < 4:
        raise ValueError(f"--max-archs must be at least 4, got {max_archs}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(bench.table), size=max_archs, replace=False))
    table = bench.table.iloc[rows].reset_index(drop=True)
    return Benchmark(bench.name, table, bench.data, bench.C, bench.N,
                     bench.description + f"; seeded subset of {max_archs} architectures (seed {seed})",
                     bench.synthetic, bench.info, bench.cifar_path)


def correlation_table(scores: pd.DataFrame, accuracy: np.ndarray, proxy_names: list[str], *,
                      n_boot: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Per proxy: ρ, τ with CIs, top-10% precision, and Δρ vs GradSign (paired bootstrap),
    all over the architectures where every proxy is defined. Returns (table, differences)."""
    values = scores[list(proxy_names)].to_numpy(dtype=float)
    keep = np.isfinite(values).all(axis=1) & np.isfinite(accuracy)
    truth = accuracy[keep]
    records, differences = [], {}
    for j, name in enumerate(proxy_names):
        score = values[keep, j]
        rc = rank_correlations(score, truth, n_boot=n_boot, seed=seed)
        record = {"proxy": name, "n": rc["n"],
                  "n_undefined": int((~np.isfinite(values[:, j])).sum()),
                  "spearman": rc["spearman"], "spearman_low": rc["spearman_ci"][0],
                  "spearman_high": rc["spearman_ci"][1], "kendall": rc["kendall"],
                  "kendall_low": rc["kendall_ci"][0], "kendall_high": rc["kendall_ci"][1],
                  "top10_precision": rc["top_k_precision"]}
        if name != "gradsign":
            d = paired_spearman_difference(values[keep, proxy_names.index("gradsign")], score, truth,
                                           n_boot=n_boot, seed=seed)
            differences[name] = d
            record.update(delta=d[0], delta_low=d[1], delta_high=d[2])
        else:
            record.update(delta=math.nan, delta_low=math.nan, delta_high=math.nan)
        paper = paper_numbers.spearman(name)
        record["paper_spearman"] = paper.value if paper is not None else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records), differences


def _markdown_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in table.itertuples(index=False):
        rows.append({
            "proxy": r.proxy,
            "archs": r.n,
            "Spearman ρ [95% CI]": format_ci(r.spearman, (r.spearman_low, r.spearman_high)),
            "Kendall τ [95% CI]": format_ci(r.kendall, (r.kendall_low, r.kendall_high)),
            "top-10% precision": f"{r.top10_precision:.3f}",
            "ρ(GradSign) − ρ(proxy) [95% CI]": "—" if r.proxy == "gradsign"
            else format_ci(r.delta, (r.delta_low, r.delta_high)),
            "paper ρ, NB201 CIFAR-10 †": "—" if math.isnan(r.paper_spearman) else f"{r.paper_spearman:.2f}",
        })
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> Path:
    from figures.repro import correlation_bars

    proxy_names = [p.strip() for p in args.proxies.split(",") if p.strip()]
    if "gradsign" not in proxy_names or len(proxy_names) < 2:
        raise ValueError(f"--proxies must include gradsign and at least one other proxy, got {args.proxies!r}")
    batch = args.batch or (8 if args.toy else 64)
    if args.nb201_file:
        bench = file_benchmark(args.nb201_file, dataset=args.nb201_dataset, allow_pickle=args.trust_file,
                               C=args.nb201_C, N=args.nb201_N, cifar_path=args.cifar_path)
        bench = subset(bench, args.max_archs or 200, args.seed)
    else:
        bench = load_benchmark("toy" if args.toy else args.benchmark, seed=args.seed)
        bench = subset(bench, args.max_archs, args.seed)
    out = default_out(NAME) if args.out is None else args.out
    report = Report(out, "Rank correlation of gradient-based proxies with trained accuracy",
                    "Reproduces the paper's main tables (Table 2 for NAS-Bench-201: Spearman ρ over all "
                    "architectures; Kendall τ in its NASWOT-style comparison) at laptop scale. Claim under "
                    f"test: \"{paper_numbers.MAIN_CLAIM}\".")
    scores = score_archs(bench.archs, proxy_names, store_dir=score_store(args, Path(out)), C=bench.C, N=bench.N,
                         data=bench.data, batch=batch, seed=args.seed, workers=args.workers,
                         progress=not args.no_progress, cifar_path=bench.cifar_path)
    table, differences = correlation_table(scores, bench.accuracy, proxy_names, n_boot=args.n_boot, seed=args.seed)
    verdict = claim_verdict(differences)
    report.settings({
        "benchmark": bench.description,
        "architectures scored": len(bench.table),
        "ground-truth reliability": bench.reliability_note(),
        "network size": f"NB201 C={bench.C}, N={bench.N}, scored on data {bench.data}",
        "proxies": ", ".join(proxy_names) + " (registry defaults: `proxies.compute(name, model, x, y)`)",
        "proxy batch": f"{batch} training samples (one batch drawn with the seed, the same for every network)",
        "seed": f"{args.seed} (every network's θ_0 and its batch; one network per architecture)",
        "runs": "1 scoring run per architecture (the CIs are over architectures)",
        "confidence intervals": f"95% percentile bootstrap over architectures, {args.n_boot} resamples, "
                                f"bootstrap seed {args.seed}",
    })
    report.section("Results", "Correlations over the architectures where every proxy is defined "
                   "(`n_undefined` per proxy in `correlations.csv`).")
    report.table(_markdown_rows(table))
    report.csv(table, "correlations")
    report.csv(scores.assign(accuracy=bench.accuracy), "scores")
    best_other = table[table.proxy != "gradsign"].sort_values("spearman", ascending=False).iloc[0]
    gs = table[table.proxy == "gradsign"].iloc[0]
    report.section(
        "Verdict",
        f"**Claim \"GradSign outperforms every other gradient-based method\" (Spearman ρ): {verdict.upper()}** "
        f"on {bench.name}. GradSign ρ = {format_ci(gs.spearman, (gs.spearman_low, gs.spearman_high))}; "
        f"best other: {best_other.proxy} ρ = "
        f"{format_ci(best_other.spearman, (best_other.spearman_low, best_other.spearman_high))}.",
        f"Decision rule: {RULE}.",
        "† Paper column: " + paper_numbers.source_note(paper_numbers.spearman("gradsign")) +
        ". The paper's networks are NB201 at C=16, N=5 trained 200 epochs on CIFAR-10, scored on CIFAR-10 "
        f"batches; ours are C={bench.C}, N={bench.N} scored on {bench.data}"
        + ("" if bench.name == "nb201-file" else ", so only the ordering of proxies is comparable, not the values")
        + ".",
        *(["**The benchmark is SYNTHETIC (toy run): these numbers test the pipeline and say nothing about "
           "GradSign.**"] if bench.synthetic else []),
    )
    report.figure(correlation_bars(table, title=f"{bench.name}: proxies vs test accuracy"), "correlations",
                  "Spearman ρ and Kendall τ per proxy, 95% bootstrap CIs; diamonds: the paper's ρ on "
                  "NB201 CIFAR-10 (†).")
    return report.write()


register(Entry(NAME, "Spearman ρ / Kendall τ of gradient-based proxies vs trained accuracy, with CIs and a verdict.",
               "Table 2 (NAS-Bench-201 Spearman ρ) and the Kendall τ comparison", add_arguments, run))
