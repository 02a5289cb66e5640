"""No module of the engine imports in a circle (issue 15): the import graph of `etl/` is built
from the source with `ast` (imports inside functions included, since they hide circles rather
than remove them) and searched for a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ETL = Path(__file__).resolve().parents[3] / "etl"


def _module(path: Path) -> str:
    parts = path.relative_to(ETL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    modules = {_module(path): path for path in ETL.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found.update(target for target in targets if target in modules and target != name)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_engine_modules_import_no_circle() -> None:
    """Following every import between `etl` modules never leads back to where it started."""
    graph = _import_graph()

    assert "etl.formats.csv.reader" in graph["etl.formats.read"]
    assert _cycle(graph) is None


def test_config_imports_no_reader() -> None:
    """`etl.config` validates `column_types` with the leaf `etl.formats.types`, not a reader."""
    graph = _import_graph()
    config = {name for name in graph if name == "etl.config" or name.startswith("etl.config.")}
    assert {"etl.config.job", "etl.config.files"} <= config
    for name in config:
        assert graph[name] - config <= {"etl.exceptions", "etl.formats.types"}, name
