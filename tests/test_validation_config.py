"""Bound-validation configs: presets validate, bad configs are refused before any job runs."""
import pytest

from empirical.cli import main
from empirical.config import validate
from empirical.validation import schema

TOY = """
seeds = [0, 1]
[data]
name = "iris"
n = 8
n_heldout = 8
[model]
width = [4, 8]
depth = 1
"""


def write(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("preset", ["presets/quick.toml", "presets/standard.toml"])
def test_presets_validate_and_expand_to_distinct_jobs(preset):
    jobs = schema.jobs(schema.load(preset))
    assert len({job.job_hash for job in jobs}) == len(jobs)
    if preset.endswith("standard.toml"):
        assert len(jobs) >= 100
        assert {job.params["data"]["name"] for job in jobs} == {"digits", "breast_cancer", "wine", "iris", "teacher"}
    else:
        assert {job.params["data"]["name"] for job in jobs} == {"digits"}


def test_toy_config_expands_to_grid_times_seeds_with_stable_hashes(tmp_path):
    cfg = schema.load(write(tmp_path, TOY))
    jobs = schema.jobs(cfg)
    assert [(j.params["model"]["width"], j.seed) for j in jobs] == [(4, 0), (4, 1), (8, 0), (8, 1)]
    assert [j.job_hash for j in jobs] == [j.job_hash for j in schema.jobs(schema.load(write(tmp_path, TOY, "b.toml")))]
    assert cfg["theory"]["solver"] == "gauss_newton" and cfg["train"]["batch_size"] is None
    # The executor settings are not part of a job's identity.
    other = schema.load(write(tmp_path, TOY + "[run]\nworkers = 2\n", "c.toml"))
    assert [j.job_hash for j in schema.jobs(other)] == [j.job_hash for j in jobs]


@pytest.mark.parametrize("patch, key, words", [
    ("[model]\nwidth = [4, -8]\n", "model.width[1]", "positive integer"),
    ("[model]\nwidht = 4\n", "model.widht", "unknown key"),
    ("[data]\nname = 'iris'\nn = 'many'\n", "data.n", "got 'many'"),
    ("[theory]\nloss = 'ce'\nsolver = 'gauss_newton'\n", "theory.solver", "'gauss_newton' requires loss"),
    ("[theory]\nbounds = ['theorem9']\n", "theory.bounds", "unknown bound"),
    ("[theory]\nsolver = 'gd'\n[theory.solver_options]\nlam = 1.0\n", "theory.solver_options", "no option(s) ['lam']"),
    ("[model]\nfamily = 'cnn'\nactivation = 'relu'\n", "model.family", "needs image data"),
    ("[train]\nlr = -0.1\n", "train.lr", "positive number"),
])
def test_bad_config_is_refused_naming_the_key_before_any_job(tmp_path, capsys, patch, key, words):
    base = {"data": "[data]\nname = 'iris'\n", "model": "", "theory": "", "train": ""}
    table = patch.split("]")[0].strip("[").split(".")[0]
    if table == "data":
        base["data"] = ""
    base[table] += patch
    config = write(tmp_path, "".join(base.values()))
    out = tmp_path / "run"
    assert main(["validate", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{key}:" in err and words in err, err
    assert not out.exists()  # refused before the store was created, so before any job ran


def test_a_grid_cannot_smuggle_in_an_impossible_point():
    raw = {"data": {"name": ["iris", "teacher"]}, "theory": {"loss": "ce", "solver": "gd"}}
    with pytest.raises(ValueError, match=r"theory\.loss: 'ce' needs a classification data set.*data\.name='teacher'"):
        validate(raw, schema.SCHEMA)
