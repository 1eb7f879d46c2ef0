"""NAS-Bench-101 record files, written here in the published layout and read back.

The writer below is independent of the module under test: a bit-at-a-time CRC-32C
(checked against the test vectors of RFC 3720, appendix B.4), a hand-rolled protobuf
encoder, and, where the ``protobuf`` runtime is installed, protobuf's own serialiser
for the ModelMetrics messages. The cell and accuracies of ``NNI_RUNS`` are NNI's
published query results for hash 00005c142e6f48ac74fdcf73e3439874 (microsoft/nni,
docs/en_US/NAS/BenchmarksExample.ipynb), in NNI's percent, stored here as the
benchmark's fractions.
"""
import base64
import json
import math
import struct

import numpy as np
import pytest

from empirical.benchmarks import nb101_records
from empirical.spaces import nb101


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    c = crc32c_bitwise(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data))


def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def double(number: int, value: float) -> bytes:
    return key(number, 1) + struct.pack("<d", value)


def evaluation(epoch, time, train, valid, test, path="") -> bytes:
    body = double(1, epoch) + double(2, time) + double(3, train) + double(4, valid) + double(5, test)
    if path:
        body += key(6, 2) + varint(len(path)) + path.encode()
    return body


def model_metrics(params: int, evaluations, total_time=1.5, unknown=False) -> bytes:
    out = b""
    for e in evaluations:
        body = evaluation(*e)
        out += key(1, 2) + varint(len(body)) + body
    out += key(2, 0) + varint(params) + double(3, total_time)
    if unknown:  # a field this schema does not know: protobuf parsers skip it
        out += key(9, 2) + varint(3) + b"xyz" + key(10, 5) + b"\x00\x00\x80\x3f"
    return out


def record(module_hash, epochs, matrix, ops, metrics: bytes) -> bytes:
    adjacency = "".join(str(int(v)) for row in matrix for v in row)
    return json.dumps([module_hash, epochs, adjacency, ",".join(ops), base64.b64encode(metrics).decode()]).encode()


def _inputs_matrix(n, inputs):
    m = np.zeros((n, n), dtype=int)
    for t, srcs in inputs.items():
        m[srcs, t] = 1
    return m


NNI_HASH = "00005c142e6f48ac74fdcf73e3439874"
NNI_MATRIX = _inputs_matrix(7, {1: [0], 2: [1], 3: [2], 4: [0], 5: [0, 3, 4], 6: [2, 5]})
NNI_OPS = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]
# (test %, valid %, train %) of NNI's three published runs at 108 epochs.
NNI_RUNS = [(92.11738705635071, 92.41786599159241, 100.0), (91.90705418586731, 92.45793223381042, 100.0),
            (92.15745329856873, 93.04887652397156, 100.0)]
CHAIN_MATRIX = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
CHAIN_OPS = ["input", "conv3x3-bn-relu", "output"]


def nni_record(test, valid, train, epochs=108):
    evals = [(0.0, 0.0, 0.1, 0.1, 0.1), (epochs / 2, 500.0, 0.8, 0.8, 0.8),
             (float(epochs), 1000.0, train / 100, valid / 100, test / 100, "/ckpt/model.ckpt-1")]
    return record(NNI_HASH, epochs, NNI_MATRIX, NNI_OPS, model_metrics(8_555_530, evals, unknown=True))


def write(path, payloads):
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return path


@pytest.fixture
def benchmark_file(tmp_path):
    chain_hash = nb101.spec_hash(CHAIN_MATRIX, CHAIN_OPS)
    chain = [record(chain_hash, 108, CHAIN_MATRIX, CHAIN_OPS,
                    model_metrics(10_177_674, [(0, 0, 0, 0, 0), (54, 1, .5, .5, .5), (108, t, .9, .8, acc)]))
             for t, acc in ((10.0, 0.75), (20.0, 0.85))]
    short = nni_record(50.0, 50.0, 60.0, epochs=36)
    payloads = [nni_record(*NNI_RUNS[0]), chain[0], short, nni_record(*NNI_RUNS[1]), chain[1], nni_record(*NNI_RUNS[2])]
    return write(tmp_path / "nasbench_full.tfrecord", payloads), chain_hash


# ---------------------------------------------------------------------- primitives


def test_crc32c_matches_rfc3720_vectors_and_the_bitwise_route():
    assert nb101_records.crc32c(bytes(32)) == 0x8A9136AA
    assert nb101_records.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert nb101_records.crc32c(bytes(range(32))) == 0x46DD794E
    assert nb101_records.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    data = np.random.default_rng(0).integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    assert nb101_records.crc32c(data) == crc32c_bitwise(data)
    assert nb101_records.crc32c(data[500:], nb101_records.crc32c(data[:500])) == crc32c_bitwise(data)
    assert nb101_records.masked_crc32c(data) == masked(data)


def test_decode_model_metrics_by_hand_encoding():
    payload = model_metrics(123, [(0, 0, .1, .2, .3), (108, 99.5, .9, .8, .7, "p")], total_time=4.0, unknown=True)
    out = nb101_records.decode_model_metrics(payload)
    assert out["trainable_parameters"] == 123 and out["total_time"] == 4.0
    assert [e["test_accuracy"] for e in out["evaluation_data"]] == [.3, .7]
    assert out["evaluation_data"][1]["checkpoint_path"] == "p"
    assert nb101_records.decode_model_metrics(key(2, 0) + varint(-5))["trainable_parameters"] == -5


def test_decode_model_metrics_matches_protobufs_own_serialiser():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="nb101_test_model_metrics.proto", package="nb101test",
                                               syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto
    ev = proto.message_type.add(name="EvaluationData")
    for number, name in enumerate(["current_epoch", "training_time", "train_accuracy", "validation_accuracy",
                                   "test_accuracy"], start=1):
        ev.field.add(name=name, number=number, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mm = proto.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                 type_name=".nb101test.EvaluationData")
    mm.field.add(name="trainable_parameters", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("nb101test.ModelMetrics"))
    msg = cls(trainable_parameters=2_694_282, total_time=1234.5)
    for i, acc in enumerate((0.1, 0.6, 0.9311898946762085)):
        e = msg.evaluation_data.add(current_epoch=54.0 * i, training_time=10.0 * i, train_accuracy=acc,
                                    validation_accuracy=acc / 2, test_accuracy=acc)
        if i == 2:
            e.checkpoint_path = "gs://x/model.ckpt-42"
    out = nb101_records.decode_model_metrics(msg.SerializeToString())
    assert out["trainable_parameters"] == 2_694_282 and out["total_time"] == 1234.5
    assert out["evaluation_data"][2]["test_accuracy"] == 0.9311898946762085
    assert out["evaluation_data"][2]["checkpoint_path"] == "gs://x/model.ckpt-42"
    assert out["evaluation_data"][1]["validation_accuracy"] == 0.3
    assert len(out["evaluation_data"]) == 3


# ------------------------------------------------------------------------- loading


def test_load_means_over_repeats_as_fractions(benchmark_file):
    path, chain_hash = benchmark_file
    frame_ = nb101_records.load(path, verify_hash=True, progress=False)
    assert list(frame_["hash"]) == sorted([NNI_HASH, chain_hash])
    nni = frame_.set_index("hash").loc[NNI_HASH]
    assert nni["repeats"] == 3 and nni["params"] == 8_555_530 and nni["num_vertices"] == 7
    assert nni["test_acc"] == pytest.approx(sum(r[0] for r in NNI_RUNS) / 300)
    assert nni["valid_acc"] == pytest.approx(sum(r[1] for r in NNI_RUNS) / 300)
    assert nni["train_acc"] == pytest.approx(1.0) and nni["training_time"] == pytest.approx(1000.0)
    assert 0 < nni["test_acc"] < 1
    assert nni["ops"] == tuple(NNI_OPS) and np.array_equal(np.array(nni["matrix"]), NNI_MATRIX)
    chain = frame_.set_index("hash").loc[chain_hash]
    assert chain["repeats"] == 2 and chain["test_acc"] == pytest.approx(0.8) and chain["training_time"] == 15.0
    # The stored cell builds the network with the stored parameter count.
    net = nb101.build(nni["matrix"], nni["ops"])
    assert sum(p.numel() for p in net.parameters()) == nni["params"]


def test_load_other_budget(benchmark_file):
    path, _ = benchmark_file
    short = nb101_records.load(path, epochs=36, progress=False)
    assert list(short["hash"]) == [NNI_HASH] and short["test_acc"][0] == pytest.approx(0.5)
    assert short["repeats"][0] == 1


def test_iter_runs_keeps_every_record(benchmark_file):
    path, _ = benchmark_file
    runs = list(nb101_records.iter_runs(path))
    assert [r.epochs for r in runs] == [108, 108, 36, 108, 108, 108]
    assert runs[0].metrics["evaluation_data"][-1]["checkpoint_path"] == "/ckpt/model.ckpt-1"


@pytest.mark.parametrize(
    "payloads, match",
    [
        ([b"\xff\xfe not utf-8"], "not UTF-8 JSON"),
        ([b'{"hash": 1}'], "expected the JSON array"),
        ([json.dumps(["00005c142e6f48ac74fdcf73e3439874", 108, "0110", "input,output"]).encode()],
         "expected the JSON array"),
        ([json.dumps(["xyz", 108, "0100", "input,output", ""]).encode()], "module_hash must be 32"),
        ([json.dumps([NNI_HASH, "108", "0100", "input,output", ""]).encode()], "epochs must be an integer"),
        ([json.dumps([NNI_HASH, 108, "010", "input,output", ""]).encode()], "raw_adjacency must be"),
        ([json.dumps([NNI_HASH, 108, "0100", "input", ""]).encode()], "raw_operations must name 2"),
        ([json.dumps([NNI_HASH, 108, "0100", "input,output", "not base64!"]).encode()], "not a base64"),
        ([json.dumps([NNI_HASH, 108, "0100", "input,output", base64.b64encode(b"\x0b").decode()]).encode()],
         "not a base64 ModelMetrics"),
        ([json.dumps([NNI_HASH, 108, "0100", "input,output", ""]).encode()], "lacks trainable_parameters"),
    ],
)
def test_records_of_another_layout_are_refused(tmp_path, payloads, match):
    path = write(tmp_path / "bad.tfrecord", payloads)
    with pytest.raises(ValueError, match=match):
        nb101_records.load(path, progress=False)


def test_file_that_is_not_a_tfrecord_is_refused(tmp_path):
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps([{"net": {}}] * 10))
    with pytest.raises(ValueError, match="not a TFRecord file"):
        nb101_records.load(path, progress=False)
    with pytest.raises(ValueError, match="truncated or not a TFRecord file"):
        nb101_records.load(path, verify_crc=False, progress=False)
    with pytest.raises(ValueError, match="not found"):
        nb101_records.load(tmp_path / "missing.tfrecord")


def test_corrupt_and_truncated_files_are_refused(benchmark_file, tmp_path):
    path, _ = benchmark_file
    data = bytearray(path.read_bytes())
    corrupt = tmp_path / "corrupt.tfrecord"
    data[40] ^= 0x01  # inside the first record's JSON
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="data checksum of the record at byte 0"):
        nb101_records.load(corrupt, progress=False)
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        nb101_records.load(truncated, progress=False)


def test_crc_check_can_be_skipped(tmp_path):
    good = frame(nni_record(*NNI_RUNS[0]))
    bad = good[:-4] + b"\x00\x00\x00\x00"  # wrong data checksum, intact data
    path = tmp_path / "badcrc.tfrecord"
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="data checksum"):
        nb101_records.load(path, progress=False)
    assert nb101_records.load(path, verify_crc=False, progress=False)["repeats"][0] == 1


def test_hash_mismatch_and_missing_budget(tmp_path, benchmark_file):
    wrong = record("0" * 32, 108, NNI_MATRIX, NNI_OPS, model_metrics(1, [(0, 0, 0, 0, 0), (108, 1, 1, 1, 1)]))
    path = write(tmp_path / "wrong.tfrecord", [wrong])
    assert nb101_records.load(path, progress=False)["hash"][0] == "0" * 32
    with pytest.raises(ValueError, match=f"hashes to {NNI_HASH}"):
        nb101_records.load(path, verify_hash=True, progress=False)
    path, _ = benchmark_file
    with pytest.raises(ValueError, match=r"no runs of 4 epochs \(epochs found: 36, 108\)"):
        nb101_records.load(path, epochs=4, progress=False)
    with pytest.raises(ValueError, match="epochs must be one of"):
        nb101_records.load(path, epochs=100)


def test_empty_and_nan_fields():
    out = nb101_records.decode_model_metrics(b"")
    assert out["trainable_parameters"] is None and out["evaluation_data"] == [] and math.isnan(out["total_time"])
    with pytest.raises(ValueError, match="wire type"):
        nb101_records.decode_model_metrics(key(2, 1) + bytes(8))
