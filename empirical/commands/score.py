"""`gradsign score`: score a few networks with zero-cost proxies at initialisation, on one
seeded batch of a data set (`empirical.scoring.score_network`), on ``--device``."""
from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from empirical import data as datasets
from empirical.devices import add_device_argument, resolve_device
from empirical.scoring import NetworkSpec, resolve_proxies, score_network


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="score networks with proxies at initialisation")
    p.add_argument("--space", choices=["nb201", "mlp"], required=True)
    p.add_argument("--arch", action="append", default=[], help="NB201 arch string (repeatable)")
    p.add_argument("--C", type=int, default=16, help="NB201 channels of the first stage")
    p.add_argument("--N", type=int, default=5, help="NB201 cells per stage")
    p.add_argument("--width", type=int, action="append", help="MLP hidden width (repeatable)")
    p.add_argument("--depth", type=int, default=2, help="MLP hidden layers")
    p.add_argument("--activation", default="relu")
    p.add_argument("--data", default="digits")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxy", default="gradsign", help="a name, a comma list, or 'all'")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=main)


def specs_from_args(args: argparse.Namespace) -> list[NetworkSpec]:
    if args.space == "nb201":
        if not args.arch:
            raise ValueError("--space nb201 needs at least one --arch")
        return [NetworkSpec("nb201", arch=a, C=args.C, N=args.N) for a in args.arch]
    widths = args.width or [64]
    return [NetworkSpec("mlp", width=w, depth=args.depth, activation=args.activation) for w in widths]


def format_table(rows: list[dict], proxy_names: list[str]) -> str:
    header = ["network"] + proxy_names
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        lines.append(" | ".join([row["network"]] + [f"{row[p]:.6g}" for p in proxy_names]))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    proxy_names = resolve_proxies(args.proxy)
    device = resolve_device(args.device)
    specs = specs_from_args(args)
    split = datasets.load(args.data).to(device)  # once, for every network
    rows = [
        score_network(spec, split, proxy_names, batch=args.batch, seed=args.seed, device=device)
        for spec in tqdm(specs, desc="scoring", disable=len(specs) < 2, file=sys.stderr)
    ]
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        print(f"data={args.data} batch={args.batch} seed={args.seed} device={device}")
        print(format_table(rows, proxy_names))
    return 0
