"""Vectorised sample-wise solvers vs a sequential per-sample loop, on digits MLPs.

For each (n, width) the script runs `theory.sample_wise_optima` once over all n samples
(vmapped, chunked) and then the same solver with the same options on one sample at a
time (a Python loop of n calls with a batch of one: the same code path, so the same
iterations and the same θ*_i, which the script checks). Both are warmed up on two
samples first (the first torch.func transform of a process pays seconds of one-off
set-up). The script also times the vectorised solver with ``factored_linear=False``
(every parameter differentiated directly, the route before nn.Linear layers were
factored) and the fixed cost of one call (``max_iter=0``). The loop runs on the first ``--loop-samples`` samples only and its time is extrapolated per sample to n (said in
the output). Data: scikit-learn digits as 64-vectors scaled by 1/16, the stratified
80 % train split (1,437 samples; n = 200 takes its first 200), one-hot targets, squared
loss ½‖f(x) − y‖², float64, model 64 → width → 10 (ReLU), seed 0.

    python bench/bench_psi.py [--sizes 200 1437] [--widths 64 256] [--solvers gauss_newton gd]
                              [--loop-samples 100] [--threads 1]

``--nb201 RUNS`` instead times Gauss–Newton on a convolutional cell: the NAS-Bench-201
network of ``NB201_ARCH`` (C=8, N=1, 10 classes, 1 input channel; every edge a 3x3 conv),
digits 1x8x8 from ``empirical.data.load("digits", seed=0)`` (the first ``--nb201-n``
training samples), one-hot targets, float32, ``params="weights"``, BatchNorm in training
mode. Per run, in this order: the factored route (Conv2d and Linear weights factored),
the generic route (``factored_linear=False``) and one ``proxies.gradsign`` call on the
same model and batch, timed as the median of ``--gradsign-calls`` calls (one call varies by
up to 2x between calls on this machine); the script prints each run's times and ratios,
then their range. Before the runs it prints the arithmetic of both (`pass_arithmetic`:
multiplications per sample of a Gauss–Newton pass and of GradSign, the number of sample
passes the solve takes, counted, and torch's FlopCounterMode tally of the same solve), so
that a ratio of times can be read against the ratio of work.
Peak memory is the process's peak resident set size (``resource.getrusage``) after each
phase: it only grows, so the generic route's figure is the peak of both routes.

    python bench/bench_psi.py --nb201 3 [--nb201-n 128] [--threads 1] [--gradsign-calls 5] [--today-tree DIR]

``--today-tree DIR`` also times, in each run, the same default call (``params="weights"``)
with the code of another checkout in a fresh process (one-off set-up untimed): with
``git worktree add ../today e142d2c`` the code before the factored convolution, which
the issue's "8.1 s today" timed.

``--nb201-all-params RUNS`` times the same cell with ``params="all"`` (BatchNorm affine
parameters generic, as ``space-score --psi`` scores): one Jacobian pass per Gauss–Newton
iteration (`theory.passes.SamplePasses.one_jacobian_pass`) against the earlier rule, the
check as a separate gradient pass, in the same process.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proxies  # noqa: E402
from proxies.engine import select_param_names  # noqa: E402
import theory  # noqa: E402
from empirical import data as empirical_data  # noqa: E402
from empirical.spaces import nb201  # noqa: E402
from theory.factored_linear import find_factored_linears, grad_sq_norm_cost, gram_cost  # noqa: E402
from theory.passes import SamplePasses  # noqa: E402

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

SOLVER_OPTIONS = {
    "gauss_newton": {},
    "gd": {"lr": 0.05, "tol": 1e-7, "max_iter": 5000},
}


def digits_train(dtype=torch.float64):
    data = load_digits()
    X_train, _, y_train, _ = train_test_split(
        data.data, data.target, test_size=360, stratify=data.target, random_state=0
    )
    X = torch.tensor(X_train / 16.0, dtype=dtype)
    y = torch.tensor(y_train)
    return X, F.one_hot(y, 10).to(dtype)


def mlp(width, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)).to(dtype)


def run(n, width, solver, loop_samples):
    X, Y = digits_train()
    X, Y = X[:n], Y[:n]
    model = mlp(width)
    opts = SOLVER_OPTIONS[solver]
    # Warm-up outside the timings: the first torch.func transform in a process pays
    # one-off lazy imports and dispatch set-up (seconds for jacrev).
    theory.sample_wise_optima(model, X[:2], Y[:2], "mse", solver, **{**opts, "max_iter": 2})

    start, cpu = time.perf_counter(), time.process_time()
    opt = theory.sample_wise_optima(model, X, Y, "mse", solver, **opts)
    psi2 = theory.psi(opt, on_unconverged="exclude")
    t_vec, c_vec = time.perf_counter() - start, time.process_time() - cpu

    # The same vectorised solver with every parameter differentiated directly (no
    # factored nn.Linear layers): what the factoring buys.
    start = time.perf_counter()
    generic = theory.sample_wise_optima(model, X, Y, "mse", solver, factored_linear=False, **opts)
    t_generic = time.perf_counter() - start
    generic_diff = float((generic.theta - opt.theta).abs().max())

    # Fixed cost of one call (validation, probe, set-up, one evaluation): max_iter = 0.
    calls = 20
    start = time.perf_counter()
    for i in range(calls):
        theory.sample_wise_optima(model, X[i:i + 1], Y[i:i + 1], "mse", solver, **{**opts, "max_iter": 0})
    t_call = (time.perf_counter() - start) / calls

    k = min(n, loop_samples)
    start, cpu = time.perf_counter(), time.process_time()
    singles = [theory.sample_wise_optima(model, X[i:i + 1], Y[i:i + 1], "mse", solver, **opts) for i in range(k)]
    t_loop = (time.perf_counter() - start) * n / k
    c_loop = (time.process_time() - cpu) * n / k

    theta_loop = torch.cat([s.theta for s in singles])
    iters_loop = torch.cat([s.iterations for s in singles])
    same_iters = bool(torch.equal(iters_loop, opt.iterations[:k]))
    max_diff = float((theta_loop - opt.theta[:k]).abs().max())
    return {
        "n": n, "width": width, "m": opt.theta.shape[1], "solver": solver,
        "t_vec": t_vec, "t_loop": t_loop, "loop_measured": k, "ratio": t_loop / t_vec,
        "c_vec": c_vec, "c_loop": c_loop, "c_ratio": c_loop / c_vec,
        "psi2": psi2, "max_loss": float(opt.loss.max()), "converged": int(opt.converged.sum()),
        "mean_iter": float(opt.iterations.float().mean()), "same_iters": same_iters, "max_diff": max_diff,
        "chunk": opt.options["chunk_size"],
        "t_generic": t_generic, "generic_diff": generic_diff, "t_call_ms": 1000 * t_call,
    }


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


_TODAY_SNIPPET = """
import sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[3]))
import theory
from empirical import data as empirical_data
from empirical.spaces import nb201
torch.manual_seed(0)
model = nb201.build(sys.argv[1], C=8, N=1, num_classes=10, in_channels=1)
split = empirical_data.load("digits", seed=0)
n = int(sys.argv[2])
X, Y = split.X_train[:n].float(), F.one_hot(split.y_train[:n], 10).float()
theory.sample_wise_optima(model, X[:2], Y[:2], "mse", "gauss_newton", params="weights", max_iter=1)
start = time.perf_counter()
opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="weights")
seconds = time.perf_counter() - start
print(seconds, float(opt.iterations.float().mean()), int(opt.converged.sum()),
      theory.psi(opt, on_unconverged="exclude"))
"""


def _time_today(tree, n, threads):
    """The same solve with the code of another checkout (``--today-tree``), in a fresh
    process: (seconds, mean iterations, converged, Ψ_2); one-off set-up not timed."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run([sys.executable, "-c", _TODAY_SNIPPET, NB201_ARCH, str(n), str(threads)], env=env,
                         cwd=os.path.abspath(tree), capture_output=True, text=True, check=True)
    seconds, iters, converged, psi = out.stdout.split()[-4:]
    return float(seconds), float(iters), int(converged), float(psi)


def _nb201_problem(n):
    """The NB201 cell of ``NB201_ARCH`` (seed 0) and the first n digits: (model, X, labels, one-hot Y)."""
    torch.manual_seed(0)
    model = nb201.build(NB201_ARCH, C=8, N=1, num_classes=10, in_channels=1)
    data = empirical_data.load("digits", seed=0)
    X, labels = data.X_train[:n].float(), data.y_train[:n]
    return model, X, labels, F.one_hot(labels, 10).float()


def layer_shapes(model, x, params="weights"):
    """``{layer: (T, out, in, input needs a gradient)}`` for every layer the solvers factor
    (`theory.factored_linear.find_factored_linears` on one sample ``x``): its output
    positions T, output features and input features per position (a Conv2d's patch size),
    and whether the gradient reaches its input (False for a layer fed by the data)."""
    names = set(select_param_names(model, params))
    moving = {name: p for name, p in model.named_parameters() if name in names}
    layers = find_factored_linears(model, moving, lambda: model(x))
    modules = dict(model.named_modules())
    needs = {}
    hooks = [modules[name].register_forward_hook(
        lambda module, args, out, name=name: needs.__setitem__(name, args[0].requires_grad))
        for name in layers.layers]
    try:
        with torch.enable_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    shapes = {}
    for name, layer in layers.layers.items():
        if layer.conv:
            T, out, inp = math.prod(layer.out_shape[:1] + layer.out_shape[2:]), layer.out_shape[1], \
                math.prod(layer.conv.weight_shape)
        else:
            T, out, inp = math.prod(layer.out_shape[:-1]), layer.out_shape[-1], modules[name].in_features
        shapes[name] = (T, out, inp, needs[name])
    return shapes


def pass_arithmetic(shapes, k):
    """Multiplications per sample of one Gauss–Newton Jacobian pass with its step, and of
    GradSign's per-sample gradient, counted over the factored layers of `layer_shapes`
    (convolutions and matrix products only: BatchNorm, ReLU, pooling and the k × k solve
    are not counted).

    A Gauss–Newton pass: the forward pass; k backward passes through the layer inputs
    (``∂r/∂out`` for the k residuals); the Gram share `gram_cost` of each layer; the
    check ``‖J_iᵀr_i‖`` (δ = Σ_k r_k B_k, then `grad_sq_norm_cost`); the step (δ = Σ_k u_k
    B_k, then W −= δᵀa). GradSign: the forward pass, one backward pass through the inputs
    and each layer's per-sample weight gradient ``Σ_t δ_t ⊗ a_t``."""
    forward = sum(T * out * inp for T, out, inp, _ in shapes.values())
    through = sum(T * out * inp for T, out, inp, needs in shapes.values() if needs)
    gram = sum(gram_cost(k, T, out, inp)[1] for T, out, inp, _ in shapes.values())
    check = sum(k * T * out + grad_sq_norm_cost(T, out, inp)[1] for T, out, inp, _ in shapes.values())
    step = sum(k * T * out + T * out * inp for T, out, inp, _ in shapes.values())
    return {"forward": forward, "backward": k * through, "gram": gram, "check": check, "step": step,
            "gauss_newton_pass": forward + k * through + gram + check + step,
            "gradsign_sample": forward + through + forward}


def count_sample_passes(solve):
    """Run ``solve()`` counting the samples of every Jacobian pass (the working set of
    each `theory.passes.SamplePasses.residual_jacobian` call, stopped samples still carried
    included): ``(result, sample passes, passes)``."""
    counts = [0, 0]
    original = SamplePasses.residual_jacobian

    def counted(self, theta, bufs, x, y, **kwargs):
        counts[0] += x.shape[0]
        counts[1] += 1
        return original(self, theta, bufs, x, y, **kwargs)

    SamplePasses.residual_jacobian = counted
    try:
        result = solve()
    finally:
        SamplePasses.residual_jacobian = original
    return result, counts[0], counts[1]


def flop_tally(run):
    """``run()`` under torch's own count (``torch.utils.flop_counter.FlopCounterMode``):
    ``(its result, {op name: multiplications})``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = run()
    return result, {str(op): flops // 2 for op, flops in counter.get_flop_counts()["Global"].items()}


def report_arithmetic(model, X, Y, n):
    """Print the arithmetic of the factored solve against one GradSign call (see
    `pass_arithmetic`), with torch's FlopCounterMode tally of the same solve beside it.
    Returns ``(multiplications of the solve, of one GradSign call)``."""
    k = Y.shape[1]
    counts = pass_arithmetic(layer_shapes(model, X[:1]), k)
    solve = lambda: theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="weights")  # noqa: E731
    (opt, tally), sample_passes, passes = count_sample_passes(lambda: flop_tally(solve))
    _, forward_tally = flop_tally(lambda: model(X[:1]))
    solve_total = sample_passes * counts["gauss_newton_pass"]
    gradsign_total = n * counts["gradsign_sample"]
    mega = {key: value / 1e6 for key, value in counts.items()}
    print(f"Arithmetic (multiplications, M, per sample; convolutions and matrix products of the factored layers): "
          f"forward {mega['forward']:.3f} (torch FlopCounterMode on one forward pass: "
          f"{sum(forward_tally.values()) / 1e6:.3f}); one Gauss–Newton pass {mega['gauss_newton_pass']:.2f} = "
          f"forward {mega['forward']:.2f} + {k} backward {mega['backward']:.2f} + Gram {mega['gram']:.2f} + check "
          f"{mega['check']:.2f} + step {mega['step']:.2f}; GradSign {mega['gradsign_sample']:.2f}")
    print(f"  the solve: {passes} Jacobian passes, {sample_passes} sample passes ({sample_passes / n:.2f} per sample; "
          f"mean iterations {float(opt.iterations.float().mean()):.2f}, so "
          f"{sample_passes / n - float(opt.iterations.float().mean()) - 1:.2f} per sample are stopped samples carried "
          f"along): {solve_total / 1e9:.1f} G multiplications; one GradSign call {gradsign_total / 1e9:.2f} G; "
          f"ratio {solve_total / gradsign_total:.0f}x")
    print(f"  FlopCounterMode over the same solve, per sample pass (M): convolution {tally.get('aten.convolution', 0) / sample_passes / 1e6:.2f}, "
          f"convolution_backward {tally.get('aten.convolution_backward', 0) / sample_passes / 1e6:.2f}, "
          f"bmm {tally.get('aten.bmm', 0) / sample_passes / 1e6:.2f}, baddbmm "
          f"{tally.get('aten.baddbmm', 0) / sample_passes / 1e6:.2f}; total {sum(tally.values()) / sample_passes / 1e6:.2f} "
          f"(ours {mega['gauss_newton_pass']:.2f})", flush=True)
    return solve_total, gradsign_total


def run_nb201(runs, n, today_tree=None, threads=1, gradsign_calls=5):
    model, X, labels, Y = _nb201_problem(n)
    weights = set(select_param_names(model, "weights"))
    moving = sum(p.numel() for name, p in model.named_parameters() if name in weights)
    # Warm-up of both routes and of GradSign (one-off torch.func set-up).
    for factored in (True, False):
        theory.sample_wise_optima(model, X[:2], Y[:2], "mse", "gauss_newton", params="weights", max_iter=1,
                                  factored_linear=factored)
    proxies.gradsign(model, X, labels)
    print(f"NB201 cell {NB201_ARCH}, C=8, N=1: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{moving} moving (params=\"weights\"); n = {n}, float32, Gauss–Newton defaults", flush=True)
    solve_mults, gradsign_mults = report_arithmetic(model, X, Y, n)
    print(f"GradSign s: the median of {gradsign_calls} calls in the run (their range in brackets); "
          f"G mult/s: multiplications counted above per second")
    print("| run | factored s | generic s | GradSign s | generic / factored | factored / GradSign | generic / GradSign | "
          "G mult/s factored (GradSign) | mean iters factored (generic) | converged factored (generic) | max |Δθ| | "
          "Ψ_2 factored (generic) | peak RSS MiB after factored / generic |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    speedups, today, today_ratios, gradsign_ratios = [], [], [], []
    for run in range(1, runs + 1):
        times, opts = {}, {}
        peaks = []
        for factored in (True, False):
            start = time.perf_counter()
            opts[factored] = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="weights",
                                                       factored_linear=factored)
            times[factored] = time.perf_counter() - start
            peaks.append(_peak_mib())
        calls = []
        for _ in range(gradsign_calls):
            start = time.perf_counter()
            proxies.gradsign(model, X, labels)
            calls.append(time.perf_counter() - start)
        t_gs = statistics.median(calls)
        if today_tree:
            today.append(_time_today(today_tree, n, threads))
            print(f"  run {run}, the code of {today_tree}: {today[-1][0]:.2f} s (mean iters {today[-1][1]:.2f}, "
                  f"{today[-1][2]} converged, Ψ_2 {today[-1][3]:.6g}); today / factored "
                  f"{today[-1][0] / times[True]:.2f}x", flush=True)
            today_ratios.append(today[-1][0] / times[True])
        fac, gen = opts[True], opts[False]
        speedups.append(times[False] / times[True])
        gradsign_ratios.append(times[True] / t_gs)
        psi = [theory.psi(o, on_unconverged="exclude") for o in (fac, gen)]
        print(f"| {run} | {times[True]:.2f} | {times[False]:.2f} | {t_gs:.3f} ({min(calls):.3f}–{max(calls):.3f}) | "
              f"{speedups[-1]:.2f}x | {gradsign_ratios[-1]:.0f}x | {times[False] / t_gs:.0f}x | "
              f"{solve_mults / times[True] / 1e9:.1f} ({gradsign_mults / t_gs / 1e9:.1f}) | "
              f"{float(fac.iterations.float().mean()):.2f} ({float(gen.iterations.float().mean()):.2f}) | "
              f"{int(fac.converged.sum())} ({int(gen.converged.sum())}) of {n} | "
              f"{float((fac.theta - gen.theta).abs().max()):.1e} | {psi[0]:.6g} ({psi[1]:.6g}) | "
              f"{peaks[0]:.0f} / {peaks[1]:.0f} |", flush=True)
    print(f"generic / factored over {runs} runs: {min(speedups):.2f}x to {max(speedups):.2f}x")
    print(f"factored / GradSign (median call) over {runs} runs: {min(gradsign_ratios):.0f}x to "
          f"{max(gradsign_ratios):.0f}x; counted multiplications {solve_mults / gradsign_mults:.0f}x")
    if today_ratios:
        print(f"{today_tree} / factored over {runs} runs: {min(today_ratios):.2f}x to {max(today_ratios):.2f}x")


def run_nb201_all_params(runs, n):
    """params="all" (BatchNorm affine generic beside factored convs, as `space-score --psi`
    scores): one Jacobian pass per iteration against the check as a separate gradient
    pass (the rule before `SamplePasses.one_jacobian_pass`), same process, same cell."""
    from theory.passes import SamplePasses

    model, X, _, Y = _nb201_problem(n)
    one_pass = SamplePasses.one_jacobian_pass
    separate = property(lambda self: self.all_factored)
    theory.sample_wise_optima(model, X[:2], Y[:2], "mse", "gauss_newton", params="all", max_iter=1)
    print(f"NB201 cell {NB201_ARCH}, C=8, N=1, params=\"all\", n = {n}, float32, Gauss–Newton defaults")
    print("| run | one pass s | separate check s | separate / one pass | Ψ_2 one pass (separate) | "
          "converged one pass (separate) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    try:
        for run in range(1, runs + 1):
            times, psi, conv = {}, {}, {}
            for name, rule in (("one", one_pass), ("separate", separate)):
                SamplePasses.one_jacobian_pass = rule
                start = time.perf_counter()
                opt = theory.sample_wise_optima(model, X, Y, "mse", "gauss_newton", params="all")
                times[name] = time.perf_counter() - start
                psi[name] = theory.psi(opt, on_unconverged="exclude")
                conv[name] = int(opt.converged.sum())
            ratios.append(times["separate"] / times["one"])
            print(f"| {run} | {times['one']:.2f} | {times['separate']:.2f} | {ratios[-1]:.2f}x | "
                  f"{psi['one']:.6g} ({psi['separate']:.6g}) | {conv['one']} ({conv['separate']}) of {n} |", flush=True)
    finally:
        SamplePasses.one_jacobian_pass = one_pass
    print(f"separate / one pass over {runs} runs: {min(ratios):.2f}x to {max(ratios):.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1437])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--solvers", nargs="+", default=["gauss_newton", "gd"], choices=sorted(SOLVER_OPTIONS))
    parser.add_argument("--loop-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--nb201", type=int, default=0, metavar="RUNS",
                        help="time Gauss–Newton on the NB201 conv cell instead, RUNS times")
    parser.add_argument("--nb201-n", type=int, default=128)
    parser.add_argument("--gradsign-calls", type=int, default=5,
                        help="--nb201: GradSign calls per run; their median is the ratios' denominator")
    parser.add_argument("--today-tree", metavar="DIR",
                        help="--nb201: also time the solve with the code of another checkout (e.g. "
                             "`git worktree add ../today e142d2c`, the code the issue timed), in a fresh process")
    parser.add_argument("--nb201-all-params", type=int, default=0, metavar="RUNS",
                        help="time params='all' on the NB201 cell: one Jacobian pass vs a separate check")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.nb201_all_params:
        print(f"torch {torch.__version__}, {args.threads} thread(s); load average at start "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        run_nb201_all_params(args.nb201_all_params, args.nb201_n)
        return
    if args.nb201:
        print(f"torch {torch.__version__}, {args.threads} thread(s); load average at start "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        run_nb201(args.nb201, args.nb201_n, args.today_tree, args.threads, args.gradsign_calls)
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s), float64; loop timed on the first "
          f"{args.loop_samples} samples and extrapolated per sample to n where n is larger; "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    print("| solver | n | width | m | chunk | vectorised wall s (CPU s) | loop wall s (CPU s) | loop measured on | "
          "ratio wall (CPU) | mean iters | converged | max l*_i | Ψ_2 | same iters | max |Δθ| vs loop | "
          "generic route wall s | factored speed-up | max |Δθ| vs generic | one call, max_iter=0 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for solver in args.solvers:
        for width in args.widths:
            for n in args.sizes:
                r = run(n, width, solver, args.loop_samples)
                print(f"| {r['solver']} | {r['n']} | {r['width']} | {r['m']} | {r['chunk']} | {r['t_vec']:.1f} ({r['c_vec']:.1f}) | "
                      f"{r['t_loop']:.1f} ({r['c_loop']:.1f}){'' if r['loop_measured'] == n else ' extrap.'} | "
                      f"{r['loop_measured']} | {r['ratio']:.1f}x ({r['c_ratio']:.1f}x) | {r['mean_iter']:.1f} | {r['converged']}/{r['n']} | {r['max_loss']:.1e} | "
                      f"{r['psi2']:.6g} | {r['same_iters']} | {r['max_diff']:.1e} | {r['t_generic']:.1f} | "
                      f"{r['t_generic'] / r['t_vec']:.1f}x | {r['generic_diff']:.1e} | {r['t_call_ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
