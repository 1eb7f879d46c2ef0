"""The GradSign paper's own reported numbers, as data, each with its source.

Zhang & Jia, "GradSign: Model Performance Inference with Theoretical Insights",
ICLR 2022 (arXiv:2110.08616). Each record says where in the paper the number is and
whether it was checked against the paper's text in this repository's history
(``verified``). A record with ``verified=False`` was transcribed without the PDF at hand:
every output that shows it says so, and it must be checked before it is quoted.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperNumber", "NB201_SPEARMAN", "ASSISTED_NAS_CLAIM", "MAIN_CLAIM", "spearman", "source_note"]


@dataclass(frozen=True)
class PaperNumber:
    value: float
    source: str
    verified: bool


_TABLE_NB201 = ("GradSign paper, Table 2: Spearman's ρ over all NAS-Bench-201 architectures "
                "(baseline rows as the paper reports them from Abdelfattah et al., ICLR 2021)")

# proxy -> (CIFAR-10, CIFAR-100, ImageNet16-120)
_NB201_VALUES = {
    "grad_norm": (0.58, 0.64, 0.58),
    "snip": (0.58, 0.63, 0.58),
    "grasp": (0.48, 0.54, 0.56),
    "fisher": (0.36, 0.39, 0.33),
    "jacob_cov": (0.73, 0.71, 0.71),
    "synflow": (0.74, 0.76, 0.75),
    "gradsign": (0.77, 0.79, 0.78),
}
NB201_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")

NB201_SPEARMAN: dict[str, dict[str, PaperNumber]] = {
    proxy: {data: PaperNumber(value, _TABLE_NB201, verified=False) for data, value in zip(NB201_DATASETS, values)}
    for proxy, values in _NB201_VALUES.items()
}

MAIN_CLAIM = ("GradSign consistently outperforms state-of-the-art gradient-based methods for MPI "
              "evaluated by Spearman's ρ and Kendall's Tau (abstract)")

ASSISTED_NAS_CLAIM = {
    "text": "GradSign-assisted NAS algorithms outperform their vanilla counterparts by improving the "
            "accuracies of best-discovered networks by up to 0.3%, 1.1%, and 1.0% on three real-world "
            "tasks (abstract); Table 5: mean ± std accuracy on NAS-Bench-201 over 500 runs, searches on "
            "CIFAR-10, N = networks sampled per step",
    "max_improvement_points": {"cifar10": 0.3, "cifar100": 1.1, "ImageNet16-120": 1.0},
    "runs": 500,
    "verified": True,
}


def spearman(proxy: str, data: str = "cifar10") -> PaperNumber | None:
    """The paper's NAS-Bench-201 Spearman ρ of `proxy` on `data`, or None if it reports none.

    >>> spearman("gradsign").value
    0.77
    """
    if data not in NB201_DATASETS:
        raise ValueError(f"data must be one of {NB201_DATASETS}, got {data!r}")
    entry = NB201_SPEARMAN.get(proxy)
    return None if entry is None else entry[data]


def source_note(number: PaperNumber) -> str:
    """How an output cites a paper number: its source, and a warning if unverified."""
    note = number.source
    if not number.verified:
        note += "; transcribed without the PDF at hand, not yet checked against the paper"
    return note
