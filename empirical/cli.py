"""The `gradsign` command line.

Each subcommand lives in its own module under `empirical.commands`; a module exposes
`register(subparsers)` which adds its parser and sets `func(args) -> int`. Packages
above `empirical` (paper_repro) add commands through the `gradsign.commands`
entry-point group, so that `empirical` never imports them by name.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys

# One line per subcommand module; keep the list sorted.
COMMAND_MODULES = [
    "empirical.commands.build_benchmark",
    "empirical.commands.compare_truths",
    "empirical.commands.correlate",
    "empirical.commands.demo",
    "empirical.commands.export",
    "empirical.commands.psi_study",
    "empirical.commands.figures",
    "empirical.commands.score",
    "empirical.commands.space_score",
    "empirical.commands.validate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradsign",
        description="GradSign toolkit: sample-wise theory, zero-cost proxies, NAS scoring.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for plugin in importlib.metadata.entry_points(group="gradsign.commands"):
        plugin.load().register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ValueError as err:
        print(f"gradsign {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
