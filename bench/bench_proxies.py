"""Every registered proxy on NAS-Bench-201 networks: time per proxy, and an acceptance run.

Timing (default): a few seeded archs at C=16, N=5, 3x32x32, batch 64. Each proxy's time
is the median over the archs of one call (after one warm-up call of every proxy on two
samples of the first arch), printed beside the median time of one batched
forward+backward of the same batch (cross-entropy, train mode; per arch the faster of
one call before and one after the proxies) measured in the same process, as a ratio.

Acceptance (--acceptance): every proxy on `--archs` archs (50 by default there, batch
16), a sample of `nb201.all_archs()` drawn with `--seed`; counts finite values,
NaN-with-reason and exceptions per proxy, and checks each network's state dict is
unchanged. Settings and seed are printed.

    python bench/bench_proxies.py [--archs 3] [--batch 64] [--threads 2] [--seed 0]
    python bench/bench_proxies.py --acceptance [--archs 50] [--batch 16]
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proxies  # noqa: E402
from empirical.spaces import nb201  # noqa: E402


def sample_archs(count, seed):
    rng = np.random.default_rng(seed)
    return [str(a) for a in rng.choice(nb201.all_archs(), size=count, replace=False)]


def batched_forward_backward(model, x, y):
    flags = [m.training for m in model.modules()]
    model.train()
    try:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        model.zero_grad(set_to_none=True)
    finally:
        for m, f in zip(model.modules(), flags):
            m.training = f


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def build(arch, args, seed):
    torch.manual_seed(seed)
    net = nb201.build(arch, C=args.C, N=args.N, num_classes=10, in_channels=3)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    return net, x, y


def run_timing(args, archs):
    times = {name: [] for name in ["fwd+bwd", *proxies.names()]}
    for k, arch in enumerate(tqdm(archs, desc="archs")):
        net, x, y = build(arch, args, args.seed + k)
        if k == 0:  # warm-up of every code path, on two samples
            batched_forward_backward(net, x[:2], y[:2])
            for name in proxies.names():
                proxies.compute(name, net, x[:2], y[:2])
        first = timed(lambda: batched_forward_backward(net, x, y))[0]
        for name in proxies.names():
            times[name].append(timed(lambda: proxies.compute(name, net, x, y))[0])
        # The baseline is timed before and after the proxies; the faster of the two counts.
        times["fwd+bwd"].append(min(first, timed(lambda: batched_forward_backward(net, x, y))[0]))
        tqdm.write(f"{k} {arch} " + " ".join(f"{n}={t[-1]:.3f}s" for n, t in times.items()))
    base = statistics.median(times["fwd+bwd"])
    print(f"\nNB201 C={args.C} N={args.N}, 3x32x32, batch {args.batch}, {len(archs)} archs "
          f"(seed {args.seed}), torch {torch.__version__}, {args.threads} threads")
    print("| proxy | median s | × one batched fwd+bwd |")
    print("|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {med / base:.1f} |")


def run_acceptance(args, archs):
    counts = {name: {"finite": 0, "nan": 0, "error": 0} for name in proxies.names()}
    errors = []
    start = time.perf_counter()
    for k, arch in enumerate(tqdm(archs, desc="archs")):
        if k < args.first:
            continue
        net, x, y = build(arch, args, args.seed + k)
        before = {key: v.clone() for key, v in net.state_dict().items()}
        row = {}
        for name in proxies.names():
            try:
                value = proxies.compute(name, net, x, y)
            except Exception as exc:  # the acceptance run reports failures instead of stopping
                counts[name]["error"] += 1
                errors.append(f"{name} on {arch}: {exc!r}")
                row[name] = "error"
                continue
            counts[name]["finite" if math.isfinite(value) else "nan"] += 1
            row[name] = f"{value:.6g}"
        if any(not torch.equal(v, before[key]) for key, v in net.state_dict().items()):
            errors.append(f"state changed on {arch}")
        # One line per arch as it finishes, so a stopped run still reports what it did.
        tqdm.write(f"{k} {arch} " + " ".join(f"{n}={v}" for n, v in row.items()))
    elapsed = time.perf_counter() - start
    print(f"\nacceptance: archs {args.first}..{len(archs) - 1} of {len(archs)} (seed {args.seed}), NB201 C={args.C} N={args.N}, "
          f"3x32x32, batch {args.batch}, {elapsed:.0f} s")
    print("| proxy | finite | NaN (logged reason) | exceptions |")
    print("|---|---|---|---|")
    for name, c in counts.items():
        print(f"| {name} | {c['finite']} | {c['nan']} | {c['error']} |")
    for line in errors:
        print("ERROR", line)
    return 1 if errors else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acceptance", action="store_true")
    parser.add_argument("--archs", type=int, default=None, help="number of seeded archs (3; 50 with --acceptance)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (64; 16 with --acceptance)")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0,
                        help="--acceptance: start at this index of the seeded sample (resume a stopped run)")
    args = parser.parse_args()
    if args.archs is None:
        args.archs = 50 if args.acceptance else 3
    if args.batch is None:
        args.batch = 16 if args.acceptance else 64
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    archs = sample_archs(args.archs, args.seed)
    if args.acceptance:
        sys.exit(run_acceptance(args, archs))
    run_timing(args, archs)


if __name__ == "__main__":
    main()
