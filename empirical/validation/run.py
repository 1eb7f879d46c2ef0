"""Drive a bound-validation run: config -> jobs -> store -> report.md and figures.

``RUN/`` holds ``results.sqlite`` (one row per network, written by the driver only),
``report.md`` and ``figures/*.png|pdf``. Rerunning the same config into the same RUN
resumes: finished networks are not recomputed. `write_figures` and `write_report` read
the store alone, so ``gradsign figures RUN`` regenerates them at any time.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from empirical import results
from empirical.devices import resolve_device
from empirical.executors import RunSummary, run_experiment
from empirical.validation import report as report_module
from empirical.validation import schema
from empirical.validation.job import validation_job
from figures import validation as validation_figures

__all__ = ["ValidationRun", "run_validation", "write_figures", "write_report"]

log = logging.getLogger(__name__)

FIGURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class ValidationRun:
    run_dir: Path
    summary: RunSummary
    report: Path
    figures: tuple[Path, ...]


def run_validation(
    config_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    executor: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> ValidationRun:
    r"""Validate the config (before anything runs), run its jobs, write report and figures.

    out: the run directory (default ``runs/<config file stem>``). executor / workers /
    ray_address override the config's ``[run]`` table. device: where each job's networks
    and data live (`empirical.devices`; how a row was computed, recorded in it, not
    part of its hash).

    One tiny network, end to end (a few seconds):

    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = (tmp / "toy.toml").write_text(
    ...     '[data]\nname = "iris"\nn = 8\nn_heldout = 4\n[model]\nwidth = 3\n'
    ...     '[theory]\npower_max_iter = 20\nlandscape_points = 5\n[train]\nepochs = 5\n')
    >>> run = run_validation(tmp / "toy.toml", tmp / "toy", progress=False)
    >>> run.summary.ok, run.summary.failed
    (1, 0)
    >>> run.report.read_text().splitlines()[0]
    '# Bound validation: toy'
    >>> sorted(p.name for p in run.figures)[:2]
    ['agreement_by_layer.pdf', 'agreement_by_layer.png']
    >>> import shutil; shutil.rmtree(tmp)
    """
    device = str(resolve_device(device))
    config = schema.load(config_path)
    overrides = {"executor": executor, "workers": workers, "ray_address": ray_address}
    config["run"] = {**config["run"], **{k: v for k, v in overrides.items() if v is not None}}
    if config["run"]["ray_address"] is not None and config["run"]["executor"] != "ray":
        raise ValueError("--ray-address needs --executor ray")
    run_dir = Path(out) if out is not None else Path("runs") / Path(config_path).stem
    summary = run_experiment(config, functools.partial(validation_job, device=device), run_dir, progress=progress)
    log.info("run %s: %s", run_dir, summary)
    return ValidationRun(run_dir, summary, write_report(run_dir), write_figures(run_dir))


def write_report(run_dir: str | os.PathLike) -> Path:
    """RUN/report.md from the store."""
    run_dir = Path(run_dir)
    path = run_dir / "report.md"
    path.write_text(report_module.render(results.load(run_dir), title=run_dir.name), encoding="utf-8")
    return path


def write_figures(run_dir: str | os.PathLike) -> tuple[Path, ...]:
    """Every figure of `figures.validation` as RUN/figures/<name>.png and .pdf."""
    # Files only: no window, whatever backend the session picked.
    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    frame = results.load(run_dir, status="ok")
    out_dir = run_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in validation_figures.FIGURES.items():
        if frame.empty:
            log.warning("no successful rows in %s: no figures", run_dir)
            break
        fig = make(frame)
        for fmt in FIGURE_FORMATS:
            path = out_dir / f"{name}.{fmt}"
            # Fixed metadata keep the files byte-stable across reruns of the same store.
            metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "Producer": None}
            fig.savefig(path, dpi=120, bbox_inches="tight", metadata=metadata)
            written.append(path)
        plt.close(fig)
    return tuple(written)
