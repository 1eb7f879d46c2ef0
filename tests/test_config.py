"""Config schema validation, grid expansion, job plans and job hashes."""
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from empirical.config import (
    Field, Grid, Rule, Schema, get, grid_points, load_config, requires, run_section, seeds_field, validate,
)
from empirical.plan import Job, canonical_json, expand, seeded

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# An example schema, only for these tests (real schemas live with their experiments).
SCHEMA = Schema({
    "kind": Field(str, choices=("bound_check",)),
    "seeds": seeds_field(default=[0]),
    "model": Schema({
        "depth": Field(int, ge=1, grid=True),
        "widths": Field(list, items=Field(int, ge=1), min_len=1),
        "activation": Field(str, default="tanh", choices=("tanh", "relu")),
    }),
    "optim": Schema(
        {
            "solver": Field(str, choices=("gauss_newton", "gd"), grid=True),
            "loss": Field(str, default="mse", choices=("mse", "ce"), grid=True),
            "lr": Field(float, default=0.1, gt=0, le=1),
        },
        rules=(requires("solver", "gauss_newton", "loss", ("mse",), why="Gauss-Newton needs a residual loss"),),
    ),
    "data": Schema({"n": Field(int, ge=1, default=32), "noise": Field(float, ge=0, default=0.0)}),
    "run": run_section(),
}, rules=(Rule("data.n", lambda c: None if c["data"]["n"] >= c["model"]["depth"]
               else "must be at least model.depth"),))


def good():
    return {
        "kind": "bound_check",
        "seeds": [0, 1],
        "model": {"depth": [1, 2], "widths": [8, 16]},
        "optim": {"solver": "gd", "loss": ["mse", "ce"], "lr": 1},
    }


def test_validate_normalises_and_fills_defaults():
    cfg = validate(good(), SCHEMA)
    assert list(cfg) == ["kind", "seeds", "model", "optim", "data", "run"]  # schema order
    assert cfg["model"]["activation"] == "tanh"
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert isinstance(cfg["model"]["depth"], Grid) and cfg["model"]["depth"] == [1, 2]
    assert cfg["optim"]["solver"] == Grid(["gd"])  # a scalar on a grid key is a 1-point axis
    assert cfg["run"] == {"executor": "local", "workers": 1, "ray_address": None, "threads_per_job": None}
    assert get(cfg, "data.n") == 32


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["model"].update(widths=[8, -3]), "model.widths[1]: must be a positive integer, got -3"),
    (lambda c: c["model"].update(widht=3), "model.widht: unknown key (did you mean 'widths'?)"),
    (lambda c: c.update(extra=1), "extra: unknown key"),
    (lambda c: c["model"].update(depth="three"), "model.depth: must be a positive integer, got 'three'"),
    (lambda c: c["model"].update(depth=[1, True]), "model.depth[1]: must be a positive integer, got True"),
    (lambda c: c["optim"].update(lr=0), "optim.lr: must be a number in (0, 1], got 0"),
    (lambda c: c["optim"].update(lr="0.1"), "optim.lr: must be a number in (0, 1], got '0.1'"),
    (lambda c: c["optim"].update(solver="gaus_newton"),
     "optim.solver: must be one of 'gauss_newton', 'gd', got 'gaus_newton' (did you mean 'gauss_newton'?)"),
    (lambda c: c["model"].update(widths=[]), "model.widths: must be a list of at least 1 element"),
    (lambda c: c["model"].update(depth=[]), "model.depth: a grid must list at least one value"),
    (lambda c: c["model"].update(depth=[2, 2]), "model.depth: grid values must be distinct"),
    (lambda c: c.update(data={"noise": float("nan")}), "data.noise: must be a finite number"),
    (lambda c: c["model"].pop("widths"), "model.widths: required key missing"),
    (lambda c: c.update(model=3), "model: must be a table, got 3"),
    (lambda c: c.update(seeds=[0, -1]), "seeds[1]: must be a non-negative integer, got -1"),
    (lambda c: c.update(run={"executor": "dask"}), "run.executor: must be one of 'local', 'ray', got 'dask'"),
])
def test_validate_rejects_with_dotted_key(mutate, message):
    cfg = good()
    mutate(cfg)
    with pytest.raises(ValueError, match=re.escape(message)):
        validate(cfg, SCHEMA)


def test_every_problem_is_reported_at_once():
    cfg = good()
    cfg["model"]["widths"] = [0, 4, -1]
    cfg["optim"]["lr"] = 5.0
    with pytest.raises(ValueError) as info:
        validate(cfg, SCHEMA)
    text = str(info.value)
    assert text.startswith("3 problems in the config:")
    for key in ("model.widths[0]:", "model.widths[2]:", "optim.lr:"):
        assert key in text


def test_cross_field_rule_is_checked_on_each_grid_point():
    cfg = good()
    cfg["optim"]["solver"] = ["gauss_newton", "gd"]
    with pytest.raises(ValueError) as info:
        validate(cfg, SCHEMA)
    text = str(info.value)
    assert "optim.solver: 'gauss_newton' requires loss in ('mse',), got 'ce' (Gauss-Newton needs a residual loss)" \
        in text
    # Only the points with gauss_newton and ce fail: one per depth value.
    assert text.startswith("2 problems")
    assert "optim.solver='gauss_newton'" in text and "optim.loss='ce'" in text
    cfg["optim"]["loss"] = "mse"
    validate(cfg, SCHEMA)  # every point valid now


def test_top_level_rule_names_its_key():
    cfg = good()
    cfg["model"]["depth"] = 5
    cfg["data"] = {"n": 3}
    with pytest.raises(ValueError, match=re.escape("data.n: must be at least model.depth")):
        validate(cfg, SCHEMA)


def test_list_field_on_a_grid_key():
    schema = Schema({"widths": Field(list, items=Field(int, ge=1), grid=True)})
    assert validate({"widths": [4, 8]}, schema)["widths"] == Grid([[4, 8]])  # one value
    cfg = validate({"widths": [[4, 8], [16]]}, schema)  # two alternatives
    assert [p["widths"] for p in grid_points(cfg)] == [[4, 8], [16]]
    with pytest.raises(ValueError, match=re.escape("widths[1][0]: must be a positive integer, got 0")):
        validate({"widths": [[4], [0]]}, schema)


def test_grid_points_cartesian_product_last_axis_fastest():
    cfg = validate(good(), SCHEMA)
    points = grid_points(cfg)
    assert [(p["model"]["depth"], p["optim"]["loss"]) for p in points] == [
        (1, "mse"), (1, "ce"), (2, "mse"), (2, "ce")]
    assert all(not isinstance(v, Grid) for p in points for v in p["model"].values())


def test_load_config_from_toml(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        'kind = "bound_check"\nseeds = [3]\n'
        '[model]\ndepth = [1, 2]\nwidths = [4, 4]\n'
        '[optim]\nsolver = "gauss_newton"\n'
    )
    cfg = load_config(path, SCHEMA)
    assert cfg["seeds"] == [3] and cfg["optim"]["loss"] == Grid(["mse"])
    path.write_text('kind = "bound_check"\n[model\n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_config(path, SCHEMA)
    path.write_text('kind = "bound_check"\n[model]\ndepth = 1\nwidths = [4]\nwidth = 2\n[optim]\nsolver = "gd"\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: model.width: unknown key")):
        load_config(path, SCHEMA)
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "missing.toml", SCHEMA)


# ---- plans and hashes -------------------------------------------------------------------

def test_job_hash_is_sha256_of_the_canonical_json():
    job = Job("toy", {"width": 8, "lr": 0.1, "model": {"b": [1, 2], "a": None}}, seed=7)
    # Written out by hand: sorted keys at every level, no spaces, repr floats.
    text = '{"kind":"toy","params":{"lr":0.1,"model":{"a":null,"b":[1,2]},"width":8},"seed":7}'
    assert job.job_hash == hashlib.sha256(text.encode()).hexdigest()
    assert canonical_json({"b": (1, np.int64(2)), "a": np.float64(0.5)}) == '{"a":0.5,"b":[1,2]}'


HASH_CASES = [
    ("toy", {"width": 8, "lr": 0.1}, 0),
    ("toy", {"lr": 1e-300, "w": [0.1, 0.2, 0.30000000000000004], "nested": {"x": -0.0, "y": "é"}}, 3),
    ("bound_check", {"solver": "gd", "depth": 2, "flag": True, "none": None}, 2**40),
]


def test_hashes_are_stable_across_processes():
    code = (
        "import json, sys\n"
        "from empirical.plan import Job\n"
        "cases = json.loads(sys.stdin.read())\n"
        "print(json.dumps([Job(k, p, seed=s).job_hash for k, p, s in cases]))\n"
    )
    # Another interpreter with a different hash seed: dict/set iteration order differs.
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(HASH_CASES), cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [Job(k, p, seed=s).job_hash for k, p, s in HASH_CASES]


def test_hash_ignores_key_order_and_config_but_sees_every_param():
    base = Job("toy", {"a": 1, "b": {"c": 0.5, "d": [1, 2]}}, seed=1, config={"anything": 1})
    assert Job("toy", {"b": {"d": [1, 2], "c": 0.5}, "a": 1}, seed=1) == base
    assert Job("toy", {"b": {"d": [1, 2], "c": 0.5}, "a": 1}, seed=1).job_hash == base.job_hash
    variants = [
        Job("toy2", base.params, seed=1),
        Job("toy", base.params, seed=2),
        Job("toy", {"a": 2, "b": {"c": 0.5, "d": [1, 2]}}, seed=1),
        Job("toy", {"a": 1.0, "b": {"c": 0.5, "d": [1, 2]}}, seed=1),  # int vs float is a change
        Job("toy", {"a": 1, "b": {"c": 0.5000000000000001, "d": [1, 2]}}, seed=1),
        Job("toy", {"a": 1, "b": {"c": 0.5, "d": [2, 1]}}, seed=1),
        Job("toy", {"a": 1, "b": {"c": 0.5, "d": [1, 2], "e": None}}, seed=1),
        Job("toy", {"a": 1, "b": {"c": 0.5}}, seed=1),
        Job("toy", {"a": "1", "b": {"c": 0.5, "d": [1, 2]}}, seed=1),
    ]
    hashes = {base.job_hash} | {v.job_hash for v in variants}
    assert len(hashes) == len(variants) + 1


def test_job_is_immutable_and_pickles():
    job = Job("toy", {"w": [1, 2]}, seed=0, config={"kind": "toy"})
    job.params["w"].append(3)  # a copy: the job is unchanged
    assert job.params == {"w": [1, 2]} and dict(job) == {"kind": "toy", "params": {"w": [1, 2]}, "seed": 0}
    with pytest.raises(AttributeError):
        job.seed = 3
    clone = pickle.loads(pickle.dumps(job))
    assert clone == job and clone.config == {"kind": "toy"} and clone.params == job.params


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="", params={}, seed=0), "kind must be a non-empty string"),
    (dict(kind="t", params=[], seed=0), "params must be a dict"),
    (dict(kind="t", params={}, seed=-1), "seed must be a non-negative integer"),
    (dict(kind="t", params={"x": float("nan")}, seed=0), "x: nan has no stable identity"),
    (dict(kind="t", params={"x": {1: 2}}, seed=0), "x: keys must be strings"),
    (dict(kind="t", params={"x": object()}, seed=0), "x: object"),
])
def test_job_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Job(**kwargs)


def test_expand_is_deterministic_and_excludes_run_settings():
    cfg = validate(good(), SCHEMA)
    jobs = expand(cfg)
    assert len(jobs) == 2 * 2 * 2  # depth x loss x seeds
    assert [(j.params["model"]["depth"], j.params["optim"]["loss"], j.seed) for j in jobs] == [
        (d, loss, s) for d in (1, 2) for loss in ("mse", "ce") for s in (0, 1)]
    assert all(set(j.params) == {"model", "optim", "data"} for j in jobs)
    assert all(j.kind == "bound_check" and j.config["run"]["workers"] == 1 for j in jobs)
    other = dict(cfg, run={"executor": "ray", "workers": 8, "ray_address": None})
    assert [j.job_hash for j in expand(other)] == [j.job_hash for j in jobs]
    assert [j.job_hash for j in expand(validate(good(), SCHEMA))] == [j.job_hash for j in jobs]


def test_expand_seeds_and_kind_handling():
    assert [j.seed for j in expand({"kind": "t", "seeds": 5, "x": 1})] == [5]
    assert [j.seed for j in expand({"kind": "t", "x": 1})] == [0]
    assert len(expand({"kind": "t", "seeds": [1, 1], "x": 1})) == 1  # duplicates run once
    assert expand({"x": 1}, kind="other")[0].kind == "other"
    with pytest.raises(ValueError, match="kind: the config names no job kind"):
        expand({"x": 1})
    with pytest.raises(ValueError, match="seeds: must be an integer or a non-empty list"):
        expand({"kind": "t", "seeds": []})


def test_seeded_repeats_draws_and_restores_global_state():
    torch.manual_seed(123)
    np.random.seed(123)
    with seeded(5):
        a = (torch.rand(3), np.random.rand(3))
    after = (torch.rand(3), np.random.rand(3))
    with seeded(5):
        b = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # The draws after the block continue the outer stream as if the block never ran.
    assert torch.equal(after[0], torch.rand(3)) and np.array_equal(after[1], np.random.rand(3))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        with seeded(-1):
            pass
