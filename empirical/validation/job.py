"""One network of a bound-validation population: theory at θ_0, then training (issue 4).

`validation_job(job)` builds the data and the network at its initialisation θ_0 (drawn
from ``job.seed``) and measures, in this order:

1. the proxies (GradSign, gradsign_sq, ... by registry name) at θ_0 on S, with the
   experiment's own per-sample loss, so that their signs are those A3 speaks of;
2. the sample-wise optima θ*_i of S and of ``n_heldout`` held-out samples
   (`theory.sample_wise_optima`); a network whose solver leaves more than
   ``max_unconverged_fraction`` of either set unconverged fails with that reason;
3. Ψ_2 and Ψ_1 (`theory.psi`) and every configured bound (`theory.evaluate_bounds`, with
   the held-out optima for Theorem 2), each with the constants it was evaluated from;
4. A1 (β_hess vs β_eff per sample), A2 (stationarity residuals), and the sign–side
   agreement rate of A3, overall and per parameter tensor (`theory.sign_side_agreement`);
5. the one-dimensional landscape through θ_0 along u = (θ̄* − θ_0)/‖θ̄* − θ_0‖: the
   losses l_i(θ_0 + t u) of the first ``landscape_samples`` samples on
   ``landscape_points`` values of t, and each optimum's projection t_i = ⟨θ*_i − θ_0, u⟩
   with its distance from the line (stored, so the figure computes nothing);
6. the predictor θ̄*: L_S(θ̄*), test loss and test accuracy on the whole test split;
7. training from θ_0 on S (`empirical.training.train`, the configured recipe) and the
   trained θ̂'s train loss L_S(θ̂), test loss and accuracy; a non-finite loss fails the job.

Each bound is then compared twice: with what it bounds at θ̄* (L_S(θ̄*), or the test
loss of θ̄* for the population bound) and, separately, at the trained θ̂ (L_S(θ̂), or
the test loss of θ̂). Losses are the theory's per-sample losses averaged over samples:
``mse`` is ½‖f(x) − y‖² with one-hot targets for classification.

Everything random comes from ``job.seed`` (θ_0, A1's segment points and power-iteration
starts, the training order) and from ``data.sample_seed`` (S), so a job gives the same
row under every executor. Stage wall times are stored under ``seconds``, the device the
job ran on under ``device``: the data and the network (built on the CPU, the same θ_0
everywhere) are moved there once, after which everything is computed where they are.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

import proxies
import theory
from empirical import data as datasets
from empirical.devices import resolve_device
from empirical.executors import failure
from empirical.plan import Job, seeded
from empirical.spaces import mlp
from empirical.training import Recipe, train
from proxies.engine import select_param_names
from theory.registry import get_assumption, get_bound
from theory.bounds import evaluate_bounds
from theory.hessian import batched_loss, flat_sample_loss
from theory.losses import resolve_loss

__all__ = ["build_model", "prepare_data", "validation_job"]

log = logging.getLogger(__name__)


def build_model(model_cfg: dict, in_shape: tuple[int, ...], outputs: int, seed: int) -> nn.Module:
    """The network of one grid point at θ_0, drawn from `seed`, in ``model.dtype``."""
    with seeded(seed):
        if model_cfg["family"] == "mlp":
            model = mlp.build(math.prod(in_shape), model_cfg["width"], model_cfg["depth"], outputs,
                              activation=model_cfg["activation"], init_scale=model_cfg["init_scale"])
        else:
            model = mlp.small_cnn(in_shape[0], outputs, width=model_cfg["width"], depth=model_cfg["depth"],
                                  batchnorm=False)
            with torch.no_grad():
                for layer in model.modules():
                    if isinstance(layer, (nn.Conv2d, nn.Linear)):
                        layer.weight.mul_(model_cfg["init_scale"])
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


@contextmanager
def _timed(seconds: dict, key: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] = time.perf_counter() - start


def _per_sample_losses(output: Tensor, target: Tensor, loss: str) -> Tensor:
    if loss == "ce":
        return F.cross_entropy(output, target, reduction="none")
    return 0.5 * (output - target.reshape(output.shape)).square().flatten(start_dim=1).sum(dim=1)


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, state: dict[str, Tensor], X: Tensor, Y: Tensor,
                       labels: Tensor | None, loss: str) -> tuple[float, float]:
    """Mean per-sample loss and accuracy (NaN for regression) at parameters `state`."""
    out = functional_call(model, state, (X,))
    mean_loss = float(_per_sample_losses(out, Y, loss).double().mean())
    accuracy = math.nan if labels is None else float((out.argmax(dim=1) == labels).double().mean())
    return mean_loss, accuracy


def _unconverged_problem(opt, allowed: float, which: str) -> str | None:
    bad = int((~opt.converged).sum())
    if bad > allowed * opt.n:
        diverged = int(opt.extra.get("diverged", torch.zeros(1, dtype=torch.bool, device=opt.converged.device)).sum())
        return (f"solver {opt.solver!r} left {bad}/{opt.n} {which} samples unconverged ({diverged} diverged; "
                f"allowed fraction {allowed}); options {opt.options}; max l*_i "
                f"{float(opt.loss.nan_to_num(float('inf')).max()):.3g}")
    return None


def _solver_summary(opt) -> dict:
    kept = opt.converged
    return {
        "converged": int(kept.sum()),
        "samples": opt.n,
        "max_loss_star": float(opt.loss[kept].max()) if kept.any() else math.nan,
        "mean_loss_star": float(opt.loss[kept].double().mean()) if kept.any() else math.nan,
        "max_grad_norm": float(opt.grad_norm[kept].max()) if kept.any() else math.nan,
        "max_iterations": int(opt.iterations.max()),
    }


def _floats(t: Tensor) -> list[float]:
    return [float(v) for v in t.detach().double().reshape(-1)]


def _a1_summary(constants: dict) -> dict:
    """β_hess vs β_eff (first-order form) per sample; A1 is consistent where β_hess ≥ β_eff."""
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
    }


def _a2_summary(constants: dict) -> dict:
    residual = constants["residual"].double()
    return {
        "holds": bool((residual <= constants["tol"]).all()),
        "stationary_fraction": float((residual <= constants["tol"]).double().mean()),
        "max_residual": float(residual.max()),
        "median_residual": float(residual.median()),
        "first_order": float(constants["first_order"]),
        "tol": float(constants["tol"]),
    }


def _landscape(model, opt, X, Y, loss, points: int, samples: int) -> dict:
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


def validation_job(job: Job, device: str = "cpu") -> dict:
    """Theory at θ_0 and training for one network, on ``device``; see the module docstring.

    Returns the metrics dict of one results row, or `empirical.executors.failure(reason)`
    when the solver leaves too many samples unconverged or training diverges.
    """
    params = job.params
    model_cfg, theory_cfg, train_cfg = params["model"], params["theory"], params["train"]
    loss = theory_cfg["loss"]
    seconds: dict[str, float] = {}
    d = prepare_data(params)
    model = build_model(model_cfg, d["input_shape"], d["outputs"], job.seed)
    device = resolve_device(device)
    d = {key: value.to(device) if isinstance(value, Tensor) else value for key, value in d.items()}
    model = model.to(device)
    X, Y = d["X"], d["Y"]
    theta0_state = {name: p.detach() for name, p in model.named_parameters()}
    weights = set(select_param_names(model, "weights"))
    row: dict = {"n_params": sum(p.numel() for p in model.parameters()),
                 "n_weights": sum(p.numel() for name, p in model.named_parameters() if name in weights),
                 "n": X.shape[0], "device": str(device)}

    loss_fn = resolve_loss(loss).fn
    with _timed(seconds, "proxies"):
        row["proxy"] = {name: proxies.compute(name, model, X, Y, loss_fn=loss_fn) for name in theory_cfg["proxies"]}

    options = {k: v for k, v in theory_cfg["solver_options"].items() if v is not None}
    with _timed(seconds, "optima"):
        opt = theory.sample_wise_optima(model, X, Y, loss, theory_cfg["solver"], **options)
        opt_held = theory.sample_wise_optima(model, d["Xh"], d["Yh"], loss, theory_cfg["solver"], **options)
    allowed = theory_cfg["max_unconverged_fraction"]
    for which, o in (("training", opt), ("held-out", opt_held)):
        problem = _unconverged_problem(o, allowed, which)
        if problem:
            return failure(problem)
    row["solver"] = {"train": _solver_summary(opt), "heldout": _solver_summary(opt_held)}

    with _timed(seconds, "psi"):
        row["psi_2"] = theory.psi(opt, 2, on_unconverged="exclude")
        row["psi_1"] = theory.psi(opt, 1, on_unconverged="exclude")
    if not (math.isfinite(row["psi_2"]) and math.isfinite(row["psi_1"])):
        return failure(f"Ψ is not finite (Ψ_2={row['psi_2']}, Ψ_1={row['psi_1']}): the optima diverged")

    a1_options = {"points_per_segment": theory_cfg["points_per_segment"],
                  "max_iter": theory_cfg["power_max_iter"], "tol": theory_cfg["power_tol"]}
    with _timed(seconds, "bounds"):
        results = evaluate_bounds(theory_cfg["bounds"], model, X, Y, opt, loss,
                                  heldout=(d["Xh"], d["Yh"], opt_held), on_unconverged="exclude",
                                  seed=job.seed, assumption_options={"A1": a1_options})
    checks = {}
    for res in results.values():
        checks.update({name: check.constants for name, check in res["assumptions"].items()})
    with _timed(seconds, "assumptions"):
        for name, options_ in (("A1", {**a1_options, "seed": job.seed}), ("A2", {})):
            if name not in checks:
                checks[name] = get_assumption(name).estimate(model, X, Y, opt, loss, on_unconverged="exclude",
                                                             **options_)
        agreement = theory.sign_side_agreement(model, X, Y, opt, loss, on_unconverged="exclude")
    row["a1"] = _a1_summary(checks["A1"])
    row["a2"] = _a2_summary(checks["A2"])
    per_param = agreement["per_param"]
    row["agreement"] = {
        "rate": agreement["rate"], "agree": agreement["agree"], "moved": agreement["moved"],
        "params": list(per_param), "param_rates": [v["rate"] for v in per_param.values()],
        "weight_rates": [v["rate"] for k, v in per_param.items() if k.endswith("weight")],
    }

    with _timed(seconds, "landscape"):
        row["landscape"] = _landscape(model, opt, X, Y, loss, theory_cfg["landscape_points"],
                                      theory_cfg["landscape_samples"])

    center = opt.theta[opt.converged].mean(dim=0)
    bar_state = {**theta0_state, **opt.unflatten(center)}
    bar_train, bar_train_acc = _loss_and_accuracy(model, bar_state, X, Y, d["labels"], loss)
    bar_test, bar_test_acc = _loss_and_accuracy(model, bar_state, d["X_test"], d["Y_test"], d["labels_test"], loss)
    row["theta_bar"] = {"train_loss": bar_train, "train_accuracy": bar_train_acc,
                        "test_loss": bar_test, "test_accuracy": bar_test_acc,
                        "distance_from_init": float((center - opt.theta0).norm())}

    recipe = Recipe(
        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"] or X.shape[0], lr=train_cfg["lr"],
        lr_min=train_cfg["lr"] if train_cfg["lr_min"] is None else train_cfg["lr_min"],
        momentum=train_cfg["momentum"], nesterov=train_cfg["nesterov"],
        weight_decay=train_cfg["weight_decay"], loss=loss, eval_batch_size=max(X.shape[0], d["X_test"].shape[0]),
    )
    split = datasets.DataSplit(name=params["data"]["name"], X_train=X, y_train=Y, X_test=d["X_test"],
                               y_test=d["Y_test"], num_classes=d["outputs"] if loss == "ce" else None,
                               input_shape=tuple(X.shape[1:]), seed=params["data"]["sample_seed"])
    with _timed(seconds, "training"):
        trained = train(model, split, recipe, seed=job.seed)
    if trained["diverged"] or not math.isfinite(trained["train_loss"]):
        return failure(f"training diverged: the loss became non-finite by step {trained['steps']} "
                       f"of {recipe.epochs * recipe.steps_per_epoch(X.shape[0])} (lr={recipe.lr})")
    state = trained["state"]
    hat_train, hat_train_acc = _loss_and_accuracy(model, state, X, Y, d["labels"], loss)
    hat_test, hat_test_acc = _loss_and_accuracy(model, state, d["X_test"], d["Y_test"], d["labels_test"], loss)
    theta_hat = torch.cat([state[name].reshape(-1) for name in opt.param_names])
    row["trained"] = {"train_loss": hat_train, "train_accuracy": hat_train_acc, "test_loss": hat_test,
                      "test_accuracy": hat_test_acc, "steps": trained["steps"],
                      "distance_from_init": float((theta_hat - opt.theta0).norm()),
                      "distance_to_theta_bar": float((theta_hat - center).norm())}

    row["bound"] = {}
    for name, res in results.items():
        population = get_bound(name).measures == "population"
        at_bar = bar_test if population else res["measured"]
        at_hat = hat_test if population else hat_train
        value = res["value"]
        row["bound"][name] = {
            "measures": "population" if population else "train",
            "value": value,
            "theta_bar": at_bar,
            "theta_bar_holds": bool(at_bar <= value),
            "trained": at_hat,
            "trained_holds": bool(at_hat <= value),
            "ratio_theta_bar": value / at_bar if at_bar > 0 else math.inf,
            "ratio_trained": value / at_hat if at_hat > 0 else math.inf,
            "measured_heldout": res["measured"] if population else None,
            "beta_max": float(res["constants"].get("beta_max", math.nan)),
            "Lbar": float(res["constants"].get("El_star" if population else "Lbar", math.nan)),
        }
    row["seconds"] = seconds
    return row
