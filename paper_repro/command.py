"""`gradsign repro ENTRY [options]`: run one paper-reproduction entry (`paper_repro`).

`paper_repro` sits above `empirical` in the layering, so the command lives here and
plugs into the `gradsign` command line through the `gradsign.commands` entry-point group
(pyproject.toml); `empirical` never names it. `gradsign repro rank-correlation --toy` is
`python -m paper_repro rank-correlation --toy`.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "repro",
        help="run a paper-reproduction entry (rank-correlation, batch-size, init, assisted-search, "
             "landscape-illustration)",
        description="Run one entry of paper_repro; options after ENTRY go to the entry "
                    "(see `python -m paper_repro ENTRY --help`).",
    )
    parser.add_argument("entry", metavar="ENTRY", help="entry name, e.g. rank-correlation")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the entry's options, e.g. --toy")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from paper_repro.__main__ import main

    return main([args.entry, *args.options])
