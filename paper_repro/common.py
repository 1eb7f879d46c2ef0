"""What every entry shares: its output folder, the score store, the report.

The entries compute through `empirical` (benchmarks: `empirical.benchmarks.benchmark`;
scores: `empirical.space_scoring`; statistics: `empirical.stats`; searches:
`empirical.search`) and write what they found with `Report`.

Reports are Markdown files with a settings table first (benchmark, sizes, seeds, number
of runs, bootstrap settings), then the result tables with their confidence intervals,
then the verdict and the figures. The measured wall time is the last line.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from empirical import provenance
from empirical.checks import check_int
from figures.repro import save

__all__ = ["OUT_ROOT", "ROOT", "Report", "default_out", "parse_ints", "score_store"]

ROOT = Path(__file__).resolve().parent.parent
OUT_ROOT = Path(__file__).resolve().parent / "out"


def default_out(name: str) -> Path:
    return OUT_ROOT / name


def score_store(args: argparse.Namespace, out: Path) -> Path:
    """Where scores are cached: ``--scores``, else the store the entries share
    (``paper_repro/out/scores``), or ``OUT/scores`` for a toy run."""
    if args.scores is not None:
        return Path(args.scores)
    return Path(out) / "scores" if args.toy else default_out("scores")


def parse_ints(option: str, text: str, *, minimum: int) -> list[int]:
    """A comma list of distinct integers ≥ ``minimum`` given to ``option`` (ValueError naming it).

    >>> parse_ints("--sizes", "8, 16,32", minimum=1)
    [8, 16, 32]
    """
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} must be a comma list of integers, got {text!r}") from None
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{option} must be a comma list of distinct integers, got {text!r}")
    return [check_int(option, v, minimum=minimum) for v in values]


class Report:
    """A Markdown report under ``out_dir``: ``report.md``, figures and CSV tables.

    >>> import tempfile
    >>> report = Report(tempfile.mkdtemp(), "Title", "What it shows.")
    >>> report.section("Results", "One paragraph.")
    >>> report.table(pd.DataFrame({"proxy": ["gradsign"], "ρ": [0.39]}))
    >>> path = report.write()
    >>> path.read_text().splitlines()[:9]
    ['# Title', '', 'What it shows.', '', '## Results', '', 'One paragraph.', '', '| proxy | ρ |']
    """

    def __init__(self, out_dir: str | os.PathLike, title: str, intro: str):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lines = [f"# {title}", "", intro, ""]
        self.started = time.perf_counter()
        self.files: list[Path] = []

    def settings(self, values: dict) -> None:
        self.lines += ["## Settings", "", "| setting | value |", "|---|---|"]
        self.lines += [f"| {k} | {v} |" for k, v in values.items()]
        revision = provenance.git_revision()
        self.lines += [f"| git revision | {revision} |", ""]
        warning = provenance.dirty_warning(revision)
        if warning:
            self.lines[4:4] = [warning, ""]

    def section(self, title: str, *paragraphs: str) -> None:
        self.lines += [f"## {title}", ""]
        for text in paragraphs:
            self.lines += [text, ""]

    def table(self, frame: pd.DataFrame, name: str | None = None) -> None:
        """Append `frame` as a Markdown table; with `name`, also save it as ``name.csv``."""
        header = [str(c) for c in frame.columns]
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in frame.itertuples(index=False):
            self.lines.append("| " + " | ".join(str(v) for v in row) + " |")
        self.lines.append("")
        if name is not None:
            self.csv(frame, name)

    def csv(self, frame: pd.DataFrame, name: str) -> Path:
        path = self.out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        self.files.append(path)
        return path

    def figure(self, fig, name: str, caption: str) -> Path:
        path = save(fig, self.out_dir / f"{name}.png")
        self.files.append(path)
        self.lines += [f"![{caption}]({name}.png)", "", f"*{caption}*", ""]
        return path

    def write(self) -> Path:
        seconds = time.perf_counter() - self.started
        self.lines += [f"Runtime: {seconds:.0f} s wall time for the entry itself (Python start-up and imports "
                       f"excluded) on {platform.machine()} with {os.cpu_count()} CPU cores visible, measured by "
                       "this run; scores found in the score store were not recomputed.", ""]
        path = self.out_dir / "report.md"
        path.write_text("\n".join(self.lines), encoding="utf-8")
        self.files.append(path)
        return path
