"""pytest settings (`--ds=config.settings.test`): fixed dev keys, eager Celery, fast hashing."""

import os
import tempfile

from config.env import env
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

SECRET_KEY = "test-only-not-secret-django-key"
ETL_ENCRYPTION_KEY = "test-only-not-secret-etl-key"
SALT_KEY = ["test-only-salt"]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'test.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # a file, not pytest-django's in-memory default, so a real Celery worker started by the
    # integration tests can open the same test database (through DATABASE_URL); one file per
    # pytest process, so concurrent sessions never share one
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"etl-runner-test-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,  # seconds a writer waits for the other process's write lock
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ETL_FAULT_INJECT = env.str("ETL_FAULT_INJECT", default="")
"""`<phase>[:N[:stop]]`: the run executor SIGKILLs / SIGSTOPs its process at that phase
(tests/ml_platform/test_fence.py sets it for a `manage.py run_etl` subprocess)."""
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"
ETL_RUN_PROGRESS_INTERVAL_S = 0.0
ETL_DATA_DIR = tempfile.gettempdir()
"""Tests put DuckDB files in pytest's `tmp_path` (under the temporary directory)."""
ETL_LOCAL_SOURCE_ROOTS = [ETL_DATA_DIR, str(VAR_DIR / "sample")]
"""Local sources of the tests live in `tmp_path` too (and `etl_demo` copies to var/sample)."""
