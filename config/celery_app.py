"""The Celery app: broker `CELERY_BROKER_URL` (Redis), settings read from Django's `CELERY_*`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("etl_runner")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
