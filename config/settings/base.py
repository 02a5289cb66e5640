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
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc assets served by this app (no CDN)
    "django_celery_beat",
    "ml_platform",
]

MIDDLEWARE = [
    # outermost: under /api/ even Django's own error pages (404, 400, 413, 500) are JSON
    "ml_platform.api.middleware.ApiJsonErrorsMiddleware",
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
    # token first: its `WWW-Authenticate` makes a missing login a 401, not a 403
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # only staff read or change anything; the scheduler webhook and runner API override this
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ml_platform.api.exception_handlers.api_exception_handler",
    # JSON bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (413) and nesting depth (400)
    "DEFAULT_PARSER_CLASSES": [
        "ml_platform.api.parsers.ApiJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ETL Runner API",
    "DESCRIPTION": "Connections, data sources, runs, Run Now and the Cloud Scheduler webhook.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ml_platform.api.common.error_responses_hook",
    ],
}

SCHEDULER_OIDC_AUDIENCE = env.str("SCHEDULER_OIDC_AUDIENCE", default="")
"""`aud` the Cloud Scheduler ID token must carry (the webhook URL, or a configured audience);
empty refuses every token."""
SCHEDULER_OIDC_ALLOWED_EMAILS = env.list("SCHEDULER_OIDC_ALLOWED_EMAILS", default=[])
"""Service-account emails allowed to trigger runs; empty refuses every token."""
SCHEDULER_OIDC_CERTS_URL = env.str(
    "SCHEDULER_OIDC_CERTS_URL", default="https://www.googleapis.com/oauth2/v1/certs"
)
"""Google's signing certificates as `{kid: x509 PEM}` JSON."""
SCHEDULER_OIDC_CLOCK_SKEW_S = env.int("SCHEDULER_OIDC_CLOCK_SKEW_S", default=30)  # seconds
SCHEDULER_OIDC_CERTS_TIMEOUT_S = env.float("SCHEDULER_OIDC_CERTS_TIMEOUT_S", default=5.0)  # seconds
SCHEDULER_OIDC_CERTS_DEFAULT_TTL_S = env.int("SCHEDULER_OIDC_CERTS_DEFAULT_TTL_S", default=300)
"""Seconds to keep fetched certs when the response has no Cache-Control max-age."""

ETL_EXECUTOR = env.str("ETL_EXECUTOR", default="celery")
"""Who executes enqueued runs: `celery` (a worker takes the task) or `cloud_run` (a Cloud Run
Job execution of `python -m etl run --data-source-id N --run-id R` per run)."""
if ETL_EXECUTOR not in ("celery", "cloud_run"):
    raise ValueError(f"ETL_EXECUTOR must be `celery` or `cloud_run`, not {ETL_EXECUTOR!r}.")
ETL_CLOUD_RUN_JOB = env.str("ETL_CLOUD_RUN_JOB", default="")
"""Full name of the runner job: `projects/<project>/locations/<region>/jobs/<job>`."""
ETL_CLOUD_RUN_EMULATOR_HOST = env.str("ETL_CLOUD_RUN_EMULATOR_HOST", default="")
"""`host:port` of a Cloud Run Admin API stand-in spoken to over plaintext gRPC (tests only)."""
ETL_RUNNER_TOKEN = env.str("ETL_RUNNER_TOKEN", default="")
"""Shared secret runners send as `Authorization: Bearer ...`; empty disables it."""
ETL_RUNNER_OIDC_AUDIENCE = env.str("ETL_RUNNER_OIDC_AUDIENCE", default="")
"""`aud` of the Google ID tokens runners may send instead; empty refuses them."""
ETL_RUNNER_ALLOWED_EMAILS = env.list("ETL_RUNNER_ALLOWED_EMAILS", default=[])
"""Service accounts whose Google ID tokens are runner credentials."""

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

ETL_RUN_HEARTBEAT_INTERVAL_S = env.float("ETL_RUN_HEARTBEAT_INTERVAL_S", default=30.0)
"""Seconds between heartbeats (`EtlRun.updated_at`) of a running run, from a worker thread."""
ETL_RUN_STALE_AFTER_S = env.float("ETL_RUN_STALE_AFTER_S", default=300.0)
"""A running run without a heartbeat for this many seconds has lost its worker: the reaper
(`manage.py etl_reap_stale_runs`, beat task `ml_platform.etl_run_reap_stale`) fails it."""
ETL_CHUNK_STALE_AFTER_S = env.float("ETL_CHUNK_STALE_AFTER_S", default=120.0)
"""A chunk of a parallel run whose worker sent no heartbeat for this many seconds is lost (killed,
out of memory): the run's coordinator hands that chunk alone to another worker (a new attempt)."""
ETL_CHUNK_MAX_ATTEMPTS = env.int("ETL_CHUNK_MAX_ATTEMPTS", default=3)
"""Attempts of one chunk (lost workers and transient errors) before its run fails."""
ETL_CHUNK_POLL_INTERVAL_S = env.float("ETL_CHUNK_POLL_INTERVAL_S", default=1.0)
"""Seconds between two looks of a parallel run's coordinator at its chunks' table."""
ETL_STAGING_DIR = env.str("ETL_STAGING_DIR", default=str(VAR_DIR / "staging"))
"""Where parallel runs into DuckDB stage their chunks' Parquet parts (one folder per run); with
workers on several machines, a folder every worker and the coordinator share (NFS, GCS fuse)."""
ETL_READER_LEASE_S = env.float("ETL_READER_LEASE_S", default=120.0)
"""A reader slot (`Connection.max_readers`) is leased for this many seconds and renewed by its
holder's heartbeat; a slot of a killed worker is free again once its lease expired."""
ETL_READER_WAIT_POLL_S = env.float("ETL_READER_WAIT_POLL_S", default=1.0)
"""Seconds between two tries of a run or chunk waiting for a free reader slot."""
ETL_RUN_QUEUED_STALE_AFTER_S = env.float("ETL_RUN_QUEUED_STALE_AFTER_S", default=300.0)
"""A run queued this many seconds whose task message is neither waiting in the broker nor held
by a worker (lost in a broker restart) is failed by the reaper, freeing its source."""
ETL_RUN_QUEUED_MAX_AGE_S = env.float("ETL_RUN_QUEUED_MAX_AGE_S", default=24 * 3600.0)
"""A run still queued after this many seconds is failed even if its message is in the broker."""
ETL_ENQUEUE_RETRY_AFTER_S = env.int("ETL_ENQUEUE_RETRY_AFTER_S", default=30)  # seconds
"""`Retry-After` of the 503 a trigger gets when the broker cannot take the run."""
ETL_DATA_DIR = env.str("ETL_DATA_DIR", default=str(VAR_DIR))
"""Folder every DuckDB destination `path` must lie in; a relative path is taken from here."""
ETL_LOCAL_SOURCE_ROOTS = env.list(
    "ETL_LOCAL_SOURCE_ROOTS", default=[ETL_DATA_DIR, str(VAR_DIR / "sample")]
)
"""Folders a `local` connection's `base_path` must lie in (checked on save and again when a run,
preview or listing uses it): the data directory and `make demo`'s `var/sample/`. A folder that
holds the control plane's SQLite database is refused whatever the roots."""
ETL_BROWSE_MAX_ENTRIES = env.int("ETL_BROWSE_MAX_ENTRIES", default=100_000)
"""Files and folders a connection's file listing (`files/`) walks before it stops, `truncated`."""
ETL_BROWSE_MAX_SECONDS = env.float("ETL_BROWSE_MAX_SECONDS", default=10.0)  # seconds
"""Wall-clock bound of the same listing; past it the listing answers what it found, `truncated`."""
ETL_DUCKDB_LOCK_TIMEOUT_S = env.float("ETL_DUCKDB_LOCK_TIMEOUT_S", default=6 * 3600.0)
"""Seconds a run waits for another run writing the same DuckDB file before failing (transient)."""
ETL_FAULT_INJECT = ""
"""Test-only fault injection of the run executor (`<phase>[:N[:stop]]`, see
`etl.pipeline.fault_hook_from_spec`); always empty here: only config/settings/test.py reads it
from the environment."""
ETL_SCHEDULER_EXECUTOR = env.str("ETL_SCHEDULER_EXECUTOR", default="local")
"""Who fires data source schedules: `local` (django-celery-beat: `make beat`) or `cloud`
(one Google Cloud Scheduler job per source, posting to the scheduler webhook)."""
ETL_BIGQUERY_QUOTA_SHARE = env.float("ETL_BIGQUERY_QUOTA_SHARE", default=0.5)
"""Share (0-1) of BigQuery's 1,500 load jobs per table per day a BigQuery source's schedule may
use (runs a day x 2 jobs a run); a schedule above it is refused with the numbers."""
ETL_PUBLIC_BASE_URL = env.str("ETL_PUBLIC_BASE_URL", default="")
"""Public origin of this web app (`https://etl.example.com`); cloud jobs post to its webhook."""
ETL_CLOUD_SCHEDULER_PARENT = env.str("ETL_CLOUD_SCHEDULER_PARENT", default="")
"""`projects/<project>/locations/<region>` holding the Cloud Scheduler jobs (cloud executor)."""
ETL_CLOUD_SCHEDULER_SERVICE_ACCOUNT = env.str("ETL_CLOUD_SCHEDULER_SERVICE_ACCOUNT", default="")
"""Service account whose OIDC token the jobs send; list it in SCHEDULER_OIDC_ALLOWED_EMAILS."""
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/etl/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
"""Django's login page guards the web pages (staff only); after login: the source list."""
ETL_CLOUD_SCHEDULER_EMULATOR_HOST = env.str("ETL_CLOUD_SCHEDULER_EMULATOR_HOST", default="")
"""`host:port` of a plain-gRPC Cloud Scheduler stand-in (tests); empty: the real API."""
ETL_PREVIEW_MAX_ROWS = env.int("ETL_PREVIEW_MAX_ROWS", default=1000)
# alerts (ml_platform/services/alerts.py): a failed run, or no success for ETL_ALERT_STALE_FACTOR
# x the schedule interval, notifies these once per incident, and again on recovery
ETL_ALERT_EMAILS = env.list("ETL_ALERT_EMAILS", default=[])
ETL_ALERT_WEBHOOK_URL = env.str("ETL_ALERT_WEBHOOK_URL", default="")
ETL_ALERT_FROM_EMAIL = env.str("ETL_ALERT_FROM_EMAIL", default="etl-runner@localhost")
ETL_ALERT_STALE_FACTOR = env.float("ETL_ALERT_STALE_FACTOR", default=2.0)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_TIMEOUT = 10  # seconds
"""Upper bound of `limit` in a data source preview."""

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
CELERY_BEAT_SCHEDULE = {
    # installed into django-celery-beat's tables by the DatabaseScheduler at beat start
    "etl-run-reap-stale": {
        "task": "ml_platform.etl_run_reap_stale",
        "schedule": env.float("ETL_REAP_INTERVAL_S", default=60.0),  # seconds
    },
    "etl-alerts-evaluate": {
        "task": "ml_platform.alerts_evaluate",
        "schedule": env.float("ETL_ALERT_INTERVAL_S", default=60.0),  # seconds
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

ETL_LOG_LEVEL = env.str("ETL_LOG_LEVEL", default="INFO")
ETL_LOG_JSON = env.bool("ETL_LOG_JSON", default=False)
structlog_configure(level=ETL_LOG_LEVEL, json=ETL_LOG_JSON)
