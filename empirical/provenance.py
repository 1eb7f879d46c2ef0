"""Provenance recorded with every result row: library versions and the git revision."""
from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import tomllib
from pathlib import Path

__all__ = ["dirty_warning", "git_revision", "package_version", "versions"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_DISTRIBUTIONS = {"torch": "torch", "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn"}


def package_version() -> str:
    """Version of this toolkit: pyproject.toml of a source checkout, else the installed metadata."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as handle:
            project = tomllib.load(handle).get("project", {})
        if project.get("name") == "gradsign-toolkit" and "version" in project:
            return str(project["version"])
    try:
        return importlib.metadata.version("gradsign-toolkit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python, torch, numpy, scipy, scikit-learn and this toolkit.

    Read from package metadata, so nothing heavy is imported; "absent" marks a library
    that is not installed.
    """
    out = {"python": platform.python_version()}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "absent"
    out["gradsign"] = package_version()
    return out


def git_revision(repo_dir: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the toolkit's checkout, with "-dirty" if tracked files
    differ from HEAD; "unknown" when it is not a git checkout or git is unavailable."""
    cwd = Path(repo_dir) if repo_dir is not None else REPO_ROOT
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = head.stdout.strip()
    if status.returncode != 0 or status.stdout.strip():
        revision += "-dirty"
    return revision


def dirty_warning(revisions) -> str | None:
    """The warning a report carries when any of ``revisions`` (one or several
    `git_revision` values) is not a clean commit, else None. Committed results must be
    made from a clean commit (`tests/test_committed_results.py` refuses them otherwise).

    >>> dirty_warning(["0123abc"]) is None
    True
    >>> dirty_warning("0123abc-dirty")[:40]
    '**Not a committed result: made from a mo'
    """
    revisions = [revisions] if isinstance(revisions, str) else list(revisions)
    unclean = [r for r in revisions if r.endswith("-dirty") or r == "unknown"]
    if not unclean:
        return None
    return (f"**Not a committed result: made from a modified working tree or outside git "
            f"({', '.join(unclean)}); its numbers cannot be traced to a commit. Regenerate it from a "
            "clean checkout before committing it.**")
