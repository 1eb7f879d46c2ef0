"""`gradsign demo`: the main job on embedded data, as `make demo` runs it."""
from __future__ import annotations

import sys

from tqdm import tqdm

from empirical import data as datasets
from empirical.commands.score import format_table
from empirical.scoring import NetworkSpec, score_network

DEMO_ARCHS = (
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="score a few networks on digits and print a table")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    split = datasets.load("digits")
    specs = [NetworkSpec("nb201", arch=a, C=8, N=1) for a in DEMO_ARCHS]
    rows = [
        score_network(s, split, ["gradsign", "gradsign_sq"], batch=64, seed=args.seed)
        for s in tqdm(specs, desc="scoring NB201 cells on digits", file=sys.stderr)
    ]
    print(f"GradSign of NAS-Bench-201 cells (C=8, N=1) on digits, batch 64, seed {args.seed}")
    print(format_table(rows, ["gradsign", "gradsign_sq"]))
    return 0
