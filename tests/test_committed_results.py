"""Committed results: made from a clean commit, and the README quotes them faithfully.

Every report under ``docs/results/`` names the git revision it was produced at, and that
revision must be a clean 40-hex commit (no ``-dirty`` suffix, no ``unknown``). Every
decimal number on a README line that cites ``docs/results/<name>`` must appear, as
written, in that folder's ``.md``, ``.csv`` or ``.json`` files (or as a rounding of a
number there), so a README table cannot drift from the report it quotes.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
README = ROOT / "README.md"
REVISION = re.compile(r"[Gg]it revision(?:\(s\))?[:|\s]+([0-9A-Za-z_\-, ]+)")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
CITATION = re.compile(r"docs/results/([A-Za-z0-9_\-]+)")
NUMBER = re.compile(r"(?<![\w.])[-−+]?\d+\.\d+")


def _reports():
    return sorted(RESULTS.glob("**/report.md"))


def _revisions(text: str) -> list[str]:
    revs = []
    for match in REVISION.finditer(text):
        for rev in match.group(1).split(","):
            rev = rev.strip().strip("|").strip()
            if rev:
                revs.append(rev.split()[0])
    return revs


def test_every_results_folder_has_a_report():
    folders = [p for p in RESULTS.iterdir() if p.is_dir()]
    assert folders, "docs/results is empty"
    for folder in folders:
        assert list(folder.glob("**/report.md")), f"{folder.name} has no report.md"


@pytest.mark.parametrize("report", _reports(), ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_report_names_a_clean_commit(report):
    revs = _revisions(report.read_text(encoding="utf-8"))
    assert revs, f"{report} names no git revision"
    for rev in revs:
        assert HEX40.match(rev), f"{report}: revision {rev!r} is not a clean 40-hex commit"


def test_shipped_benchmarks_name_clean_commits():
    metas = sorted((ROOT / "empirical" / "benchmarks").glob("*.json"))
    assert metas
    for meta in metas:
        rev = json.loads(meta.read_text(encoding="utf-8")).get("git_revision")
        assert rev and HEX40.match(rev), f"{meta.name}: git_revision {rev!r} is not clean"


def _numbers(text: str) -> set[str]:
    return {m.replace("−", "-").lstrip("+") for m in NUMBER.findall(text)}


def _folder_numbers(folder: Path) -> list[float]:
    values = []
    for path in folder.rglob("*"):
        if path.suffix in {".md", ".csv", ".json"}:
            for token in _numbers(path.read_text(encoding="utf-8")):
                values.append(float(token))
            for token in re.findall(r"(?<![\w.])[-−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
                                    path.read_text(encoding="utf-8")):
                values.append(float(token.replace("−", "-")))
    return values


def _is_quoted(token: str, values: list[float]) -> bool:
    """``token`` (as printed in the README) equals some value of the folder rounded to
    the README's number of decimals, or that value as a percentage."""
    decimals = len(token.split(".")[1])
    target = float(token)
    half = 0.5 * 10 ** (-decimals) + 1e-12
    return any(abs(v - target) <= half or abs(100 * v - target) <= half for v in values)


def test_readme_numbers_appear_in_the_reports_they_cite():
    checked = 0
    missing = []
    cache: dict[str, list[float]] = {}
    for lineno, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        names = CITATION.findall(line)
        if not names:
            continue
        for name in names:
            folder = RESULTS / name
            assert folder.is_dir(), f"README line {lineno} cites missing {folder}"
            if name not in cache:
                cache[name] = _folder_numbers(folder)
        pool = [v for name in names for v in cache[name]]
        for token in _numbers(CITATION.sub("", line)):
            checked += 1
            if not _is_quoted(token, pool):
                missing.append(f"line {lineno}: {token} not in docs/results/{'|'.join(names)}")
    assert not missing, "\n".join(missing)
    assert checked >= 20, f"only {checked} README numbers cite docs/results"
