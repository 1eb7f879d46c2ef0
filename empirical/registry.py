"""The toolkit's one registry class (`proxies.registry.Registry`), for packages above
`empirical` that may not import `proxies` directly (paper_repro's entries)."""
from proxies.registry import Registry

__all__ = ["Registry"]
