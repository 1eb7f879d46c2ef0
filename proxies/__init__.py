"""Zero-cost proxies: GradSign and the baselines, over one per-sample gradient engine."""
from proxies.registry import compute, get, names, register
from proxies.gradsign import gradsign, gradsign_sq, sign_counts

# Baseline proxies register themselves on import (one module per proxy).
from proxies import baselines  # noqa: E402,F401

__all__ = ["compute", "get", "names", "register", "gradsign", "gradsign_sq", "sign_counts"]
