"""Where networks and data live while they are scored, validated or trained.

``--device cpu|cuda|mps`` (``cuda:N`` for the N-th GPU) names a `torch.device`;
`resolve_device` checks that this machine can use it and refuses one it cannot with a
``ValueError`` that names the problem, before any job runs.

The convention everything follows (`proxies`, `theory`, `empirical`): a network is built
and initialised on the CPU from the seeded global RNG, then moved with ``.to(device)``,
so θ_0 is the same number for number on every device; the data a job loads are moved to
the device once (`empirical.data.DataSplit.to`); every tensor a computation creates is
created on the device of the model or of its inputs. Random draws that must not depend
on the device (scoring batches, sample orders, start vectors) come from a CPU
``torch.Generator`` and are then moved. ``tests/test_devices.py`` checks the convention
statically and, where CUDA is present, compares the numbers between devices.

MPS (Apple GPUs) has no float64: the proxies that compute in float64 (``synflow``,
``naswot``) and float64 validation configs fail there with torch's own error.
"""
from __future__ import annotations

import argparse
import re

import torch

from proxies.checks import check_choice

__all__ = ["DEVICES", "add_device_argument", "resolve_device"]

DEVICES = ("cpu", "cuda", "mps")
_NAME = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def resolve_device(device: str | torch.device) -> torch.device:
    """The `torch.device` that ``device`` names, checked to be usable here.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
        ...
    ValueError: device must be one of 'cpu', 'cuda', 'mps' (or 'cuda:N'), got 'tpu'
    """
    name = str(device) if isinstance(device, torch.device) else device
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))} (or 'cuda:N'), got {device!r}")
    kind, index = match.group(1), match.group(2)
    check_choice("device", kind, DEVICES)
    if index is not None and kind != "cuda":
        raise ValueError(f"device {name!r}: only cuda takes an index (cuda:N), got {device!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda
            why = (f"this PyTorch ({torch.__version__}) was built without CUDA" if build is None
                   else f"this PyTorch ({torch.__version__}, CUDA {build}) sees no usable GPU")
            raise ValueError(f"device {name!r} was requested but CUDA is not available: {why}; use --device cpu")
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s), 0..{count - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but MPS (Apple's GPU backend) is not available on "
                         "this machine or in this PyTorch build; use --device cpu")
    return torch.device(name)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """The shared ``--device`` option (checked by `resolve_device` when the command runs)."""
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda|mps",
                        help="where networks and data live (default cpu; cuda:N for the N-th GPU)")
