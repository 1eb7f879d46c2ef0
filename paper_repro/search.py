"""NAS on a tabular benchmark: random search and regularised evolution, vanilla and
GradSign-assisted (GradSign paper §5.3, Table 5; here on a table of trained networks).

The benchmark is a table of K architectures with their accuracy; *evaluating* an
architecture means reading its accuracy and costs one unit of the budget. GradSign
scores are free (zero-cost). Every search returns the accuracies it evaluated, in order.

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
  GradSign (ties: the first drawn). N = 1 is the vanilla algorithm.
"""
from __future__ import annotations

import numpy as np

from empirical.spaces import nb201

__all__ = ["op_matrix", "random_search", "regularized_evolution", "run_search"]

ALGORITHMS = ("random", "rea")


def op_matrix(archs: list[str]) -> np.ndarray:
    """(K, 6) integer op indices (into ``nb201.OPS``) of each arch's edges."""
    index = {op: i for i, op in enumerate(nb201.OPS)}
    return np.array([[index[op] for op, _ in nb201.parse(a)] for a in archs], dtype=np.int8)


def _check(budget: int, candidates: int, k: int) -> None:
    if budget < 1 or budget > k:
        raise ValueError(f"budget must be in [1, {k}] (the table's size), got {budget}")
    if candidates < 1:
        raise ValueError(f"candidates must be a positive integer, got {candidates}")


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
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
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
