"""`gradsign build-benchmark --out DIR [--benchmark nb201-digits|nb201-digits-cv]`: train a
digits ground truth (resumable) and write its shipped files: nb201_digits.csv/.json
(default), or nb201_digits_cv_trainings.csv.gz, nb201_digits_cv.csv and .json."""
from __future__ import annotations

import argparse
import dataclasses
import shlex

import torch

from empirical.benchmarks import nb201_digits, nb201_digits_cv
from empirical.executors import run_jobs
from empirical.store import ResultsStore

BENCHMARKS = ("nb201-digits", "nb201-digits-cv")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-benchmark",
        help="train a digits mini-benchmark (resumable) and write its files",
        description="Train NB201 cells (C=8, N=1) on digits with one fixed recipe, one row per "
                    "training in OUT/results.sqlite; rerun to resume. Then write the benchmark "
                    "tables (classes with every training done) and their metadata. nb201-digits: "
                    "one 1347/450 split, one training per seed. nb201-digits-cv: 4-fold stratified "
                    f"cross-validation over all images, {len(nb201_digits_cv.REPEATS)} repeats, 3 epochs.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory (results.sqlite)")
    parser.add_argument("--benchmark", choices=BENCHMARKS, default="nb201-digits", help="which ground truth")
    parser.add_argument("--classes", type=int, default=1000, help="isomorphism classes to train")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="nb201-digits: training seeds (default 0 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"nb201-digits-cv: repeats 0..R-1 (default {len(nb201_digits_cv.REPEATS)})")
    parser.add_argument("--folds", type=int, default=None,
                        help=f"nb201-digits-cv: folds (default {nb201_digits_cv.FOLDS})")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"nb201-digits-cv: epochs (default {nb201_digits_cv.RECIPE.epochs}; others "
                             "only with --csv/--json/--trainings elsewhere)")
    parser.add_argument("--selection-seed", type=int, default=0, help="seed of the class selection")
    parser.add_argument("--workers", type=int, default=1, help="parallel trainings (1 thread each)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--csv", metavar="PATH", default=None,
                        help="benchmark (per-class) table to write (default: the shipped file)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="metadata file to write (default: the shipped file)")
    parser.add_argument("--trainings", metavar="PATH", default=None,
                        help="nb201-digits-cv: per-training table (.csv.gz) to write (default: the shipped file)")
    parser.add_argument("--import-from", nargs=3, metavar=("TRAININGS", "CSV", "JSON"), default=None,
                        help="nb201-digits-cv: first record the trainings of an earlier written build (its "
                             "per-training table, class table and metadata) in --out's store, so only the "
                             "missing trainings run")
    parser.add_argument("--import-shipped", action="store_true",
                        help="nb201-digits-cv: --import-from the shipped files (before they are rewritten)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=main)


def _run(args: argparse.Namespace, jobs, job_fn):
    # Tiny networks: one thread per training is the fastest use of a core and keeps the
    # recorded training times comparable.
    torch.set_num_threads(1)
    with ResultsStore(args.out) as store:
        return run_jobs(jobs, job_fn, store, executor=args.executor, workers=args.workers,
                        threads_per_job=1, progress=not args.no_progress)


def _digits(args: argparse.Namespace) -> int:
    for option in ("repeats", "folds", "epochs", "trainings", "import_from"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option.replace('_', '-')} applies to --benchmark nb201-digits-cv only")
    if args.import_shipped:
        raise ValueError("--import-shipped applies to --benchmark nb201-digits-cv only")
    seeds = [0, 1] if args.seeds is None else args.seeds
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must be distinct non-negative integers, got {seeds}")
    csv_path = args.csv or str(nb201_digits.CSV_PATH)
    json_path = args.json or str(nb201_digits.JSON_PATH)
    classes = nb201_digits.select_classes(args.classes, args.selection_seed)
    summary = _run(args, nb201_digits.plan(classes, seeds), nb201_digits.train_job)
    command = (f"gradsign build-benchmark --out {shlex.quote(args.out)} --classes {args.classes} "
               f"--seeds {' '.join(map(str, seeds))} --selection-seed {args.selection_seed} "
               f"--workers {args.workers} --executor {args.executor}")
    frame, meta = nb201_digits.write(args.out, seeds=seeds, n_classes=args.classes,
                                     selection_seed=args.selection_seed, command=command,
                                     csv_path=csv_path, json_path=json_path)
    print(f"jobs: {summary.total} ({summary.skipped} already done, {summary.ok} ok, {summary.failed} failed)")
    print(f"wrote {len(frame)} classes to {csv_path} and metadata to {json_path}")
    if "reliability" in meta:
        rel = meta["reliability"]
        print(f"seed agreement of test_acc: Spearman {rel['spearman']:.3f} "
              f"[{rel['spearman_ci'][0]:.3f}, {rel['spearman_ci'][1]:.3f}], Kendall {rel['kendall']:.3f} "
              f"[{rel['kendall_ci'][0]:.3f}, {rel['kendall_ci'][1]:.3f}]")
    return 0


def _digits_cv(args: argparse.Namespace) -> int:
    if args.seeds is not None:
        raise ValueError("--seeds applies to nb201-digits; nb201-digits-cv seeds repeat r with r (use --repeats)")
    cv = nb201_digits_cv
    repeats = list(cv.REPEATS) if args.repeats is None else list(range(args.repeats))
    folds = cv.FOLDS if args.folds is None else args.folds
    recipe = cv.RECIPE if args.epochs is None else dataclasses.replace(cv.RECIPE, epochs=args.epochs)
    paths = {"trainings_path": args.trainings or str(cv.TRAININGS_PATH),
             "classes_path": args.csv or str(cv.CLASSES_PATH), "json_path": args.json or str(cv.JSON_PATH)}
    if not cv.is_protocol(repeats, folds, recipe) and not (args.trainings and args.csv and args.json):
        raise ValueError("--repeats/--folds/--epochs other than the protocol's need --trainings, --csv and "
                         "--json outside the shipped files")
    if args.import_from and args.import_shipped:
        raise ValueError("pass --import-from or --import-shipped, not both")
    classes = nb201_digits.select_classes(args.classes, args.selection_seed)
    jobs = cv.plan(classes, repeats=repeats, folds=folds, recipe=recipe)
    sources = args.import_from or ((cv.TRAININGS_PATH, cv.CLASSES_PATH, cv.JSON_PATH) if args.import_shipped else None)
    if sources:
        imported = cv.import_trainings(args.out, trainings_path=sources[0], classes_path=sources[1],
                                       json_path=sources[2], repeats=repeats, folds=folds, recipe=recipe)
        print(f"imported {imported} trainings from {sources[0]}")
    summary = _run(args, jobs, cv.train_job)
    command = (f"gradsign build-benchmark --benchmark nb201-digits-cv --out {shlex.quote(args.out)} "
               f"--classes {args.classes} --repeats {len(repeats)} --folds {folds} --epochs {recipe.epochs} "
               f"--selection-seed {args.selection_seed} --workers {args.workers} --executor {args.executor}")
    if sources:
        command += (" --import-shipped" if args.import_shipped
                    else " --import-from " + " ".join(shlex.quote(str(path)) for path in sources))
    trainings, table, meta = cv.write(args.out, n_classes=args.classes, selection_seed=args.selection_seed,
                                      command=command, repeats=repeats, folds=folds, recipe=recipe, **paths)
    print(f"jobs: {summary.total} ({summary.skipped} already done, {summary.ok} ok, {summary.failed} failed)")
    print(f"wrote {len(trainings)} trainings of {len(table)} classes to {paths['trainings_path']}, "
          f"{paths['classes_path']} and {paths['json_path']}")
    if "reliability" in meta:
        rel = meta["reliability"]
        for key in ("test_acc_all", "test_acc_top_half", "test_loss_all"):
            r = rel[key]
            print(f"split-half Spearman {key} (repeats {rel['halves'][0]} vs {rel['halves'][1]}): "
                  f"{r['spearman']:.3f} [{r['spearman_ci'][0]:.3f}, {r['spearman_ci'][1]:.3f}] (n={r['n']})")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.benchmark == "nb201-digits-cv":
        return _digits_cv(args)
    return _digits(args)
