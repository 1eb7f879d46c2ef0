"""The one-convention-each rules of the code base, checked on the source: in-project
imports at module level, one template for command modules, real doctests, one name for
the accuracy columns."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proxies", "theory", "empirical", "figures", "paper_repro")
# The `gradsign.commands` plug-in loads paper_repro's command line only when it runs.
FUNCTION_LEVEL_ALLOWED = {("paper_repro/command.py", "paper_repro.__main__")}
# Readers of external formats may name the format's own fields (NAS-Bench-101's ModelMetrics).
FILE_FORMAT_NAMES = {"nb101_records.py"}
COMMAND_MODULES = sorted((ROOT / "empirical" / "commands").glob("[!_]*.py")) + [ROOT / "paper_repro" / "command.py"]


def sources():
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def nested_project_imports(path: Path) -> list[str]:
    found = []

    def visit(node, inside):
        for child in ast.iter_child_nodes(node):
            if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
                names = ([a.name for a in child.names] if isinstance(child, ast.Import)
                         else [child.module or ""] if child.level == 0 else ["." + (child.module or "")])
                found.extend(n for n in names if n.split(".")[0] in PACKAGES or n.startswith("."))
            visit(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


def test_in_project_imports_are_at_module_level():
    offenders = {}
    for path in sources():
        rel = str(path.relative_to(ROOT))
        bad = [m for m in nested_project_imports(path) if (rel, m) not in FUNCTION_LEVEL_ALLOWED]
        if bad:
            offenders[rel] = bad
    assert not offenders


def test_the_checker_sees_a_function_level_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    import theory.psi\n    from empirical import stats\n")
    assert nested_project_imports(path) == ["theory.psi", "empirical"]


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.stem)
def test_command_modules_follow_one_template(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), "a module docstring"
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"register", "main"} <= set(functions)
    assert "set_defaults(func=main)" in ast.unparse(functions["register"])


def test_no_placeholder_doctests():
    assert not [str(p.relative_to(ROOT)) for p in sources() if "doctest: +SKIP" in p.read_text()]


def test_one_name_for_accuracy_columns():
    """`test_acc` / `train_acc` (fractions); never `test_accuracy` or a bare `accuracy` column."""
    offenders = [str(p.relative_to(ROOT)) for p in sources() if p.name not in FILE_FORMAT_NAMES
                 and any(s in p.read_text() for s in ('"test_accuracy"', '"train_accuracy"', "'accuracy'",
                                                    '["accuracy"]', '"accuracy":'))]
    assert not offenders
