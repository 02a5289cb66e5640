"""Production: every secret from the environment (no defaults), PostgreSQL via DATABASE_URL,
a Redis broker and real Celery workers."""

from config.env import env
from config.logging import structlog_configure
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
ETL_ENCRYPTION_KEY = env.str("ETL_ENCRYPTION_KEY")
SALT_KEY = env.list("ETL_ENCRYPTION_SALT")

DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)  # noqa: F405  # seconds

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=True)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

ETL_LOG_JSON = env.bool("ETL_LOG_JSON", default=True)
structlog_configure(level=ETL_LOG_LEVEL, json=ETL_LOG_JSON)  # noqa: F405
