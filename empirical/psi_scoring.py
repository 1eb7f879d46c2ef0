"""Exact Ψ of the sample-wise optima as an architecture score (docs/theory.md §2–§4).

`network_psi` takes a network at θ_0 and n training samples, computes the sample-wise
optima θ*_i with `theory.sample_wise_optima` and returns Ψ_2 and Ψ_1 (`theory.psi`) with
the A3 sign–side agreement (`theory.sign_side_agreement`) and the solver's diagnostics.
`PsiScorer` is the same computation as a scorer (`empirical.scoring.Scorer`, row kind
``space-psi``), so it goes through `empirical.space_scoring`'s store, resume and
executors like the proxies: the network is the proxies' network (same seed, same
`build_network`) and the n samples are the scoring batch (``batch = n``).

Losses: ``"mse"`` is ``½‖f(x_i) − onehot(y_i)‖²`` (squared one-hot targets; the
Gauss–Newton solver needs this residual form); ``"ce"`` is cross-entropy on the class
indices, with a solver that works for it (``proximal``, ``eps_stop``, ``gd``).

Each result carries ``psi_status``:

* ``ok``: every optimum converged; Ψ over all n samples.
* ``partial``: some did not converge. Ψ_2, Ψ_1 and the agreement are over the converged
  samples only, never over all of them; ``converged_fraction`` and ``psi_reason`` say how
  many were dropped. Filter on ``psi_status == "ok"`` to compare architectures on the
  same samples.
* ``unconverged``: none converged; Ψ is NaN.
* ``no_input_path``: the network's output does not depend on its input (a NAS-Bench-201
  cell whose output node has no path of non-``none`` ops from the input node: its
  ``nb201.canonical(arch, "strict")`` is the zero class ``"#"``). Every θ*_i then only
  fits a constant to y_i; Ψ would measure the labels, not the architecture, so it is NaN
  and nothing is solved. Only NAS-Bench-201 networks are checked for this.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

import theory
from empirical.spaces import nb201
from proxies.checks import check_choice
from proxies.engine import select_param_names

__all__ = ["DTYPES", "LOSSES", "PsiScorer", "network_psi", "no_input_path"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LOSSES = ("mse", "ce")
STATUSES = ("ok", "partial", "unconverged", "no_input_path")


def no_input_path(model: nn.Module) -> str | None:
    """Why the output of ``model`` is constant in its input, or None (also for a model
    this cannot tell: only NAS-Bench-201 networks, which carry ``arch_str``, are checked).

    >>> no_input_path(nb201.build("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", C=2, N=1))[:40]
    'the cell has no path of non-none ops fro'
    >>> no_input_path(nb201.build("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", C=2, N=1)) is None
    True
    """
    arch = getattr(model, "arch_str", None)
    if isinstance(model, nb201.TinyNetwork) and nb201.canonical(arch, rule="strict") == "#":
        return (f"the cell has no path of non-none ops from its input node to its output node ({arch}): "
                "the network's output is constant in its input")
    return None


def _check_problem(solver: str, loss: str, dtype: str | None) -> None:
    check_choice("solver", solver, theory.SOLVERS.names())
    check_choice("loss", loss, LOSSES)
    if dtype is not None:
        check_choice("dtype", dtype, tuple(DTYPES))
    if theory.SOLVERS.get(solver).residual_loss and loss != "mse":
        raise ValueError(f'loss={loss!r} does not fit solver={solver!r}, which needs the residual form of '
                         'loss="mse"; for cross-entropy use solver="proximal" or "eps_stop"')


def _dtype_of(model: nn.Module) -> torch.dtype:
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) != 1:
        raise ValueError(f"model: its parameters have {len(dtypes)} dtypes {sorted(map(str, dtypes))}; "
                         "pass dtype= to convert them to one")
    return dtypes.pop()


def network_psi(model: nn.Module, inputs: Tensor, labels: Tensor, *, solver: str = "gauss_newton",
                loss: str = "mse", dtype: str | None = None, params: str | Sequence[str] = "all",
                solver_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Ψ_2, Ψ_1 and the A3 agreement of the sample-wise optima of ``model`` on ``(inputs,
    labels)`` (n samples, integer class labels), with the solver's diagnostics.

    ``dtype`` ("float32" | "float64") converts a copy of the model and the inputs; None
    keeps the model's dtype, and then the inputs must have it. The model is not changed.
    Returns ``{psi_2, psi_1, a3_agreement, psi_status, psi_reason, n, n_converged,
    converged_fraction, diverged, iterations_max, grad_norm_max, solver, loss, dtype,
    params, solver_options}`` (module docstring for the statuses).

    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    >>> row = network_psi(net, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), dtype="float64")
    >>> row["psi_status"], row["converged_fraction"], row["psi_2"] > 0
    ('ok', 1.0, True)
    """
    _check_problem(solver, loss, dtype)
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise ValueError(f"inputs must be a floating-point tensor, got {getattr(inputs, 'dtype', type(inputs))}")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.ndim != 1:
        raise ValueError("labels must be integer class indices of shape (n,)")
    if labels.shape[0] != inputs.shape[0]:
        raise ValueError(f"labels: {labels.shape[0]} labels for {inputs.shape[0]} inputs")
    if dtype is None:
        target_dtype = _dtype_of(model)
        if inputs.dtype != target_dtype:
            raise ValueError(f"inputs are {inputs.dtype} but the model's parameters are {target_dtype}: "
                             "pass dtype= to convert both, or convert one of them")
        net = model
    else:
        target_dtype = DTYPES[dtype]
        net = copy.deepcopy(model).to(target_dtype)  # the caller's model stays as it is
    names = select_param_names(net, params)  # ValueError when the model has no trainable parameter
    options = theory.SOLVERS.get(solver).resolve_options(dict(solver_options or {}), target_dtype)
    x = inputs.to(target_dtype)
    n = x.shape[0]
    row: dict[str, Any] = {
        "n": n, "solver": solver, "loss": loss, "dtype": str(target_dtype).removeprefix("torch."),
        "params": params if isinstance(params, str) else list(params), "solver_options": options,
    }
    nan = float("nan")
    reason = no_input_path(net)
    if reason is not None:
        return {**row, "psi_2": nan, "psi_1": nan, "a3_agreement": nan, "psi_status": "no_input_path",
                "psi_reason": reason, "n_converged": 0, "converged_fraction": nan, "diverged": 0,
                "iterations_max": 0, "grad_norm_max": nan}
    if loss == "mse":
        with torch.no_grad():  # private buffer copies: a train-mode BatchNorm keeps its running stats
            state = {**dict(net.named_parameters()), **{k: b.clone() for k, b in net.named_buffers()}}
            classes = functional_call(net, state, (x[:1],)).shape[-1]
        if int(labels.max()) >= classes or int(labels.min()) < 0:
            raise ValueError(f"labels must lie in 0..{classes - 1} for a model with {classes} outputs")
        targets = F.one_hot(labels, classes).to(target_dtype)
    else:
        targets = labels
    optima = theory.sample_wise_optima(net, x, targets, loss, solver, params=names, **options)
    converged = optima.converged.bool()
    k = int(converged.sum())
    row.update(n_converged=k, converged_fraction=k / n, diverged=int(optima.extra["diverged"].sum()),
               iterations_max=int(optima.iterations.max()), grad_norm_max=float(optima.grad_norm.max()),
               solver_options={key: value for key, value in optima.options.items() if key in options})
    if k == 0:
        return {**row, "psi_2": nan, "psi_1": nan, "a3_agreement": nan, "psi_status": "unconverged",
                "psi_reason": f"none of the {n} optima converged ({solver}, options {options})"}
    status, reason, policy = "ok", None, "raise"
    if k < n:
        status, policy = "partial", "exclude"
        reason = (f"{n - k} of {n} optima did not converge ({row['diverged']} diverged; {solver}, options "
                  f"{options}); Ψ and the agreement are over the {k} converged ones")
    kept = optima.theta[optima.kept(policy)]  # theory.psi of the kept rows: what psi(optima) computes
    agreement = theory.sign_side_agreement(net, x, targets, optima, loss, on_unconverged=policy)
    return {**row, "psi_2": theory.psi(kept, 2), "psi_1": theory.psi(kept, 1), "a3_agreement": agreement["rate"],
            "psi_status": status, "psi_reason": reason}


@dataclass(frozen=True)
class PsiScorer:
    """Exact Ψ_2 and Ψ_1 of the sample-wise optima (`network_psi`) as an architecture
    score; n is the scoring batch. Settings: solver, loss, dtype, params and the solver
    options given (the values used, defaults included, are in each row's result); a row
    covers a request with equal settings.

    >>> scorer = PsiScorer(solver_options={"max_iter": 20})
    >>> scorer.settings()
    {'psi': {'solver': 'gauss_newton', 'loss': 'mse', 'dtype': 'float64', 'params': 'all', 'options': {'max_iter': 20}}}
    >>> PsiScorer.from_settings(scorer.settings()) == scorer, scorer.covers(PsiScorer().settings())
    (True, False)
    """

    solver: str = "gauss_newton"
    loss: str = "mse"
    dtype: str = "float64"
    params: str | tuple[str, ...] = "all"
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "space-psi"

    def __post_init__(self):
        _check_problem(self.solver, self.loss, self.dtype)
        if not isinstance(self.params, str):
            object.__setattr__(self, "params", tuple(self.params))
        options = dict(self.solver_options)
        theory.SOLVERS.get(self.solver).resolve_options(options, DTYPES[self.dtype])  # fail here, not per arch
        object.__setattr__(self, "solver_options", dict(sorted(options.items())))

    def settings(self) -> dict[str, Any]:
        return {"psi": {"solver": self.solver, "loss": self.loss, "dtype": self.dtype,
                        "params": self.params if isinstance(self.params, str) else list(self.params),
                        "options": dict(self.solver_options)}}

    def covers(self, settings: dict[str, Any]) -> bool:
        return settings.get("psi") == self.settings()["psi"]

    def columns(self) -> list[str]:
        return ["psi_2", "psi_1"]

    def table_columns(self) -> list[str]:
        """The result fields of a row that make the table (all scalars)."""
        return ["psi_2", "psi_1", "a3_agreement", "psi_status", "psi_reason", "n", "n_converged",
                "converged_fraction", "diverged", "iterations_max", "grad_norm_max", "psi_seconds"]

    def score(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Any]:
        start = time.perf_counter()
        row = network_psi(model, inputs, targets, solver=self.solver, loss=self.loss, dtype=self.dtype,
                          params=self.params if isinstance(self.params, str) else list(self.params),
                          solver_options=self.solver_options)
        seconds = time.perf_counter() - start
        return {**row, "psi_seconds": seconds}  # one solve serves both columns

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "PsiScorer":
        psi = settings["psi"]
        params = psi["params"] if isinstance(psi["params"], str) else tuple(psi["params"])
        return cls(psi["solver"], psi["loss"], psi["dtype"], params, psi.get("options", {}))
