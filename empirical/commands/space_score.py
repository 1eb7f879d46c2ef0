"""`gradsign space-score`: score the architectures of a search space (NAS-Bench-201,
NAS-Bench-101, the NDS cell spaces) with zero-cost proxies, or with ``--psi`` by exact Ψ
of the sample-wise optima (`empirical.psi_scoring`, on ``--psi-n`` samples), resumably,
and export the per-architecture table.

Which architectures (`architectures_of`):

* ``--space nb201``: all 15,625 cells; ``--unique`` one per isomorphism class;
  ``--subset nb201-digits`` (or ``nb201-digits-cv``: the same 1,000 classes) the
  mini-benchmark's classes.
* ``--space nb101``: ``--truth-file PATH`` the cells of your NAS-Bench-101 record file
  (``nasbench_only108.tfrecord``: 423,624 cells; minutes to read); without a file,
  ``--sample K`` specs drawn by `nb101.sample` (the space is not enumerated here).
* ``--space nds-<space>``: ``--truth-file PATH`` the networks of your NDS file of that
  space (``DARTS.json``, ...); without a file, ``--sample K`` genotypes drawn by
  `nds.sample`, each at the run's size.

``--sample K`` takes a seeded subset of K of the list above (or draws K, where there is
no list), from ``--sample-seed`` (default: ``--seed``); ``--limit K`` then keeps the
first K. Architecture keys, cells and what ``--C``/``--N`` mean per space are in
`empirical.architectures`; by default each space is scored at its laptop size
(``LAPTOP_SIZE``), and ``--C file --N file`` builds every NDS network at the width and
depth its file trained it at.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import theory
from empirical import architectures, space_scoring
from empirical.benchmarks import nb201_digits
from empirical.benchmarks.benchmark import nb101_file_benchmark, nds_file_benchmark
from empirical.devices import add_device_argument, resolve_device
from empirical.psi_scoring import DTYPES, LOSSES, PsiScorer
from empirical.scoring import INITS, ProxyScorer, Scorer, resolve_proxies
from empirical.spaces import nb201
from proxies.checks import check_choice, check_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "space-score",
        help="score a search space's architectures with proxies (resumable) and export the table",
        description="Score architectures at initialisation; one row per architecture in "
                    "OUT/results.sqlite (rerun the same command to resume), then write "
                    "OUT/scores.csv with one row per architecture.",
    )
    parser.add_argument("--space", choices=list(architectures.SPACES), default="nb201")
    parser.add_argument("--truth-file", metavar="PATH",
                        help="nb101 / nds-*: score the architectures of your NAS-Bench-101 .tfrecord or NDS .json")
    parser.add_argument("--sample", type=int, metavar="K", help="a seeded subset (or draw) of K architectures")
    parser.add_argument("--sample-seed", type=int, metavar="S", help="seed of --sample (default: --seed)")
    parser.add_argument("--data", choices=list(space_scoring.DATA), default="digits")
    parser.add_argument("--cifar-path", metavar="PATH", help="unpacked CIFAR-10 python batches (--data cifar10)")
    parser.add_argument("--proxies", default="gradsign", help="a name, a comma list, or 'all'")
    parser.add_argument("--psi", action="store_true",
                        help="score exact Ψ_2, Ψ_1 of the sample-wise optima instead of proxies "
                             "(empirical.psi_scoring; rows of kind space-psi)")
    parser.add_argument("--psi-n", type=int, metavar="N", help="--psi: training samples n (default: --batch)")
    parser.add_argument("--psi-solver", default="gauss_newton", help="--psi: theory solver (default gauss_newton)")
    parser.add_argument("--psi-loss", default="mse",
                        help="--psi: mse (squared one-hot, default) or ce (with --psi-solver proximal or eps_stop)")
    parser.add_argument("--psi-dtype", default="float64", help="--psi: float64 (default) or float32")
    parser.add_argument("--psi-max-iter", type=int, metavar="K", help="--psi: the solver's max_iter (default: its own)")
    parser.add_argument("--psi-option", action="append", default=[], metavar="KEY=VALUE",
                        help="--psi: another solver option (repeatable), e.g. lr=0.1 eps=0.01 for eps_stop, "
                             "lam=1 for proximal; the solvers' options are in theory.solvers")
    parser.add_argument("--unique", action="store_true",
                        help="nb201: score one representative per isomorphism class and map scores to all archs")
    parser.add_argument("--subset", choices=["nb201-digits", "nb201-digits-cv"],
                        help="nb201: score only the classes selected for the nb201-digits benchmark (the same "
                             "classes as nb201-digits-cv)")
    parser.add_argument("--C", metavar="INT|file",
                        help="channels (nb201: first stage, nb101: stem, nds: initial); default per space")
    parser.add_argument("--N", metavar="INT|file",
                        help="cells (nb201: per stage, nb101: per stack, nds: in all); default per space")
    parser.add_argument("--batch", type=int, default=64, help="samples in the scoring batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", choices=list(INITS), default="default",
                        help="initialisation scheme of θ_0 (empirical.scoring.initialise)")
    add_device_argument(parser)
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--archs-per-job", type=int, default=25, help="architectures per executor job")
    parser.add_argument("--limit", type=int, help="score only the first K architectures of the list")
    parser.add_argument("--out", default="runs/space-score", metavar="DIR", help="run directory")
    parser.add_argument("--retry-failed", action="store_true", help="rerun architectures whose row failed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=main)


def network_size(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``(C, N)`` from ``--C``/``--N``: the space's laptop size where not given; ``file``
    (NDS only) is None, each network's own width / depth."""
    size = []
    for option, value, default in (("--C", args.C, architectures.LAPTOP_SIZE[args.space][0]),
                                   ("--N", args.N, architectures.LAPTOP_SIZE[args.space][1])):
        if value is None:
            size.append(default)
        elif value == "file":
            if args.space not in architectures.NDS_SPACES:
                raise ValueError(f"{option} file applies to the NDS spaces only (the width/depth of each network "
                                 f"in its file), not to --space {args.space}")
            size.append(None)
        else:
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{option} must be a positive integer or 'file', got {value!r}") from None
            size.append(check_int(option, number, minimum=1))
    return size[0], size[1]


def architectures_of(args: argparse.Namespace, C: int | None, N: int | None) -> tuple[list[str], dict | None]:
    """The architectures to score and their cells (module docstring)."""
    space = args.space
    for option, given in (("--unique", args.unique), ("--subset", args.subset)):
        if given and space != "nb201":
            raise ValueError(f"{option} applies to --space nb201 only")
    seed = check_int("--sample-seed", args.seed if args.sample_seed is None else args.sample_seed, minimum=0)
    cells = None
    if args.truth_file is not None:
        if space == "nb201":
            raise ValueError("--truth-file lists the architectures of an nb101 or NDS file; for nb201 every cell "
                             "is known (use --unique, --subset or --sample, and correlate --truth nb201-file:PATH)")
        bench = (nb101_file_benchmark(args.truth_file, progress=not args.no_progress) if space == "nb101"
                 else nds_file_benchmark(args.truth_file, space=space))
        archs, cells = bench.archs, bench.cells()
        if args.sample is not None:
            archs = architectures.subset(archs, check_int("--sample", args.sample, minimum=1), seed)
    elif space == "nb201":
        if args.subset in ("nb201-digits", "nb201-digits-cv"):
            archs = nb201_digits.select_classes()
        else:
            archs = nb201.unique_archs() if args.unique else nb201.all_archs()
        if args.sample is not None:
            archs = architectures.subset(archs, check_int("--sample", args.sample, minimum=1), seed)
    else:
        if args.sample is None:
            raise ValueError(f"--space {space} needs --truth-file PATH (the architectures of your benchmark file) "
                             "or --sample K (K seeded draws): the space is too large to enumerate here")
        drawn = architectures.sample(space, check_int("--sample", args.sample, minimum=1), seed, C=C, N=N)
        archs, cells = [arch for arch, _ in drawn], dict(drawn)
    if args.limit is not None:
        archs = archs[:check_int("--limit", args.limit, minimum=1)]
    return archs, cells


def psi_options(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings as solver options: ``max_iter`` an integer, the others numbers.

    >>> psi_options(["lr=0.1", "max_iter=500"])
    {'lr': 0.1, 'max_iter': 500}
    """
    options: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ValueError(f"--psi-option must be KEY=VALUE, got {pair!r}")
        if key in options:
            raise ValueError(f"--psi-option {key} given twice")
        try:
            options[key] = int(text) if key == "max_iter" else float(text)
        except ValueError:
            raise ValueError(f"--psi-option {key}: {text!r} is not a number") from None
    return options


def scorer_of(args: argparse.Namespace, data_size: int) -> tuple[Scorer, int]:
    """The scorer the options ask for and its scoring batch: proxies on ``--batch``, or
    with ``--psi`` a `PsiScorer` on ``--psi-n`` samples (at most ``data_size``)."""
    if not args.psi:
        return ProxyScorer(tuple(resolve_proxies(args.proxies))), args.batch
    n = check_int("--psi-n", args.batch if args.psi_n is None else args.psi_n, minimum=1)
    if n > data_size:
        raise ValueError(f"--psi-n {n} exceeds the {data_size} training samples of --data {args.data}")
    options = psi_options(args.psi_option)
    if args.psi_max_iter is not None:
        if "max_iter" in options:
            raise ValueError("pass max_iter once: --psi-max-iter or --psi-option max_iter=K")
        options["max_iter"] = check_int("--psi-max-iter", args.psi_max_iter, minimum=0)
    for option, value, allowed in (("--psi-solver", args.psi_solver, theory.SOLVERS.names()),
                                   ("--psi-loss", args.psi_loss, LOSSES), ("--psi-dtype", args.psi_dtype, DTYPES)):
        check_choice(option, value, tuple(allowed))
    return PsiScorer(args.psi_solver, args.psi_loss, args.psi_dtype, solver_options=options), n


def main(args: argparse.Namespace) -> int:
    data_size = space_scoring.load_scoring_data(args.data, args.cifar_path).X_train.shape[0]
    scorer, batch = scorer_of(args, data_size)
    device = str(resolve_device(args.device))
    C, N = network_size(args)
    archs, cells = architectures_of(args, C, N)
    if args.workers == 1 and args.executor == "local":
        torch.set_num_threads(1)  # small networks: one thread per scoring is the efficient use
    start = time.perf_counter()
    summary, counts = space_scoring.score_space(
        args.out, archs, scorer=scorer, data=args.data, batch=batch, seed=args.seed,
        C=C, N=N, init=args.init, space=args.space, cells=cells, cifar_path=args.cifar_path,
        archs_per_job=args.archs_per_job, executor=args.executor, workers=args.workers,
        progress=not args.no_progress, retry_failed=args.retry_failed, device=device,
    )
    elapsed = time.perf_counter() - start
    by_score = {"scorer": scorer} if args.psi else {"proxies": list(scorer.proxies)}
    table = space_scoring.space_table(args.out, **by_score, data=args.data, batch=batch,
                                      seed=args.seed, init=args.init, space=args.space,
                                      expand=args.limit is None and args.sample is None)
    path = Path(args.out) / "scores.csv"
    table.to_csv(path, index=False)
    print(f"architectures: {counts['archs']} ({counts['skipped']} already stored, {counts['ok']} ok, "
          f"{counts['failed']} failed) in {summary.total - summary.skipped} jobs, {elapsed:.1f} s on {device}")
    print(f"wrote {len(table)} rows to {path}")
    return 0
