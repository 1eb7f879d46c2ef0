"""`gradsign compare-truths A B --out DIR`: two `correlate` runs of the same proxies
against two ground truths, side by side (ρ, partial ρ given log #params, top-half ρ),
with each truth's own reliability, in ``DIR/report.md`` and ``DIR/side_by_side.csv``.

A and B are `correlate` output directories (``correlation.json``, ``correlation.md``);
``--label-a/--label-b`` name them and ``--reliability-a/--reliability-b`` give the JSON
metadata of each benchmark whose ``reliability`` is quoted.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from empirical import provenance, stats

COLUMNS = (("spearman", "ρ"), ("partial_spearman", "partial ρ given log #params"), ("top_half_spearman", "top-half ρ"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare-truths",
        help="two correlate runs against two ground truths, side by side",
        description="Join two `gradsign correlate` outputs on the proxy and write a side-by-side "
                    "table of ρ, partial ρ and top-half ρ with CIs, with each truth's reliability.",
    )
    parser.add_argument("a", metavar="A", help="correlate output directory of the first truth")
    parser.add_argument("b", metavar="B", help="correlate output directory of the second truth")
    parser.add_argument("--label-a", default="A", help="name of the first truth")
    parser.add_argument("--label-b", default="B", help="name of the second truth")
    parser.add_argument("--reliability-a", metavar="JSON", default=None, help="metadata JSON of the first truth")
    parser.add_argument("--reliability-b", metavar="JSON", default=None, help="metadata JSON of the second truth")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for report.md and side_by_side.csv")
    parser.set_defaults(func=main)


def _rows(directory: str) -> list[dict]:
    path = Path(directory) / "correlation.json"
    if not path.exists():
        raise ValueError(f"{directory!r} has no correlation.json: pass a `gradsign correlate --out` directory")
    return json.loads(path.read_text(encoding="utf-8"))


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None or value != value:
        return "n/a"
    return stats.Estimate(row[key], *row[f"{key}_ci"], 0).format()


def side_by_side(a: list[dict], b: list[dict], label_a: str, label_b: str) -> pd.DataFrame:
    """One row per proxy present in both runs, in A's order: each column of ``COLUMNS``
    for A then B, formatted with its CI.

    >>> r = {"proxy": "p", "spearman": 0.5, "spearman_ci": [0.4, 0.6], "partial_spearman": None,
    ...      "top_half_spearman": 0.1, "top_half_spearman_ci": [0.0, 0.2]}
    >>> side_by_side([r], [r], "x", "y").iloc[0].tolist()[:3]
    ['p', '0.500 [0.400, 0.600]', '0.500 [0.400, 0.600]']
    """
    by_proxy = {row["proxy"]: row for row in b}
    missing = [row["proxy"] for row in a if row["proxy"] not in by_proxy]
    if missing:
        raise ValueError(f"proxies {missing} of {label_a} are not in {label_b}")
    table = []
    for row in a:
        other = by_proxy[row["proxy"]]
        line = {"proxy": row["proxy"] + (" (size reference)" if row.get("reference") else "")}
        for key, name in COLUMNS:
            line[f"{name}, {label_a}"] = _cell(row, key)
            line[f"{name}, {label_b}"] = _cell(other, key)
        table.append(line)
    return pd.DataFrame(table)


def _format_reliability(rel: dict) -> str:
    """A benchmark JSON's ``reliability`` in words: nb201-digits' seed-to-seed form or
    nb201-digits-cv's split-half form (every metric and subset it holds).

    >>> _format_reliability({"spearman": 0.4, "spearman_ci": [0.3, 0.5], "seeds": [0, 1], "n": 9})
    'Spearman ρ between training seeds 0 and 1: 0.400 [0.300, 0.500] (n = 9)'
    """
    if "spearman" in rel:
        seeds = rel.get("seeds", ["?", "?"])
        return (f"Spearman ρ between training seeds {seeds[0]} and {seeds[1]}: {rel['spearman']:.3f} "
                f"[{rel['spearman_ci'][0]:.3f}, {rel['spearman_ci'][1]:.3f}] (n = {rel['n']})")
    parts = []
    for key, value in rel.items():
        if isinstance(value, dict) and "spearman" in value:
            low, high = value["spearman_ci"]
            parts.append(f"{key} {value['spearman']:.3f} [{low:.3f}, {high:.3f}] (n = {value['n']})")
    halves = rel.get("halves")
    return f"split-half Spearman ρ (halves {halves}, no Spearman-Brown): " + "; ".join(parts)


def _reliability(path: str | None, label: str) -> str:
    if path is None:
        return f"- {label}: not given"
    rel = json.loads(Path(path).read_text(encoding="utf-8")).get("reliability")
    if not rel:
        raise ValueError(f"{path!r} has no 'reliability' entry")
    return f"- {label} (`{Path(path).name}`): {_format_reliability(rel)}"


def _caption(directory: str) -> str:
    text = (Path(directory) / "correlation.md").read_text(encoding="utf-8") if (Path(directory) / "correlation.md").exists() else ""
    return text.strip().splitlines()[0] if text.strip() else "(no correlation.md)"


def main(args: argparse.Namespace) -> int:
    table = side_by_side(_rows(args.a), _rows(args.b), args.label_a, args.label_b)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "side_by_side.csv", index=False)
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in table.itertuples(index=False))
    revision = provenance.git_revision()
    warning = provenance.dirty_warning(revision)
    text = (f"# Proxies against {args.label_a} and {args.label_b}, side by side\n\n"
            f"Git revision: {revision}." + (f" {warning}" if warning else "") + "\n\n"
            f"- {args.label_a}: {_caption(args.a)}\n- {args.label_b}: {_caption(args.b)}\n\n"
            "## Reliability of each ground truth\n\n"
            f"{_reliability(args.reliability_a, args.label_a)}\n{_reliability(args.reliability_b, args.label_b)}\n\n"
            "## Spearman ρ with test accuracy [95% bootstrap CI]\n\n" + header + body)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0
