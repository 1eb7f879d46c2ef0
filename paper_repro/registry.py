"""The registry of paper-reproduction entries: one module per table or figure.

An entry is a name, a one-line summary, the paper item it reproduces, a function that
adds its own command-line options, and ``run(args) -> Path`` (the report it wrote).
Every entry also gets the shared options of `add_common_arguments`. Entries register
themselves on import (`paper_repro/__init__.py` imports them all).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Entry", "register", "names", "get", "add_common_arguments", "add_entry_parsers"]


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str
    paper_item: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Path]


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    if entry.name in _ENTRIES:
        raise ValueError(f"entry {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    return entry


def names() -> list[str]:
    """Registered entry names, in registration order.

    >>> import paper_repro
    >>> "rank-correlation" in paper_repro.names()
    True
    """
    return list(_ENTRIES)


def get(name: str) -> Entry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise ValueError(f"unknown entry {name!r}; entries: {', '.join(_ENTRIES)}") from None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toy", action="store_true",
                        help="tiny synthetic benchmark and settings (seconds; for tests and smoke runs)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default paper_repro/out/<entry>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of networks, batches and searches")
    parser.add_argument("--workers", type=int, default=1, help="parallel scoring processes")
    parser.add_argument("--n-boot", type=int, default=None,
                        help="bootstrap resamples for CIs (default 2000; --toy: 200)")
    parser.add_argument("--scores", metavar="DIR",
                        help="score store shared by the entries (default paper_repro/out/scores; --toy: OUT/scores)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_entry_parsers(subparsers) -> None:
    """One sub-command per registered entry, with the shared and the entry's own options."""
    for entry in _ENTRIES.values():
        parser = subparsers.add_parser(entry.name, help=entry.summary,
                                       description=f"{entry.summary} Reproduces: {entry.paper_item}.")
        add_common_arguments(parser)
        entry.add_arguments(parser)
        parser.set_defaults(entry=entry.name)


def run(args: argparse.Namespace) -> Path:
    """Check the shared options and run the entry named by ``args.entry``."""
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    if args.n_boot is None:
        args.n_boot = 200 if args.toy else 2000
    if args.n_boot < 10:
        raise ValueError(f"--n-boot must be at least 10, got {args.n_boot}")
    # The networks are tiny: one intra-op thread per process is fastest, and parallelism
    # comes from --workers processes.
    torch.set_num_threads(1)
    return get(args.entry).run(args)
