"""`gradsign build-benchmark --out DIR`: train the nb201-digits mini-benchmark (resumable)
and write empirical/benchmarks/nb201_digits.csv and .json."""
from __future__ import annotations

import argparse
import shlex

import torch

from empirical.benchmarks import nb201_digits
from empirical.executors import run_jobs
from empirical.store import ResultsStore


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-benchmark",
        help="train the nb201-digits mini-benchmark (resumable) and write its CSV/JSON",
        description="Train NB201 cells (C=8, N=1) on digits with one fixed recipe, one row "
                    "per (class, seed) in OUT/results.sqlite; rerun to resume. Then write the "
                    "benchmark table (classes with every seed done) and its metadata.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory (results.sqlite)")
    parser.add_argument("--classes", type=int, default=1000, help="isomorphism classes to train")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    parser.add_argument("--selection-seed", type=int, default=0, help="seed of the class selection")
    parser.add_argument("--workers", type=int, default=1, help="parallel trainings (1 thread each)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--csv", metavar="PATH", default=str(nb201_digits.CSV_PATH),
                        help="benchmark table to write (default: the shipped file)")
    parser.add_argument("--json", metavar="PATH", default=str(nb201_digits.JSON_PATH),
                        help="metadata file to write (default: the shipped file)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if len(set(args.seeds)) != len(args.seeds) or any(s < 0 for s in args.seeds):
        raise ValueError(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    classes = nb201_digits.select_classes(args.classes, args.selection_seed)
    jobs = nb201_digits.plan(classes, args.seeds)
    # Tiny networks: one thread per training is the fastest use of a core and keeps the
    # recorded training times comparable.
    torch.set_num_threads(1)
    with ResultsStore(args.out) as store:
        summary = run_jobs(jobs, nb201_digits.train_job, store, executor=args.executor,
                           workers=args.workers, threads_per_job=1, progress=not args.no_progress)
    command = (f"gradsign build-benchmark --out {shlex.quote(args.out)} --classes {args.classes} "
               f"--seeds {' '.join(map(str, args.seeds))} --selection-seed {args.selection_seed} "
               f"--workers {args.workers} --executor {args.executor}")
    frame, meta = nb201_digits.write(args.out, seeds=args.seeds, n_classes=args.classes,
                                     selection_seed=args.selection_seed, command=command,
                                     csv_path=args.csv, json_path=args.json)
    print(f"jobs: {summary.total} ({summary.skipped} already done, {summary.ok} ok, {summary.failed} failed)")
    print(f"wrote {len(frame)} classes to {args.csv} and metadata to {args.json}")
    if "reliability" in meta:
        rel = meta["reliability"]
        print(f"seed agreement of test_acc: Spearman {rel['spearman']:.3f} "
              f"[{rel['spearman_ci'][0]:.3f}, {rel['spearman_ci'][1]:.3f}], Kendall {rel['kendall']:.3f} "
              f"[{rel['kendall_ci'][0]:.3f}, {rel['kendall_ci'][1]:.3f}]")
    return 0
