"""The project's modules import each other without a cycle.

The graph has an edge from a module to every project module it imports at its top level (the
imports that run when it is imported; those inside functions, which run later, and those under
``if TYPE_CHECKING:``, which never run, are left out), built with the standard library's `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dag", "traces", "worker", "sim", "planners", "dashboard", "runtime", "experiments")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_level_imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Modules named by the import statements that run when the module is imported."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.Try) else node.body + node.finalbody:
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name if is_package else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".strip(".")
                found.update(f"{base}.{alias.name}" for alias in child.names)
                found.add(f"{base}.*")  # the package itself, unless every name is a module
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = top_level_imports(tree, name, path.name == "__init__.py")
        edges = {m for m in imported if m in modules}
        for star in [m for m in imported if m.endswith(".*")]:
            base = star[:-2]
            names = {m for m in imported if m.startswith(base + ".") and not m.endswith(".*")}
            if base in modules and not names <= set(modules):  # some name is not a module
                edges.add(base)
        # A package's own __init__ runs before any of its modules: not an edge of the design.
        graph[name] = {m for m in edges if m != name and not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_built_from_every_package():
    """The graph covers every package and sees their imports (a sanity check of the builder)."""
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} == set(PACKAGES)
    assert "dag.graph" in graph["dag.lang"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    """No chain of top-level imports leads from a module back to itself."""
    assert find_cycle(import_graph()) is None
