"""Trained accuracies from the user's own NAS-Bench-101 record file, read without
TensorFlow (nothing is downloaded; the toolkit ships no NAS-Bench-101 data).

Supported files: ``nasbench_only108.tfrecord`` (108-epoch runs only) and
``nasbench_full.tfrecord`` (4, 12, 36 and 108 epochs), the benchmark's own release.

Layout, as the benchmark's ``api.NASBench.__init__`` reads it:

* TFRecord framing: a sequence of records, each
  ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)``,
  little-endian, where ``masked(c) = ((c >> 15 | c << 17) + 0xA282EAD8) mod 2**32`` and
  ``crc32c`` is the Castagnoli CRC (polynomial 0x1EDC6F41, reflected 0x82F63B78).
* Each record's data is UTF-8 JSON, one run of one cell::

      [module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]

  ``module_hash`` is the cell's ``nb101.spec_hash`` (32 hex digits), ``epochs`` the
  training budget, ``raw_adjacency`` the row-major 0/1 adjacency matrix as a string of
  V*V digits, ``raw_operations`` the V op names joined by commas (``input`` ...
  ``output``), ``raw_metrics`` base64 of a serialised ``ModelMetrics`` protobuf
  (nasbench/lib/model_metrics.proto, proto2)::

      message ModelMetrics { repeated EvaluationData evaluation_data = 1;
                             optional int32 trainable_parameters = 2; optional double total_time = 3; }
      message EvaluationData { optional double current_epoch = 1; optional double training_time = 2;
                               optional double train_accuracy = 3; optional double validation_accuracy = 4;
                               optional double test_accuracy = 5; optional string checkpoint_path = 6; }

  ``evaluation_data`` holds the evaluations at the start, half-way and end of training;
  the end is the last entry (the benchmark's ``evaluation_data[2]``). Accuracies are
  fractions in [0, 1].

``load`` gives one row per cell (hash) trained for ``epochs``: ``hash, matrix, ops,
num_vertices, params, repeats, test_acc, valid_acc, train_acc, training_time``, the
accuracies and time the mean over the repeats (3 in the benchmark) of the final
evaluation; ``test_acc`` is a fraction, the toolkit's accuracy convention.

Why no reader from the registry: the TFRecord readers on PyPI that avoid TensorFlow
(``tfrecord`` 1.14.6 checked, the most used) skip the CRC checks, so a corrupt or
foreign file is read as garbage instead of being refused, and they decode only
``tf.train.Example`` payloads, not this JSON-plus-``ModelMetrics`` layout; the
``protobuf`` runtime would need a hand-built descriptor for two small messages. So this
module reads the framing itself with CRC-32C checks and decodes the three protobuf wire
types these messages use (varint, 64-bit, length-delimited), skipping unknown fields as
protobuf does. Everything is pure Python: on this machine (2 shared cores, load about
10) a synthetic file in this layout read at about 0.5 s per MB with the checks and 0.2 s
per MB with ``verify_crc=False``, i.e. roughly 4 and 2 minutes for the 499 MB 108-epoch
file (an estimate: the real file was not available here). Neither this
layout nor this reader involves pickle: nothing is unpickled.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm

from empirical.spaces import nb101
from proxies.checks import check_choice

__all__ = ["EPOCHS", "crc32c", "masked_crc32c", "iter_tfrecord", "decode_model_metrics", "Run",
           "iter_runs", "load"]

EPOCHS = (4, 12, 36, 108)

_CASTAGNOLI_REFLECTED = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_HASH = re.compile(r"[0-9a-f]{32}")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``.

    >>> hex(crc32c(b"123456789"))  # the standard check value
    '0xe3069283'
    """
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: ``((c >> 15) | (c << 17)) + 0xA282EAD8`` modulo 2**32."""
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _check_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NAS-Bench-101 file {str(path)!r} not found; pass the path of your "
                         "nasbench_only108.tfrecord or nasbench_full.tfrecord (nothing is downloaded)")
    return path


def iter_tfrecord(path: str | os.PathLike, *, verify_crc: bool = True, progress: bool = False) -> Iterator[bytes]:
    """The data of each record of a TFRecord file, checking both checksums unless
    ``verify_crc=False``. A file that is not TFRecord-framed, is truncated or fails a
    checksum raises ``ValueError`` naming the byte offset."""
    path = _check_file(path)
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, disable=not progress,
                                     desc=path.name) as bar:
        offset = 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"{str(path)!r} is truncated or not a TFRecord file: "
                                 f"{len(header)} header bytes at byte {offset}, 12 expected")
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if verify_crc and masked_crc32c(length_bytes) != length_crc:
                raise ValueError(f"{str(path)!r} is not a TFRecord file or is corrupt: the length checksum "
                                 f"at byte {offset} does not match")
            (length,) = struct.unpack("<Q", length_bytes)
            if length > size - offset - 16:
                raise ValueError(f"{str(path)!r} is truncated or not a TFRecord file: the record at byte "
                                 f"{offset} claims {length} bytes, {max(size - offset - 16, 0)} remain")
            data = f.read(length)
            (data_crc,) = struct.unpack("<I", f.read(4))
            if verify_crc and masked_crc32c(data) != data_crc:
                raise ValueError(f"{str(path)!r} is corrupt: the data checksum of the record at byte "
                                 f"{offset} does not match")
            offset += 16 + length
            bar.update(16 + length)
            yield data


# ------------------------------------------------------------------ protobuf wire format


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """``(field number, wire type, value)``: varint -> int, 64-bit and 32-bit -> raw bytes,
    length-delimited -> bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} (groups are not used by ModelMetrics)")
        if pos > len(buf):
            raise ValueError(f"field {number} runs past the end of the message")
        yield number, wire, value


_EVALUATION_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy",
                      5: "test_accuracy"}


def _expect(number: int, wire: int, wanted: int, message: str) -> None:
    if wire != wanted:
        raise ValueError(f"{message} field {number} has wire type {wire}, expected {wanted}")


def _decode_evaluation(buf: bytes) -> dict:
    out: dict = {name: math.nan for name in _EVALUATION_FIELDS.values()}
    out["checkpoint_path"] = ""
    for number, wire, value in _fields(buf):
        if number in _EVALUATION_FIELDS:
            _expect(number, wire, 1, "EvaluationData")
            out[_EVALUATION_FIELDS[number]] = struct.unpack("<d", value)[0]
        elif number == 6:
            _expect(number, wire, 2, "EvaluationData")
            out["checkpoint_path"] = value.decode("utf-8")
    return out


def decode_model_metrics(payload: bytes) -> dict:
    """Decode a serialised ``ModelMetrics`` (module docstring) into
    ``{"evaluation_data": [dict, ...], "trainable_parameters": int, "total_time": float}``."""
    out: dict = {"evaluation_data": [], "trainable_parameters": None, "total_time": math.nan}
    for number, wire, value in _fields(payload):
        if number == 1:
            _expect(number, wire, 2, "ModelMetrics")
            out["evaluation_data"].append(_decode_evaluation(value))
        elif number == 2:
            _expect(number, wire, 0, "ModelMetrics")
            out["trainable_parameters"] = value - (1 << 64) if value >= 1 << 63 else value  # int32 sign
        elif number == 3:
            _expect(number, wire, 1, "ModelMetrics")
            out["total_time"] = struct.unpack("<d", value)[0]
    return out


# ------------------------------------------------------------------------------- runs


class Run(NamedTuple):
    """One training run of one cell, as stored in one record."""

    hash: str
    epochs: int
    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    metrics: dict


def _decode_run(data: bytes, index: int, path: Path) -> Run:
    where = f"record {index} of {str(path)!r}"
    try:
        row = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{where} is not NAS-Bench-101's layout: its data is not UTF-8 JSON") from None
    if not isinstance(row, list) or len(row) != 5:
        raise ValueError(f"{where} is not NAS-Bench-101's layout: expected the JSON array "
                         "[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]")
    module_hash, epochs, adjacency, operations, metrics = row
    if not isinstance(module_hash, str) or not _HASH.fullmatch(module_hash):
        raise ValueError(f"{where}: module_hash must be 32 lower-case hex digits, got {module_hash!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise ValueError(f"{where}: epochs must be an integer, got {epochs!r}")
    dim = math.isqrt(len(adjacency)) if isinstance(adjacency, str) else 0
    if dim < 2 or dim * dim != len(adjacency) or set(adjacency) - {"0", "1"}:
        raise ValueError(f"{where}: raw_adjacency must be a string of V*V digits 0/1, got {adjacency!r}")
    if not isinstance(operations, str) or len(operations.split(",")) != dim:
        raise ValueError(f"{where}: raw_operations must name {dim} comma-separated ops, got {operations!r}")
    try:
        decoded = decode_model_metrics(base64.b64decode(metrics, validate=True))
    except (TypeError, binascii.Error, ValueError) as err:
        raise ValueError(f"{where}: raw_metrics is not a base64 ModelMetrics protobuf ({err})") from None
    if decoded["trainable_parameters"] is None or not decoded["evaluation_data"]:
        raise ValueError(f"{where}: ModelMetrics lacks trainable_parameters or evaluation_data")
    matrix = tuple(tuple(int(adjacency[i * dim + j]) for j in range(dim)) for i in range(dim))
    return Run(module_hash, epochs, matrix, tuple(operations.split(",")), decoded)


def iter_runs(path: str | os.PathLike, *, verify_crc: bool = True, progress: bool = False) -> Iterator[Run]:
    """Every record of the file as a ``Run`` (module docstring); ``ValueError`` on a file
    of another layout, naming the record."""
    path = _check_file(path)
    for index, data in enumerate(iter_tfrecord(path, verify_crc=verify_crc, progress=progress)):
        yield _decode_run(data, index, path)


def load(path: str | os.PathLike, *, epochs: int = 108, verify_crc: bool = True, verify_hash: bool = False,
         progress: bool = True) -> pd.DataFrame:
    """One row per cell trained for ``epochs``: ``hash, matrix, ops, num_vertices, params,
    repeats, test_acc, valid_acc, train_acc, training_time`` (means over the repeats of
    the final evaluation; accuracies as fractions), sorted by hash.

    ``verify_hash=True`` recomputes each cell's key with ``nb101.spec_hash`` and refuses
    the file on a mismatch (about 1 ms a cell).
    """
    check_choice("epochs", epochs, EPOCHS)
    path = _check_file(path)
    fixed: dict[str, tuple] = {}
    finals: dict[str, list[dict]] = {}
    seen_epochs: set[int] = set()
    for run in iter_runs(path, verify_crc=verify_crc, progress=progress):
        seen_epochs.add(run.epochs)
        if run.epochs != epochs:
            continue
        if run.hash not in fixed:
            if verify_hash:
                try:
                    key = nb101.spec_hash(run.matrix, run.ops)
                except ValueError as err:
                    raise ValueError(f"{str(path)!r}: cell {run.hash} is not a NAS-Bench-101 spec: {err}") from None
                if key != run.hash:
                    raise ValueError(f"{str(path)!r}: cell stored as {run.hash} hashes to {key}")
            fixed[run.hash] = (run.matrix, run.ops, run.metrics["trainable_parameters"])
            finals[run.hash] = []
        finals[run.hash].append(run.metrics["evaluation_data"][-1])
    if not fixed:
        found = ", ".join(map(str, sorted(seen_epochs))) or "none"
        raise ValueError(f"{str(path)!r} has no runs of {epochs} epochs (epochs found: {found})")
    records = []
    for key in sorted(fixed):
        matrix, ops, params = fixed[key]
        runs = finals[key]
        records.append({
            "hash": key, "matrix": matrix, "ops": ops, "num_vertices": len(ops), "params": params,
            "repeats": len(runs),
            "test_acc": float(np.mean([r["test_accuracy"] for r in runs])),
            "valid_acc": float(np.mean([r["validation_accuracy"] for r in runs])),
            "train_acc": float(np.mean([r["train_accuracy"] for r in runs])),
            "training_time": float(np.mean([r["training_time"] for r in runs])),
        })
    return pd.DataFrame.from_records(records)
