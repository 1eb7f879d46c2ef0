"""`gradsign demo`: the main experiment at demo scale, as `make demo` runs it.

Runs the bound-validation preset ``presets/quick.toml`` (12 small MLPs on digits: Ψ,
GradSign, the bounds with measured constants, training) and prints where the store,
report and figures are. Rerunning resumes: finished networks are not recomputed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from empirical.validation.run import run_validation

QUICK_PRESET = Path(__file__).resolve().parents[2] / "presets" / "quick.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the quick bound-validation preset on digits "
                                           "(report and figures in a few minutes)")
    p.add_argument("--out", default="runs/quick", metavar="DIR", help="run directory (default runs/quick)")
    p.add_argument("--workers", type=int, default=None, help="parallel jobs (default: the preset's)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not QUICK_PRESET.exists():
        raise ValueError(f"the quick preset is missing at {QUICK_PRESET}; run from a full checkout")
    result = run_validation(QUICK_PRESET, args.out, workers=args.workers)
    s = result.summary
    print(f"bound validation on digits ({QUICK_PRESET.name}): {s.total} networks: {s.skipped} already "
          f"stored, {s.ok} measured now, {s.failed} failed")
    print(f"report:  {result.report}")
    print(f"figures: {result.run_dir / 'figures'}/ ({', '.join(sorted({p.stem for p in result.figures}))})")
    print(f"store:   {result.run_dir / 'results.sqlite'}  (export with: gradsign export {result.run_dir} --csv FILE)")
    return 0
