"""The package's modules import each other without a cycle, so data flows one way.

The graph is built from the source with `ast`: every `import selfimprove…` and `from selfimprove… import
…` anywhere in a module counts, at the top, inside a function (a lazy import) or under
`if TYPE_CHECKING:`. `from package import name` points at the submodule when `name` is one, else at the
package. The implicit import of a module's parent packages (their `__init__`) is not an edge: a package
`__init__` that re-exports its modules' names would otherwise make every module of it a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import selfimprove

PACKAGE = Path(selfimprove.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (itself left out)."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(owner(a.name) for a in node.names if a.name.startswith("selfimprove"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package upwards
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if not base.startswith("selfimprove"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in mods else owner(base))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_package_imports_without_a_cycle() -> None:
    found = cycle(import_graph())
    assert found is None, "import cycle: " + " -> ".join(found or ())


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "selfimprove.analysis.parallel" in graph["selfimprove.analysis.pipeline"]  # inside analyze()
    assert "selfimprove.analysis.records" in graph["selfimprove.analysis.judge"]  # under TYPE_CHECKING
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_analysis_never_imports_downstream_stages_or_the_cli() -> None:
    """Data flows one way: traces → analysis → proposals → evals; rendering lives in the CLI."""
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("selfimprove.analysis"):
            bad = {t for t in targets if t.startswith(("selfimprove.proposals", "selfimprove.evals",
                                                       "selfimprove.cli"))}
            assert not bad, f"{name} imports {sorted(bad)}"
