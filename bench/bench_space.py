"""Space-scoring throughput: 2 local workers against 1, and GradSign's time per
architecture at NAS-Bench-201's original size.

    python bench/bench_space.py                      # 2 workers vs 1 (ratio in this process)
    python bench/bench_space.py --archs 60 --original-size 3

Part 1 scores the same ``--archs`` NB201 class representatives (a seeded sample) with
GradSign at the mini-benchmark size (C=8, N=1, digits, batch 64) into fresh run
directories, once with ``--workers 1`` (in the driver, one torch thread) and once with
2 spawned workers (one thread each), and prints wall times and their ratio, the 1-minute
load average around each run (the machine may be shared), and whether the two runs
stored identical scores. Part 2 (``--original-size K``) scores K sampled architectures
at C=16, N=5 on random CIFAR-shaped input (batch 64) in this process and extrapolates
the time of the whole space (15,625 architectures, or 6,466 classes with --unique).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from empirical import space_scoring  # noqa: E402
from empirical.spaces import nb201  # noqa: E402
from empirical.store import ResultsStore  # noqa: E402


def sample(n: int, seed: int) -> list[str]:
    unique = nb201.unique_archs()
    index = np.random.default_rng(seed).choice(len(unique), size=n, replace=False)
    return [unique[i] for i in sorted(index)]


def timed_run(run_dir: Path, archs: list[str], workers: int, per_job: int) -> tuple[float, float, float]:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    space_scoring.score_space(run_dir, archs, proxies=["gradsign"], data="digits", batch=64, seed=0, C=8, N=1,
                              archs_per_job=per_job, workers=workers, progress=False)
    return time.perf_counter() - start, load_before, os.getloadavg()[0]


def scores(run_dir: Path) -> dict:
    with ResultsStore(run_dir, create=False) as store:
        return {r["hash"]: r["result"]["gradsign"] for r in store.rows()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=60, help="architectures in the worker comparison")
    parser.add_argument("--archs-per-job", type=int, default=5)
    parser.add_argument("--original-size", type=int, default=3, metavar="K",
                        help="architectures timed at C=16, N=5 (0 to skip)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average at start: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    archs = sample(args.archs, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        one, load1a, load1b = timed_run(Path(tmp) / "w1", archs, 1, args.archs_per_job)
        two, load2a, load2b = timed_run(Path(tmp) / "w2", archs, 2, args.archs_per_job)
        same = scores(Path(tmp) / "w1") == scores(Path(tmp) / "w2")
    print(f"gradsign, {args.archs} archs, C=8 N=1 digits batch 64, {args.archs_per_job} archs/job")
    print(f"  1 worker : {one:8.1f} s  ({one / args.archs:.3f} s/arch)  load {load1a:.1f} -> {load1b:.1f}")
    print(f"  2 workers: {two:8.1f} s  ({two / args.archs:.3f} s/arch)  load {load2a:.1f} -> {load2b:.1f}")
    print(f"  speed-up 2 vs 1 workers: {one / two:.2f}x   identical scores: {same}")

    if args.original_size:
        from empirical.scoring import NetworkSpec, score_network

        split = space_scoring.load_scoring_data("random-cifar")
        picked = sample(args.original_size, args.seed + 1)
        # one untimed call: the first vmap/grad call of a process pays a one-off set-up cost
        score_network(NetworkSpec("nb201", arch=picked[0], C=16, N=5), split, ["gradsign"], batch=64, seed=0)
        walls, cpus = [], []
        for arch in picked:
            wall, cpu = time.perf_counter(), time.process_time()
            score_network(NetworkSpec("nb201", arch=arch, C=16, N=5), split, ["gradsign"], batch=64, seed=0)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall, cpu = float(np.mean(walls)), float(np.mean(cpus))
        print(f"gradsign at the original size (C=16, N=5, random-cifar 3x32x32, batch 64), "
              f"{len(picked)} archs, 1 thread:")
        print(f"  per arch: {wall:.2f} s wall, {cpu:.2f} s CPU (load {os.getloadavg()[0]:.1f})")
        for n, what in ((15625, "all 15,625 archs"), (6466, "6,466 classes (--unique)")):
            print(f"  {what}: {n * cpu / 3600:.1f} core-hours of CPU -> {n * cpu / 3600 / 2:.1f} h on 2 idle cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
