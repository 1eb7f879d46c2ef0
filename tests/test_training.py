"""The trainer against independent routes: a hand-written SGD loop (Nesterov momentum,
weight decay, cosine schedule written out), ordinary module training with torch.optim
(BatchNorm running statistics), and direct loss/accuracy sums."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from empirical.data import load
from empirical.training import Recipe, evaluate, train


@pytest.fixture(scope="module")
def iris():
    return load("iris", seed=0)


def _mlp(seed: int, d_in: int = 4, d_out: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, d_out))


def _hand_sgd(model: nn.Module, X, y, recipe: Recipe, seed: int, loss: str):
    """Plain-tensor SGD: the update rule of the module docstring, written out."""
    theta = [p.detach().clone() for p in model.parameters()]
    buf = [torch.zeros_like(t) for t in theta]
    n = X.shape[0]
    steps = recipe.steps_per_epoch(n)
    total = recipe.epochs * steps
    gen = torch.Generator().manual_seed(seed)
    t = 0
    w1, b1, w2, b2 = range(4)
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(steps):
            idx = order[s * recipe.batch_size:(s + 1) * recipe.batch_size]
            leaves = [p.clone().requires_grad_(True) for p in theta]
            out = torch.tanh(X[idx] @ leaves[w1].T + leaves[b1]) @ leaves[w2].T + leaves[b2]
            if loss == "ce":
                value = F.cross_entropy(out, y[idx])
            else:
                value = (0.5 * (out - y[idx]).pow(2).sum(dim=1)).mean()
            grads = torch.autograd.grad(value, leaves)
            lr = recipe.lr_min + (recipe.lr - recipe.lr_min) * 0.5 * (1 + math.cos(math.pi * t / total))
            for i, g in enumerate(grads):
                g = g + recipe.weight_decay * theta[i]
                buf[i] = g.clone() if t == 0 else recipe.momentum * buf[i] + g
                step = g + recipe.momentum * buf[i] if recipe.nesterov else buf[i]
                theta[i] = theta[i] - lr * step
            t += 1
    return theta, t


@pytest.mark.parametrize("nesterov,drop_last", [(True, False), (False, True)])
def test_matches_hand_written_sgd(iris, nesterov, drop_last):
    recipe = Recipe(epochs=3, batch_size=16, lr=0.2, lr_min=0.01, momentum=0.9, nesterov=nesterov,
                    weight_decay=1e-3, drop_last=drop_last)
    model = _mlp(1)
    out = train(model, iris, recipe, seed=5)
    theta, steps = _hand_sgd(model, iris.X_train, iris.y_train, recipe, seed=5, loss="ce")
    assert out["steps"] == steps == 3 * (len(iris.X_train) // 16 if drop_last else math.ceil(len(iris.X_train) / 16))
    for (name, _), expected in zip(model.named_parameters(), theta):
        torch.testing.assert_close(out["state"][name], expected, rtol=1e-5, atol=1e-6)


def test_mse_matches_hand_loop_and_reports_half_squared_error():
    split = load("teacher", n=64, d=4, outputs=2, seed=3)
    recipe = Recipe(epochs=2, batch_size=8, lr=0.05)
    model = _mlp(2, d_in=4, d_out=2)
    out = train(model, split, recipe, seed=1)
    assert out["loss"] == "mse" and math.isnan(out["test_acc"]) and math.isnan(out["train_acc"])
    theta, _ = _hand_sgd(model, split.X_train, split.y_train, recipe, seed=1, loss="mse")
    for (name, _), expected in zip(model.named_parameters(), theta):
        torch.testing.assert_close(out["state"][name], expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        pred = torch.func.functional_call(model, out["state"], (split.X_test,))
        expected_loss = sum(0.5 * float(((pred[i] - split.y_test[i]) ** 2).sum()) for i in range(len(pred)))
    assert out["test_loss"] == pytest.approx(expected_loss / len(pred), rel=1e-5)


def _bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def test_batchnorm_matches_module_training_with_torch_optim():
    split = load("digits", seed=0)
    recipe = Recipe(epochs=2, batch_size=128, lr=0.1, drop_last=True)
    model = _bn_net(0)
    out = train(model, split, recipe, seed=2)

    reference = _bn_net(0)  # same initialisation, trained the ordinary way
    opt = torch.optim.SGD(reference.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(2)
    total = recipe.epochs * recipe.steps_per_epoch(split.n_train)
    t = 0
    reference.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(split.n_train, generator=gen)
        for s in range(recipe.steps_per_epoch(split.n_train)):
            idx = order[s * 128:(s + 1) * 128]
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(t, total)
            opt.zero_grad()
            F.cross_entropy(reference(split.X_train[idx]), split.y_train[idx]).backward()
            opt.step()
            t += 1
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(out["state"][name], value, rtol=1e-4, atol=1e-5)
    reference.eval()
    with torch.no_grad():
        logits = reference(split.X_test)
    assert out["test_acc"] == pytest.approx(float((logits.argmax(1) == split.y_test).float().mean()))
    assert out["test_loss"] == pytest.approx(float(F.cross_entropy(logits, split.y_test)), rel=1e-4)


def test_leaves_the_callers_model_untouched_and_is_deterministic(iris):
    model = _mlp(0)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = Recipe(epochs=2, batch_size=32)
    a = train(model, iris, recipe, seed=0)
    b = train(model, iris, recipe, seed=0)
    c = train(model, iris, recipe, seed=1)
    assert not model.training and not any(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for name in a["state"]:
        assert torch.equal(a["state"][name], b["state"][name])
    assert any(not torch.equal(a["state"][n], c["state"][n]) for n in a["state"])
    assert {k: a[k] for k in ("train_loss", "test_loss", "test_acc")} == {k: b[k] for k in ("train_loss", "test_loss", "test_acc")}


def test_evaluate_matches_direct_sums(iris):
    model = _mlp(3)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    loss, acc = evaluate(model, state, iris.X_test, iris.y_test, batch_size=7)
    with torch.no_grad():
        logits = model(iris.X_test)
    per_sample = [float(F.cross_entropy(logits[i:i + 1], iris.y_test[i:i + 1])) for i in range(len(logits))]
    assert loss == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-6)
    assert acc == sum(int(logits[i].argmax() == iris.y_test[i]) for i in range(len(logits))) / len(logits)


def test_evaluate_mse_on_one_hot_targets_counts_accuracy_against_labels(iris):
    model = _mlp(4)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    onehot = F.one_hot(iris.y_test, 3).float()
    loss, acc = evaluate(model, state, iris.X_test, onehot, loss="mse", labels=iris.y_test, batch_size=5)
    with torch.no_grad():
        out = model(iris.X_test)
    per_sample = [0.5 * float(((out[i] - onehot[i]) ** 2).sum()) for i in range(len(out))]
    assert loss == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-6)
    assert acc == sum(int(out[i].argmax() == iris.y_test[i]) for i in range(len(out))) / len(out)
    assert math.isnan(evaluate(model, state, iris.X_test, onehot, loss="mse")[1])
    with pytest.raises(ValueError, match="labels has 3 rows"):
        evaluate(model, state, iris.X_test, onehot, loss="mse", labels=iris.y_test[:3])
    with pytest.raises(ValueError, match="loss must be one of"):
        evaluate(model, state, iris.X_test, onehot, loss="l1")


def test_evaluate_sums_in_the_requested_dtype(iris):
    model = _mlp(5)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        logits = model(iris.X_test)
    per_sample = [float(F.cross_entropy(logits[i:i + 1], iris.y_test[i:i + 1])) for i in range(len(logits))]
    exact = math.fsum(per_sample) / len(per_sample)  # float32 losses, summed without rounding
    loss, _ = evaluate(model, state, iris.X_test, iris.y_test, batch_size=len(logits), sum_dtype=torch.float64)
    assert loss == pytest.approx(exact, rel=1e-13)
    default, _ = evaluate(model, state, iris.X_test, iris.y_test, batch_size=len(logits))
    assert default == pytest.approx(exact, rel=1e-6)


def test_flat_feeds_vectors():
    split = load("digits", seed=0)
    model = _mlp(0, d_in=64, d_out=10)
    out = train(model, split, Recipe(epochs=1, batch_size=256), seed=0, flat=True)
    assert out["steps"] == math.ceil(split.n_train / 256) and out["test_acc"] > 0.3


def test_schedule_closed_form():
    recipe = Recipe(lr=0.4, lr_min=0.1)
    assert recipe.lr_at(0, 10) == pytest.approx(0.4)
    assert recipe.lr_at(5, 10) == pytest.approx(0.25)
    assert recipe.lr_at(10, 10) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "Recipe.epochs must be a positive integer"),
    ({"lr": -1.0}, "Recipe.lr must be a non-negative number"),
    ({"lr": 0.1, "lr_min": 0.2}, "must not exceed"),
    ({"momentum": 1.0}, "momentum must be below 1"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov needs momentum"),
    ({"loss": "hinge"}, "Recipe.loss must be one of"),
])
def test_recipe_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


def test_bad_arguments(iris):
    with pytest.raises(ValueError, match="recipe must be"):
        train(_mlp(0), iris, {"epochs": 1}, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        train(_mlp(0), iris, Recipe(), seed=-1)
    with pytest.raises(ValueError, match="needs a classification split"):
        train(_mlp(0, d_out=1), load("teacher", n=16, d=4, seed=0), Recipe(loss="ce"), seed=0)
    with pytest.raises(ValueError, match="leaves no step"):
        train(_mlp(0), iris, Recipe(batch_size=1000, drop_last=True), seed=0)
