"""``python -m paper_repro <entry> [options]``: run one paper-reproduction entry."""
from __future__ import annotations

import argparse
import logging
import sys

import paper_repro  # noqa: F401  (importing the package registers every entry)
from paper_repro import registry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m paper_repro",
        description="The GradSign paper's experiments at laptop scale, ours beside its claims.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    registry.add_entry_parsers(parser.add_subparsers(dest="entry", required=True, metavar="ENTRY"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        path = registry.run(args)
    except ValueError as err:
        print(f"python -m paper_repro {args.entry}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
