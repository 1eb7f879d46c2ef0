"""Seeded stratified k-fold cross-validation of scikit-learn's ``digits`` (all 1,797
images), the data side of the ``nb201-digits-cv`` ground truth.

Assignment (`stratified_folds`): with ``rng = numpy.random.default_rng(seed)``, the
classes are visited in increasing label order; each class's indices are permuted with
``rng.permutation`` and dealt round-robin to folds ``(offset + j) mod k``, where
``offset`` is the number of images dealt before this class (mod k). So every image is
in exactly one test fold, every class's count differs by at most one between folds, and
so do the fold sizes. Only numpy's documented-stable ``default_rng`` is involved, so a
seed gives the same folds on every machine.

Standardisation (`fold_split`): as `empirical.data.load` does for images, one global
mean and std over the fold's *training* pixels (std below 1e-12 taken as 1), applied to
its training and test images alike.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn import datasets as sk_datasets

from proxies.checks import check_int
from empirical.data import DataSplit

__all__ = ["N_IMAGES", "INPUT_SHAPE", "stratified_folds", "digits_folds", "fold_split"]

N_IMAGES = 1797
INPUT_SHAPE = (1, 8, 8)
_STD_FLOOR = 1e-12


def stratified_folds(y, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train_idx, test_idx) pairs of sorted int64 indices into ``y`` (module docstring).

    >>> folds = stratified_folds([0, 0, 0, 0, 1, 1, 1, 1], k=2, seed=0)
    >>> [len(test) for _, test in folds], sorted(np.concatenate([t for _, t in folds]).tolist())
    ([4, 4], [0, 1, 2, 3, 4, 5, 6, 7])
    """
    check_int("k", k, minimum=2)
    check_int("seed", seed, minimum=0)
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) < k:
        raise ValueError(f"y must be a 1-D array of at least k={k} labels, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (dealt + np.arange(len(members))) % k
        dealt += len(members)
    everything = np.arange(len(labels), dtype=np.int64)
    return [(everything[fold_of != f], everything[fold_of == f]) for f in range(k)]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = sk_datasets.load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def digits_folds(k: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`stratified_folds` of the 1,797 digits labels.

    >>> [len(test) for _, test in digits_folds(4, seed=0)]
    [450, 449, 449, 449]
    """
    return stratified_folds(_digits()[1], k, seed)


@functools.lru_cache(maxsize=16)
def fold_split(k: int, seed: int, fold: int) -> DataSplit:
    """Fold ``fold`` of `digits_folds(k, seed)` as a standardised `DataSplit` of
    (1, 8, 8) images (module docstring); ``DataSplit.seed`` is the fold seed.

    >>> split = fold_split(4, 0, 3)
    >>> split.n_train, split.n_test, round(float(split.X_train.mean()), 6) == 0.0
    (1348, 449, True)
    """
    folds = digits_folds(k, seed)
    check_int("fold", fold, minimum=0, maximum=k - 1)
    train_idx, test_idx = folds[fold]
    X, y = _digits()
    mean, std = X[train_idx].mean(), X[train_idx].std()
    std = std if std >= _STD_FLOOR else 1.0

    def images(index):
        return torch.as_tensor((X[index] - mean) / std, dtype=torch.float32).reshape(-1, *INPUT_SHAPE)

    return DataSplit(name="digits", X_train=images(train_idx), y_train=torch.as_tensor(y[train_idx]),
                     X_test=images(test_idx), y_test=torch.as_tensor(y[test_idx]), num_classes=10,
                     input_shape=INPUT_SHAPE, seed=seed)
