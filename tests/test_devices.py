"""Devices: every tensor is created where the model or its inputs live, ``--device`` is
checked before anything runs, data go to the device once; and, where CUDA is present
(``@pytest.mark.cuda``, skipped elsewhere), GradSign, Ψ, training and the pipelines
give the CPU's numbers.

This machine has no GPU, so two CPU-only routes check device-agnosticism: a static walk
over the source (every tensor factory call names its device, or is allow-listed with
its reason), and a run of the proxies, solvers, assumption checks, trainer and scoring
pipeline under a ``TorchFunctionMode`` that records every factory call our code makes
without a device.

Cross-device criterion (the ``cuda`` tests): the per-sample gradient signs agree on
every entry whose magnitude exceeds ``tol`` times the largest of its tensor (float64:
1e-9, float32 with TF32 off: 1e-3; round-off between devices is ~1e-16 resp. ~1e-7
relative to the summands, far below), and GradSign differs by at most twice the number
of entries below that (each can change one |s_k| by at most 2). Entries that are
mathematically zero but numerically tiny (a BatchNorm removes the mean a weight's
gradient sums over) have a round-off sign on each device, so exact equality of the
counts is not a property any device pair has.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import proxies
import theory
from empirical import architectures, data as datasets, space_scoring
from empirical.cli import main
from empirical.devices import resolve_device
from empirical.plan import expand
from empirical.scoring import NetworkSpec, build_network, scoring_batch
from empirical.spaces import mlp, nb201, nds
from empirical.store import ResultsStore
from empirical.training import Recipe, train
from empirical.validation import schema
from empirical.validation.job import validation_job
from paper_repro.__main__ import main as repro_main
from proxies.engine import per_sample_grads, training_mode
from theory.registry import get_assumption

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("proxies", "theory", "empirical")
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "eye", "randn", "rand", "randint", "randperm", "tensor",
             "linspace"}
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

#: Factory calls where the CPU is intended: (file, enclosing function, factory) -> why.
ALLOWED_ON_CPU = {
    ("empirical/space_scoring.py", "random_cifar", "randn"): "data built on the CPU, moved by DataSplit.to in a job",
    ("empirical/space_scoring.py", "random_cifar", "randint"): "data built on the CPU, moved by DataSplit.to in a job",
    ("empirical/scoring.py", "scoring_batch", "randperm"): "CPU generator: the same batch on every device; "
                                                           "the index is moved to the split's device",
    ("empirical/training.py", "train", "randperm"): "CPU generator: the same sample order on every device; "
                                                    "each mini-batch index is moved to the data's device",
    ("empirical/validation/job.py", "prepare_data", "randperm"): "choosing S before the data move to the device",
    ("proxies/baselines/zen.py", "gaussian_parameters", "randn"): "CPU generator (same draws everywhere), then .to",
    ("proxies/baselines/zen.py", "zen", "randn"): "CPU generator (same draws everywhere), then .to(inputs.device)",
    ("theory/hessian.py", "top_eigenvalue", "randn"): "CPU generator (same start vectors everywhere), then .to",
    ("theory/assumptions.py", "segment_points", "rand"): "CPU generator (same segment points everywhere), then .to",
}


# ----------------------------------------------------------------- static: the source


def _factory_calls(path: Path) -> list[tuple[str, str, int, bool]]:
    """(enclosing function, factory, line, names a device) for every ``torch.<factory>(...)``
    call inside a function of ``path`` (module-level code creates no tensors here)."""
    found = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = scope + (node.name,)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            functions = [s for s in scope if not s[:1].isupper()] or list(scope)
            if functions:
                has_device = any(k.arg == "device" for k in node.keywords)
                found.append((functions[0], node.func.attr, node.lineno, has_device))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(path.read_text(), filename=str(path)), ())
    return found


def test_every_tensor_factory_call_names_its_device_or_is_allowed_on_cpu():
    """Inside any function of proxies/, theory/ and empirical/ (a superset of the functions
    that receive tensors or models), ``torch.zeros/ones/empty/full/arange/eye/randn/rand/
    randint/randperm/tensor/linspace`` pass ``device=``, unless the call is in
    ``ALLOWED_ON_CPU``; and every allow-list entry still matches a call (no stale entry).
    The key is the outermost enclosing function (methods: the method)."""
    offending, used = [], set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for function, factory, line, has_device in _factory_calls(path):
                key = (rel, function, factory)
                if has_device:
                    continue
                if key in ALLOWED_ON_CPU:
                    used.add(key)
                else:
                    offending.append(f"{rel}:{line} torch.{factory} in {function}() has no device=")
    assert not offending, "tensor factories without a device:\n" + "\n".join(offending)
    assert used == set(ALLOWED_ON_CPU), f"stale allow-list entries: {sorted(set(ALLOWED_ON_CPU) - used)}"


def test_the_static_walk_finds_a_factory_call_without_device(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("import torch\n\ndef f(x):\n    def g():\n        return torch.zeros(3)\n"
                      "    return torch.ones(2, device=x.device), g\n\nclass A:\n    def m(self, x):\n"
                      "        return torch.arange(4)\n")
    assert _factory_calls(source) == [("f", "zeros", 5, False), ("f", "ones", 6, True), ("m", "arange", 10, False)]


# ---------------------------------------------------------------- dynamic: a run on CPU


class _FactoryWatch(TorchFunctionMode):
    """Records the factory calls made directly by our packages without ``device=``."""

    def __init__(self):
        super().__init__()
        self.calls: set[tuple[str, str, str]] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in FACTORIES and "device" not in kwargs:
            caller = sys._getframe(1)  # the Python frame that called the factory
            path = Path(caller.f_code.co_filename).resolve()
            if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in PACKAGES:
                self.calls.add((path.relative_to(ROOT).as_posix(), caller.f_code.co_name, name))
        return func(*args, **kwargs)


def test_a_run_of_proxies_solvers_trainer_and_pipeline_creates_tensors_on_the_model_device(tmp_path):
    split = space_scoring.load_scoring_data("digits")
    watch = _FactoryWatch()
    with watch:
        model = build_network(NetworkSpec("nb201", arch=ARCH, C=2, N=1), split, 0)
        x, y = scoring_batch(split, 6, 0, flat=False)
        for name in proxies.names():
            proxies.compute(name, model, x, y)
        torch.manual_seed(0)
        net = mlp.build(4, 5, 1, 3).double()
        X, Y = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
        for solver in theory.solvers.SOLVERS:
            opt = theory.sample_wise_optima(net, X, Y, loss="mse", solver=solver, max_iter=20)
        opt = theory.sample_wise_optima(net, X, Y, loss="mse", solver="gauss_newton")
        theory.psi(opt, 1), theory.psi(opt, 2)
        get_assumption("A1").estimate(net, X, Y, opt, "mse", points_per_segment=1, max_iter=5)
        theory.evaluate_bounds(["theorem1_uniform"], net, X, Y, opt, "mse")
        theory.sign_side_agreement(net, X, Y, opt, loss="mse")
        train(model, split, Recipe(epochs=1, batch_size=256), seed=0)
        space_scoring.score_space(tmp_path, nb201.all_archs()[:2], proxies=["gradsign"], data="digits", batch=4,
                                  C=2, N=1, progress=False)
    unexpected = {c for c in watch.calls if (c[0], c[1], c[2]) not in ALLOWED_ON_CPU}
    assert not unexpected, f"factory calls without a device: {sorted(unexpected)}"
    assert watch.calls, "the watch saw no factory call at all: it would not see a missing device either"


# ------------------------------------------------------------------ --device refusals


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_unavailable_devices_are_refused_naming_the_problem(no_gpu, monkeypatch):
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS .* is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="device must be one of 'cpu', 'cuda', 'mps'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="only cuda takes an index"):
        resolve_device("cpu:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        resolve_device("cuda:3")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("argv", [
    ["score", "--space", "mlp", "--width", "4", "--batch", "4", "--device", "cuda"],
    ["space-score", "--limit", "1", "--device", "cuda"],
    ["validate", "presets/quick.toml", "--device", "cuda"],
])
def test_commands_refuse_cuda_without_cuda_before_running(no_gpu, argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run")] if argv[0] != "score" else argv) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_repro_refuses_cuda_without_cuda(no_gpu, tmp_path, capsys):
    assert repro_main(["rank-correlation", "--toy", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_a_batch_jobs_data_go_to_the_device_once_per_process(tmp_path, monkeypatch):
    moves = []
    original = datasets.DataSplit.to

    def counting(self, device):
        moves.append(str(device))
        return original(self, device)

    monkeypatch.setattr(datasets.DataSplit, "to", counting)
    space_scoring._scoring_data_on.cache_clear()
    summary, counts = space_scoring.score_space(tmp_path, nb201.all_archs()[:6], proxies=["params"], data="digits",
                                                batch=4, C=2, N=1, archs_per_job=2, progress=False, device="cpu")
    assert summary.total == 3 and counts["ok"] == 6 and moves == ["cpu"]
    table = space_scoring.space_table(tmp_path, expand=False)
    assert len(table) == 6
    with ResultsStore(tmp_path, create=False) as store:
        assert {r["timings"]["device"] for r in store.rows()} == {"cpu"}


def test_device_is_not_part_of_a_rows_identity():
    kwargs = dict(proxies=["gradsign"], data="digits", batch=4, C=2, N=1)
    jobs = space_scoring.arch_jobs([ARCH], **kwargs)
    assert "device" not in jobs[0].params
    assert space_scoring.batch_jobs(jobs, 1, device="cuda")[0].params["device"] == "cuda"


# ------------------------------------------------------------------ CUDA (where present)


@pytest.fixture
def exact_float32():
    """TF32 off: CUDA's float32 convolutions and matmuls in full float32 precision."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _toy_networks():
    nb101_cell = architectures.nb101_cell([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                                          ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    nds_cell = architectures.nds_cell(nds.GENOTYPES["darts_v2"], width=4, depth=3)
    return [NetworkSpec("nb201", arch=ARCH, C=4, N=1), NetworkSpec("nb101", cell=nb101_cell, C=4, N=1),
            NetworkSpec("nds-darts", cell=nds_cell, C=None, N=None)]


def _signs_agree(spec, dtype, tol):
    split = space_scoring.load_scoring_data("digits")
    x, y = scoring_batch(split, 8, 0, flat=False)
    out = {}
    for device in ("cpu", "cuda"):
        model = build_network(spec, split, 0, device).to(dtype)
        xs, ys = x.to(device=device, dtype=dtype), y.to(device)
        with training_mode(model, True):
            grads = per_sample_grads(model, xs, ys, F.cross_entropy, params="weights")
        out[device] = ({k: g.cpu() for k, g in grads.items()}, proxies.gradsign(model, xs, ys))
    (cpu, gs_cpu), (gpu, gs_gpu) = out["cpu"], out["cuda"]
    near_zero = 0
    for name, g in cpu.items():
        clear = g.abs() > tol * g.abs().max()
        assert torch.equal(torch.sign(g)[clear], torch.sign(gpu[name])[clear]), f"{spec.label()}: {name}"
        near_zero += int((~clear).sum())
    assert abs(gs_cpu - gs_gpu) <= 2 * near_zero
    assert gs_gpu == float(sum(torch.sign(g).sum(0).abs().sum() for g in gpu.values()))


@pytest.mark.cuda
@pytest.mark.parametrize("spec", _toy_networks(), ids=lambda s: s.space)
def test_gradsign_signs_agree_between_cpu_and_cuda_in_float64(spec):
    _signs_agree(spec, torch.float64, 1e-9)


@pytest.mark.cuda
@pytest.mark.parametrize("spec", _toy_networks(), ids=lambda s: s.space)
def test_gradsign_signs_agree_between_cpu_and_cuda_in_float32(spec, exact_float32):
    _signs_agree(spec, torch.float32, 1e-3)


@pytest.mark.cuda
def test_psi_and_optima_agree_between_cpu_and_cuda():
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = mlp.build(6, 8, 2, 3, activation="tanh").double().to(device)
        gen = torch.Generator().manual_seed(1)
        X = torch.randn(16, 6, generator=gen, dtype=torch.float64).to(device)
        Y = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(device)
        opt = theory.sample_wise_optima(net, X, Y, loss="mse", solver="gauss_newton")
        results[device] = (opt, theory.psi(opt, 2), theory.psi(opt, 1))
    (cpu, psi2_cpu, psi1_cpu), (gpu, psi2_gpu, psi1_gpu) = results["cpu"], results["cuda"]
    assert torch.equal(cpu.converged, gpu.converged.cpu()) and bool(cpu.converged.all())
    assert float((cpu.theta - gpu.theta.cpu()).abs().max()) <= 1e-8 * float(cpu.theta.abs().max())
    assert psi2_gpu == pytest.approx(psi2_cpu, rel=1e-8) and psi1_gpu == pytest.approx(psi1_cpu, rel=1e-8)


@pytest.mark.cuda
def test_training_agrees_between_cpu_and_cuda():
    split = datasets.load("iris", seed=0)
    out = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = mlp.build(4, 16, 1, 3).double().to(device)
        moved = split.to(device)
        moved = datasets.DataSplit(moved.name, moved.X_train.double(), moved.y_train, moved.X_test.double(),
                                   moved.y_test, moved.num_classes, moved.input_shape, moved.seed)
        out[device] = train(net, moved, Recipe(epochs=20, batch_size=16, lr=0.05), seed=0)
    for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert out["cuda"][key] == pytest.approx(out["cpu"][key], rel=1e-9, abs=1e-12), key


@pytest.mark.cuda
def test_space_score_and_validation_on_cuda_match_cpu(tmp_path, exact_float32):
    archs = nb201.all_archs()[::3001][:4]
    kwargs = dict(proxies=["gradsign", "params"], data="digits", batch=8, C=4, N=1, progress=False)
    space_scoring.score_space(tmp_path / "cpu", archs, **kwargs)
    space_scoring.score_space(tmp_path / "cuda", archs, device="cuda", **kwargs)
    cpu = space_scoring.space_table(tmp_path / "cpu", expand=False).set_index("arch")
    gpu = space_scoring.space_table(tmp_path / "cuda", expand=False).set_index("arch")
    assert (gpu.loc[archs, "params"] == cpu.loc[archs, "params"]).all()
    assert ((gpu.loc[archs, "gradsign"] - cpu.loc[archs, "gradsign"]).abs()
            <= 1e-3 * cpu.loc[archs, "gradsign"]).all()
    (tmp_path / "toy.toml").write_text('[data]\nname = "iris"\nn = 8\nn_heldout = 4\n[model]\nwidth = 3\n'
                                       '[theory]\npower_max_iter = 20\nlandscape_points = 5\n[train]\nepochs = 5\n')
    job = expand(schema.load(tmp_path / "toy.toml"))[0]
    rows = {device: validation_job(job, device=device) for device in ("cpu", "cuda")}
    assert rows["cuda"]["device"].startswith("cuda") and rows["cpu"]["device"] == "cpu"
    assert rows["cuda"]["psi_2"] == pytest.approx(rows["cpu"]["psi_2"], rel=1e-6)
