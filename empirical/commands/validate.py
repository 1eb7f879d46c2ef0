"""`gradsign validate CONFIG`: the bound-validation experiment (store, report, figures),
its networks on ``--device``."""
from __future__ import annotations

import argparse

from empirical.devices import add_device_argument, resolve_device
from empirical.validation.run import run_validation


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="bound validation: Ψ vs GradSign vs measured losses over a population of networks",
        description="Expand CONFIG (TOML, see presets/quick.toml) into one job per network, run them "
                    "(resuming a stopped run), and write RUN/results.sqlite, RUN/report.md and "
                    "RUN/figures/. The config is checked completely before any job runs.",
    )
    parser.add_argument("config", metavar="CONFIG", help="TOML config, e.g. presets/quick.toml")
    parser.add_argument("--executor", choices=["local", "ray"], help="overrides [run].executor")
    parser.add_argument("--workers", type=int, help="parallel jobs; overrides [run].workers")
    parser.add_argument("--ray-address", help="address of an existing Ray cluster (with --executor ray)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default runs/<config stem>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    device = resolve_device(args.device)
    run = run_validation(args.config, args.out, executor=args.executor, workers=args.workers,
                         ray_address=args.ray_address, progress=not args.no_progress, device=str(device))
    s = run.summary
    print(f"{s.total} jobs: {s.skipped} already stored, {s.ok} ok, {s.failed} failed")
    print(f"store:   {run.run_dir / 'results.sqlite'}")
    print(f"report:  {run.report}")
    print(f"figures: {run.run_dir / 'figures'} ({len(run.figures)} files)")
    return 0
