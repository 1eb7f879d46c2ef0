"""`gradsign export RUN --csv PATH --parquet PATH`: a run's results table as files."""
from __future__ import annotations

import argparse

from empirical.results import export


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a run's results (one row per job) to CSV and/or Parquet",
        description="Flatten RUN/results.sqlite into one table (params, metrics, timings, "
                    "versions, git revision) and write it to CSV and/or Parquet.",
    )
    parser.add_argument("run", metavar="RUN", help="run directory holding results.sqlite")
    parser.add_argument("--csv", metavar="PATH", help="CSV file to write")
    parser.add_argument("--parquet", metavar="PATH", help="Parquet file to write (needs pyarrow)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.csv is None and args.parquet is None:
        raise ValueError("nothing to write: pass --csv PATH and/or --parquet PATH")
    frame = export(args.run, csv=args.csv, parquet=args.parquet)
    for path in (args.csv, args.parquet):
        if path is not None:
            print(f"wrote {len(frame)} rows to {path}")
    return 0
