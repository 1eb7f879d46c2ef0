"""GradSign speed on NAS-Bench-201 (C=16, N=5, 3x32x32), in one process.

Compares `proxies.gradsign` against
  (a) the reference-style loop: one forward+backward per sample, signs in numpy;
  (b) one batched forward+backward of the same batch (the floor any per-sample method
      is measured against).
Peak memory of each method is measured in a fresh subprocess: the growth of the peak
resident set (VmHWM, reset through /proc/self/clear_refs after building the network and
batch; ru_maxrss would carry the parent's high-water mark across exec).

    python bench/bench_gradsign.py [--batches 64 128] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proxies  # noqa: E402
from empirical.spaces import nb201  # noqa: E402

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def reference_loop(model, x, y):
    model.train()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = None
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        signs = np.concatenate([np.sign(m.weight.grad.numpy()).ravel() for m in layers])
        total = signs if total is None else total + signs
    return float(np.abs(total).sum())


def batched_backward(model, x, y):
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return 0.0


def ours(model, x, y):
    return proxies.gradsign(model, x, y)


METHODS = {"gradsign": ours, "reference_loop": reference_loop, "batched_fwd_bwd": batched_backward}


def setup(batch, seed=0):
    torch.manual_seed(seed)
    model = nb201.build(ARCH, C=16, N=5, num_classes=10, in_channels=3)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    return model, x, y


def best_time(fn, model, x, y, repeats):
    fn(model, x, y)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(model, x, y)
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_child(method, batch, threads):
    torch.set_num_threads(threads)
    model, x, y = setup(batch)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    METHODS[method](model, x, y)
    print(json.dumps({"peak_mib": (_status_kib("VmHWM") - base) / 1024}))


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(method, batch, threads):
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", method, str(batch), "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-child", nargs=2, metavar=("METHOD", "BATCH"))
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child[0], int(args.memory_child[1]), args.threads)
        return
    torch.set_num_threads(args.threads)
    print(f"NB201 C=16 N=5, 3x32x32, torch {torch.__version__}, {args.threads} threads, best of {args.repeats}")
    print("batch | gradsign s | reference loop s | batched fwd+bwd s | loop/gradsign | gradsign/batched | peak MiB (gradsign, loop, batched)")
    for batch in args.batches:
        model, x, y = setup(batch)
        t = {name: best_time(fn, model, x, y, args.repeats) for name, fn in METHODS.items()}
        mem = [peak_memory(name, batch, args.threads) for name in METHODS]
        print(
            f"{batch} | {t['gradsign']:.2f} | {t['reference_loop']:.2f} | {t['batched_fwd_bwd']:.2f} | "
            f"{t['reference_loop'] / t['gradsign']:.2f}x | {t['gradsign'] / t['batched_fwd_bwd']:.2f}x | "
            f"{mem[0]:.0f}, {mem[1]:.0f}, {mem[2]:.0f}"
        )


if __name__ == "__main__":
    main()
