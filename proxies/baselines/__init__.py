"""Baseline zero-cost proxies, one module each; importing this package registers them."""
