"""One machine, no cloud: SQLite metadata, DuckDB warehouse, Celery tasks run in-process."""

from config.env import env
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

# the default SQLite file and DuckDB warehouse live here
VAR_DIR.mkdir(exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-dev-only-not-secret-django-key")
ETL_ENCRYPTION_KEY = env.str("ETL_ENCRYPTION_KEY", default="local-dev-only-not-secret-etl-key")
SALT_KEY = env.list("ETL_ENCRYPTION_SALT", default=["local-dev-only-salt"])

# without a worker, `etl_run_enqueue` runs the task in-process when the transaction commits
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # web and worker processes share the SQLite file: wait for the other's write lock
    DATABASES["default"].setdefault("OPTIONS", {}).update(  # noqa: F405
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
