"""Entry ``landscape-illustration``: the paper's intuition figure (sample-wise optima that
are dense vs sparse) drawn from real networks.

From a bound-validation run (`empirical.validation`; ``--store RUN``), or else from a
small population computed on the spot with the same job (`validation_job`), take the
networks with the smallest Ψ_2 (dense sample-wise optima) and the largest Ψ_2 (sparse),
among the networks of the data set with the most rows, and plot their stored sample-wise
losses l_i(θ_0 + t·u) along u ∝ θ̄* − θ_0 with each optimum's projection on the line,
and their GradSign scores. The line is one direction through a high-dimensional space:
the optima lie off it (the stored off-line distances are reported), so the panels show
the spread of the optima along u, not the whole geometry.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from empirical import results
from empirical.config import validate
from empirical.executors import run_experiment
from empirical.stats import Estimate, correlation_ci
from empirical.validation.job import validation_job
from empirical.validation.schema import SCHEMA
from figures.repro import landscape_panels
from paper_repro.common import ROOT, Report, default_out
from paper_repro.registry import Entry, register

NAME = "landscape-illustration"


def population_config(toy: bool, seed: int) -> dict:
    """The on-the-spot population: tanh MLPs on digits at several widths and init scales."""
    if toy:
        raw = {"seeds": [seed],
               "data": {"name": "digits", "n": 6, "n_heldout": 4},
               "model": {"family": "mlp", "width": 4, "depth": 1, "activation": "tanh", "init_scale": [0.5, 2.0]},
               "theory": {"landscape_points": 11, "landscape_samples": 4, "power_max_iter": 20},
               "train": {"epochs": 5}}
    else:
        raw = {"seeds": [seed, seed + 1, seed + 2, seed + 3],
               "data": {"name": "digits", "n": 32, "n_heldout": 32},
               "model": {"family": "mlp", "width": [8, 32], "depth": 1, "activation": "tanh",
                         "init_scale": [0.5, 1.0, 2.0]},
               "theory": {"landscape_points": 61, "landscape_samples": 12},
               "train": {"epochs": 300}}
    return validate(raw, SCHEMA)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="RUN",
                        help="a bound-validation run directory (results.sqlite) to pick the networks from; "
                             "default: compute a small population on the spot")


def _network(row: pd.Series) -> str:
    keys = ("model.family", "model.width", "model.depth", "model.activation", "model.init_scale")
    return " ".join(f"{k.split('.')[1]}={row[k]}" for k in keys if k in row) + f" seed={row['seed']}"


def pick(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series, str]:
    """(rows of the data set with most networks, the rows of its largest group of equal
    parameter count, the dense row, the sparse row, the data set name).

    Dense and sparse are picked within one parameter count: GradSign sums over weights and
    Ψ_2 over coordinates, so networks of different sizes differ in both for that reason alone.
    """
    rows = frame[frame["landscape.t"].notna()] if "landscape.t" in frame else frame.iloc[:0]
    if len(rows) < 2:
        raise ValueError("the run holds fewer than two networks with landscape arrays; run more networks "
                         "(or omit --store to compute a population)")
    name = rows["data.name"].value_counts().idxmax()
    rows = rows[rows["data.name"] == name].reset_index(drop=True)
    sizes = rows["n_params"].value_counts()
    size = max(sizes.index, key=lambda v: (sizes[v], v))
    group = rows[rows["n_params"] == size].reset_index(drop=True)
    if len(group) < 2:
        raise ValueError("no two networks of the run have the same parameter count; run several init scales "
                         "or seeds per architecture")
    psi = group["psi_2"].to_numpy(dtype=float)
    return rows, group, group.iloc[int(np.nanargmin(psi))], group.iloc[int(np.nanargmax(psi))], name


def _listed(value):
    return list(value) if isinstance(value, list) else value


def panel(row: pd.Series, kind: str) -> dict:
    return {"title": f"{kind}: Ψ_2 = {row['psi_2']:.3g}, GradSign = {row['proxy.gradsign']:.0f}\n{_network(row)}",
            "t": json.loads(row["landscape.t"]), "loss": json.loads(row["landscape.loss"]),
            "t_star": json.loads(row["landscape.t_star"]), "loss_star": json.loads(row["landscape.loss_star"]),
            "t_bar": float(row["landscape.t_bar"])}


@dataclass(frozen=True)
class Result:
    """The population's rows, the networks picked, and ρ(GradSign, Ψ_2) pooled and within sizes."""

    source: str
    config_note: str
    frame: pd.DataFrame
    rows: pd.DataFrame
    group: pd.DataFrame
    dense: pd.Series
    sparse: pd.Series
    data_name: str
    rho: Estimate
    tau: Estimate
    within: list[tuple[float, Estimate]]


def compute(args: argparse.Namespace, out: Path) -> Result:
    if args.store:
        source = f"bound-validation run {args.store}"
        run_dir = Path(args.store)
        config_note = "as recorded in that run's rows"
    else:
        run_dir = out / "population"
        config = population_config(args.toy, args.seed)
        run_experiment(config, functools.partial(validation_job, device=args.device), run_dir,
                       progress=not args.no_progress)
        shown_dir = run_dir.resolve().relative_to(ROOT) if run_dir.resolve().is_relative_to(ROOT) else run_dir
        source = f"population computed on the spot into {shown_dir} (`validation_job`)"
        config_note = (f"data {_listed(config['data']['name'])} n={config['data']['n']}; MLP family, widths "
                       f"{_listed(config['model']['width'])}, depth {_listed(config['model']['depth'])}, init scales "
                       f"{_listed(config['model']['init_scale'])}, activation {_listed(config['model']['activation'])}; "
                       f"loss {config['theory']['loss']}, solver {config['theory']['solver']}; "
                       f"{config['train']['epochs']} epochs of full-batch GD on S; seeds {config['seeds']}")
    frame = results.load(run_dir, status="ok")
    rows, group, dense, sparse, data_name = pick(frame)

    def correlation(sub: pd.DataFrame, method: str) -> Estimate:
        return correlation_ci(sub["proxy.gradsign"].to_numpy(dtype=float), sub["psi_2"].to_numpy(dtype=float), method,
                              n_boot=args.n_boot, seed=args.seed)

    within = [(size, correlation(sub, "spearman")) for size, sub in rows.groupby("n_params") if len(sub) >= 3]
    return Result(source, config_note, frame, rows, group, dense, sparse, data_name, correlation(rows, "spearman"),
                  correlation(rows, "kendall"), within)


def write_report(report: Report, result: Result, args: argparse.Namespace) -> Path:
    rows, dense, sparse, data_name = result.rows, result.dense, result.sparse, result.data_name
    report.settings({
        "networks from": result.source,
        "population": result.config_note,
        "networks used": f"{len(rows)} with landscape arrays on data set {data_name} "
                         f"({len(result.frame)} ok rows in the run)",
        "selection": f"dense = smallest Ψ_2, sparse = largest Ψ_2 among the {len(result.group)} networks with "
                     f"{int(dense['n_params'])} parameters (the largest group of equal size)",
        "seeds": f"θ_0 of each network from its row's seed ({sorted(set(rows['seed']))})",
        "confidence intervals": f"95% percentile bootstrap over networks, {args.n_boot} resamples (seed {args.seed})",
    })
    table = rows.assign(network=[_network(r) for _, r in rows.iterrows()]).sort_values("psi_2")
    cols = {"network": "network", "psi_2": "Ψ_2", "psi_1": "Ψ_1", "proxy.gradsign": "GradSign"}
    if "trained.test_acc" in table:
        cols["trained.test_acc"] = "trained test accuracy"
    shown = table[list(cols)].rename(columns=cols)
    report.section("Population, by Ψ_2", "Smallest Ψ_2 first: the dense end of the population.")
    report.table(shown.round(4), "population")
    dense_higher = dense["proxy.gradsign"] > sparse["proxy.gradsign"]
    within_text = "; ".join(f"{int(size)} parameters ({c.n} networks): ρ = {c.format()}"
                            for size, c in result.within) or "no group of equal size has 3 or more networks"
    report.section(
        "What the figure shows",
        f"Dense network: Ψ_2 = {dense['psi_2']:.4g}, GradSign = {dense['proxy.gradsign']:.0f}; sparse network (same "
        f"parameter count): Ψ_2 = {sparse['psi_2']:.4g}, GradSign = {sparse['proxy.gradsign']:.0f}. The dense one has "
        f"the {'higher' if dense_higher else 'lower or equal'} GradSign "
        f"({'as' if dense_higher else 'not as'} the paper's intuition predicts).",
        f"Pooled over all {result.rho.n} networks: Spearman ρ(GradSign, Ψ_2) = {result.rho.format()}, Kendall τ = "
        f"{result.tau.format()}. "
        "The paper's argument predicts a negative correlation, but a pooled one mixes sizes: GradSign sums over "
        "weights, so larger networks score higher whatever their optima. Within one parameter count: "
        f"{within_text}.",
        "Median distance of the optima from the plotted line: dense "
        f"{np.median(json.loads(dense['landscape.off_line'])):.3g}, sparse "
        f"{np.median(json.loads(sparse['landscape.off_line'])):.3g} (the line shows one direction only).",
    )
    report.figure(landscape_panels([panel(dense, "dense"), panel(sparse, "sparse")],
                                   title=f"Sample-wise losses along θ_0 → θ̄* ({data_name})"),
                  "landscape", "Sample-wise losses l_i along the line from θ_0 through θ̄*; stars: each "
                  "sample's optimum projected on the line (t*_i, l*_i). Left: smallest Ψ_2; right: largest Ψ_2 "
                  "of the same parameter count.")
    if math.isnan(result.rho.value):
        report.section("Note", "ρ(GradSign, Ψ_2) is undefined here (a constant column).")
    return report.write()


def run(args: argparse.Namespace) -> Path:
    out = Path(default_out(NAME) if args.out is None else args.out)
    report = Report(out, "Dense vs sparse sample-wise optima in real networks",
                    "The paper's intuition figure: a network whose sample-wise optima θ*_i lie close together "
                    "(small Ψ) can fit many samples from one point, and GradSign (per-sample gradient sign "
                    "agreement at θ_0) is meant to detect this. Here both kinds come from real networks.")
    return write_report(report, compute(args, out), args)


register(Entry(NAME, "The intuition figure from real networks: dense vs sparse sample-wise optima, with GradSign.",
               "the landscape illustration (Figure 1)", add_arguments, run))
