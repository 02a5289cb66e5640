"""The engine never imports django, celery or ml_platform (DESIGN.md §2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.etl.support import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import sys
    for blocked in ("django", "celery", "ml_platform"):
        sys.modules[blocked] = None  # any import of it raises ImportError

    import importlib, pkgutil
    import etl
    for module in pkgutil.walk_packages(etl.__path__, "etl."):
        importlib.import_module(module.name)

    from etl import JobConfig, run
    job = JobConfig.parse({
        "source_type": "local", "connection_params": {"base_path": sys.argv[1]},
        "file_format": "csv", "dest_table_name": "t",
        "destination": {"type": "duckdb", "path": sys.argv[2]},
    })
    result = run(job)
    loaded = sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("django", "celery", "ml_platform") and sys.modules[name]
    )
    print(result.rows_loaded, loaded)
    """
)


def test_engine_imports_and_runs_without_django_celery_or_ml_platform(tmp_path: Path) -> None:
    """Every `etl` module imports, and a job runs, with django, celery and ml_platform made
    unimportable."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id,name\n1,a\n2,b\n")

    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "in"), str(tmp_path / "w.duckdb")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.splitlines()[-1] == "2 []"
