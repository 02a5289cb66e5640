"""A real Celery worker started by the integration tests (tests/ml_platform/test_worker.py):
the test settings, but tasks go through the broker at `CELERY_BROKER_URL` (Redis) and the
database is the test process's SQLite file, given as `DATABASE_URL`."""

from config.env import env
from config.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
"""The queue this worker consumes and publishes to; a test gives each of its workers' groups a
queue of its own on the shared Redis, so concurrent test sessions never take each other's tasks."""
