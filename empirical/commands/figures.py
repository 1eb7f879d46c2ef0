"""`gradsign figures RUN`: regenerate a validation run's report and figures from its store."""
from __future__ import annotations

import argparse

from empirical.validation.run import write_figures, write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="regenerate RUN/report.md and RUN/figures/ from RUN/results.sqlite alone",
        description="Read the results store of a bound-validation run and rewrite its report and "
                    "figures (PNG and PDF); nothing is recomputed.",
    )
    parser.add_argument("run", metavar="RUN", help="run directory holding results.sqlite")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    report = write_report(args.run)
    figures = write_figures(args.run)
    print(f"report:  {report}")
    for path in figures:
        print(f"figure:  {path}")
    return 0
