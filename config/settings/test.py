"""pytest settings (`--ds=config.settings.test`): fixed dev keys, eager Celery, fast hashing."""

from config.env import env
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR

SECRET_KEY = "test-only-not-secret-django-key"
ETL_ENCRYPTION_KEY = "test-only-not-secret-etl-key"
SALT_KEY = ["test-only-salt"]

DATABASES = {
    # pytest-django runs SQLite test databases in memory
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'test.sqlite3'}"),
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"
ETL_RUN_PROGRESS_INTERVAL_S = 0.0
