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

from empirical.checks import check_int
from empirical.devices import add_device_argument, resolve_device
from empirical.registry import Registry

__all__ = ["ENTRIES", "Entry", "register", "names", "get", "add_common_arguments", "add_entry_parsers", "run"]


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str
    paper_item: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Path]


ENTRIES: Registry[Entry] = Registry("entry")


def register(entry: Entry) -> Entry:
    """Add `entry` under its name (a second entry of the same name raises ValueError)."""
    return ENTRIES.add(entry.name, entry)


def names() -> list[str]:
    """Registered entry names, in registration order.

    >>> import paper_repro
    >>> "rank-correlation" in paper_repro.names()
    True
    """
    return ENTRIES.names()


def get(name: str) -> Entry:
    return ENTRIES.get(name)


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
    add_device_argument(parser)


def add_entry_parsers(subparsers) -> None:
    """One sub-command per registered entry, with the shared and the entry's own options."""
    for name in ENTRIES:
        entry = ENTRIES.get(name)
        parser = subparsers.add_parser(entry.name, help=entry.summary,
                                       description=f"{entry.summary} Reproduces: {entry.paper_item}.")
        add_common_arguments(parser)
        entry.add_arguments(parser)
        parser.set_defaults(entry=entry.name)


def run(args: argparse.Namespace) -> Path:
    """Check the shared options and run the entry named by ``args.entry``."""
    check_int("--seed", args.seed, minimum=0)
    check_int("--workers", args.workers, minimum=1)
    if args.n_boot is None:
        args.n_boot = 200 if args.toy else 2000
    check_int("--n-boot", args.n_boot, minimum=10)
    args.device = str(resolve_device(args.device))
    # The networks are tiny: one intra-op thread per process is fastest, and parallelism
    # comes from --workers processes.
    torch.set_num_threads(1)
    return get(args.entry).run(args)
