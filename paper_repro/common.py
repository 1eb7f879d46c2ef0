"""What every entry shares: the benchmark it runs on, its output folder, the report.

Benchmarks (`load_benchmark`):

* ``nb201-digits``: the shipped mini-benchmark (`empirical.benchmarks.nb201_digits`),
  ground truth ``test_acc`` (mean over its training seeds), networks at its own size.
* ``nb201-file``: the user's NAS-Bench-201 file (`file_benchmark`), ``rank-correlation`` only.
* ``toy``: a tiny *synthetic* table for tests and smoke runs: a seeded handful of
  NAS-Bench-201 cells (`toy_benchmark`) with a made-up accuracy, scored at C=4, N=1.
  Its numbers say nothing about GradSign; every report built on it says so.

Reports are Markdown files with a settings table first (benchmark, sizes, seeds, number
of runs, bootstrap settings), then the result tables with their confidence intervals,
then the verdict and the figures. The measured wall time is the last line.
"""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from empirical import provenance
from empirical.spaces import nb201

__all__ = ["Benchmark", "Report", "ROOT", "default_out", "file_benchmark", "format_ci", "load_benchmark", "score_store",
           "toy_benchmark"]

ROOT = Path(__file__).resolve().parent.parent
OUT_ROOT = Path(__file__).resolve().parent / "out"
BENCHMARKS = ("nb201-digits", "toy")


@dataclass(frozen=True)
class Benchmark:
    """A tabular benchmark: one row per architecture with its ground-truth accuracy.

    ``table`` has at least the columns ``arch`` and ``accuracy`` (test accuracy as a
    fraction); networks are built as ``nb201.build(arch, C, N)`` for data set ``data``.
    """

    name: str
    table: pd.DataFrame
    data: str
    C: int
    N: int
    description: str
    synthetic: bool = False
    info: dict = field(default_factory=dict)
    cifar_path: str | None = None

    def reliability_note(self) -> str:
        """The ground truth's own reproducibility (two training seeds), where the benchmark records it."""
        rel = self.info.get("reliability")
        if not rel:
            return "not recorded"
        return (f"Spearman ρ between the test accuracies of training seeds {rel['seeds'][0]} and {rel['seeds'][1]} "
                f"= {format_ci(rel['spearman'], rel['spearman_ci'])} over {rel['n']} architectures (a ceiling "
                "on how well any proxy can rank one seed's accuracies; the table averages both seeds)")

    @property
    def archs(self) -> list[str]:
        return self.table["arch"].tolist()

    @property
    def accuracy(self) -> np.ndarray:
        return self.table["accuracy"].to_numpy(dtype=float)


def toy_benchmark(n_archs: int = 8, seed: int = 0) -> Benchmark:
    """A seeded synthetic benchmark of `n_archs` NB201 cells (for tests and smoke runs).

    accuracy = 0.2 + 0.1 · (number of convolution edges) + U(0, 0.05), a made-up ground
    truth that rewards parametric cells, so that the pipeline has something to rank.
    """
    if isinstance(n_archs, bool) or not isinstance(n_archs, int) or n_archs < 4:
        raise ValueError(f"n_archs must be an integer >= 4, got {n_archs!r}")
    rng = np.random.default_rng(seed)
    pool = nb201.unique_archs()
    archs = [pool[i] for i in sorted(rng.choice(len(pool), size=n_archs, replace=False))]
    convs = np.array([sum(op.startswith("nor_conv") for op, _ in nb201.parse(a)) for a in archs])
    accuracy = 0.2 + 0.1 * convs + rng.uniform(0, 0.05, size=n_archs)
    table = pd.DataFrame({"arch": archs, "accuracy": accuracy})
    return Benchmark("toy", table, data="digits", C=4, N=1, synthetic=True,
                     description=f"toy: {n_archs} NB201 cells (seed {seed}) with a SYNTHETIC accuracy "
                                 "0.2 + 0.1·conv_edges + U(0, 0.05); for testing the pipeline only")


def load_benchmark(name: str, *, toy_archs: int = 8, seed: int = 0) -> Benchmark:
    """The benchmark `name` (one of ``BENCHMARKS``)."""
    if name == "toy":
        return toy_benchmark(toy_archs, seed)
    if name != "nb201-digits":
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {name!r}")
    from empirical.benchmarks import nb201_digits

    frame = nb201_digits.load()
    try:
        meta = nb201_digits.metadata()
    except ValueError:
        meta = {}
    table = frame.rename(columns={"test_acc": "accuracy"})
    seeds = meta.get("seeds", "?")
    recipe = meta.get("recipe", nb201_digits.RECIPE.to_dict())
    description = (f"nb201-digits: {len(table)} NB201 isomorphism classes at C={nb201_digits.C}, "
                   f"N={nb201_digits.N} trained on digits ({recipe.get('epochs')} epochs, SGD, "
                   f"batch {recipe.get('batch_size')}); ground truth = test accuracy, mean over "
                   f"training seeds {seeds}")
    return Benchmark("nb201-digits", table, data=nb201_digits.DATA, C=nb201_digits.C, N=nb201_digits.N,
                     description=description, info=meta)


def file_benchmark(path: str, *, dataset: str = "cifar10", allow_pickle: bool = False, C: int = 16, N: int = 5,
                   cifar_path: str | None = None) -> Benchmark:
    """The user's NAS-Bench-201 file (`empirical.benchmarks.nb201_api`): ground truth = its
    200-epoch test accuracy on `dataset`; networks scored on CIFAR-10 images from
    `cifar_path` if given, else on ``random-cifar`` (seeded Gaussian inputs of CIFAR shape)."""
    from empirical.benchmarks import nb201_api

    frame = nb201_api.accuracies(path, dataset=dataset, hp="200", allow_pickle=allow_pickle)
    table = frame.assign(accuracy=frame["test_acc"] / 100.0)[["arch", "accuracy"]]
    data = "cifar10" if cifar_path is not None else "random-cifar"
    inputs = (f"CIFAR-10 images from {cifar_path}" if cifar_path is not None
              else "random-cifar: seeded standard-normal 3×32×32 inputs with random labels (no CIFAR-10 given)")
    return Benchmark("nb201-file", table.reset_index(drop=True), data=data, C=C, N=N, cifar_path=cifar_path,
                     description=f"the user's NAS-Bench-201 file {path}: {len(table)} architectures, ground truth "
                                 f"= 200-epoch test accuracy on {dataset}; proxies scored on {inputs}")


def default_out(name: str) -> Path:
    return OUT_ROOT / name


def score_store(args, out: Path) -> Path:
    """Where scores are cached: ``--scores``, else the store the entries share
    (``paper_repro/out/scores``), or ``OUT/scores`` for a toy run."""
    if args.scores is not None:
        return Path(args.scores)
    return Path(out) / "scores" if args.toy else default_out("scores")


def format_ci(value: float, ci, digits: int = 3) -> str:
    """``0.712 [0.650, 0.761]``; NaN as ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    low, high = ci
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


class Report:
    """A Markdown report under ``out_dir``: ``report.md``, figures and CSV tables.

    >>> report = Report("/tmp/x", "Title", "what it shows")   # doctest: +SKIP
    >>> report.settings({"seed": 0}); report.write()          # doctest: +SKIP
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
        self.lines += [f"| git revision | {provenance.git_revision()} |", ""]

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
            path = self.out_dir / f"{name}.csv"
            frame.to_csv(path, index=False)
            self.files.append(path)

    def csv(self, frame: pd.DataFrame, name: str) -> Path:
        path = self.out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        self.files.append(path)
        return path

    def figure(self, fig, name: str, caption: str) -> Path:
        from figures.repro import save

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
