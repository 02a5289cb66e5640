"""Arrow's memory pool (jemalloc) and its options are set by `import etl` before pyarrow loads
(etl/allocator.py), in `python -m etl`, in a Celery worker and under a user's own setting."""

from __future__ import annotations

import os
import subprocess
import sys

from etl.allocator import JEMALLOC_CONF, JEMALLOC_CONF_VARIABLE, POOL_VARIABLE
from tests.etl.support import REPO_ROOT

REPORT = (
    "import os, sys, pyarrow; names = list(sys.modules); "
    "print(os.environ.get('JE_ARROW_MALLOC_CONF'), "
    "pyarrow.default_memory_pool().backend_name, "
    "names.index('etl.allocator') < names.index('pyarrow'))"
)


def python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in (JEMALLOC_CONF_VARIABLE, POOL_VARIABLE)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_import_etl_sets_the_pool_and_decay_before_pyarrow_loads() -> None:
    assert python(f"import etl; {REPORT}") == f"{JEMALLOC_CONF} jemalloc True"


def test_without_etl_pyarrow_keeps_its_own_default_pool() -> None:
    """The wheel's default (mimalloc) is what `import etl` changes."""
    assert python(REPORT.replace("names.index('etl.allocator') < ", "'etl' not in names or ")) == (
        "None mimalloc True"
    )


def test_a_users_own_pool_and_jemalloc_options_are_kept() -> None:
    assert (
        python(
            f"import etl; {REPORT}",
            JE_ARROW_MALLOC_CONF="dirty_decay_ms:5000",
            ARROW_DEFAULT_MEMORY_POOL="system",
        )
        == "dirty_decay_ms:5000 system True"
    )


def test_a_celery_worker_imports_etl_before_pyarrow() -> None:
    """What a worker imports (config/celery_app.py, Django, the tasks) loads etl.allocator
    first, so the option reaches jemalloc there too."""
    code = "import config.celery_app, django; django.setup(); import ml_platform.tasks; " + REPORT
    assert (
        python(code, DJANGO_SETTINGS_MODULE="config.settings.test")
        == f"{JEMALLOC_CONF} jemalloc True"
    )
