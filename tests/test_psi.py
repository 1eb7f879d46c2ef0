"""Ψ_1 and Ψ_2 against the obvious double loop over pairs (theory.md §3)."""
import importlib

import pytest
import torch

from theory import SampleWiseOptima, psi


def _double_loop(theta, p):
    n = theta.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            diff = theta[i] - theta[j]
            total += float(diff.square().sum() if p == 2 else diff.abs().sum())
    return total / n**2


@pytest.mark.parametrize("n, m", [(1, 4), (2, 1), (17, 5), (40, 13)])
@pytest.mark.parametrize("norm", [1, 2])
def test_psi_matches_double_loop(n, m, norm):
    theta = torch.randn(n, m, generator=torch.Generator().manual_seed(n * m), dtype=torch.float64)
    assert psi(theta, norm=norm) == pytest.approx(_double_loop(theta, norm), rel=1e-12, abs=1e-14)


def test_psi1_with_ties_and_float32_input():
    # Integer values with many ties: the sort-based sum must count tied pairs as zero.
    theta = torch.randint(-3, 4, (31, 6), generator=torch.Generator().manual_seed(0)).float()
    assert psi(theta, norm=1) == pytest.approx(_double_loop(theta.double(), 1), rel=1e-12)
    assert psi(theta, norm=2) == pytest.approx(_double_loop(theta.double(), 2), rel=1e-12)


def test_psi_blocks_over_columns(monkeypatch):
    psi_module = importlib.import_module("theory.psi")  # the attribute theory.psi is the function

    theta = torch.randn(9, 23, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    monkeypatch.setattr(psi_module, "_PSI1_BLOCK_VALUES", 9 * 4)  # blocks of 4 columns
    monkeypatch.setattr(psi_module, "_PSI2_BLOCK_VALUES", 9 * 5)  # blocks of 5 columns
    assert psi(theta, norm=1) == pytest.approx(_double_loop(theta, 1), rel=1e-12)
    assert psi(theta, norm=2) == pytest.approx(_double_loop(theta, 2), rel=1e-12)


def _optima(theta, converged):
    n, m = theta.shape
    return SampleWiseOptima(
        theta=theta, loss=torch.zeros(n), grad_norm=torch.zeros(n), iterations=torch.zeros(n, dtype=torch.long),
        converged=converged, theta0=torch.zeros(m), param_names=("w",), param_shapes=((m,),),
        solver="gd", options={}, loss_name="mse", extra={},
    )


def test_psi_on_optima_and_unconverged_handling(caplog):
    theta = torch.randn(10, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    converged = torch.ones(10, dtype=torch.bool)
    assert psi(_optima(theta, converged)) == psi(theta)
    converged[[2, 7]] = False
    with pytest.raises(ValueError, match="2 of 10 samples did not converge"):
        psi(_optima(theta, converged))
    with caplog.at_level("WARNING"):
        value = psi(_optima(theta, converged), norm=1, on_unconverged="exclude")
    assert "excluding 2 of 10" in caplog.text
    assert value == pytest.approx(_double_loop(theta[converged], 1), rel=1e-12)


def test_unflatten_round_trip():
    opt = SampleWiseOptima(
        theta=torch.arange(2 * 10.0).reshape(2, 10), loss=torch.zeros(2), grad_norm=torch.zeros(2),
        iterations=torch.zeros(2, dtype=torch.long), converged=torch.ones(2, dtype=torch.bool),
        theta0=torch.zeros(10), param_names=("a", "b"), param_shapes=((2, 3), (4,)),
        solver="gd", options={}, loss_name="mse", extra={},
    )
    parts = opt.unflatten(opt.theta)
    assert parts["a"].shape == (2, 2, 3) and parts["b"].shape == (2, 4)
    assert torch.equal(parts["b"][1], torch.tensor([16.0, 17, 18, 19]))
    with pytest.raises(ValueError, match="expected m=10"):
        opt.unflatten(torch.zeros(9))


def test_psi_bad_arguments():
    with pytest.raises(ValueError, match="norm must be one of 1, 2"):
        psi(torch.zeros(3, 2), norm=3)
    with pytest.raises(ValueError, match=r"shape \(n, m\)"):
        psi(torch.zeros(3))
    with pytest.raises(ValueError, match="on_unconverged"):
        psi(torch.zeros(3, 2), on_unconverged="ignore")
