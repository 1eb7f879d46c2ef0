"""The toolkit's scalar argument checks (`proxies.checks`: `check_int`, `check_number`,
`check_choice`), re-exported for packages above `empirical` that may not import
`proxies` directly (paper_repro's entries).

>>> check_int("--runs", 3, minimum=2)
3
"""
from proxies.checks import check_choice, check_int, check_number

__all__ = ["check_choice", "check_int", "check_number"]
