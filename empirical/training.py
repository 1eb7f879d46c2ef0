"""A small, generic, seeded trainer: mini-batch SGD with (Nesterov) momentum, weight
decay and a cosine learning-rate schedule, for a fixed number of epochs, then a full
evaluation of train and test loss and accuracy.

The model is trained functionally: its parameters and buffers are copied into fresh
tensors (``θ_0``), updated through ``torch.func.functional_call``, and returned in the
result; the caller's module keeps its own weights, buffers and train/eval flags.

Schedule (SGDR without restarts, Loshchilov & Hutter 2017, as NAS-Bench-201 trains):
step ``t = 0, ..., T-1`` of ``T = epochs * ceil(n_train / batch_size)`` uses

    lr_t = lr_min + (lr - lr_min) * (1 + cos(pi * t / T)) / 2.

``drop_last`` skips the incomplete last mini-batch of each epoch (a batch of a few
samples gives BatchNorm noisy statistics). Update (PyTorch's SGD): ``g = ∇L_batch(θ) + wd·θ``; ``b <- μ b + g``; ``θ <- θ - lr_t (g + μ b)``
with ``nesterov``, else ``θ <- θ - lr_t b``.

Losses: ``ce`` (classification; mean cross-entropy over samples) or ``mse`` (regression;
the theory's per-sample ``l_i = ½‖f(x_i) - y_i‖²``, averaged over samples, as in
docs/theory.md §2). ``auto`` picks ``ce`` for a classification split, else ``mse``.
Accuracies are reported for classification only (NaN otherwise).

Every random draw (the order of samples in each epoch) comes from ``seed``; with the
same model initialisation, data and recipe, the result is the same in every process.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from empirical.data import DataSplit
from proxies.checks import check_choice, check_int, check_number
from proxies.engine import training_mode

__all__ = ["Recipe", "evaluate", "train"]

LOSSES = ("auto", "ce", "mse")


@dataclass(frozen=True)
class Recipe:
    """One training recipe; everything that determines the optimisation besides the seed.

    >>> Recipe(epochs=3, batch_size=32).steps_per_epoch(100)
    4
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    drop_last: bool = False
    loss: str = "auto"
    eval_batch_size: int = 1024

    def __post_init__(self):
        for key in ("epochs", "batch_size", "eval_batch_size"):
            check_int(f"Recipe.{key}", getattr(self, key), minimum=1)
        for key in ("lr", "lr_min", "momentum", "weight_decay"):
            check_number(f"Recipe.{key}", getattr(self, key), minimum=0)
        if self.lr_min > self.lr:
            raise ValueError(f"Recipe.lr_min ({self.lr_min}) must not exceed Recipe.lr ({self.lr})")
        if self.momentum >= 1:
            raise ValueError(f"Recipe.momentum must be below 1, got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("Recipe.nesterov needs momentum > 0; set nesterov=False or a momentum")
        check_choice("Recipe.loss", self.loss, LOSSES)

    def steps_per_epoch(self, n_train: int) -> int:
        if self.drop_last:
            if n_train < self.batch_size:
                raise ValueError(f"Recipe.drop_last with batch_size {self.batch_size} leaves no step "
                                 f"for {n_train} training samples; lower batch_size")
            return n_train // self.batch_size
        return math.ceil(n_train / self.batch_size)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Cosine schedule from ``lr`` (step 0) towards ``lr_min`` (step ``total_steps``)."""
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * step / total_steps)) / 2

    def to_dict(self) -> dict:
        return asdict(self)


def _loss_name(recipe: Recipe, split: DataSplit) -> str:
    if recipe.loss != "auto":
        if recipe.loss == "ce" and not split.is_classification:
            raise ValueError(f"Recipe.loss='ce' needs a classification split; {split.name} is regression: use 'mse'")
        return recipe.loss
    return "ce" if split.is_classification else "mse"


def _per_sample_loss(name: str, output: Tensor, target: Tensor) -> Tensor:
    if name == "ce":
        return F.cross_entropy(output, target, reduction="none")
    target = target.reshape(output.shape).to(output.dtype)
    return 0.5 * (output - target).pow(2).flatten(start_dim=1).sum(dim=1)


def _inputs(X: Tensor, flat: bool) -> Tensor:
    return X.flatten(start_dim=1) if flat else X


@torch.no_grad()
def evaluate(model: nn.Module, state: dict[str, Tensor], X: Tensor, y: Tensor, *,
             loss: str = "ce", flat: bool = False, batch_size: int = 1024,
             labels: Tensor | None = None, sum_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` at ``state`` (params and buffers by name) on
    ``(X, y)``, in eval mode (BatchNorm uses running statistics); the module's own flags
    are restored afterwards.

    The loss is (1/n) Σ_i l_i with l_i of the module docstring, summed in ``batch_size``
    chunks in ``sum_dtype`` (default: the outputs' own dtype; ``torch.float64`` keeps a
    float32 model's mean to double precision). The accuracy is the fraction of samples whose largest
    output is the class in ``labels``; ``labels`` defaults to ``y`` for ``loss='ce'``. For
    ``loss='mse'`` on one-hot targets pass the class indices as ``labels``; without them
    the accuracy is NaN (regression).

    >>> net = torch.nn.Linear(2, 2, bias=False)
    >>> state = {"weight": torch.eye(2)}
    >>> X = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]])
    >>> onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> evaluate(net, state, X, onehot, loss="mse", labels=onehot.argmax(dim=1))  # ½(1 + 0 + 9)/3, 2 of 3
    (1.6666666666666667, 0.6666666666666666)
    >>> evaluate(net, state, X, onehot, loss="mse")[1]
    nan
    """
    check_choice("loss", loss, ("ce", "mse"))
    check_int("batch_size", batch_size, minimum=1)
    if labels is None and loss == "ce":
        labels = y
    if labels is not None and labels.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} rows but X has {X.shape[0]}; pass one label per sample")
    with training_mode(model, False):
        total_loss, correct = 0.0, 0
        for start in range(0, X.shape[0], batch_size):
            out = functional_call(model, state, (_inputs(X[start:start + batch_size], flat),))
            per_sample = _per_sample_loss(loss, out, y[start:start + batch_size])
            total_loss += float(per_sample.sum(dtype=sum_dtype))
            if labels is not None:
                correct += int((out.argmax(dim=1) == labels[start:start + batch_size]).sum())
    n = X.shape[0]
    return total_loss / n, (correct / n if labels is not None else math.nan)


def train(model: nn.Module, split: DataSplit, recipe: Recipe, seed: int, flat: bool = False) -> dict:
    """Train a copy of ``model``'s parameters on ``split``'s train part with ``recipe``.

    ``seed`` draws the sample order of every epoch (a CPU ``torch.Generator``, so the order
    is the same on every device; the global RNG is untouched, so seed the model's
    initialisation separately). Training runs where the model and the split are (put
    both on one device first: `empirical.data.DataSplit.to`). ``flat`` feeds
    ``(n, prod(input_shape))`` vectors instead of the split's tensors as they are.

    Returns a dict: ``train_loss, train_acc, test_loss, test_acc`` (full passes in eval
    mode after the last step), ``final_batch_loss`` (training loss of the last step, in
    train mode), ``steps``, ``epochs``, ``seconds`` (wall time of training and
    evaluation), ``diverged`` (a non-finite loss stopped training early), ``seed``,
    ``recipe`` (the recipe as a dict), ``loss`` (the loss used) and ``state`` (name ->
    trained tensor, parameters and buffers; not JSON data: drop it before storing).

    >>> from empirical.data import load
    >>> split = load("iris", seed=0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> out = train(net, split, Recipe(epochs=30, batch_size=16, lr=0.05), seed=0)
    >>> out["test_acc"] > 0.8
    True
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be an empirical.training.Recipe, got {type(recipe).__name__}")
    check_int("seed", seed, minimum=0)
    loss_name = _loss_name(recipe, split)
    start_time = time.perf_counter()

    params = {name: p.detach().clone().requires_grad_(True) for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    state = {**params, **buffers}
    optimizer = torch.optim.SGD(
        list(params.values()), lr=recipe.lr, momentum=recipe.momentum,
        nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
    )
    n = split.n_train
    steps_per_epoch = recipe.steps_per_epoch(n)
    total_steps = recipe.epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    X_train = _inputs(split.X_train, flat)
    step, last_loss, diverged = 0, math.nan, False

    with training_mode(model, True):
        for _ in range(recipe.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, steps_per_epoch * recipe.batch_size, recipe.batch_size):
                index = order[start:start + recipe.batch_size].to(X_train.device)
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr_at(step, total_steps)
                output = functional_call(model, state, (X_train[index],))
                batch_loss = _per_sample_loss(loss_name, output, split.y_train[index]).mean()
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
                step += 1
                last_loss = float(batch_loss.detach())
                if not math.isfinite(last_loss):
                    diverged = True
                    break
            if diverged:
                break

    final = {name: t.detach() for name, t in state.items()}
    train_loss, train_acc = evaluate(model, final, split.X_train, split.y_train, loss=loss_name,
                                     flat=flat, batch_size=recipe.eval_batch_size)
    test_loss, test_acc = evaluate(model, final, split.X_test, split.y_test, loss=loss_name,
                                   flat=flat, batch_size=recipe.eval_batch_size)
    return {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "final_batch_loss": last_loss,
        "steps": step,
        "epochs": recipe.epochs,
        "diverged": diverged,
        "seconds": time.perf_counter() - start_time,
        "seed": seed,
        "recipe": recipe.to_dict(),
        "loss": loss_name,
        "state": final,
    }
