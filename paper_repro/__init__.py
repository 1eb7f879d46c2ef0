"""The GradSign paper's experiments at laptop scale, ours beside the paper's claims.

One module per entry (a table or figure of Zhang & Jia, ICLR 2022), registered by name:

    python -m paper_repro <entry> [--toy] [--out DIR] [--seed S] ...
    gradsign repro <entry> ...

Entries write ``report.md`` (settings, seeds, number of runs, tables with confidence
intervals, a verdict), CSV tables and PNG figures under ``paper_repro/out/<entry>/``.
The paper's own numbers live in `paper_repro.paper_numbers` with their sources.
"""
from paper_repro.registry import Entry, get, names, register

# Entries register themselves on import, in the order the README lists them.
from paper_repro import rank_correlation, batch_size, init_scheme, assisted_search, landscape  # noqa: E402,F401

__all__ = ["Entry", "get", "names", "register"]
