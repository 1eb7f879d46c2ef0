"""Entry ``rank-correlation``: the paper's main tables (Spearman ρ and Kendall τ of each
gradient-based proxy against final accuracy), here on ``nb201-digits`` (or ``--benchmark
nb201-digits-cv``).

Every architecture of the benchmark is built at θ_0 from ``--seed`` and scored by each
proxy on one batch of ``--batch`` training samples (`empirical.space_scoring.score_frame`);
ρ and τ against the benchmark's test accuracy, with percentile bootstrap CIs over
architectures, and the paired Δρ against GradSign come from
`empirical.stats.reference_comparison`. #params and flops are scored too, as size
references ranked like proxies, and every correlation is also given controlling for log
#params (partial ρ and τ). The claim "GradSign outperforms every other method" is judged
by `RULE` (`empirical.stats.claim_verdict`) against every other proxy and both size
references, raw and size-controlled.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from empirical.benchmarks.benchmark import Benchmark, file_benchmark, load_benchmark
from empirical.scoring import resolve_proxies
from empirical.space_scoring import score_frame
from empirical.stats import Estimate, claim_verdict, reference_comparison
from figures.repro import correlation_bars
from paper_repro import paper_numbers
from paper_repro.common import Report, default_out, score_store
from paper_repro.registry import Entry, register

NAME = "rank-correlation"
PROXIES = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "synflow", "gradsign")
REFERENCES = ("params", "flops")
RULE = ("paired bootstrap over architectures of Δρ = ρ(GradSign) − ρ(other): the claim HELD if every "
        "other proxy's 95% CI of Δρ lies above 0, DID NOT HOLD if some proxy's 95% CI lies below 0 "
        "(that proxy ranks significantly better), and is WITHIN NOISE otherwise")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", default="nb201-digits", choices=("nb201-digits", "nb201-digits-cv"),
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


@dataclass(frozen=True)
class Result:
    """What the entry measured: the benchmark, the scores, the correlation table and the verdicts."""

    bench: Benchmark
    batch: int
    proxies: list[str]
    scores: pd.DataFrame
    table: pd.DataFrame
    verdicts: dict[str, str]


def benchmark(args: argparse.Namespace) -> Benchmark:
    if args.nb201_file:
        bench = file_benchmark(args.nb201_file, dataset=args.nb201_dataset, allow_pickle=args.trust_file,
                               C=args.nb201_C, N=args.nb201_N, cifar_path=args.cifar_path)
        return bench.subset(args.max_archs or 200, args.seed)
    return load_benchmark("toy" if args.toy else args.benchmark, seed=args.seed).subset(args.max_archs, args.seed)


def compute(args: argparse.Namespace, out: Path) -> Result:
    proxy_names = resolve_proxies(args.proxies)
    if "gradsign" not in proxy_names or len(proxy_names) < 2:
        raise ValueError(f"--proxies must include gradsign and at least one other proxy, got {args.proxies!r}")
    batch = args.batch or (8 if args.toy else 64)
    bench = benchmark(args)
    options = dict(store_dir=score_store(args, out), C=bench.C, N=bench.N, data=bench.data, batch=batch,
                   seed=args.seed, workers=args.workers, progress=not args.no_progress, cifar_path=bench.cifar_path,
                   device=args.device)
    scores = score_frame(bench.archs, proxies=proxy_names, **options)
    references = [name for name in REFERENCES if name not in proxy_names]
    if references:
        scores = scores.join(score_frame(bench.archs, proxies=references, **options).drop(columns="arch"))
    names = proxy_names + references
    comparison = reference_comparison(scores, names, bench.test_acc, "gradsign", covariate=np.log(scores["params"]),
                                      n_boot=args.n_boot, seed=args.seed)
    table = comparison.table
    table["reference"] = table["proxy"].isin(REFERENCES)
    paper = [paper_numbers.spearman(name) for name in names]
    table["paper_spearman"] = [math.nan if p is None else p.value for p in paper]
    gradient_based = {k: d for k, d in comparison.differences.items() if k not in REFERENCES}
    verdicts = {"all": claim_verdict(comparison.differences), "gradient-based": claim_verdict(gradient_based),
                "size-controlled": claim_verdict(comparison.partial_differences)}
    return Result(bench, batch, names, scores, table, verdicts)


def _markdown_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in table.to_dict("records"):
        gs = r["proxy"] == "gradsign"
        rows.append({
            "proxy": r["proxy"] + (" (size reference)" if r["reference"] else ""),
            "archs": r["n"],
            "Spearman ρ [95% CI]": Estimate.from_columns(r, "spearman", r["n"]).format(),
            "Kendall τ [95% CI]": Estimate.from_columns(r, "kendall", r["n"]).format(),
            "top-10% precision": f"{r['top10_precision']:.3f}",
            "ρ(GradSign) − ρ(proxy) [95% CI]": "—" if gs else Estimate.from_columns(r, "delta", r["n"]).format(),
            "ρ with #params [95% CI]": Estimate.from_columns(r, "size_spearman", r["n"]).format(),
            "partial ρ given log #params [95% CI]": Estimate.from_columns(r, "partial_spearman", r["n"]).format(),
            "partial τ given log #params [95% CI]": Estimate.from_columns(r, "partial_kendall", r["n"]).format(),
            "partial ρ(GradSign) − partial ρ(proxy) [95% CI]": "—" if gs
            else Estimate.from_columns(r, "partial_delta", r["n"]).format(),
            "paper ρ, NB201 CIFAR-10 †": "—" if math.isnan(r["paper_spearman"]) else f"{r['paper_spearman']:.2f}",
        })
    return pd.DataFrame(rows)


def _best_other(table: pd.DataFrame, column: str) -> str:
    others = table[(table.proxy != "gradsign") & table[column].notna()].sort_values(column, ascending=False)
    if others.empty:
        return "none defined"
    best = others.iloc[0].to_dict()
    return f"{best['proxy']} {Estimate.from_columns(best, column).format()}"


def write_report(report: Report, result: Result, args: argparse.Namespace) -> Path:
    bench, table = result.bench, result.table
    report.settings({
        "benchmark": bench.description,
        "architectures scored": len(bench.table),
        "ground-truth reliability": bench.reliability_note(),
        "network size": f"NB201 C={bench.C}, N={bench.N}, scored on data {bench.data}",
        "proxies": ", ".join(result.proxies) + " (registry defaults: `proxies.compute(name, model, x, y)`; "
                   f"{', '.join(REFERENCES)}: size references)",
        "proxy batch": f"{result.batch} training samples (one batch drawn with the seed, the same for every network)",
        "seed": f"{args.seed} (every network's θ_0 and its batch; one network per architecture)",
        "runs": "1 scoring run per architecture (the CIs are over architectures)",
        "confidence intervals": f"95% percentile bootstrap over architectures, {args.n_boot} resamples, "
                                f"bootstrap seed {args.seed}",
        "size control": "partial Spearman ρ and Kendall τ controlling for log #params (the `params` proxy of "
                        "each scored network; `empirical.stats.partial_spearman`, `partial_kendall`)",
    })
    report.section("Results", "Correlations over the architectures where every proxy is defined "
                   "(`n_undefined` per proxy in `correlations.csv`). The size references (#params, flops) are "
                   "ranked like proxies: a proxy is informative beyond network size only where its partial ρ "
                   "given log #params is above 0.")
    report.table(_markdown_rows(table))
    report.csv(table, "correlations")
    report.csv(result.scores.assign(test_acc=bench.test_acc), "scores")
    gs = table[table.proxy == "gradsign"].iloc[0].to_dict()
    verdicts = result.verdicts
    excluded = [p for p, d in zip(table.proxy, table.partial_delta) if p != "gradsign" and math.isnan(d)]
    report.section(
        "Verdict",
        f"**Claim \"GradSign outperforms every other method\" (Spearman ρ), against every other proxy and the size "
        f"references: {verdicts['all'].upper()}** on {bench.name}. GradSign ρ = "
        f"{Estimate.from_columns(gs, 'spearman').format()}; best other: {_best_other(table, 'spearman')}.",
        f"**Size-controlled (partial ρ given log #params): {verdicts['size-controlled'].upper()}.** GradSign partial "
        f"ρ = {Estimate.from_columns(gs, 'partial_spearman').format()}; best other: "
        f"{_best_other(table, 'partial_spearman')}"
        + (f" ({', '.join(excluded)}: partial ρ undefined, not compared)" if excluded else "") + ". GradSign's own "
        f"ρ with #params is {Estimate.from_columns(gs, 'size_spearman').format()}.",
        f"Against the gradient-based proxies only (the paper's comparison, raw ρ): {verdicts['gradient-based']}.",
        f"Decision rule: {RULE}; the same rule on the partial ρ for the size-controlled verdict.",
        "† Paper column: " + paper_numbers.source_note(paper_numbers.spearman("gradsign")) +
        ". The paper's networks are NB201 at C=16, N=5 trained 200 epochs on CIFAR-10, scored on CIFAR-10 "
        f"batches; ours are C={bench.C}, N={bench.N} scored on {bench.data}"
        + ("" if bench.name == "nb201-file" else ", so only the ordering of proxies is comparable, not the values")
        + ".",
        *(["**The benchmark is SYNTHETIC (toy run): these numbers test the pipeline and say nothing about "
           "GradSign.**"] if bench.synthetic else []),
    )
    report.figure(correlation_bars(table, title=f"{bench.name}: proxies vs test accuracy"), "correlations",
                  "Spearman ρ and Kendall τ per proxy and size reference, 95% bootstrap CIs; diamonds: the paper's "
                  "ρ on NB201 CIFAR-10 (†).")
    return report.write()


def run(args: argparse.Namespace) -> Path:
    out = Path(default_out(NAME) if args.out is None else args.out)
    report = Report(out, "Rank correlation of gradient-based proxies with trained accuracy",
                    "Reproduces the paper's main tables (Table 2 for NAS-Bench-201: Spearman ρ over all "
                    "architectures; Kendall τ in its NASWOT-style comparison) at laptop scale. Claim under "
                    f"test: \"{paper_numbers.MAIN_CLAIM}\".")
    return write_report(report, compute(args, out), args)


register(Entry(NAME, "Spearman ρ / Kendall τ of gradient-based proxies vs trained accuracy, with CIs and a verdict.",
               "Table 2 (NAS-Bench-201 Spearman ρ) and the Kendall τ comparison", add_arguments, run))
