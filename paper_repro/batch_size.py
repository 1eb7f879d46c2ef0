"""Entry ``batch-size``: GradSign's ρ with trained accuracy against the number of samples
n it sees (the paper's batch-size ablation), n = 8 … 256, with CIs.

The n samples of a network are the first n of one seeded permutation of the training
split, so the batches are nested and every setting scores the same θ_0.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from figures.repro import ablation_curve
from paper_repro import ablation
from paper_repro.common import Report, parse_ints, score_store
from paper_repro.registry import Entry, register

NAME = "batch-size"
SIZES = (8, 16, 32, 64, 128, 256)
TOY_SIZES = (4, 8, 16)
REFERENCE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help=f"comma list of sample counts n (default {','.join(map(str, SIZES))}; --toy: "
                             f"{','.join(map(str, TOY_SIZES))})")
    ablation.add_subset_arguments(parser, 300)


def sample_counts(args: argparse.Namespace) -> list[int]:
    text = ",".join(map(str, TOY_SIZES)) if args.toy and args.sizes == ",".join(map(str, SIZES)) else args.sizes
    return parse_ints("--sizes", text, minimum=1)


def run(args: argparse.Namespace) -> Path:
    ns = sample_counts(args)
    reference = REFERENCE if REFERENCE in ns else ns[len(ns) // 2]
    bench, out = ablation.prepare(args, NAME)
    report = Report(out, "GradSign ρ against the number of samples n",
                    "The paper's ablation of the batch size GradSign is computed on (n samples, one forward "
                    "and backward pass each). GradSign counts sign agreements over n per-sample gradients, "
                    "so its value grows with n; the question is whether its *ranking* of architectures, and "
                    "thus ρ, changes.")
    scores = ablation.scores_by_setting(bench, "batch", ns, {"init": "default"}, args=args,
                                        store=score_store(args, out))
    table = ablation.rho_table(scores, "batch", ns, reference, n_boot=args.n_boot, seed=args.seed)
    report.settings({
        "benchmark": bench.description,
        "architectures": len(bench.table),
        "ground-truth reliability": bench.reliability_note(),
        "network size": f"NB201 C={bench.C}, N={bench.N}, data {bench.data}",
        "sample counts n": ", ".join(map(str, ns)) + " (nested: the first n of one seeded permutation)",
        "initialisation": "PyTorch default",
        "seed": f"{args.seed} (θ_0 of every network and the sample permutation; one network per architecture)",
        "runs": f"1 scoring run per (architecture, n): {len(bench.table) * len(ns)} in all",
        "confidence intervals": f"95% percentile bootstrap over architectures, {args.n_boot} resamples "
                                f"(seed {args.seed}); Δρ vs n={reference} by paired bootstrap",
    })
    sizes = ablation.size_table(scores, n_boot=args.n_boot, seed=args.seed)
    report.section("Results", "The partial ρ and τ control for log #params of the same networks.")
    report.table(ablation.markdown(table, "batch", "n", reference))
    report.csv(table, "rho_by_n")
    report.csv(scores, "scores")
    report.section("Network size", "#params and flops of the same networks, ranked against the same accuracy "
                   "as GradSign (size references).")
    report.table(ablation.size_markdown(sizes))
    report.csv(sizes, "size_references")
    report.section("Verdict", ablation.spread_sentence(table, "batch", reference) +
                   f" Highest point estimate at n = {ablation.best_setting(table, 'batch')}.",
                   ablation.size_sentence(table, sizes),
                   "The paper's own numbers for this ablation are not transcribed in `paper_repro.paper_numbers`, "
                   "so this entry shows our curve only.",
                   *(["**SYNTHETIC toy benchmark: a pipeline test, not a result.**"] if bench.synthetic else []))
    report.figure(ablation_curve(table, "batch", "samples n", title=f"{bench.name}: GradSign ρ vs n"),
                  "rho_by_n", "GradSign's Spearman ρ with test accuracy against n, 95% bootstrap band.")
    return report.write()


register(Entry(NAME, "GradSign's ρ vs the number of samples n (8…256), with CIs.",
               "the batch-size ablation", add_arguments, run))
