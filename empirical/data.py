"""Data sets: scikit-learn's bundled sets and a procedural teacher-student regression.

Nothing is downloaded: ``digits``, ``breast_cancer``, ``wine`` and ``iris`` ship with
scikit-learn; ``teacher`` is generated.

Every set is split once, with a fixed seed, into train and test parts (stratified by
class for the classification sets) and standardised with statistics of the train part
only, so the test part is transformed exactly as unseen data would be:

* vectors (tabular sets, ``teacher``, ``digits`` with ``flat=True``): per feature,
  ``x_j <- (x_j - mean_train_j) / std_train_j``;
* images (``digits``, the default): one global mean and std over all train pixels.
  Per-pixel scaling would blow up the near-constant border pixels of the digits and
  distort the image that a convolution sees; a global affine map leaves it intact.

A feature (or image set) whose train std is below 1e-12 is only centred (std taken
as 1): ``digits`` has pixels that are always 0.

``teacher`` (docs/theory.md, controlled regression): inputs ``x ~ N(0, I_d)``, a fixed
random one-hidden-layer tanh network as the target,

    y = W2 tanh(W1 x / sqrt(d) + b1) / sqrt(width) + noise * eps,

with ``W1, b1, W2, eps`` standard normal; ``W1, b1, W2`` drawn from ``teacher_seed``
(fixed by default, so every ``seed`` sees the same teacher), ``x`` and ``eps`` from
``seed``. Targets are float32 of shape ``(n, outputs)`` and are not standardised.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from proxies.checks import check_int

__all__ = ["DataSplit", "NAMES", "load"]

_SKLEARN_LOADERS = {
    "digits": sk_datasets.load_digits,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}
NAMES = tuple(_SKLEARN_LOADERS) + ("teacher",)
_TEACHER_DEFAULTS = {"n": 512, "d": 8, "width": 32, "outputs": 1, "noise": 0.0, "teacher_seed": 0}
_STD_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)
class DataSplit:
    """A standardised train/test split.

    ``X_*`` are float32 tensors of shape ``(n, *input_shape)``. ``y_*`` are int64 class
    labels of shape ``(n,)`` for classification, float32 ``(n, outputs)`` for regression,
    where ``num_classes`` is ``None``. ``seed`` is the seed the split (and, for
    ``teacher``, the samples) came from.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None
    input_shape: tuple[int, ...]
    seed: int

    @property
    def n_train(self) -> int:
        return self.X_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.X_test.shape[0]

    @property
    def is_classification(self) -> bool:
        return self.num_classes is not None

    def to(self, device: str | torch.device) -> "DataSplit":
        """The same split with its four tensors on ``device`` (itself if they are there).

        >>> split = load("iris", seed=0)
        >>> split.to("cpu") is split, split.to("cpu").X_train.device.type
        (True, 'cpu')
        """
        device = torch.device(device)
        tensors = (self.X_train, self.y_train, self.X_test, self.y_test)
        if all(t.device == device for t in tensors):
            return self
        return replace(self, X_train=self.X_train.to(device), y_train=self.y_train.to(device),
                       X_test=self.X_test.to(device), y_test=self.y_test.to(device))


def _standardise(train: np.ndarray, test: np.ndarray, per_feature: bool):
    axis = 0 if per_feature else None
    mean = train.mean(axis=axis)
    std = train.std(axis=axis)
    std = np.where(std < _STD_FLOOR, 1.0, std)
    return (train - mean) / std, (test - mean) / std


def _teacher(n: int, d: int, width: int, outputs: int, noise: float, teacher_seed: int, seed: int):
    params = np.random.default_rng(teacher_seed)
    W1 = params.standard_normal((width, d))
    b1 = params.standard_normal(width)
    W2 = params.standard_normal((outputs, width))
    samples = np.random.default_rng(seed)
    X = samples.standard_normal((n, d))
    y = np.tanh(X @ W1.T / np.sqrt(d) + b1) @ W2.T / np.sqrt(width)
    y = y + noise * samples.standard_normal(y.shape)
    return X, y


def _check_options(name: str, options: dict) -> dict:
    if name != "teacher":
        if options:
            raise ValueError(
                f"options {sorted(options)} apply only to name='teacher'; {name!r} takes none"
            )
        return {}
    unknown = set(options) - set(_TEACHER_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown teacher option(s) {sorted(unknown)}; valid: {sorted(_TEACHER_DEFAULTS)}"
        )
    opts = {**_TEACHER_DEFAULTS, **options}
    for key in ("n", "d", "width", "outputs"):
        check_int(key, opts[key], minimum=1)
    if opts["n"] < 4:
        raise ValueError(f"n must be at least 4 to leave train and test samples, got {opts['n']}")
    if not isinstance(opts["noise"], (int, float)) or opts["noise"] < 0:
        raise ValueError(f"noise must be a non-negative number, got {opts['noise']!r}")
    return opts


def load(name: str, *, flat: bool | None = None, test_size: float = 0.25, seed: int = 0, **options) -> DataSplit:
    """Load ``name``, split it with ``seed`` and standardise with train statistics.

    ``name``: one of ``NAMES``. ``flat``: ``digits`` only: ``False``/``None`` gives
    ``(1, 8, 8)`` images, ``True`` 64-vectors; the other sets are vectors already
    (``flat=False`` is refused). ``test_size``: fraction in (0, 1) held out.
    ``options`` (``teacher`` only): ``n=512, d=8, width=32, outputs=1, noise=0.0,
    teacher_seed=0``.

    >>> data = load("digits", seed=0)
    >>> data.X_train.shape, data.X_test.shape, data.num_classes
    (torch.Size([1347, 1, 8, 8]), torch.Size([450, 1, 8, 8]), 10)
    >>> load("teacher", n=100, d=3, seed=1).y_train.shape
    torch.Size([75, 1])
    """
    if name not in NAMES:
        raise ValueError(f"unknown data set name {name!r}; valid names: {', '.join(NAMES)}")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction strictly between 0 and 1, got {test_size!r}")
    check_int("seed", seed, minimum=0)
    if flat not in (None, True, False):
        raise ValueError(f"flat must be None, True or False, got {flat!r}")
    if name != "digits" and flat is False:
        raise ValueError(f"flat=False needs image data; {name!r} is a vector data set: use flat=None")
    opts = _check_options(name, options)
    seed = int(seed)

    if name == "teacher":
        X, y = _teacher(seed=seed, **opts)
        num_classes = None
        stratify = None
    else:
        bunch = _SKLEARN_LOADERS[name]()
        X, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
        num_classes = int(len(np.unique(y)))
        stratify = y
    index_train, index_test = train_test_split(
        np.arange(len(X)), test_size=test_size, random_state=seed, stratify=stratify
    )
    image = name == "digits" and not flat
    X_train, X_test = _standardise(X[index_train], X[index_test], per_feature=not image)
    input_shape = (1, 8, 8) if image else (X.shape[1],)

    def features(a):
        return torch.as_tensor(a, dtype=torch.float32).reshape(-1, *input_shape)

    def targets(a):
        return torch.as_tensor(a, dtype=torch.int64 if num_classes else torch.float32)

    return DataSplit(
        name=name,
        X_train=features(X_train),
        y_train=targets(y[index_train]),
        X_test=features(X_test),
        y_test=targets(y[index_test]),
        num_classes=num_classes,
        input_shape=input_shape,
        seed=seed,
    )
