"""The benchmark type: a table of trained architectures, the size they were built at and
the data they are scored on; one loader per source.

Accuracy convention: every accuracy column (``test_acc``, ``train_acc``, ``valid_acc``)
is a fraction in [0, 1], whatever the source stores.

* ``nb201-digits``: the shipped mini-benchmark (`empirical.benchmarks.nb201_digits`),
  ground truth ``test_acc`` (mean over its training seeds, per-seed columns
  ``test_acc_s<seed>``), networks at its own size.
* ``nb201-digits-cv``: the same classes under repeated 4-fold cross-validation
  (`empirical.benchmarks.nb201_digits_cv`), ground truth ``test_acc`` (mean over its 8
  trainings per class), per-repeat columns ``test_acc_r<repeat>`` (mean over that
  repeat's folds, from its trainings file); only once built (no placeholder ships).
* ``nb201-file``: the user's NAS-Bench-201 file (`file_benchmark`, read by
  `empirical.benchmarks.nb201_api`; its percentages divided by 100).
* ``nb101-file``: the user's NAS-Bench-101 record file (`nb101_file_benchmark`, read by
  `empirical.benchmarks.nb101_records`); ``arch`` is the benchmark's hash, and the table
  carries each cell's ``matrix`` and ``ops``.
* ``nds-file``: the user's NDS file of one cell space (`nds_file_benchmark`, read by
  `empirical.benchmarks.nds_files`); ``arch`` is that module's key, and the table
  carries each network's ``genotype``, ``width``, ``depth`` and ``aux``.
* ``toy``: a tiny *synthetic* table for tests and smoke runs: a seeded handful of
  NAS-Bench-201 cells (`toy_benchmark`) with a made-up accuracy, scored at C=4, N=1.
  Its numbers say nothing about any proxy; every report built on it says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from empirical import architectures
from empirical.benchmarks import nb101_records, nb201_api, nb201_digits, nb201_digits_cv, nds_files
from empirical.spaces import nb201
from empirical.stats import Estimate
from proxies.checks import check_choice, check_int

__all__ = ["BENCHMARKS", "Benchmark", "cv_benchmark", "file_benchmark", "load_benchmark", "nb101_file_benchmark",
           "nds_file_benchmark", "toy_benchmark"]

BENCHMARKS = ("nb201-digits", "nb201-digits-cv", "toy")
CV_METRICS = ("test_acc", "test_loss", "train_acc", "train_loss")
ACCURACY_COLUMNS = ("test_acc", "train_acc", "valid_acc")


@dataclass(frozen=True)
class Benchmark:
    """A tabular benchmark: one row per architecture with its ground truth.

    ``table`` has at least the columns ``arch`` and ``test_acc`` (test accuracy as a
    fraction); networks are architectures of ``space`` built at size ``C, N``
    (`empirical.architectures`; ``nb201.build(arch, C, N)`` for nb201) for data set
    ``data``.

    >>> bench = toy_benchmark(5, seed=1)
    >>> len(bench.archs), bench.synthetic, bool((bench.test_acc < 1).all())
    (5, True, True)
    """

    name: str
    table: pd.DataFrame
    data: str
    C: int | None
    N: int | None
    description: str
    synthetic: bool = False
    info: dict = field(default_factory=dict)
    cifar_path: str | None = None
    space: str = "nb201"

    @property
    def archs(self) -> list[str]:
        return self.table["arch"].tolist()

    def cells(self) -> dict[str, dict] | None:
        """arch -> the cell that builds it (`empirical.architectures`); None for nb201,
        whose arch strings are their cells."""
        if self.space == "nb201":
            return None
        if self.space == "nb101":
            return {row.arch: {"matrix": [list(r) for r in row.matrix], "ops": list(row.ops)}
                    for row in self.table.itertuples()}
        return {row.arch: architectures.nds_cell(row.genotype, row.width, row.depth, row.aux)
                for row in self.table.itertuples()}

    @property
    def test_acc(self) -> np.ndarray:
        return self.column("test_acc")

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of the table as floats (ValueError naming the available ones)."""
        if name not in self.table.columns:
            raise ValueError(f"column {name!r} is not in benchmark {self.name}; available: {list(self.table.columns)}")
        return self.table[name].to_numpy(dtype=float)

    def seed_columns(self, metric: str = "test_acc") -> list[str]:
        """The per-training-seed columns of `metric` (``test_acc_s0``, ``test_acc_s1``, ...)
        where the benchmark records its seeds, else its per-repeat columns
        (``test_acc_r0``, ``test_acc_r1``: nb201-digits-cv), else ``[metric]``.

        >>> load_benchmark("nb201-digits").seed_columns()
        ['test_acc_s0', 'test_acc_s1']
        """
        columns = [f"{metric}_s{s}" for s in self.info.get("seeds", []) if f"{metric}_s{s}" in self.table.columns]
        repeats = [f"{metric}_r{r}" for r in self.info.get("repeats", []) if f"{metric}_r{r}" in self.table.columns]
        return columns or repeats or [metric]

    def reliability(self) -> Estimate | None:
        """Spearman ρ between two training seeds' test accuracies (nb201-digits), or the
        split-half Spearman of the test_acc class means over all classes (nb201-digits-cv),
        where the benchmark records it."""
        rel = self.info.get("reliability")
        if not rel:
            return None
        if "test_acc_all" in rel:
            rel = rel["test_acc_all"]
        return Estimate(rel["spearman"], rel["spearman_ci"][0], rel["spearman_ci"][1], rel["n"])

    def reliability_note(self) -> str:
        """The ground truth's own reproducibility, in words."""
        rho = self.reliability()
        if rho is None:
            return "not recorded"
        rel = self.info["reliability"]
        if "test_acc_all" in rel:
            top = rel["test_acc_top_half"]
            top = Estimate(top["spearman"], top["spearman_ci"][0], top["spearman_ci"][1], top["n"])
            first, second = (", ".join(map(str, h)) for h in rel["halves"])
            k = self.info.get("folds", {}).get("k", "?")
            return (f"split-half Spearman ρ between the test-accuracy class means of repeats {first} and of repeats "
                    f"{second} (each repeat a full {k}-fold cross-validation over all images) = {rho.format()} over "
                    f"{rho.n} architectures, {top.format()} within the top half ({top.n} best by mean test "
                    "accuracy); no Spearman-Brown correction (a ceiling on how well any proxy can rank one "
                    "half's mean accuracies; the table averages all repeats)")
        seeds = self.info["reliability"]["seeds"]
        return (f"Spearman ρ between the test accuracies of training seeds {seeds[0]} and {seeds[1]} "
                f"= {rho.format()} over {rho.n} architectures (a ceiling on how well any proxy can rank one "
                "seed's accuracies; the table averages both seeds)")

    def subset(self, max_archs: int | None, seed: int) -> "Benchmark":
        """The benchmark restricted to a seeded random subset of ``max_archs`` architectures
        (in table order); itself when ``max_archs`` is None or not below the table's size."""
        if max_archs is None or max_archs >= len(self.table):
            return self
        check_int("max_archs", max_archs, minimum=4)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(self.table), size=max_archs, replace=False))
        return replace(self, table=self.table.iloc[rows].reset_index(drop=True),
                       description=self.description + f"; seeded subset of {max_archs} architectures (seed {seed})")


def toy_benchmark(n_archs: int = 8, seed: int = 0) -> Benchmark:
    """A seeded synthetic benchmark of `n_archs` NB201 cells (for tests and smoke runs).

    test_acc = 0.2 + 0.1 · (number of convolution edges) + U(0, 0.05), a made-up ground
    truth that rewards parametric cells, so that the pipeline has something to rank.
    """
    check_int("n_archs", n_archs, minimum=4)
    rng = np.random.default_rng(seed)
    pool = nb201.unique_archs()
    archs = [pool[i] for i in sorted(rng.choice(len(pool), size=n_archs, replace=False))]
    convs = np.array([nb201_digits.conv_edges(a) for a in archs])
    test_acc = 0.2 + 0.1 * convs + rng.uniform(0, 0.05, size=n_archs)
    table = pd.DataFrame({"arch": archs, "test_acc": test_acc})
    return Benchmark("toy", table, data="digits", C=4, N=1, synthetic=True,
                     description=f"toy: {n_archs} NB201 cells (seed {seed}) with a SYNTHETIC accuracy "
                                 "0.2 + 0.1·conv_edges + U(0, 0.05); for testing the pipeline only")


def cv_benchmark(classes_path=None, trainings_path=None, json_path=None) -> Benchmark:
    """``nb201-digits-cv`` from its three files (default: the shipped ones,
    `empirical.benchmarks.nb201_digits_cv`; ValueError naming a missing one): the class
    table (``arch, conv_edges, params, flops`` and the means over all trainings) with, for
    each of `CV_METRICS`, per-repeat columns ``<metric>_r<repeat>``, the mean over the
    folds of that repeat in the trainings file."""
    meta = nb201_digits_cv.metadata(json_path)
    classes = nb201_digits_cv.load(classes_path)
    trainings = nb201_digits_cv.load_trainings(trainings_path)
    per_repeat = trainings.groupby(["arch", "repeat"])[list(CV_METRICS)].mean().unstack("repeat")
    repeats = sorted(int(r) for r in trainings["repeat"].unique())
    if sorted(set(trainings["arch"])) != sorted(classes["arch"]):
        raise ValueError("nb201-digits-cv: the trainings file and the class table hold different classes; "
                         "rebuild them together")
    columns = {f"{m}_r{r}": per_repeat[(m, r)].reindex(classes["arch"]).to_numpy() for m in CV_METRICS
               for r in repeats}
    table = classes.assign(**columns)
    recipe = meta.get("recipe", nb201_digits_cv.RECIPE.to_dict())
    k = meta.get("folds", {}).get("k", "?")
    description = (f"nb201-digits-cv: {len(table)} NB201 isomorphism classes at C={nb201_digits_cv.C}, "
                   f"N={nb201_digits_cv.N} trained on digits by {k}-fold cross-validation over all images, "
                   f"repeats {repeats} ({recipe.get('epochs')} epochs, SGD, batch {recipe.get('batch_size')}); "
                   f"ground truth = test accuracy, mean over {meta.get('trainings_per_class', '?')} trainings "
                   f"per class (repeat r: fold seed r, training seed r)")
    return Benchmark("nb201-digits-cv", table, data=nb201_digits_cv.DATA, C=nb201_digits_cv.C,
                     N=nb201_digits_cv.N, description=description, info={**meta, "repeats": repeats})


def load_benchmark(name: str, *, toy_archs: int = 8, seed: int = 0, paths: dict | None = None) -> Benchmark:
    """The benchmark `name` (one of ``BENCHMARKS``); ``paths`` (nb201-digits-cv only): the
    keyword arguments of `cv_benchmark` (``classes_path``, ``trainings_path``,
    ``json_path``) instead of the shipped files."""
    check_choice("benchmark", name, BENCHMARKS)
    if paths is not None and name != "nb201-digits-cv":
        raise ValueError(f"paths applies to benchmark 'nb201-digits-cv' only, not {name!r}")
    if name == "toy":
        return toy_benchmark(toy_archs, seed)
    if name == "nb201-digits-cv":
        unknown = set(paths or {}) - {"classes_path", "trainings_path", "json_path"}
        if unknown:
            raise ValueError(f"paths takes the keys classes_path, trainings_path, json_path; got {sorted(unknown)}")
        return cv_benchmark(**(paths or {}))
    table = nb201_digits.load()
    try:
        meta = nb201_digits.metadata()
    except ValueError:
        meta = {}
    seeds = meta.get("seeds", "?")
    recipe = meta.get("recipe", nb201_digits.RECIPE.to_dict())
    description = (f"nb201-digits: {len(table)} NB201 isomorphism classes at C={nb201_digits.C}, "
                   f"N={nb201_digits.N} trained on digits ({recipe.get('epochs')} epochs, SGD, "
                   f"batch {recipe.get('batch_size')}); ground truth = test accuracy, mean over "
                   f"training seeds {seeds}")
    return Benchmark("nb201-digits", table, data=nb201_digits.DATA, C=nb201_digits.C, N=nb201_digits.N,
                     description=description, info=meta)


def file_benchmark(path: str, *, dataset: str = "cifar10", hp: str = "200", allow_pickle: bool = False,
                   C: int = 16, N: int = 5, cifar_path: str | None = None) -> Benchmark:
    """The user's NAS-Bench-201 file (`empirical.benchmarks.nb201_api`): columns ``arch,
    index, seeds, test_acc, valid_acc, train_acc`` (fractions), ``params, flops`` (millions,
    as the file stores them) on `dataset` under schedule `hp`; networks scored on CIFAR-10
    images from `cifar_path` if given, else on ``random-cifar`` (seeded Gaussian inputs of
    CIFAR shape)."""
    frame = nb201_api.accuracies(path, dataset=dataset, hp=hp, allow_pickle=allow_pickle)
    table = frame.assign(**{c: frame[c] / 100.0 for c in ACCURACY_COLUMNS if c in frame}).reset_index(drop=True)
    data = "cifar10" if cifar_path is not None else "random-cifar"
    inputs = (f"CIFAR-10 images from {cifar_path}" if cifar_path is not None
              else "random-cifar: seeded standard-normal 3×32×32 inputs with random labels (no CIFAR-10 given)")
    epochs = {"200": "200-epoch", "12": "12-epoch"}[hp]
    return Benchmark("nb201-file", table, data=data, C=C, N=N, cifar_path=cifar_path,
                     description=f"the user's NAS-Bench-201 file {path}: {len(table)} architectures, ground truth "
                                 f"= {epochs} test accuracy on {dataset}; proxies scored on {inputs}")


def _inputs(cifar_path: str | None) -> tuple[str, str]:
    if cifar_path is not None:
        return "cifar10", f"CIFAR-10 images from {cifar_path}"
    return "random-cifar", "random-cifar: seeded standard-normal 3×32×32 inputs with random labels (no CIFAR-10 given)"


def nb101_file_benchmark(path: str, *, epochs: int = 108, cifar_path: str | None = None,
                         progress: bool = True) -> Benchmark:
    """The user's NAS-Bench-101 record file (`empirical.benchmarks.nb101_records.load`):
    columns ``arch`` (the hash), ``matrix, ops, num_vertices, params, repeats, test_acc,
    valid_acc, train_acc, training_time`` (accuracies as fractions, means over the
    repeats) for the runs of ``epochs``; networks at the benchmark's size (stem 128, 3
    stacks of 3 cells), scored on CIFAR-10 images from ``cifar_path`` if given, else on
    ``random-cifar``. Reading the whole 108-epoch file takes minutes (pure Python)."""
    frame = nb101_records.load(path, epochs=epochs, progress=progress)
    table = frame.rename(columns={"hash": "arch"})
    data, inputs = _inputs(cifar_path)
    C, N = architectures.ORIGINAL_SIZE["nb101"]
    return Benchmark("nb101-file", table, data=data, C=C, N=N, cifar_path=cifar_path, space="nb101",
                     description=f"the user's NAS-Bench-101 file {path}: {len(table)} cells, ground truth = "
                                 f"{epochs}-epoch CIFAR-10 test accuracy (mean over repeats); proxies scored on "
                                 f"{inputs}")


def nds_file_benchmark(path: str, *, space: str, cifar_path: str | None = None) -> Benchmark:
    """The user's NDS file of ``space`` (an ``nds-<space>`` name of
    `empirical.architectures`; every genotype is checked against its op set), read by
    `empirical.benchmarks.nds_files.load`: columns ``arch`` (the file key), ``index,
    genotype, width, depth, aux, runs, test_acc, best_test_acc, params, flops, epochs``
    (accuracies as fractions). Each network's own width and depth is its size (``C`` and
    ``N`` are None: `empirical.architectures`); scored on CIFAR-10 images from
    ``cifar_path`` if given, else on ``random-cifar``."""
    check_choice("space", space, tuple(architectures.NDS_SPACES))
    table = nds_files.load(path, space=architectures.NDS_SPACES[space])
    data, inputs = _inputs(cifar_path)
    return Benchmark("nds-file", table, data=data, C=None, N=None, cifar_path=cifar_path, space=space,
                     description=f"the user's NDS file {path} ({space}): {len(table)} architectures, ground truth "
                                 f"= final-epoch test accuracy (mean over runs); each network at the width and "
                                 f"depth it was trained at; proxies scored on {inputs}")
