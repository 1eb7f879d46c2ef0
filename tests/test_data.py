"""Data loaders: shapes, determinism, train-only standardisation, stratification."""

import math

import numpy as np
import pytest
import torch
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from empirical import data

SIZES = {  # name: (n samples, n features, n classes) of scikit-learn's bundled sets
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "wine": (178, 13, 3),
    "iris": (150, 4, 3),
}
RAW = {
    "digits": sk_datasets.load_digits,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}


@pytest.mark.parametrize("name", list(SIZES))
def test_shapes_dtypes_and_sizes(name):
    n, d, k = SIZES[name]
    split = data.load(name, flat=True, seed=0)
    n_test = math.ceil(0.25 * n)  # scikit-learn rounds the test part up
    assert split.X_train.shape == (n - n_test, d) and split.X_test.shape == (n_test, d)
    assert split.y_train.shape == (n - n_test,) and split.y_test.shape == (n_test,)
    assert split.X_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    assert split.num_classes == k and split.input_shape == (d,)
    assert split.name == name and split.seed == 0


def test_digits_images_by_default():
    split = data.load("digits")
    assert split.input_shape == (1, 8, 8)
    assert split.X_train.shape == (1347, 1, 8, 8) and split.X_test.shape == (450, 1, 8, 8)


@pytest.mark.parametrize("name", ["digits", "teacher"])
def test_same_seed_same_data_other_seed_other_split(name):
    a, b, c = data.load(name, seed=3), data.load(name, seed=3), data.load(name, seed=4)
    for field in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.X_train, c.X_train)


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine", "iris"])
def test_vector_standardisation_matches_scaler_fitted_on_train(name):
    # Independent route: scikit-learn's StandardScaler fitted on the raw train rows of
    # the documented split (train_test_split, same seed, stratified).
    bunch = RAW[name]()
    X_raw_train, X_raw_test = train_test_split(
        bunch.data, test_size=0.25, random_state=5, stratify=bunch.target
    )
    scaler = StandardScaler().fit(X_raw_train)
    split = data.load(name, flat=True, seed=5)
    np.testing.assert_allclose(split.X_train.numpy(), scaler.transform(X_raw_train), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split.X_test.numpy(), scaler.transform(X_raw_test), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris"])
def test_train_is_standardised_and_test_is_not_forced(name):
    split = data.load(name, seed=0)
    train, test = split.X_train.double(), split.X_test.double()
    torch.testing.assert_close(train.mean(0), torch.zeros(train.shape[1], dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(train.shape[1], dtype=torch.float64), atol=1e-5, rtol=0)
    # Test statistics come out of the train fit: close to, but not exactly, 0 and 1.
    assert test.mean(0).abs().max() > 1e-3
    assert (test.std(0, unbiased=False) - 1).abs().max() > 1e-3


def test_digits_image_standardisation_is_global_on_train():
    bunch = sk_datasets.load_digits()
    raw_train, raw_test = train_test_split(bunch.data, test_size=0.25, random_state=2, stratify=bunch.target)
    mean, std = raw_train.mean(), raw_train.std()
    split = data.load("digits", seed=2)
    np.testing.assert_allclose(split.X_train.numpy().reshape(-1, 64), (raw_train - mean) / std, atol=1e-5)
    np.testing.assert_allclose(split.X_test.numpy().reshape(-1, 64), (raw_test - mean) / std, atol=1e-5)
    assert abs(split.X_train.double().mean().item()) < 1e-6
    assert abs(split.X_test.double().mean().item()) > 1e-4


def test_constant_digits_pixels_only_centred():
    split = data.load("digits", flat=True, seed=0)
    bunch = sk_datasets.load_digits()
    always_zero = np.flatnonzero(bunch.data.max(0) == 0)
    assert len(always_zero) > 0
    assert torch.equal(split.X_train[:, always_zero], torch.zeros(split.n_train, len(always_zero)))
    assert torch.isfinite(split.X_test).all()


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine", "iris"])
def test_stratified_split(name):
    split = data.load(name, seed=11)
    y = np.concatenate([split.y_train.numpy(), split.y_test.numpy()])
    assert sorted(y.tolist()) == sorted(RAW[name]().target.tolist())
    for labels in (split.y_train, split.y_test):
        counts = np.bincount(labels.numpy(), minlength=split.num_classes)
        expected = np.bincount(y, minlength=split.num_classes) * len(labels) / len(y)
        assert np.all(np.abs(counts - expected) <= 1)


def _teacher_slow(n, d, width, outputs, noise, teacher_seed, seed):
    """The documented formula, one sample and one unit at a time."""
    params = np.random.default_rng(teacher_seed)
    W1 = params.standard_normal((width, d))
    b1 = params.standard_normal(width)
    W2 = params.standard_normal((outputs, width))
    samples = np.random.default_rng(seed)
    X = samples.standard_normal((n, d))
    eps = samples.standard_normal((n, outputs))
    y = np.zeros((n, outputs))
    for i in range(n):
        h = [math.tanh(sum(W1[u, j] * X[i, j] for j in range(d)) / math.sqrt(d) + b1[u]) for u in range(width)]
        for o in range(outputs):
            y[i, o] = sum(W2[o, u] * h[u] for u in range(width)) / math.sqrt(width) + noise * eps[i, o]
    return X, y


def test_teacher_targets_follow_the_formula():
    opts = dict(n=40, d=3, width=5, outputs=2, noise=0.1, teacher_seed=7)
    X, y = _teacher_slow(seed=9, **opts)
    idx_train, idx_test = train_test_split(np.arange(40), test_size=0.25, random_state=9)
    split = data.load("teacher", seed=9, **opts)
    assert split.num_classes is None and not split.is_classification
    assert split.y_train.dtype == torch.float32 and split.y_train.shape == (30, 2)
    np.testing.assert_allclose(split.y_train.numpy(), y[idx_train], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.y_test.numpy(), y[idx_test], rtol=1e-5, atol=1e-6)
    scaler = StandardScaler().fit(X[idx_train])
    np.testing.assert_allclose(split.X_test.numpy(), scaler.transform(X[idx_test]), rtol=1e-5, atol=1e-5)


def test_teacher_is_fixed_across_seeds_unless_teacher_seed_changes():
    # Same samples (seed), same teacher -> same targets; a new teacher_seed changes them.
    a = data.load("teacher", n=64, d=4, seed=1)
    b = data.load("teacher", n=64, d=4, seed=1, teacher_seed=1)
    assert a.input_shape == (4,) and a.X_train.shape == (48, 4)
    assert torch.equal(a.X_train, b.X_train)
    assert not torch.equal(a.y_train, b.y_train)


def test_split_is_frozen():
    split = data.load("iris")
    with pytest.raises(AttributeError):
        split.seed = 1


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("mnist",), {}, "valid names: digits, breast_cancer, wine, iris, teacher"),
        (("iris",), {"flat": False}, "flat=False"),
        (("iris",), {"test_size": 1.0}, "test_size"),
        (("iris",), {"seed": -1}, "seed"),
        (("iris",), {"n": 10}, "only to name='teacher'"),
        (("teacher",), {"m": 10}, "unknown teacher option"),
        (("teacher",), {"d": 0}, "d must be a positive int"),
        (("teacher",), {"noise": -1.0}, "noise"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(*args, **kwargs)
