"""GradSign's CPU cost per architecture at the original size of each search space.

    python bench/bench_spaces.py                       # all spaces, 3 runs each, batch 64
    python bench/bench_spaces.py --spaces nb101 nds-darts --runs 3 --batch 32

Each run is one ``proxies.gradsign`` call on a freshly built network (seeded weights) with
a batch of seeded N(0, 1) inputs of shape 3x32x32 and random labels over 10 classes, in
this process, with ``--threads`` torch threads (1 by default: the machine is shared).
Networks, at the benchmarks' CIFAR-10 sizes:

* ``nb201``  (baseline): NAS-Bench-201 at C=16, N=5, the cell
  ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``;
* ``nb101``: NAS-Bench-101 at stem 128, 3 stacks of 3 cells, the cell of NNI's example
  (hash 00005c142e6f48ac74fdcf73e3439874, 8.56 M parameters);
* ``nds-<space>``: the space's reference genotype (``nds.REFERENCE``) at DARTS's CIFAR-10
  evaluation size, C=36 and 20 cells, without the auxiliary head (``--C``, ``--layers``).

Printed per network: parameters, the wall time and the CPU time (``time.process_time``:
what one idle core would need, much less inflated by other processes than the wall
time) of every run, their ranges, the ratios of the medians to the baseline's medians
(measured in the same process), and the 1-minute load average before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import proxies  # noqa: E402
from empirical.spaces import nb101, nb201, nds  # noqa: E402

NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
NB101_INPUTS = {1: [0], 2: [1], 3: [2], 4: [0], 5: [0, 3, 4], 6: [2, 5]}
NB101_OPS = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu",
             "output"]
SPACES = ("nb201", "nb101", *(f"nds-{s}" for s in nds.REFERENCE))


def builder(space: str, C: int, layers: int):
    if space == "nb201":
        return lambda: nb201.build(NB201_CELL, C=16, N=5)
    if space == "nb101":
        matrix = np.zeros((7, 7), dtype=int)
        for target, sources in NB101_INPUTS.items():
            matrix[sources, target] = 1
        return lambda: nb101.build(matrix, NB101_OPS)
    name = space.removeprefix("nds-")
    return lambda: nds.build(name, nds.GENOTYPES[nds.REFERENCE[name]], C=C, layers=layers)


def time_runs(build, runs: int, batch: int, seed: int) -> tuple[int, list[float], list[float], float, float]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, 32, 32, generator=generator)
    targets = torch.randint(0, 10, (batch,), generator=generator)
    load_before = os.getloadavg()[0]
    walls, cpus, params = [], [], 0
    for _ in range(runs):
        torch.manual_seed(seed)
        model = build()
        params = sum(p.numel() for p in model.parameters())
        start, start_cpu = time.perf_counter(), time.process_time()
        proxies.gradsign(model, inputs, targets)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return params, walls, cpus, load_before, os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--C", type=int, default=36, help="NDS width")
    parser.add_argument("--layers", type=int, default=20, help="NDS depth (cells)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spaces = list(dict.fromkeys(["nb201", *args.spaces]))  # the baseline always runs first
    print(f"gradsign, batch {args.batch} of 3x32x32, {args.runs} runs, {args.threads} thread(s), seed {args.seed}; "
          f"cores available: {len(os.sched_getaffinity(0))}; load average at start: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    baseline = None
    for space in spaces:
        params, walls, cpus, load_a, load_b = time_runs(builder(space, args.C, args.layers), args.runs,
                                                        args.batch, args.seed)
        medians = statistics.median(walls), statistics.median(cpus)
        baseline = baseline or medians
        print(f"{space:12s} {params / 1e6:6.3f} M params  wall " + " ".join(f"{t:6.1f}" for t in walls)
              + f" s (range {min(walls):.1f}-{max(walls):.1f}, median/nb201 {medians[0] / baseline[0]:5.2f}x)"
              f"  cpu " + " ".join(f"{t:6.1f}" for t in cpus)
              + f" s (range {min(cpus):.1f}-{max(cpus):.1f}, median/nb201 {medians[1] / baseline[1]:5.2f}x)"
              f"  load {load_a:.1f} -> {load_b:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
