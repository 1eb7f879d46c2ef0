"""NDS cell-space files, written here in the published layout and read back.

The first record is NNI's published NDS example (microsoft/nni,
docs/en_US/NAS/BenchmarksExample.ipynb: Amoeba, width 32, depth 12, final test
accuracy 93.27 %, best 93.37 %, 4.190314 M parameters, 664.400586 M flops; NNI stores
``100 - test_ep_top1[-1]``, ``100 - min(test_ep_top1)``, ``params / 1e6`` and
``flops / 1e6``), written back in NDS's record layout.
"""
import json

import numpy as np
import pytest

from empirical.benchmarks import nds_files
from empirical.spaces import nds

from nds_examples import NDS_AMOEBA_SAMPLE


def nds_record(genotype, width=32, depth=12, errors=(50.0, 10.0, 6.73), seed=1, **extra):
    record = {
        "net": {"genotype": genotype, "width": width, "depth": depth, "aux": False, "drop_prob": 0.0},
        "optim": {"base_lr": 0.1, "wd": 0.0005, "max_ep": len(errors)},
        "rng_seed": seed,
        "train_ep_top1": [e / 2 for e in errors],
        "train_ep_loss": [1.0] * len(errors),
        "test_ep_top1": list(errors),
    }
    record.update(extra)
    return record


def nni_example():
    # Epoch errors chosen so that the final is 6.73 (93.27 %) and the best 6.63 (93.37 %).
    return nds_record(NDS_AMOEBA_SAMPLE, errors=(40.0, 6.63, 6.73), params=4190314, flops=664400586)


def darts_record(seed, errors, width=16, depth=8):
    return nds_record(json.loads(nds.genotype_to_json(nds.GENOTYPES["darts_v2"])), width=width, depth=depth,
                      errors=errors, seed=seed, min_test_top1=min(errors))


def dump(path, data):
    path.write_text(json.dumps(data))
    return path


def test_list_layout_one_row_per_architecture(tmp_path):
    path = dump(tmp_path / "Amoeba.json", [nni_example()])
    frame = nds_files.load(path, space="amoeba")
    row = frame.iloc[0]
    assert row["test_acc"] == pytest.approx(0.9327) and row["best_test_acc"] == pytest.approx(0.9337)
    assert row["params"] == 4190314 and row["flops"] == 664400586
    assert (row["width"], row["depth"], row["aux"], row["runs"], row["epochs"], row["index"]) == (32, 12, False, 1, 3, 0)
    assert nds.parse_genotype(row["genotype"]) == nds.parse_genotype(NDS_AMOEBA_SAMPLE)
    # The stored genotype builds the network with the stored parameter count.
    net = nds.build("amoeba", row["genotype"], C=int(row["width"]), layers=int(row["depth"]))
    assert sum(p.numel() for p in net.parameters()) == row["params"]


def test_top_mid_layout_and_repeated_architectures_are_averaged(tmp_path):
    data = {"top": [darts_record(1, (30.0, 8.0)), darts_record(2, (30.0, 10.0))],
            "mid": [darts_record(3, (40.0, 20.0), width=24), darts_record(4, (35.0, 12.0))]}
    frame = nds_files.load(dump(tmp_path / "DARTS.json", data), space="darts")
    assert len(frame) == 2
    first = frame.iloc[0]
    assert first["runs"] == 3 and first["index"] == 0
    assert first["test_acc"] == pytest.approx(np.mean([0.92, 0.90, 0.88]))
    assert np.isnan(first["params"]) and np.isnan(first["flops"])
    second = frame.iloc[1]
    assert (second["runs"], second["index"], second["width"]) == (1, 2, 24)
    assert second["test_acc"] == pytest.approx(0.80)
    assert frame["arch"].is_unique and frame["arch"].str.fullmatch("[0-9a-f]{16}").all()


def test_arch_key_is_stable_and_separates_sizes():
    g = nds.GENOTYPES["darts_v2"]
    assert nds_files.arch_key(g, 16, 8, False) == nds_files.arch_key(json.loads(nds.genotype_to_json(g)), 16, 8, False)
    assert nds_files.arch_key(g, 16, 8, False) != nds_files.arch_key(g, 16, 8, True)
    assert nds_files.arch_key(g, 16, 8, False) != nds_files.arch_key(g, 24, 8, False)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"records": []}, "not an NDS file: expected a JSON list of records"),
        ([], "holds no records"),
        ([42], "record 0 .* not an NDS record"),
        ([{"net": {"block_type": "res_bottleneck_block", "ds": [1, 2], "ws": [16, 32]},
           "test_ep_top1": [10.0]}], "no net.genotype: only NDS's cell spaces"),
        ([nds_record({"normal": []})], "genotype lacks normal_concat"),
        ([nds_record(NDS_AMOEBA_SAMPLE, width=0)], "net.width must be a positive integer"),
        ([{**nds_record(NDS_AMOEBA_SAMPLE), "test_ep_top1": []}], "lacks test_ep_top1"),
        ([{**nds_record(NDS_AMOEBA_SAMPLE), "test_ep_top1": ["6.7"]}], "finite number"),
        ([nds_record(NDS_AMOEBA_SAMPLE, errors=(0.93,)), nds_record(NDS_AMOEBA_SAMPLE, errors=(193.0,))],
         r"record 1 .*in \[0, 100\]"),
        ({"top": {}, "mid": []}, "'top' and 'mid' must be lists"),
    ],
)
def test_files_of_another_layout_are_refused(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        nds_files.load(dump(tmp_path / "x.json", data))


def test_space_check_names_the_record_and_op(tmp_path):
    path = dump(tmp_path / "Amoeba.json", [darts_record(1, (9.0,)), nni_example()])
    nds_files.load(path)  # no space given: structure only
    with pytest.raises(ValueError, match=r"record 0 .*'dil_conv_3x3', which is not in the amoeba space"):
        nds_files.load(path, space="amoeba")
    with pytest.raises(ValueError, match="space must be one of"):
        nds_files.load(path, space="resnet")


def test_not_json_and_missing_files(tmp_path):
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        nds_files.load(path)
    with pytest.raises(ValueError, match="not found"):
        nds_files.load(tmp_path / "missing.json")
