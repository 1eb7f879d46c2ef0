"""`gradsign space-score`: score every NAS-Bench-201 architecture (or one per isomorphism
class) with zero-cost proxies, resumably, and export the per-architecture table."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from empirical import space_scoring
from empirical.benchmarks import nb201_digits
from empirical.scoring import INITS, resolve_proxies
from empirical.spaces import nb201
from proxies.checks import check_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "space-score",
        help="score a whole search space with proxies (resumable) and export the table",
        description="Score NB201 architectures at initialisation; one row per architecture in "
                    "OUT/results.sqlite (rerun the same command to resume), then write "
                    "OUT/scores.csv with one row per architecture.",
    )
    parser.add_argument("--space", choices=["nb201"], default="nb201")
    parser.add_argument("--data", choices=list(space_scoring.DATA), default="digits")
    parser.add_argument("--cifar-path", metavar="PATH", help="unpacked CIFAR-10 python batches (--data cifar10)")
    parser.add_argument("--proxies", default="gradsign", help="a name, a comma list, or 'all'")
    parser.add_argument("--unique", action="store_true",
                        help="score one representative per isomorphism class and map scores to all archs")
    parser.add_argument("--subset", choices=["nb201-digits"],
                        help="score only the classes selected for the nb201-digits benchmark")
    parser.add_argument("--C", type=int, default=8, help="channels of the first stage")
    parser.add_argument("--N", type=int, default=1, help="cells per stage")
    parser.add_argument("--batch", type=int, default=64, help="samples in the scoring batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", choices=list(INITS), default="default",
                        help="initialisation scheme of θ_0 (empirical.scoring.initialise)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--archs-per-job", type=int, default=25, help="architectures per executor job")
    parser.add_argument("--limit", type=int, help="score only the first K architectures of the list")
    parser.add_argument("--out", default="runs/space-score", metavar="DIR", help="run directory")
    parser.add_argument("--retry-failed", action="store_true", help="rerun architectures whose row failed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=main)


def architectures(args: argparse.Namespace) -> list[str]:
    if args.subset == "nb201-digits":
        archs = nb201_digits.select_classes()
    else:
        archs = nb201.unique_archs() if args.unique else nb201.all_archs()
    if args.limit is not None:
        archs = archs[:check_int("--limit", args.limit, minimum=1)]
    return archs


def main(args: argparse.Namespace) -> int:
    proxy_names = resolve_proxies(args.proxies)
    archs = architectures(args)
    if args.workers == 1 and args.executor == "local":
        torch.set_num_threads(1)  # small networks: one thread per scoring is the efficient use
    start = time.perf_counter()
    summary, counts = space_scoring.score_space(
        args.out, archs, proxies=proxy_names, data=args.data, batch=args.batch, seed=args.seed,
        C=args.C, N=args.N, init=args.init, cifar_path=args.cifar_path, archs_per_job=args.archs_per_job,
        executor=args.executor, workers=args.workers, progress=not args.no_progress,
        retry_failed=args.retry_failed,
    )
    elapsed = time.perf_counter() - start
    table = space_scoring.space_table(args.out, proxies=proxy_names, data=args.data, batch=args.batch,
                                      seed=args.seed, init=args.init,
                                      expand=args.limit is None)
    path = Path(args.out) / "scores.csv"
    table.to_csv(path, index=False)
    print(f"architectures: {counts['archs']} ({counts['skipped']} already stored, {counts['ok']} ok, "
          f"{counts['failed']} failed) in {summary.total - summary.skipped} jobs, {elapsed:.1f} s")
    print(f"wrote {len(table)} rows to {path}")
    return 0
