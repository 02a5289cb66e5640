"""Settings shared by every environment. Values come from the environment via `config.env`.

local.py, test.py and production.py import this module and add what differs; only they define
`SECRET_KEY` and the credentials encryption key (production requires both from the environment).
"""

from config.env import BASE_DIR, env
from config.logging import structlog_configure

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

VAR_DIR = BASE_DIR / "var"
"""Local working files: the SQLite metadata database, the DuckDB warehouse, sample data."""

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "ml_platform",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'etl_runner.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# credentials at rest: django-fernet-encrypted-fields derives Fernet keys from a secret and
# `SALT_KEY` (first salt encrypts, all decrypt); ml_platform's fields take the secret from
# `ETL_ENCRYPTION_KEY` (+ `ETL_ENCRYPTION_KEY_FALLBACKS`) instead of Django's SECRET_KEY, so
# rotating the session/CSRF key never makes stored credentials unreadable
ETL_ENCRYPTION_KEY_FALLBACKS = env.list("ETL_ENCRYPTION_KEY_FALLBACKS", default=[])

ETL_DEFAULT_DUCKDB_PATH = env.str(
    "ETL_DEFAULT_DUCKDB_PATH", default=str(VAR_DIR / "warehouse.duckdb")
)
"""DuckDB file used by data sources whose destination block gives no `path`."""

ETL_RUN_PROGRESS_INTERVAL_S = env.float("ETL_RUN_PROGRESS_INTERVAL_S", default=2.0)
"""Seconds between writes of a running EtlRun's progress counters."""

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=6 * 3600)  # seconds
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=6 * 3600 + 300)  # seconds
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # must exceed the longest run, or Redis redelivers an acks_late task still running
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 600,  # seconds
}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

ETL_LOG_LEVEL = env.str("ETL_LOG_LEVEL", default="INFO")
ETL_LOG_JSON = env.bool("ETL_LOG_JSON", default=False)
structlog_configure(level=ETL_LOG_LEVEL, json=ETL_LOG_JSON)
