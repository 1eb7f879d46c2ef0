"""Baseline zero-cost proxies, one module each; importing this package registers them.

Registration order (that of `proxies.names()` after GradSign): grad_norm, snip, grasp,
fisher, jacob_cov, synflow (Abdelfattah et al., ICLR 2021), naswot (Mellor et al., 2021),
zen (Lin et al., 2021), zico (Li et al., 2023), params, flops.
"""
from proxies.baselines import (  # noqa: F401
    grad_norm,
    snip,
    grasp,
    fisher,
    jacob_cov,
    synflow,
    naswot,
    zen,
    zico,
    params,
    flops,
)
