import json

import pytest

from empirical.cli import main

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_score_nb201_json(capsys):
    assert main(["score", "--space", "nb201", "--arch", ARCH, "--C", "4", "--N", "1",
                 "--data", "digits", "--batch", "16", "--seed", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["network"] == ARCH and row["seed"] == 3 and row["batch"] == 16
    assert row["gradsign"] > 0


def test_score_is_deterministic_for_a_seed(capsys):
    args = ["score", "--space", "mlp", "--width", "16", "--depth", "1", "--batch", "8", "--json",
            "--proxy", "gradsign,gradsign_sq"]
    main(args)
    first = json.loads(capsys.readouterr().out)
    main(args)
    second = json.loads(capsys.readouterr().out)
    assert first["gradsign"] == second["gradsign"] and first["gradsign_sq"] == second["gradsign_sq"]


def test_score_table_lists_several_networks(capsys):
    assert main(["score", "--space", "mlp", "--width", "8", "--width", "16", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "mlp-w8-d2-relu" in out and "mlp-w16-d2-relu" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nb201", "--arch", "|bogus~0|"], "arch"),
        (["--space", "nb201"], "--arch"),
        (["--space", "mlp", "--proxy", "nope"], "unknown proxy"),
        (["--space", "mlp", "--batch", "0"], "batch"),
        (["--space", "mlp", "--width", "-3"], "width"),
    ],
)
def test_score_rejects_bad_input(capsys, args, message):
    assert main(["score", *args]) == 2
    assert message in capsys.readouterr().err
