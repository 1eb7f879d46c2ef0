"""theory/ has no import circle and no function-level import of the project's packages;
its registries never import back into the modules that register into them."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("proxies", "theory", "empirical", "figures", "paper_repro")


def _imports(path: Path):
    """(module-level imported modules, project imports found inside a def/class body)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top, nested = set(), []

    def names(node):
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        return []

    def visit(node, inside):
        for child in ast.iter_child_nodes(node):
            found = [n for n in names(child) if n.split(".")[0] in PROJECT]
            if found:
                (nested.extend(found) if inside else top.update(found))
            visit(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)))

    visit(tree, False)
    return top, nested


def _theory_graph():
    modules = {f"theory.{p.stem}": p for p in (ROOT / "theory").glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        top, nested = _imports(path)  # an import inside a function still closes a circle
        graph[name] = {m for m in top | set(nested) if m in modules}
    return graph


def _cycle(graph):
    state, stack = {}, []

    def dfs(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_import_circle_between_theory_modules():
    graph = _theory_graph()
    assert graph["theory.assumptions"] >= {"theory.agreement", "theory.registry"}
    assert _cycle(graph) is None, _cycle(graph)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_level_import_of_the_project_in_theory():
    offenders = {}
    for path in (ROOT / "theory").glob("*.py"):
        _, nested = _imports(path)
        if nested:
            offenders[path.name] = nested
    assert not offenders


def test_the_registry_imports_nothing_of_theory():
    top, nested = _imports(ROOT / "theory" / "registry.py")
    assert not [m for m in top | set(nested) if m.startswith("theory")]
