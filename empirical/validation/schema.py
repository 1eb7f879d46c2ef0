"""The bound-validation config: a TOML file checked by `empirical.config` before any job runs.

Tables and keys (defaults in brackets; keys marked *grid* take one value or a list of
alternatives, and the population is their Cartesian product times ``seeds``):

``kind`` ["validation"], ``seeds`` [[0]]: one network (θ_0 drawn from the seed) per grid
point and seed.

``[data]``: ``name`` (*grid*; digits, breast_cancer, wine, iris, teacher), ``n`` [32]:
the training set S (the samples of Ψ, GradSign, Theorem 1 and training), drawn from the
train split with ``sample_seed`` [0] (the same S for every network of a data set);
``n_heldout`` [32]: test samples whose optima feed Theorem 2; ``split_seed`` [0],
``test_size`` [0.25]: the train/test split (`empirical.data.load`).

``[model]``: ``family`` (*grid*; "mlp" or "cnn", the small CNN of
`empirical.spaces.mlp.small_cnn`, without BatchNorm, digits only), ``width``, ``depth``,
``activation`` (cnn: relu only), ``init_scale`` (all *grid*), ``dtype`` ["float64"].

``[theory]``: ``loss`` ["mse"] (mse: l_i = ½‖f(x_i) − y_i‖² with one-hot targets for
classification; ce: cross-entropy), ``solver`` ["gauss_newton"] and
``[theory.solver_options]`` (eps, max_iter, tol, lr, lam: only those the solver has; names,
types and bounds from `theory.solver_options()`, defaults there),
``max_unconverged_fraction`` [0.0]: a network whose solver leaves more samples
unconverged fails; ``bounds`` (registry names, `theory.bound_names`), ``proxies``
(registry names, `proxies.names`), ``points_per_segment`` [1], ``power_max_iter`` [200],
``power_tol`` [1e-5] (the A1 estimator), ``landscape_points`` [41],
``landscape_samples`` [12] (the 1-D landscape arrays stored in each row).

``[train]``: the recipe of `empirical.training.Recipe` on S: ``epochs`` [300],
``batch_size`` [full batch: n], ``lr`` [0.1], ``lr_min`` [= lr: constant],
``momentum`` [0.0], ``nesterov`` [false], ``weight_decay`` [0.0]. The defaults are
full-batch gradient descent on L_S, the loss the bounds speak of.

``[run]``: executor settings (`empirical.config.run_section`), not part of any job.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import proxies
import theory
from empirical import data as datasets
from empirical.config import Field, Rule, Schema, load_toml, requires, run_section, seeds_field, validate
from empirical.plan import Job, expand
from empirical.spaces.mlp import ACTIVATIONS

__all__ = ["KIND", "SCHEMA", "SOLVER_OPTIONS", "jobs", "load"]

KIND = "validation"
# Read from the solvers' own option tables (theory.solver_options), never copied.
SOLVERS = tuple(theory.SOLVERS.names())
SOLVER_OPTIONS = {name: tuple(o.name for o in table) for name, table in theory.solver_options().items()}


def _solver_option_fields() -> dict[str, Field]:
    """One optional field per option name of any solver: its type and lower bound from
    the option table (an option name shared by solvers must mean the same kind of value)."""
    fields: dict[str, Field] = {}
    for solver, table in theory.solver_options().items():
        for option in table:
            bound = {"gt": 0} if option.positive else {"ge": 0}
            field = Field(int if option.integer else float, default=None, **bound, doc=option.doc)
            known = fields.setdefault(option.name, field)
            if (known.type, known.gt, known.ge) != (field.type, field.gt, field.ge):
                raise ValueError(f"solver {solver!r}: option {option.name!r} disagrees with another solver's")
    return fields


def _known(names_fn, what: str):
    def check(values: list[str]) -> str | None:
        known = names_fn()
        unknown = [v for v in values if v not in known]
        if unknown:
            return f"unknown {what} {unknown}; known: {', '.join(known)}"
        if len(set(values)) != len(values):
            return f"{what} names must be distinct"
        return None

    return check


def _proxy_names() -> list[str]:
    return proxies.names()


def _solver_options_rule(section: Mapping[str, Any]) -> str | None:
    allowed = SOLVER_OPTIONS[section["solver"]]
    given = [k for k, v in section["solver_options"].items() if v is not None]
    extra = [k for k in given if k not in allowed]
    if extra:
        return f"solver {section['solver']!r} has no option(s) {extra}; its options: {', '.join(allowed)}"
    return None


def _data_model_rule(config: Mapping[str, Any]) -> str | None:
    if config["model"]["family"] == "cnn" and config["data"]["name"] != "digits":
        return f"the cnn family needs image data (digits), got data.name={config['data']['name']!r}"
    return None


def _loss_data_rule(config: Mapping[str, Any]) -> str | None:
    if config["theory"]["loss"] == "ce" and config["data"]["name"] == "teacher":
        return "'ce' needs a classification data set; teacher is a regression: use loss = \"mse\""
    return None


def _batch_rule(config: Mapping[str, Any]) -> str | None:
    batch = config["train"]["batch_size"]
    if batch is not None and batch > config["data"]["n"]:
        return f"must not exceed data.n = {config['data']['n']} (training runs on S), got {batch}"
    return None


def _lr_rule(section: Mapping[str, Any]) -> str | None:
    if section["lr_min"] is not None and section["lr_min"] > section["lr"]:
        return f"must not exceed train.lr = {section['lr']}, got {section['lr_min']}"
    return None


SCHEMA = Schema({
    "kind": Field(str, default=KIND, choices=(KIND,)),
    "seeds": seeds_field(default=[0]),
    "data": Schema({
        "name": Field(str, choices=datasets.NAMES, grid=True),
        "n": Field(int, default=32, ge=2, doc="|S|: samples of Ψ, GradSign, Theorem 1, training"),
        "n_heldout": Field(int, default=32, ge=2, doc="held-out samples whose optima feed Theorem 2"),
        "sample_seed": Field(int, default=0, ge=0, doc="seed drawing S and the held-out samples"),
        "split_seed": Field(int, default=0, ge=0),
        "test_size": Field(float, default=0.25, gt=0, lt=1),
    }),
    "model": Schema(
        {
            "family": Field(str, default="mlp", choices=("mlp", "cnn"), grid=True),
            "width": Field(int, default=16, ge=1, grid=True),
            "depth": Field(int, default=1, ge=0, grid=True),
            "activation": Field(str, default="tanh", choices=ACTIVATIONS, grid=True),
            "init_scale": Field(float, default=1.0, gt=0, grid=True),
            "dtype": Field(str, default="float64", choices=("float32", "float64")),
        },
        rules=(
            requires("family", "cnn", "activation", ("relu",), why="the small CNN uses ReLU"),
            Rule("depth", lambda m: "the cnn family needs depth >= 1, got 0"
                 if m["family"] == "cnn" and m["depth"] < 1 else None),
        ),
    ),
    "theory": Schema(
        {
            "loss": Field(str, default="mse", choices=("mse", "ce")),
            "solver": Field(str, default="gauss_newton", choices=SOLVERS),
            "solver_options": Schema(_solver_option_fields()),
            "max_unconverged_fraction": Field(float, default=0.0, ge=0, le=1),
            "bounds": Field(list, default=["theorem1_per_sample", "theorem1_uniform", "theorem2"],
                            items=Field(str), min_len=1, check=_known(theory.bound_names, "bound")),
            "proxies": Field(list, default=["gradsign", "gradsign_sq"], items=Field(str),
                             check=_known(_proxy_names, "proxy")),
            "points_per_segment": Field(int, default=1, ge=0),
            "power_max_iter": Field(int, default=200, ge=1),
            "power_tol": Field(float, default=1e-5, gt=0),
            "landscape_points": Field(int, default=41, ge=3),
            "landscape_samples": Field(int, default=12, ge=1),
        },
        rules=(
            requires("solver", "gauss_newton", "loss", ("mse",),
                     why="Gauss-Newton needs the residual loss; use solver gd, proximal or eps_stop"),
            Rule("solver_options", _solver_options_rule),
        ),
    ),
    "train": Schema(
        {
            "epochs": Field(int, default=300, ge=1),
            "batch_size": Field(int, default=None, ge=1, doc="absent: full batch (all of S)"),
            "lr": Field(float, default=0.1, gt=0),
            "lr_min": Field(float, default=None, ge=0, doc="absent: = lr (constant step)"),
            "momentum": Field(float, default=0.0, ge=0, lt=1),
            "nesterov": Field(bool, default=False),
            "weight_decay": Field(float, default=0.0, ge=0),
        },
        rules=(
            Rule("lr_min", _lr_rule),
            Rule("nesterov", lambda t: "needs momentum > 0" if t["nesterov"] and t["momentum"] == 0 else None),
        ),
    ),
    "run": run_section(),
}, rules=(
    Rule("model.family", _data_model_rule),
    Rule("theory.loss", _loss_data_rule),
    Rule("train.batch_size", _batch_rule),
))


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a validation config; every problem is reported, each by its key.

    Example:
        >>> cfg = load(Path(__file__).parents[2] / "presets" / "quick.toml")
        >>> len(jobs(cfg))
        12
    """
    raw = load_toml(path)
    try:
        return validate(raw, SCHEMA)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def jobs(config: Mapping[str, Any]) -> list[Job]:
    """The population: one `Job` per grid point and seed, each with its stable hash."""
    return expand(config)
