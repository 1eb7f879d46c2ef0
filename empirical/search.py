"""NAS on a tabular benchmark: search algorithms, vanilla and assisted by a zero-cost score
(GradSign paper §5.3, Table 5; here on a table of trained networks), and the summary of
many runs.

The benchmark is a table of K architectures with their accuracy; *evaluating* an
architecture means reading its accuracy and costs one unit of the budget. Proxy scores
are free (zero-cost). Every search returns the accuracies it evaluated, in order.

* Random search (``random``): evaluate ``budget`` distinct architectures drawn uniformly.
* Regularised evolution (``rea``, Real et al., AAAI 2019): evaluate ``population``
  random architectures; then repeatedly draw ``sample`` members of the population, take
  the most accurate as parent, evaluate one mutant child, append it and drop the oldest
  member, until ``budget`` evaluations are spent. A mutant of a parent is a uniformly
  drawn architecture of the table at the smallest non-zero Hamming distance from it
  (number of the 6 cell edges whose ops differ): in the full NAS-Bench-201 space this is
  the usual one-edge mutation; in a subset table it is the nearest available neighbour.
* Assisted (``candidates`` = N > 1): wherever the vanilla algorithm draws one
  architecture to evaluate (each random-search step, each initial REA member, each REA
  child), draw N candidates the same way and evaluate only the one with the highest
  score (ties: the first drawn). N = 1 is the vanilla algorithm.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from empirical.spaces import nb201
from empirical.stats import mean_ci, proportion_ci
from proxies.checks import check_choice, check_int, check_number

__all__ = ["ALGORITHMS", "curve_table", "op_matrix", "random_search", "regularized_evolution", "run_search",
           "summarise_runs", "top_threshold"]

ALGORITHMS = ("random", "rea")


def op_matrix(archs: list[str]) -> np.ndarray:
    """(K, 6) integer op indices (into ``nb201.OPS``) of each arch's edges.

    >>> op_matrix(["|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"]).tolist()
    [[0, 1, 0, 0, 0, 3]]
    """
    index = {op: i for i, op in enumerate(nb201.OPS)}
    return np.array([[index[op] for op, _ in nb201.parse(a)] for a in archs], dtype=np.int8)


def _check(budget: int, candidates: int, k: int) -> None:
    check_int("budget", budget, minimum=1, maximum=k)
    check_int("candidates", candidates, minimum=1)


def random_search(accuracy: np.ndarray, score: np.ndarray, budget: int, candidates: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Accuracies evaluated by (assisted) random search, in order; see the module docstring."""
    k = len(accuracy)
    _check(budget, candidates, k)
    remaining = np.ones(k, dtype=bool)
    evaluated = np.empty(budget)
    for step in range(budget):
        pool = np.flatnonzero(remaining)
        drawn = rng.choice(pool, size=min(candidates, len(pool)), replace=False)
        pick = drawn[int(np.argmax(score[drawn]))]
        remaining[pick] = False
        evaluated[step] = accuracy[pick]
    return evaluated


def _mutants(parent: int, ops: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    distance = (ops != ops[parent]).sum(axis=1)
    distance[parent] = ops.shape[1] + 1
    nearest = np.flatnonzero(distance == distance.min())
    return rng.choice(nearest, size=n, replace=True)


def regularized_evolution(accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, budget: int,
                          candidates: int, rng: np.random.Generator, *, population: int = 10,
                          sample: int = 5) -> np.ndarray:
    """Accuracies evaluated by (assisted) regularised evolution, in order."""
    k = len(accuracy)
    _check(budget, candidates, k)
    if not 1 <= sample <= population <= budget:
        raise ValueError(f"need 1 <= sample <= population <= budget, got sample={sample}, "
                         f"population={population}, budget={budget}")

    def best_of(drawn: np.ndarray) -> int:
        return int(drawn[int(np.argmax(score[drawn]))])

    members: list[int] = []
    for _ in range(population):
        members.append(best_of(rng.choice(k, size=min(candidates, k), replace=False)))
    evaluated = [accuracy[m] for m in members]
    while len(evaluated) < budget:
        tournament = rng.choice(len(members), size=sample, replace=False)
        parent = members[max(tournament, key=lambda i: (accuracy[members[i]], -i))]
        child = best_of(_mutants(parent, ops, candidates, rng))
        members.append(child)
        members.pop(0)
        evaluated.append(accuracy[child])
    return np.asarray(evaluated)


def run_search(algorithm: str, accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, *, budget: int,
               candidates: int, runs: int, seed: int, population: int = 10, sample: int = 5) -> np.ndarray:
    """(runs, budget) best-so-far accuracy of each run; run r draws from
    ``numpy.random.default_rng([seed, r])`` (the same streams for every method)."""
    check_choice("algorithm", algorithm, ALGORITHMS)
    check_int("runs", runs, minimum=1)
    curves = np.empty((runs, budget))
    for r in range(runs):
        rng = np.random.default_rng([seed, r])
        if algorithm == "random":
            trace = random_search(accuracy, score, budget, candidates, rng)
        else:
            trace = regularized_evolution(accuracy, score, ops, budget, candidates, rng,
                                          population=population, sample=sample)
        curves[r] = np.maximum.accumulate(trace)
    return curves


def top_threshold(accuracy: np.ndarray, fraction: float = 0.01) -> tuple[float, int]:
    """(threshold, k): the k-th best accuracy, ``k = ceil(fraction · K)``; an architecture
    is in the top ``fraction`` if it reaches the threshold (ties included).

    >>> top_threshold(np.array([0.5, 0.9, 0.7, 0.9]), 0.5)
    (0.9, 2)
    """
    check_number("fraction", fraction, minimum=0, maximum=1, strict=True)
    k = math.ceil(fraction * len(accuracy))
    return float(np.sort(accuracy)[::-1][k - 1]), k


def summarise_runs(curves: dict[str, np.ndarray], threshold: float, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Per method: mean, std and bootstrap CI of the mean of the best accuracy found, and
    the fraction of runs reaching `threshold` with its Wilson CI (one row per method;
    columns ``method, runs, mean, std, mean_low, mean_high, top1_fraction, top1_low, top1_high``)."""
    records = []
    for method, c in curves.items():
        best = c[:, -1]
        mean = mean_ci(best, n_boot=n_boot, seed=seed)
        hits = proportion_ci(int((best >= threshold).sum()), len(best))
        records.append({"method": method, "runs": len(best), "mean": best.mean(), "std": best.std(ddof=1),
                        "mean_low": mean.low, "mean_high": mean.high, "top1_fraction": hits.value,
                        "top1_low": hits.low, "top1_high": hits.high})
    return pd.DataFrame.from_records(records)


def curve_table(curves: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean best-so-far accuracy per method and number of evaluations, with a normal 95%
    band ``mean ± 1.96 · std / sqrt(runs)`` (columns ``method, evaluations, mean, low, high``)."""
    rows = []
    for method, c in curves.items():
        mean = c.mean(axis=0)
        half = 1.96 * c.std(axis=0, ddof=1) / math.sqrt(len(c))
        for step in range(c.shape[1]):
            rows.append({"method": method, "evaluations": step + 1, "mean": mean[step],
                         "low": mean[step] - half[step], "high": mean[step] + half[step]})
    return pd.DataFrame(rows)
