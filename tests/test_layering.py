"""The import direction of architecture.md: proxies <- theory <- empirical <- paper_repro,
empirical -> figures, figures imports none of the others, and paper_repro reaches
proxies only through empirical."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proxies", "theory", "empirical", "figures", "paper_repro")
ALLOWED = {
    "proxies": set(),
    "theory": {"proxies"},
    "empirical": {"proxies", "theory", "figures"},
    "figures": set(),
    "paper_repro": {"theory", "empirical", "figures"},  # proxies only through empirical
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in (ROOT / package).rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}, "upward or sideways imports"


def test_no_import_by_name_string_of_a_higher_package():
    for package in ("proxies", "theory", "empirical", "figures"):
        for path in (ROOT / package).rglob("*.py"):
            assert '"paper_repro' not in path.read_text(), f"{path} names paper_repro"
