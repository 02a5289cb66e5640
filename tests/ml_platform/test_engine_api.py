"""The control plane uses the engine through its public API only: every name `ml_platform`
imports from `etl`, or reads as `etl.<name>`, is in `etl.__all__` (issue 15: seven imports
bypassed it, and `services.preview` re-implemented the engine's extract -> transform loop)."""

from __future__ import annotations

import ast
from pathlib import Path

import etl

ML_PLATFORM = Path(__file__).resolve().parents[2] / "ml_platform"


def engine_names_used(source: str) -> list[tuple[int, str]]:
    """Return `(line, name)` of each engine name a module's code uses: `from etl import name`,
    `etl.name` (after `import etl`), and a whole submodule path for `import etl.x` / `from
    etl.x import ...` (never public). Strings and comments are not code and are not read."""
    used: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            used += [(node.lineno, a.name) for a in node.names if a.name.startswith("etl.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "etl":
                used += [(node.lineno, alias.name) for alias in node.names]
            elif node.module.startswith("etl."):
                used.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "etl"
        ):
            used.append((node.lineno, node.attr))
    return used


def test_engine_names_used_finds_every_kind_of_use() -> None:
    """The checker sees the four ways a module can reach into the engine."""
    source = (
        "import etl\nimport etl.pipeline\nfrom etl import run, JobConfig\n"
        "from etl.registry import get_extractor\nx = etl.config.SECRET_KEYS\n"
        "s = 'etl.not_code'\n"
    )
    assert engine_names_used(source) == [
        (2, "etl.pipeline"),
        (3, "run"),
        (3, "JobConfig"),
        (4, "etl.registry"),
        (5, "config"),
    ]


def test_ml_platform_imports_only_the_engines_public_names() -> None:
    """Every engine name used anywhere in ml_platform (migrations included) is public."""
    public = set(etl.__all__)
    outside = [
        f"{path.relative_to(ML_PLATFORM.parent)}:{line}: {name}"
        for path in sorted(ML_PLATFORM.rglob("*.py"))
        for line, name in engine_names_used(path.read_text())
        if name not in public
    ]
    assert outside == []
    assert len(list(ML_PLATFORM.rglob("*.py"))) > 50  # the walk found the package
