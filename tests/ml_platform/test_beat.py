"""A real `celery beat` (django-celery-beat's DatabaseScheduler) and a real worker on the real
Redis, both on the test SQLite database: a per-minute schedule set through the service fires
and the run it enqueues succeeds. Redis unreachable fails the test; nothing skips."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection as django_connection

from ml_platform.models import Connection, EtlRun
from ml_platform.services import data_source_create
from tests.ml_platform.test_worker import (  # noqa: F401  fixtures
    REDIS_URL,
    REPO,
    Worker,
    _wait,
    broker,
    start_worker,
    stop_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start_beat(tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    """Start `celery -A config beat` with the DatabaseScheduler on the test database; stop it
    after."""
    started: list[Worker] = []

    def start() -> Worker:
        log = tmp_path / "beat.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
            "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
            "CELERY_BROKER_URL": REDIS_URL,
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "--scheduler",
                    "django_celery_beat.schedulers:DatabaseScheduler",
                    "--max-interval",
                    "1",
                    "--pidfile",
                    "",
                    "--loglevel",
                    "INFO",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        beat = Worker(process, log)
        started.append(beat)
        _wait(lambda: any("beat: Starting" in line for line in beat.lines()), 30, beat, "beat")
        return beat

    yield start
    stop_all(started, timeout_s=10)


def test_beat_fires_per_minute_schedule_and_run_succeeds(
    start_worker: Callable[..., Worker],  # noqa: F811
    start_beat: Callable[[], Worker],
    local_connection: Connection,
    tmp_path: Path,
) -> None:
    """`* * * * *` in Europe/Kyiv: within 90 s beat sends `ml_platform.data_source_run_scheduled`
    for the source, the worker enqueues and executes a run with trigger `beat`, and it
    succeeds with the 4 CSV rows."""
    source = data_source_create(
        name="orders every minute",
        connection=local_connection,
        dest_table_name="orders",
        file_pattern="*.csv",
        file_format="csv",
        destination={"type": "duckdb", "path": str(tmp_path / "o.duckdb"), "dataset": "raw"},
        schedule_cron="* * * * *",
        schedule_timezone="Europe/Kyiv",
    )
    worker = start_worker()
    beat = start_beat()
    started = time.monotonic()

    def finished_run() -> EtlRun | None:
        return EtlRun.objects.filter(
            data_source=source, trigger="beat", status__in=["succeeded", "failed"]
        ).first()

    try:
        _wait(finished_run, 90, worker, "a beat-triggered run to finish")
    finally:
        beat_log = "\n".join(beat.lines()[-30:])
    run = finished_run()
    assert run is not None, beat_log
    assert (run.status, run.error_message, run.rows_loaded) == ("succeeded", "", 4)
    assert time.monotonic() - started <= 90
    assert any(f"etl-source-{source.pk}" in line for line in beat.lines()), beat_log
