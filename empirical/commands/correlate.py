"""`gradsign correlate RUN --truth ...`: how well each proxy of a space-score run ranks
architectures by a trained ground truth (Spearman, Kendall, top-k precision), beside the
network-size references #params and flops and controlling for log #params (partial
Spearman and Kendall), from the statistics of `empirical.stats` and a benchmark of
`empirical.benchmarks.benchmark`.

Scores and truth are joined on the architecture key of the run's space
(`empirical.architectures`): NB201's arch string, NB101's hash, the NDS file's key.

The size references are the run's ``params``/``flops`` proxies where it scored them, else
the benchmark's columns of the same name. The size control (``--size``, default
``params``) is the log of the benchmark's column, else of the run's proxy of that name.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from empirical import architectures, provenance, space_scoring, stats
from empirical.benchmarks.benchmark import (Benchmark, file_benchmark, load_benchmark, nb101_file_benchmark,
                                            nds_file_benchmark)
from figures.correlation import proxy_scatter, rho_bars

REFERENCES = ("params", "flops")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "correlate",
        help="rank correlation of a space-score run's proxies with trained accuracies",
        description="Join RUN's per-architecture scores with a ground truth on the arch string and "
                    "write RUN/correlation.md (printed too), correlation.csv/.json and figures.",
    )
    parser.add_argument("run", metavar="RUN", help="a space-score run directory")
    parser.add_argument("--truth", default="nb201-digits",
                        metavar="nb201-digits|nb201-digits-cv|nb201-file:PATH|nb101-file:PATH|nds-file:PATH",
                        help="a shipped mini-benchmark (nb201-digits-cv: the same classes by repeated 4-fold "
                             "cross-validation, once built), or your NAS-Bench-201 .pth, NAS-Bench-101 .tfrecord "
                             "or NDS .json file")
    parser.add_argument("--space", choices=list(architectures.SPACES),
                        help="the run's rows of this space (default: the one space the run holds)")
    parser.add_argument("--metric", default="test_acc",
                        help="ground-truth column (test_acc, train_acc, test_loss, ...; accuracies as fractions)")
    parser.add_argument("--dataset", default="cifar10", help="dataset of a NAS-Bench-201 file")
    parser.add_argument("--hp", default="200", choices=["200", "12"], help="schedule of a NAS-Bench-201 file")
    parser.add_argument("--trust-file", action="store_true",
                        help="allow full unpickling of the NAS-Bench-201 file (only for a trusted file)")
    parser.add_argument("--lower-is-better", action="store_true",
                        help="the metric is a loss: rank by its negative (ρ > 0 then still means 'agrees')")
    parser.add_argument("--proxies", metavar="A,B,...", help="the run's proxies to rank (default: all it holds)")
    parser.add_argument("--size", default="params",
                        help="size column controlled for in the partial correlations (its log): a column of the "
                             "truth, else a proxy of the run")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--top", type=float, default=0.1, help="fraction for top-k precision")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: RUN)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/PDF figures")
    parser.set_defaults(func=main)


def load_truth(spec: str, *, dataset: str, hp: str, trust_file: bool, space: str | None = None) -> tuple[Benchmark, str]:
    """The benchmark ``--truth`` names and how the report calls it (``space``: the NDS
    space whose op set an NDS file's genotypes are checked against)."""
    if spec in ("nb201-digits", "nb201-digits-cv"):
        return load_benchmark(spec), spec
    kind, _, path = spec.partition(":")
    if kind == "nb201-file" and path:
        return file_benchmark(path, dataset=dataset, hp=hp, allow_pickle=trust_file), f"NAS-Bench-201 {dataset}"
    if kind == "nb101-file" and path:
        return nb101_file_benchmark(path), "NAS-Bench-101 CIFAR-10"
    if kind == "nds-file" and path:
        if space not in architectures.NDS_SPACES:
            raise ValueError(f"--truth nds-file: needs a run of an NDS space (--space nds-darts, ...), not {space}")
        return nds_file_benchmark(path, space=space), f"NDS {architectures.NDS_SPACES[space]}"
    raise ValueError(f"--truth must be 'nb201-digits', 'nb201-digits-cv', 'nb201-file:PATH', 'nb101-file:PATH' or 'nds-file:PATH', "
                     f"got {spec!r}")


def proxy_columns(table) -> list[str]:
    """Proxy names of a space_table: the columns that come with a ``<name>_seconds`` column."""
    return [c for c in table.columns if f"{c}_seconds" in table.columns]


def _chosen_proxies(names: list[str], requested: str | None, run: str) -> list[str]:
    if requested is None:
        return names
    chosen = [p.strip() for p in requested.split(",") if p.strip()]
    missing = [p for p in chosen if p not in names]
    if missing or not chosen:
        raise ValueError(f"--proxies {requested!r}: {missing or 'nothing'} is not a proxy column of run {run!r}; "
                         f"it holds {names}")
    return chosen


def _size(truth, scores, column: str, run: str):
    """(arch, size) table and where the size column came from."""
    if column in truth.columns:
        return truth[["arch", column]], "the benchmark"
    if column in scores.columns:
        return scores[["arch", column]], "the run"
    raise ValueError(f"--size column {column!r} for the partial correlations is neither a column of the truth "
                     f"({list(truth.columns)}) nor a proxy of run {run!r}; pass --size COLUMN or score the "
                     f"'{column}' proxy")


def run_space(run: str) -> str:
    """The one space whose rows the run holds (ValueError: none, or several)."""
    spaces = space_scoring.stored_spaces(run)
    if not spaces:
        raise ValueError(f"run {run!r} holds no space-score rows; run 'gradsign space-score --out {run}' first")
    if len(spaces) > 1:
        raise ValueError(f"run {run!r} holds rows of the spaces {', '.join(spaces)}: pick one with --space")
    return spaces[0]


def main(args: argparse.Namespace) -> int:
    space = args.space or (run_space(args.run) if args.truth.startswith("nds-file:") else None)
    bench, truth_name = load_truth(args.truth, dataset=args.dataset, hp=args.hp, trust_file=args.trust_file,
                                   space=space)
    space = space or run_space(args.run)
    if bench.space != space:
        raise ValueError(f"--truth {args.truth} is a {bench.space} benchmark, but the run's rows are {space}")
    truth = bench.table
    if args.metric not in truth.columns:
        raise ValueError(f"--metric {args.metric!r} is not a column of the truth; available: {list(truth.columns)}")
    scores = space_scoring.space_table(args.run, expand=True, space=space)
    names = proxy_columns(scores)
    if not names:
        raise ValueError(f"run {args.run!r} holds no space-score rows; run 'gradsign space-score --out {args.run}' first")
    names = _chosen_proxies(names, args.proxies, args.run)
    from_truth = [r for r in REFERENCES if r not in names and r in truth.columns]
    size, size_source = _size(truth, scores, args.size, args.run)
    covariate = f"log {args.size} ({size_source})"
    with np.errstate(divide="ignore", invalid="ignore"):  # a size ≤ 0 has no log: left out of the partials
        log_size = np.log(size[args.size].to_numpy(dtype=float))
    joined = (scores[["arch"] + names]
              .merge(truth[["arch", args.metric] + [c for c in from_truth if c != args.metric]], on="arch")
              .merge(size[["arch"]].assign(**{covariate: log_size}), on="arch"))
    target = args.metric
    if args.lower_is_better:
        target = f"-{args.metric}"
        joined[target] = -joined[args.metric]
    if len(joined) < 3:
        raise ValueError(f"only {len(joined)} architectures of the run have a ground truth in {args.truth}; "
                         "score the benchmark's architectures (space-score --subset nb201-digits) first")
    ranked = names + from_truth
    summary = stats.study(joined, ranked, target, covariate=covariate, n_boot=args.n_boot, seed=args.seed,
                          top_fraction=args.top)
    summary["reference"] = summary["proxy"].isin(REFERENCES)
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    revision = provenance.git_revision()
    warning = provenance.dirty_warning(revision)
    sources = ", ".join(f"{r} from {'the run' if r in names else 'the benchmark'}"
                        for r in REFERENCES if r in ranked)
    text = (f"Rank correlation with {truth_name} {target} over {len(joined)} architectures "
            f"(95% percentile bootstrap CIs, n_boot={args.n_boot}, seed={args.seed}; top half = the "
            f"{int(summary['top_half_n'].max())} best by {target}; partial ρ and τ control for {covariate}; "
            f"size references: {sources or 'none available'}). Git revision: {revision}.\n\n"
            + (f"{warning}\n\n" if warning else "") + stats.to_markdown(summary) + "\n")
    (out / "correlation.md").write_text(text)
    summary.to_json(out / "correlation.json", orient="records", indent=2)
    joined.to_csv(out / "correlation_data.csv", index=False)
    print(text, end="")
    if not args.no_figures:
        rho = dict(zip(summary["proxy"], summary["spearman"]))
        for name, fig in (("correlation_scatter", proxy_scatter(joined, ranked, target, rho=rho)),
                          ("correlation_rho", rho_bars(summary, title=f"{truth_name}, {len(joined)} architectures"))):
            for ext in ("png", "pdf"):
                fig.savefig(out / f"{name}.{ext}", dpi=150)
            plt.close(fig)
        print(f"figures: {out / 'correlation_scatter.png'}, {out / 'correlation_rho.png'} (and .pdf)")
    return 0
