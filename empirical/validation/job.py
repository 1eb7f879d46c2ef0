"""One network of a bound-validation population: theory at θ_0, then training (issue 4).

`validation_job(job)` is a sequence of named stages, each a function of this module:

1. `prepare_data`: S, the held-out samples and the test split;
2. `build_model`: the network at its initialisation θ_0, drawn from ``job.seed``;
3. `proxy_scores`: the proxies (GradSign, gradsign_sq, ... by registry name) at θ_0 on
   S, with the experiment's own per-sample loss, so that their signs are those A3 speaks of;
4. `solve_optima`: the sample-wise optima θ*_i of S and of ``n_heldout`` held-out
   samples (`theory.sample_wise_optima`); a network whose solver leaves more than
   ``max_unconverged_fraction`` of either set unconverged fails with that reason;
5. `psi_values` and `evaluate_configured_bounds`: Ψ_2 and Ψ_1 (`theory.psi`) and every
   configured bound (`theory.evaluate_bounds`, with the held-out optima for Theorem 2),
   each with the constants it was evaluated from; `sign_split`: Proposition 3's lower
   bound on Ψ_1 from the signs of θ*_i − θ_0;
6. `assumption_checks`: A1 (β_hess vs β_eff per sample), A2 (stationarity residuals),
   and the sign–side agreement rate of A3, overall and per parameter tensor
   (`theory.sign_side_agreement`);
7. `landscape`: the one-dimensional landscape through θ_0 along
   u = (θ̄* − θ_0)/‖θ̄* − θ_0‖: the losses l_i(θ_0 + t u) of the first
   ``landscape_samples`` samples on ``landscape_points`` values of t, and each optimum's
   projection t_i = ⟨θ*_i − θ_0, u⟩ with its distance from the line (stored, so the
   figure computes nothing);
8. `predictor_losses` at θ̄*: L_S(θ̄*), test loss and test accuracy on the whole test
   split (`empirical.training.evaluate`);
9. `train_from_init`: training from θ_0 on S (`empirical.training.train`, the configured
   recipe), then the trained θ̂'s train loss L_S(θ̂), test loss and accuracy, evaluated
   the same way; a non-finite loss fails the job;
10. `compare_bounds`: each bound compared with what it bounds at θ̄* (L_S(θ̄*), or the
    test loss of θ̄* for the population bound), and its ratio to the same loss at the
    trained θ̂ (L_S(θ̂), or the test loss of θ̂), for scale only.

Losses are the theory's per-sample losses averaged over samples: ``mse`` is
½‖f(x) − y‖² with one-hot targets for classification. Accuracies are fractions, stored
as ``train_acc`` / ``test_acc`` (NaN for regression).

Everything random comes from ``job.seed`` (θ_0, A1's segment points and power-iteration
starts, the training order) and from ``data.sample_seed`` (S), so a job gives the same
row under every executor. Stage wall times are stored under ``seconds``, the device the
job ran on under ``device``: the data and the network (built on the CPU, the same θ_0
everywhere) are moved there once, after which everything is computed where they are.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import proxies
import theory
from empirical import data as datasets
from empirical.devices import resolve_device
from empirical.executors import failure
from empirical.plan import Job, seeded
from empirical.spaces import mlp
from empirical.training import Recipe, evaluate, train
from proxies.engine import select_param_names
from theory.hessian import batched_loss, flat_sample_loss
from theory.losses import resolve_loss

__all__ = [
    "StageFailure", "assumption_checks", "build_model", "compare_bounds", "evaluate_configured_bounds",
    "landscape", "network_size", "predictor_losses", "prepare_data", "proxy_scores", "psi_values",
    "recipe_of", "sign_split", "sign_split_bound", "solve_optima", "solver_summary", "theta_bar",
    "train_from_init", "validation_job",
]


class StageFailure(Exception):
    """A network the population cannot measure; the message is the failed row's reason."""


def build_model(model_cfg: dict, in_shape: tuple[int, ...], outputs: int, seed: int) -> nn.Module:
    """The network of one grid point at θ_0, drawn from `seed`, in ``model.dtype``.

    ``model.init_scale`` multiplies the default-initialised weights of either family.
    """
    with seeded(seed):
        if model_cfg["family"] == "mlp":
            model = mlp.build(math.prod(in_shape), model_cfg["width"], model_cfg["depth"], outputs,
                              activation=model_cfg["activation"], init_scale=model_cfg["init_scale"])
        else:
            model = mlp.small_cnn(in_shape[0], outputs, width=model_cfg["width"], depth=model_cfg["depth"],
                                  batchnorm=False, init_scale=model_cfg["init_scale"])
    return model.to(getattr(torch, model_cfg["dtype"]))


def prepare_data(params: dict) -> dict:
    """S, the held-out samples and the test split, as tensors in the model's dtype.

    Returns ``X, Y`` (S), ``Xh, Yh`` (held-out optima samples), ``X_test, Y_test`` (the
    whole test split), the matching integer labels (None for regression), the input
    shape and the number of outputs. Targets are one-hot floats for ``mse`` on a
    classification set, class indices for ``ce``, the regression targets for ``teacher``.
    """
    data_cfg, loss = params["data"], params["theory"]["loss"]
    dtype = getattr(torch, params["model"]["dtype"])
    flat = True if params["model"]["family"] == "mlp" and data_cfg["name"] == "digits" else None
    split = datasets.load(data_cfg["name"], flat=flat, test_size=data_cfg["test_size"], seed=data_cfg["split_seed"])
    n, n_held = data_cfg["n"], data_cfg["n_heldout"]
    if n > split.n_train or n_held > split.n_test:
        raise ValueError(
            f"data.n={n} / data.n_heldout={n_held} exceed the {split.n_train} train / {split.n_test} test "
            f"samples of {split.name}; lower them"
        )
    gen = torch.Generator().manual_seed(data_cfg["sample_seed"])
    train_index = torch.randperm(split.n_train, generator=gen)[:n]
    held_index = torch.randperm(split.n_test, generator=gen)[:n_held]
    outputs = split.num_classes if split.is_classification else split.y_train.shape[1]

    def targets(y: Tensor) -> Tensor:
        if not split.is_classification:
            return y.to(dtype)
        return y if loss == "ce" else F.one_hot(y, outputs).to(dtype)

    def labels(y: Tensor) -> Tensor | None:
        return y if split.is_classification else None

    X_train, X_test = split.X_train.to(dtype), split.X_test.to(dtype)
    return {
        "X": X_train[train_index], "Y": targets(split.y_train[train_index]), "labels": labels(split.y_train[train_index]),
        "Xh": X_test[held_index], "Yh": targets(split.y_test[held_index]),
        "X_test": X_test, "Y_test": targets(split.y_test), "labels_test": labels(split.y_test),
        "input_shape": split.input_shape, "outputs": outputs, "classification": split.is_classification,
    }


def network_size(model: nn.Module, n: int) -> dict:
    """``n_params`` (m), ``n_weights`` (the coordinates GradSign sums over) and |S| = ``n``."""
    weights = set(select_param_names(model, "weights"))
    return {"n_params": sum(p.numel() for p in model.parameters()),
            "n_weights": sum(p.numel() for name, p in model.named_parameters() if name in weights),
            "n": n}


def proxy_scores(model: nn.Module, d: dict, theory_cfg: dict) -> dict[str, float]:
    """Each configured proxy at θ_0 on S, with the theory's per-sample loss."""
    loss_fn = resolve_loss(theory_cfg["loss"]).fn
    return {name: proxies.compute(name, model, d["X"], d["Y"], loss_fn=loss_fn) for name in theory_cfg["proxies"]}


def solve_optima(model: nn.Module, d: dict,
                 theory_cfg: dict) -> tuple[theory.SampleWiseOptima, theory.SampleWiseOptima]:
    """Sample-wise optima of S and of the held-out samples, from θ_0, by the configured
    solver; `StageFailure` when either set has more than ``max_unconverged_fraction``
    unconverged samples."""
    options = {k: v for k, v in theory_cfg["solver_options"].items() if v is not None}
    opt = theory.sample_wise_optima(model, d["X"], d["Y"], theory_cfg["loss"], theory_cfg["solver"], **options)
    opt_held = theory.sample_wise_optima(model, d["Xh"], d["Yh"], theory_cfg["loss"], theory_cfg["solver"], **options)
    for which, o in (("training", opt), ("held-out", opt_held)):
        problem = _unconverged_problem(o, theory_cfg["max_unconverged_fraction"], which)
        if problem:
            raise StageFailure(problem)
    return opt, opt_held


def _unconverged_problem(opt, allowed: float, which: str) -> str | None:
    bad = int((~opt.converged).sum())
    if bad > allowed * opt.n:
        diverged = int(opt.extra.get("diverged", torch.zeros(1, dtype=torch.bool, device=opt.converged.device)).sum())
        return (f"solver {opt.solver!r} left {bad}/{opt.n} {which} samples unconverged ({diverged} diverged; "
                f"allowed fraction {allowed}); options {opt.options}; max l*_i "
                f"{float(opt.loss.nan_to_num(float('inf')).max()):.3g}")
    return None


def solver_summary(opt: theory.SampleWiseOptima) -> dict:
    """Converged count, l*_i and ‖∇l_i(θ*_i)‖ over the converged samples, iterations."""
    kept = opt.converged
    return {
        "converged": int(kept.sum()),
        "samples": opt.n,
        "max_loss_star": float(opt.loss[kept].max()) if kept.any() else math.nan,
        "mean_loss_star": float(opt.loss[kept].double().mean()) if kept.any() else math.nan,
        "max_grad_norm": float(opt.grad_norm[kept].max()) if kept.any() else math.nan,
        "max_iterations": int(opt.iterations.max()),
    }


def psi_values(opt: theory.SampleWiseOptima) -> dict:
    """``psi_2`` and ``psi_1`` of the converged optima; `StageFailure` when not finite."""
    values = {"psi_2": theory.psi(opt, 2, on_unconverged="exclude"),
              "psi_1": theory.psi(opt, 1, on_unconverged="exclude")}
    if not (math.isfinite(values["psi_2"]) and math.isfinite(values["psi_1"])):
        raise StageFailure(f"Ψ is not finite (Ψ_2={values['psi_2']}, Ψ_1={values['psi_1']}): the optima diverged")
    return values


def sign_split_bound(theta: Tensor, theta0: Tensor) -> float:
    """Proposition 3's lower bound on Ψ_1 (docs/theory.md §5): (1/n²) Σ_k (n² − s_k²) δ_k
    with s_k = Σ_i sign(θ*_{i,k} − θ_{0,k}) and δ_k = min_i |θ*_{i,k} − θ_{0,k}|, for the
    optima ``theta`` (n, m) reached from ``theta0`` (m,).

    >>> theta = torch.tensor([[1.0, 2.0], [-1.0, 3.0]])   # coordinate 0 splits, 1 does not
    >>> sign_split_bound(theta, torch.zeros(2))           # ((4 − 0)·1 + (4 − 4)·2)/4; Ψ_1 = 1.5
    1.0
    """
    moves = theta.double() - theta0.double()[None, :]
    n = moves.shape[0]
    s = moves.sign().sum(dim=0)
    delta = moves.abs().min(dim=0).values
    return float(((n**2 - s.square()) * delta).sum() / n**2)


def sign_split(opt: theory.SampleWiseOptima, psi_1: float) -> dict:
    """``lower_bound`` of Proposition 3 over the converged optima and ``holds``: Ψ_1 ≥ it."""
    lower = sign_split_bound(opt.theta[opt.converged], opt.theta0)
    return {"lower_bound": lower, "holds": bool(psi_1 >= lower)}


def _a1_options(theory_cfg: dict) -> dict:
    return {"points_per_segment": theory_cfg["points_per_segment"],
            "max_iter": theory_cfg["power_max_iter"], "tol": theory_cfg["power_tol"]}


def evaluate_configured_bounds(model: nn.Module, d: dict, opt: theory.SampleWiseOptima,
                               opt_held: theory.SampleWiseOptima, theory_cfg: dict, seed: int) -> dict[str, dict]:
    """`theory.evaluate_bounds` for the configured bounds (Theorem 2 with the held-out optima)."""
    return theory.evaluate_bounds(theory_cfg["bounds"], model, d["X"], d["Y"], opt, theory_cfg["loss"],
                                  heldout=(d["Xh"], d["Yh"], opt_held), on_unconverged="exclude",
                                  seed=seed, assumption_options={"A1": _a1_options(theory_cfg)})


def assumption_checks(model: nn.Module, d: dict, opt: theory.SampleWiseOptima, theory_cfg: dict, seed: int,
                      bounds: dict[str, dict]) -> dict:
    """``a1``, ``a2`` and ``agreement`` of the row. A1 and A2 reuse the constants the
    bounds were evaluated from (the same estimate, so the same numbers); they are
    estimated here only when no configured bound needed them."""
    checks = {}
    for res in bounds.values():
        checks.update({name: check.constants for name, check in res["assumptions"].items()})
    loss = theory_cfg["loss"]
    for name, options in (("A1", {**_a1_options(theory_cfg), "seed": seed}), ("A2", {})):
        if name not in checks:
            checks[name] = theory.get_assumption(name).estimate(model, d["X"], d["Y"], opt, loss,
                                                                on_unconverged="exclude", **options)
    agreement = theory.sign_side_agreement(model, d["X"], d["Y"], opt, loss, on_unconverged="exclude")
    per_param = agreement["per_param"]
    return {
        "a1": _a1_summary(checks["A1"]),
        "a2": _a2_summary(checks["A2"]),
        "agreement": {
            "rate": agreement["rate"], "agree": agreement["agree"], "moved": agreement["moved"],
            "params": list(per_param), "param_rates": [v["rate"] for v in per_param.values()],
            "weight_rates": [v["rate"] for k, v in per_param.items() if k.endswith("weight")],
        },
    }


def _floats(t: Tensor) -> list[float]:
    return [float(v) for v in t.detach().double().reshape(-1)]


def _a1_summary(constants: dict) -> dict:
    """β_hess vs β_eff (first-order form) per sample; A1 is consistent where β_hess ≥ β_eff.

    ``d2`` holds ‖θ̄* − θ*_i‖² per sample, the weights of the identity the report checks:
    Theorem 1 (per-sample β) − L_S(θ̄*) = (1/2n) Σ_i d2_i (β_hess,i − β_eff,i) + λΨ_2/2 − first_order.
    """
    beta, beta_eff = constants["beta"].double(), constants["beta_eff_first_order"].double()
    defined = ~torch.isnan(beta_eff)
    consistent = ~defined | (beta >= beta_eff)
    ratio = beta[defined] / beta_eff[defined]
    return {
        "holds": bool(consistent.all()),
        "consistent_fraction": float(consistent.double().mean()),
        "beta_max": float(beta.max()),
        "beta_eff_max": float(beta_eff[defined].max()) if defined.any() else math.nan,
        "ratio_min": float(ratio.min()) if defined.any() else math.nan,
        "ratio_median": float(ratio.median()) if defined.any() else math.nan,
        "eig_converged_fraction": float(constants["eig_converged_fraction"]),
        "beta_hess": _floats(beta),
        "beta_eff": _floats(beta_eff),
        "d2": _floats(constants["d2"]),
    }


def _a2_summary(constants: dict) -> dict:
    residual = constants["residual"].double()
    return {
        "holds": bool((residual <= constants["tol"]).all()),
        "stationary_fraction": float((residual <= constants["tol"]).double().mean()),
        "max_residual": float(residual.max()),
        "median_residual": float(residual.median()),
        "first_order": float(constants["first_order"]),
        "lam": float(constants["lam"]),
        "tol": float(constants["tol"]),
    }


def landscape(model: nn.Module, opt: theory.SampleWiseOptima, X: Tensor, Y: Tensor, loss: str, points: int,
              samples: int) -> dict:
    """Losses l_i on the line θ_0 + t u, u ∝ θ̄* − θ_0, and each optimum's projection on it."""
    kept = opt.converged
    theta, theta0 = opt.theta[kept], opt.theta0
    center = theta.mean(dim=0)
    direction = center - theta0
    norm = float(direction.norm())
    if norm == 0.0:
        raise ValueError("θ̄* = θ_0: the landscape line is undefined")
    u = direction / norm
    offsets = theta - theta0[None, :]
    t_star = offsets @ u
    off_line = (offsets - t_star[:, None] * u[None, :]).norm(dim=1)
    lo, hi = min(0.0, float(t_star.min())), max(0.0, float(t_star.max()))
    pad = 0.25 * (hi - lo)
    t = torch.linspace(lo - pad, hi + pad, points, dtype=theta.dtype, device=theta.device)
    k = min(samples, theta.shape[0])
    fn = flat_sample_loss(model, opt.param_names, opt.param_shapes, loss)
    line = theta0[None, :] + t[:, None] * u[None, :]                       # (T, m)
    thetas = line.repeat(k, 1)                                            # (k*T, m), sample-major
    xs = X[kept][:k].repeat_interleave(points, dim=0)
    ys = Y[kept][:k].repeat_interleave(points, dim=0)
    losses = batched_loss(fn, thetas, xs, ys).reshape(k, points)
    return {
        "t": _floats(t),
        "loss": [_floats(row) for row in losses],
        "t_star": _floats(t_star[:k]),
        "loss_star": _floats(opt.loss[kept][:k]),
        "off_line": _floats(off_line[:k]),
        "t_bar": norm,
        "samples": k,
    }


def predictor_losses(model: nn.Module, state: dict[str, Tensor], d: dict, loss: str) -> dict:
    """``train_loss`` L_S, ``train_acc``, ``test_loss`` and ``test_acc`` (whole test
    split) at ``state``, by `empirical.training.evaluate`: one batch per set, summed in
    float64 whatever the model's dtype, so each mean is one double sum over the count."""
    train_loss, train_acc = evaluate(model, state, d["X"], d["Y"], loss=loss, labels=d["labels"],
                                     batch_size=d["X"].shape[0], sum_dtype=torch.float64)
    test_loss, test_acc = evaluate(model, state, d["X_test"], d["Y_test"], loss=loss, labels=d["labels_test"],
                                   batch_size=d["X_test"].shape[0], sum_dtype=torch.float64)
    return {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}


def theta_bar(opt: theory.SampleWiseOptima) -> Tensor:
    """θ̄* = (1/n) Σ_i θ*_i over the converged samples."""
    return opt.theta[opt.converged].mean(dim=0)


def recipe_of(train_cfg: dict, loss: str, n: int, n_test: int) -> Recipe:
    """The ``[train]`` table as a `Recipe` on S (full batch and constant lr by default)."""
    return Recipe(
        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"] or n, lr=train_cfg["lr"],
        lr_min=train_cfg["lr"] if train_cfg["lr_min"] is None else train_cfg["lr_min"],
        momentum=train_cfg["momentum"], nesterov=train_cfg["nesterov"],
        weight_decay=train_cfg["weight_decay"], loss=loss, eval_batch_size=max(n, n_test),
    )


def train_from_init(model: nn.Module, d: dict, params: dict, seed: int) -> dict:
    """`empirical.training.train` from θ_0 on S with the configured recipe; returns its
    result (``state``: θ̂). `StageFailure` when the loss became non-finite."""
    loss, X = params["theory"]["loss"], d["X"]
    recipe = recipe_of(params["train"], loss, X.shape[0], d["X_test"].shape[0])
    split = datasets.DataSplit(name=params["data"]["name"], X_train=X, y_train=d["Y"], X_test=d["X_test"],
                               y_test=d["Y_test"], num_classes=d["outputs"] if loss == "ce" else None,
                               input_shape=tuple(X.shape[1:]), seed=params["data"]["sample_seed"])
    trained = train(model, split, recipe, seed=seed)
    if trained["diverged"] or not math.isfinite(trained["train_loss"]):
        raise StageFailure(f"training diverged: the loss became non-finite by step {trained['steps']} "
                           f"of {recipe.epochs * recipe.steps_per_epoch(X.shape[0])} (lr={recipe.lr})")
    return trained


def compare_bounds(bounds: dict[str, dict], at_theta_bar: dict, at_trained: dict) -> dict:
    """Each bound against what it bounds at θ̄* and at θ̂ (``predictor_losses`` of each):
    L_S for a train bound, the test loss for a population bound. Only θ̄* gets a "holds"
    flag: the bounds speak of θ̄*, and at θ̂ they are so loose (median ratios of 15–1,000×
    in the standard run) that a flag would carry no information; θ̂ gets its ratio."""
    out = {}
    for name, res in bounds.items():
        population = theory.get_bound(name).measures == "population"
        at_bar = at_theta_bar["test_loss"] if population else res["measured"]
        at_hat = at_trained["test_loss"] if population else at_trained["train_loss"]
        value = res["value"]
        out[name] = {
            "measures": "population" if population else "train",
            "value": value,
            "theta_bar": at_bar,
            "theta_bar_holds": bool(at_bar <= value),
            "trained": at_hat,
            "ratio_theta_bar": value / at_bar if at_bar > 0 else math.inf,
            "ratio_trained": value / at_hat if at_hat > 0 else math.inf,
            "measured_heldout": res["measured"] if population else None,
            "beta_max": float(res["constants"].get("beta_max", math.nan)),
            "Lbar": float(res["constants"].get("El_star" if population else "Lbar", math.nan)),
        }
    return out


@contextmanager
def _timed(seconds: dict, key: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] = time.perf_counter() - start


def validation_job(job: Job, device: str = "cpu") -> dict:
    """Theory at θ_0 and training for one network, on ``device``: the stages of the
    module docstring (data and network are made on the CPU, then moved).

    Returns the metrics dict of one results row, or `empirical.executors.failure(reason)`
    when a stage raises `StageFailure` (too many unconverged samples, non-finite Ψ,
    diverged training).
    """
    params, seed = job.params, job.seed
    theory_cfg, loss = params["theory"], params["theory"]["loss"]
    seconds: dict[str, float] = {}
    try:
        d = prepare_data(params)
        model = build_model(params["model"], d["input_shape"], d["outputs"], seed)
        device = resolve_device(device)
        d = {key: value.to(device) if isinstance(value, Tensor) else value for key, value in d.items()}
        model = model.to(device)
        row = {**network_size(model, d["X"].shape[0]), "device": str(device)}
        with _timed(seconds, "proxies"):
            row["proxy"] = proxy_scores(model, d, theory_cfg)
        with _timed(seconds, "optima"):
            opt, opt_held = solve_optima(model, d, theory_cfg)
        row["solver"] = {"train": solver_summary(opt), "heldout": solver_summary(opt_held)}
        with _timed(seconds, "psi"):
            row.update(psi_values(opt))
            row["sign_split"] = sign_split(opt, row["psi_1"])
        with _timed(seconds, "bounds"):
            bounds = evaluate_configured_bounds(model, d, opt, opt_held, theory_cfg, seed)
        with _timed(seconds, "assumptions"):
            row.update(assumption_checks(model, d, opt, theory_cfg, seed, bounds))
        with _timed(seconds, "landscape"):
            row["landscape"] = landscape(model, opt, d["X"], d["Y"], loss, theory_cfg["landscape_points"],
                                         theory_cfg["landscape_samples"])
        center = theta_bar(opt)
        theta0_state = {name: p.detach() for name, p in model.named_parameters()}
        row["theta_bar"] = {**predictor_losses(model, {**theta0_state, **opt.unflatten(center)}, d, loss),
                            "distance_from_init": float((center - opt.theta0).norm())}
        with _timed(seconds, "training"):
            trained = train_from_init(model, d, params, seed)
        theta_hat = torch.cat([trained["state"][name].reshape(-1) for name in opt.param_names])
        row["trained"] = {**predictor_losses(model, trained["state"], d, loss), "steps": trained["steps"],
                          "distance_from_init": float((theta_hat - opt.theta0).norm()),
                          "distance_to_theta_bar": float((theta_hat - center).norm())}
    except StageFailure as stopped:
        return failure(str(stopped))
    row["bound"] = compare_bounds(bounds, row["theta_bar"], row["trained"])
    row["seconds"] = seconds
    return row
