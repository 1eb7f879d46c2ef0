"""One bound-validation job, checked against literal recomputations; failures as data."""
import json
import math

import pandas as pd
import pytest
import torch

import theory
from empirical import results
from empirical.config import validate
from empirical.executors import FAILURE_KEY, run_jobs
from empirical.plan import seeded
from empirical.spaces import mlp
from empirical.store import ResultsStore
from empirical.validation import report, schema
from empirical.validation.job import build_model, prepare_data, sign_split_bound, validation_job
from theory.losses import half_squared_error

RAW = {
    "seeds": [3],
    "data": {"name": "iris", "n": 10, "n_heldout": 6},
    "model": {"width": 5, "depth": 1, "activation": "tanh"},
    "theory": {"points_per_segment": 0, "power_max_iter": 30, "landscape_points": 5, "landscape_samples": 3},
    "train": {"epochs": 20, "lr": 0.1},
}


def jobs_of(raw):
    return schema.jobs(validate(raw, schema.SCHEMA))


@pytest.fixture(scope="module")
def measured():
    job = jobs_of(RAW)[0]
    return job, validation_job(job)


def rebuild(job):
    d = prepare_data(job.params)
    model = build_model(job.params["model"], d["input_shape"], d["outputs"], job.seed)
    return d, model


def test_gradsign_is_the_literal_sign_count(measured):
    job, row = measured
    d, model = rebuild(job)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    counts = [torch.zeros_like(w) for w in weights]
    for x, y in zip(d["X"], d["Y"]):  # one backward pass per sample, as Algorithm 1
        model.zero_grad()
        half_squared_error(model(x[None]), y[None]).backward()
        for c, w in zip(counts, weights):
            c += torch.sign(w.grad)
    assert row["proxy"]["gradsign"] == sum(float(c.abs().sum()) for c in counts)
    assert row["proxy"]["gradsign_sq"] == sum(float(c.square().sum()) for c in counts)
    assert row["n_weights"] == sum(w.numel() for w in weights)


def test_theta_bar_losses_and_landscape_match_literal_forward_passes(measured):
    job, row = measured
    d, model = rebuild(job)
    opt = theory.sample_wise_optima(model, d["X"], d["Y"], "mse", "gauss_newton")
    assert row["solver"]["train"]["converged"] == opt.n == 10
    center = opt.theta.mean(dim=0)

    def loss_at(flat, x, y):
        params = opt.unflatten(flat)
        out = torch.func.functional_call(model, params, (x[None],))
        return float(0.5 * (out - y[None]).square().sum())

    train = sum(loss_at(center, x, y) for x, y in zip(d["X"], d["Y"])) / 10
    test = sum(loss_at(center, x, y) for x, y in zip(d["X_test"], d["Y_test"])) / len(d["X_test"])
    assert row["theta_bar"]["train_loss"] == pytest.approx(train, rel=1e-12)
    assert row["bound"]["theorem1_per_sample"]["theta_bar"] == pytest.approx(train, rel=1e-12)
    assert row["bound"]["theorem2"]["theta_bar"] == pytest.approx(test, rel=1e-12)
    predictions = torch.stack([torch.func.functional_call(model, opt.unflatten(center), (x[None],))[0]
                               for x in d["X_test"]]).argmax(dim=1)
    assert row["theta_bar"]["test_acc"] == pytest.approx(float((predictions == d["labels_test"]).double().mean()))
    assert row["psi_2"] == pytest.approx(float(torch.cdist(opt.theta, opt.theta).square().mean()), rel=1e-10)

    land = row["landscape"]
    u = (center - opt.theta0) / (center - opt.theta0).norm()
    assert land["t_bar"] == pytest.approx(float((center - opt.theta0).norm()), rel=1e-12)
    for i in range(land["samples"]):
        assert land["t_star"][i] == pytest.approx(float((opt.theta[i] - opt.theta0) @ u), rel=1e-10, abs=1e-12)
        for t, value in zip(land["t"], land["loss"][i]):
            assert value == pytest.approx(loss_at(opt.theta0 + t * u, d["X"][i], d["Y"][i]), rel=1e-10, abs=1e-14)


def test_bounds_compare_both_predictors_with_what_they_bound(measured):
    _, row = measured
    for name, b in row["bound"].items():
        assert b["theta_bar_holds"] == (b["theta_bar"] <= b["value"])
        assert "trained_holds" not in b  # at θ̂ only the ratio: the bounds speak of θ̄*
        assert b["ratio_trained"] == pytest.approx(b["value"] / b["trained"])
    assert row["bound"]["theorem1_uniform"]["trained"] == row["trained"]["train_loss"]
    assert row["bound"]["theorem2"]["trained"] == row["trained"]["test_loss"]
    # The per-sample form never exceeds the uniform one (β_i ≤ max β, same segments).
    assert row["bound"]["theorem1_per_sample"]["value"] <= row["bound"]["theorem1_uniform"]["value"]
    a1 = row["a1"]
    consistent = [h >= e for h, e in zip(a1["beta_hess"], a1["beta_eff"])]
    assert a1["consistent_fraction"] == sum(consistent) / len(consistent)
    assert 0.0 <= row["agreement"]["rate"] <= 1.0 and row["agreement"]["params"] == ["0.weight", "0.bias",
                                                                                      "2.weight", "2.bias"]


def test_failed_jobs_are_rows_with_reasons_and_the_report_counts_them(tmp_path, measured):
    diverging = {**RAW, "model": {**RAW["model"], "activation": "relu"}, "train": {"epochs": 50, "lr": 100.0}}
    stuck = {**RAW, "theory": {**RAW["theory"], "solver": "gd", "solver_options": {"max_iter": 2, "lr": 0.01}}}
    jobs = jobs_of(diverging) + jobs_of(stuck) + jobs_of(RAW)
    with ResultsStore(tmp_path) as store:
        summary = run_jobs(jobs, validation_job, store, progress=False)
    assert (summary.ok, summary.failed) == (1, 2)
    frame = results.load(tmp_path)
    reasons = dict(zip(frame["train.lr"], frame["reason"]))
    assert reasons[100.0].startswith("training diverged: the loss became non-finite")
    stuck_reason = frame.loc[frame["theory.solver"] == "gd", "reason"].item()
    assert "left 10/10 training samples unconverged" in stuck_reason and "allowed fraction 0.0" in stuck_reason
    text = report.render(frame, title="toy")
    assert "3 networks, 1 measured, 2 failed" in text
    assert "1 × training diverged" in text and "1 × solver 'gd' left 10/10" in text


def test_an_allowed_fraction_of_unconverged_samples_is_excluded_not_fatal():
    raw = {**RAW, "theory": {**RAW["theory"], "max_unconverged_fraction": 1.0, "solver": "gd",
                             "solver_options": {"max_iter": 400, "lr": 0.05, "tol": 1e-4}}}
    row = validation_job(jobs_of(raw)[0])
    assert FAILURE_KEY not in row
    converged = row["solver"]["train"]["converged"]
    assert 0 < converged <= 10 and len(row["a1"]["beta_hess"]) == converged
    assert math.isfinite(row["psi_2"])
    json.dumps(row)


def test_small_cnn_job_on_digit_images():
    raw = {**RAW, "data": {"name": "digits", "n": 6, "n_heldout": 4},
           "model": {"family": "cnn", "width": 2, "depth": 1, "activation": "relu", "init_scale": 0.5}}
    job = jobs_of(raw)[0]
    row = validation_job(job)
    assert FAILURE_KEY not in row, row
    assert row["n_weights"] == 9 * 1 * 2 + 2 * 10  # conv 3x3 (1 -> 2 channels) and the linear head
    d, model = rebuild(job)
    assert d["X"].shape == (6, 1, 8, 8)
    assert model[0].weight.abs().max() <= 0.5 * (1 / 9) ** 0.5  # default bound 1/sqrt(fan_in), scaled
    assert row["solver"]["train"]["converged"] == 6 and math.isfinite(row["psi_2"])


def test_cnn_init_scale_is_the_default_draw_multiplied():
    """build_model's CNN equals the earlier hand re-scaling: the same draws, then × init_scale."""
    cfg = {"family": "cnn", "width": 3, "depth": 2, "activation": "relu", "init_scale": 0.7, "dtype": "float64"}
    model = build_model(cfg, (1, 8, 8), 10, seed=4)
    with seeded(4):
        reference = mlp.small_cnn(1, 10, width=3, depth=2, batchnorm=False)
    with torch.no_grad():
        for layer in reference.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.weight.mul_(0.7)
    reference = reference.to(torch.float64)
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.equal(p, q), name


PROXIMAL_CE = {**RAW, "theory": {**RAW["theory"], "loss": "ce", "solver": "proximal",
                                 "solver_options": {"lam": 1.0, "lr": 0.5, "max_iter": 3000, "tol": 1e-6},
                                 "max_unconverged_fraction": 0.5}}


def _identity_sides(row, bound="theorem1_per_sample"):
    """bound − L_S(θ̄*) and (1/2n) Σ_i d_i² (β_hess,i − β_eff,i) + λΨ_2/2 − first_order, by loops."""
    a1, a2 = row["a1"], row["a2"]
    n = len(a1["d2"])
    margin = sum(d2 * (b - e) for b, e, d2 in zip(a1["beta_hess"], a1["beta_eff"], a1["d2"]) if d2 > 0) / (2 * n)
    stationarity = a2["lam"] * row["psi_2"] / 2 - a2["first_order"]
    b = row["bound"][bound]
    return b["value"] - b["theta_bar"], margin, stationarity


@pytest.mark.parametrize("raw", [RAW, PROXIMAL_CE], ids=["gauss_newton mse", "proximal ce"])
def test_theorem1_minus_measured_is_the_weighted_a1_margin(raw, measured):
    """Theorem 1 (per-sample β) held ⟺ the d²-weighted A1 margins exceed minus the stationarity
    term: the identity on the stored numbers, and the report's recomputation of it."""
    row = measured[1] if raw is RAW else validation_job(jobs_of(raw)[0])
    assert FAILURE_KEY not in row, row
    slack, margin, stationarity = _identity_sides(row)
    value = row["bound"]["theorem1_per_sample"]["value"]
    assert slack == pytest.approx(margin + stationarity, rel=1e-9, abs=1e-12 * value)
    assert len(row["a1"]["d2"]) == row["solver"]["train"]["converged"]
    if raw is RAW:
        assert row["a2"]["lam"] == 0.0 and abs(stationarity) < 1e-6 * slack  # Gauss–Newton optima are stationary
    else:
        assert row["a2"]["lam"] == 1.0 and stationarity != 0.0
    if row["a1"]["holds"]:  # every margin ≥ 0, so Theorem 1 held up to the stationarity term
        assert margin >= 0
    frame = pd.DataFrame([results.flatten(json.loads(json.dumps(row)))])
    identity = report.theorem1_identity(frame).iloc[0]
    assert identity["slack"] == pytest.approx(slack, rel=1e-12)
    assert identity["a1_margin"] == pytest.approx(margin, rel=1e-12)
    assert identity["identity_error"] < 1e-9


def test_sign_split_is_stored_from_the_kept_optima(measured):
    job, row = measured
    d, model = rebuild(job)
    opt = theory.sample_wise_optima(model, d["X"], d["Y"], "mse", "gauss_newton")
    assert row["sign_split"]["lower_bound"] == sign_split_bound(opt.theta, opt.theta0)
    assert row["sign_split"]["holds"] == (row["psi_1"] >= row["sign_split"]["lower_bound"])
