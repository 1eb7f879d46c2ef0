"""NAS on a tabular benchmark: the four search algorithms the GradSign paper assists
(§5.3, Table 5: random search, regularised evolution, REINFORCE and BOHB), vanilla and
assisted by a zero-cost score, on a table of trained networks; and the summary of runs.

The benchmark is a table of K architectures (NAS-Bench-201 cells) with their accuracy;
*evaluating* an architecture means reading its accuracy and costs one unit of the budget
(a search may evaluate an architecture twice where the algorithm proposes it twice:
REINFORCE, BOHB). Proxy scores are free (zero-cost). Every search returns the accuracies
it evaluated, in order, and draws all its randomness from the generator it is given.

* Random search (``random``): evaluate ``budget`` distinct architectures drawn uniformly.
* Regularised evolution (``rea``, Real et al., AAAI 2019): evaluate ``population``
  random architectures; then repeatedly draw ``sample`` members of the population, take
  the most accurate as parent, evaluate one mutant child, append it and drop the oldest
  member, until ``budget`` evaluations are spent. A mutant of a parent is a uniformly
  drawn architecture of the table at the smallest non-zero Hamming distance from it
  (number of the 6 cell edges whose ops differ): in the full NAS-Bench-201 space this is
  the usual one-edge mutation; in a subset table it is the nearest available neighbour.
* REINFORCE (``reinforce``, Williams 1992; NAS-Bench-201's baseline): a policy of logits
  θ (6 edges × 5 ops, drawn as 10⁻³·N(0, 1)) over the architectures of the table,
  ``π(k) = softmax_k(s_k)``, ``s_k = Σ_e θ[e, op_e(k)]`` (the product of per-edge
  softmaxes, restricted to the table; for the full space exactly that product). Each step
  evaluates a ~ π, reward r = its accuracy, baseline b = the bias-corrected exponential
  moving average of the rewards so far including r (momentum ``momentum``), and takes
  one Adam ascent step (Kingma & Ba 2015, β = (0.9, 0.999), ε = 1e-8, rate ``lr``) along
  ``(r − b) ∇_θ log π(a)``, where ``∂ log π(a) / ∂θ[e, o] = 1[op_e(a) = o] − Σ_k π(k) 1[op_e(k) = o]``.
* BOHB (``bohb``, Falkner et al., ICML 2018): its model is optuna's
  ``TPESampler(multivariate=True)`` (the multivariate-KDE tree-structured Parzen
  estimator of BOHB; optuna documents it with its HyperbandPruner as BOHB) over one
  categorical parameter per edge, and BOHB's rule that a fraction ``random_fraction``
  (1/3) of proposals, and every proposal before the model has ``d + 1 = 7`` points, is
  drawn uniformly. A model proposal not in the table is mapped to the nearest table
  architecture (Hamming distance, ties uniform). The table holds final accuracies only
  (one budget), so Hyperband's successive halving has nothing to stop early and BOHB
  reduces to this model-based search.
* Assisted (``candidates`` = N > 1): wherever the vanilla algorithm draws one
  architecture to evaluate (each random-search step, each initial REA member, each REA
  child, each REINFORCE action, each BOHB proposal), draw N candidates the same way and
  evaluate only the one with the highest score (ties: the first drawn); REINFORCE's
  update uses the action evaluated. N = 1 is the vanilla algorithm.
"""
from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd

from empirical.spaces import nb201
from empirical.stats import mean_ci, proportion_ci
from proxies.checks import check_choice, check_int, check_number
from proxies.registry import Registry

__all__ = ["ALGORITHMS", "ReinforcePolicy", "SEARCHES", "bohb", "curve_table", "op_matrix", "policy_gradient", "random_search",
           "regularized_evolution", "reinforce", "run_search", "summarise_runs", "table_policy", "top_threshold"]


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


def random_search(accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, budget: int, candidates: int,
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


def table_policy(theta: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """π over the table's architectures: ``softmax_k(Σ_e θ[e, ops[k, e]])`` (module docstring).

    >>> table_policy(np.zeros((6, 5)), np.zeros((4, 6), dtype=int)).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    logits = theta[np.arange(ops.shape[1]), ops].sum(axis=1)
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def policy_gradient(pi: np.ndarray, ops: np.ndarray, action: int, n_ops: int) -> np.ndarray:
    """∇_θ log π(action): ``1[op_e(action) = o] − Σ_k π(k) 1[op_e(k) = o]`` for each edge e and op o."""
    grad = np.stack([-np.bincount(ops[:, e], weights=pi, minlength=n_ops) for e in range(ops.shape[1])])
    grad[np.arange(ops.shape[1]), ops[action]] += 1.0
    return grad


class ReinforcePolicy:
    """REINFORCE's state: logits θ over the table's architectures (`table_policy`), the
    reward baseline (bias-corrected EMA) and Adam's moments; `update` is one ascent step
    along ``(r − b) ∇_θ log π(a)`` (module docstring)."""

    def __init__(self, ops: np.ndarray, theta: np.ndarray, *, lr: float = 0.01, momentum: float = 0.9):
        self.ops, self.theta = ops, np.array(theta, dtype=float)
        self.lr = check_number("lr", lr, minimum=0, strict=True)
        self.momentum = check_number("momentum", momentum, minimum=0, maximum=1)
        self.first, self.second = np.zeros_like(self.theta), np.zeros_like(self.theta)  # Adam's moments
        self.steps, self.numerator, self.denominator = 0, 0.0, 0.0

    def probabilities(self) -> np.ndarray:
        return table_policy(self.theta, self.ops)

    def baseline(self) -> float:
        return self.numerator / self.denominator

    def update(self, action: int, reward: float) -> None:
        pi = self.probabilities()
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * reward
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)
        grad = (reward - self.baseline()) * policy_gradient(pi, self.ops, action, self.theta.shape[1])
        self.steps += 1
        self.first = 0.9 * self.first + 0.1 * grad
        self.second = 0.999 * self.second + 0.001 * grad * grad
        m_hat, v_hat = self.first / (1 - 0.9 ** self.steps), self.second / (1 - 0.999 ** self.steps)
        self.theta = self.theta + self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def reinforce(accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, budget: int, candidates: int,
              rng: np.random.Generator, *, lr: float = 0.01, momentum: float = 0.9) -> np.ndarray:
    """Accuracies evaluated by (assisted) REINFORCE, in order; see the module docstring."""
    k = len(accuracy)
    check_int("budget", budget, minimum=1)
    check_int("candidates", candidates, minimum=1)
    policy = ReinforcePolicy(ops, 1e-3 * rng.standard_normal((ops.shape[1], len(nb201.OPS))), lr=lr,
                             momentum=momentum)
    evaluated = np.empty(budget)
    for step in range(budget):
        drawn = rng.choice(k, size=candidates, p=policy.probabilities())
        action = int(drawn[int(np.argmax(score[drawn]))])
        evaluated[step] = accuracy[action]
        policy.update(action, float(accuracy[action]))
    return evaluated


def _nearest(choice: np.ndarray, ops: np.ndarray, rng: np.random.Generator) -> int:
    distance = (ops != choice).sum(axis=1)
    nearest = np.flatnonzero(distance == distance.min())
    return int(nearest[0]) if len(nearest) == 1 else int(rng.choice(nearest))


def bohb(accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, budget: int, candidates: int,
         rng: np.random.Generator, *, random_fraction: float = 1 / 3) -> np.ndarray:
    """Accuracies evaluated by (assisted) BOHB with one budget, in order; see the module docstring."""
    k = len(accuracy)
    check_int("budget", budget, minimum=1)
    check_int("candidates", candidates, minimum=1)
    check_number("random_fraction", random_fraction, minimum=0, maximum=1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {f"edge{e}": optuna.distributions.CategoricalDistribution(list(nb201.OPS)) for e in range(ops.shape[1])}
    index = {op: i for i, op in enumerate(nb201.OPS)}
    startup = len(space) + 1  # BOHB's minimum number of points in the model, d + 1
    sampler = optuna.samplers.TPESampler(multivariate=True, n_startup_trials=startup,
                                         seed=int(rng.integers(2 ** 32)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    evaluated = np.empty(budget)
    for step in range(budget):
        if step < startup or rng.random() < random_fraction:
            drawn = rng.integers(0, k, size=candidates)
        else:
            trial = study.ask()
            frozen = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))[-1]
            proposals = [sampler.sample_relative(study, frozen, space) for _ in range(candidates)]
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # the model's query point, never evaluated
            drawn = np.array([_nearest(np.array([index[p[name]] for name in space]), ops, rng) for p in proposals])
        pick = int(drawn[int(np.argmax(score[drawn]))])
        evaluated[step] = accuracy[pick]
        params = {name: nb201.OPS[ops[pick, e]] for e, name in enumerate(space)}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=float(accuracy[pick])))
    return evaluated


SEARCHES: Registry = Registry("search algorithm")
SEARCHES.add("random", random_search)
SEARCHES.add("rea", regularized_evolution)
SEARCHES.add("reinforce", reinforce)
SEARCHES.add("bohb", bohb)
ALGORITHMS = tuple(SEARCHES.names())


def run_search(algorithm: str, accuracy: np.ndarray, score: np.ndarray, ops: np.ndarray, *, budget: int,
               candidates: int, runs: int, seed: int, **options) -> np.ndarray:
    """(runs, budget) best-so-far accuracy of each run of `algorithm` (``SEARCHES``; its own
    keyword ``options``, e.g. ``population`` and ``sample`` for REA); run r draws from
    ``numpy.random.default_rng([seed, r])`` (the same streams for every method)."""
    search = SEARCHES.get(check_choice("algorithm", algorithm, ALGORITHMS))
    check_int("runs", runs, minimum=1)
    curves = np.empty((runs, budget))
    for r in range(runs):
        trace = search(accuracy, score, ops, budget, candidates, np.random.default_rng([seed, r]), **options)
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
