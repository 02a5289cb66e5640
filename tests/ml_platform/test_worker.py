"""A real Celery worker process on the real Redis (a database of 127.0.0.1:6379 claimed per session), sharing the
test SQLite database file: triggers from the web side reach the worker through the broker, a
worker killed with SIGKILL mid-run leaves a run the reaper fails, and the rerun loads exactly
what is missing. Redis or PostgreSQL unreachable fails these tests; nothing skips."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import redis
from django.db import connection as django_connection

from config import celery_app
from ml_platform.models import Connection, DataSource, EtlRun
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_enqueue,
    etl_run_reap_stale,
)
from tests.ml_platform.api.test_scheduler_webhook import (  # noqa: F401  fixtures
    certs_server,
    google_key,
    oidc,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = "redis://127.0.0.1:6379"


def _redis_db_claim() -> str:
    """Return the URL of a Redis database (1-15 of the shared server) that this pytest process
    alone uses: each is claimed with `SET NX` on a key in database 0, expiring after two hours
    and released at exit, so two test sessions on one machine never flush each other's broker."""
    client = redis.Redis.from_url(f"{REDIS_SERVER}/0")
    for number in range(1, 16):
        key = f"etl-runner-tests:db:{number}"
        if client.set(key, os.getpid(), nx=True, ex=7200):
            atexit.register(client.delete, key)
            return f"{REDIS_SERVER}/{number}"
    raise RuntimeError(f"all Redis databases 1-15 of {REDIS_SERVER} are claimed by test sessions")


REDIS_URL = _redis_db_claim()
"""A Redis database of this test session, flushed before each test."""
REPO = Path(__file__).resolve().parents[2]
PG_PASSWORD = "pg-worker-secret-never-logged"
"""PostgreSQL trusts local connections, so any password works; it must never reach the logs."""
FLIGHTS = 336_776


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """Publish this process's tasks to this session's Redis database (not eagerly): the web side of a
    deployment. The database is flushed first."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setitem(celery_app.conf, "broker_url", REDIS_URL)
    # connections and producers are pooled (per broker URL) on first use: start and end fresh
    _broker_pools_reset()
    yield client
    _broker_pools_reset()
    client.flushdb()
    client.close()


def _broker_pools_reset() -> None:
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def start_worker(tmp_path: Path, broker: redis.Redis) -> Iterator[Callable[..., Worker]]:
    """Start `celery -A config worker --pool solo` on the test database; stop (or kill) it after."""
    started: list[Worker] = []

    def start() -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
            "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
            "CELERY_BROKER_URL": REDIS_URL,
            "ETL_RUN_HEARTBEAT_INTERVAL_S": "0.5",
            "ETL_LOG_JSON": "true",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "solo",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                    "-n",
                    f"etl-test-{uuid.uuid4().hex[:8]}@%h",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, log)
        started.append(worker)
        _wait(lambda: any(" ready." in line for line in worker.lines()), 30, worker, "ready")
        return worker

    yield start
    stop_all(started, timeout_s=15)


def stop_all(workers: list[Worker], *, timeout_s: float) -> None:
    """SIGTERM each still-running process, SIGKILL it after `timeout_s` seconds."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def _wait(condition: Callable[[], Any], timeout_s: float, worker: Worker, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}) waiting for {what}:\n"
                + "\n".join(worker.lines()[-40:])
            )
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what}:\n" + "\n".join(worker.lines()[-40:])
    )


def _run(run_id: int) -> EtlRun:
    return EtlRun.objects.get(pk=run_id)


@pytest.fixture
def flights_source(pg_nycflights13: str, tmp_path: Path) -> DataSource:
    """nycflights13.flights (336,776 rows) from PostgreSQL (custom SQL pacing the read),
    transactional on `time_hour` with primary key `id`, in batches of 4,000 rows, into a DuckDB
    file of this test."""
    connection: Connection = connection_create(
        name="pg flights",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": PG_PASSWORD},
    )
    return data_source_create(
        name="flights",
        connection=connection,
        dest_table_name="flights",
        # pg_sleep in the filter paces the stream (8 pauses of 0.4 s spread over the table), so
        # a run lasts seconds however fast extraction and loading are and can be killed midway
        custom_sql=(
            f"SELECT * FROM {pg_nycflights13}.flights "
            "WHERE (id % 40000 <> 0 OR pg_sleep(0.4)::text = '')"
        ),
        timestamp_column="time_hour",
        primary_key=["id"],
        chunk_size=4_000,
        destination={"type": "duckdb", "path": str(tmp_path / "w.duckdb"), "dataset": "raw"},
    )


def _destination_counts(source: DataSource) -> tuple[int, int]:
    with duckdb.connect(source.destination["path"], read_only=True) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT id) FROM raw.flights").fetchone()


def test_worker_runs_enqueued_run_end_to_end(
    start_worker: Callable[..., Worker], flights_source: DataSource
) -> None:
    """A run enqueued by the service travels through Redis to the worker and succeeds with
    every flight loaded once; a trigger while it is active returns it; the worker's log lines
    are JSON carrying run_id (the engine's UUID, also on the engine's lines), run_pk and
    data_source_id, and never the password."""
    worker = start_worker()

    run = etl_run_enqueue(data_source=flights_source, trigger="api")
    again = etl_run_enqueue(data_source=flights_source, trigger="scheduler")
    assert again.id == run.id

    done = _wait(lambda: _run(run.id).status in ("succeeded", "failed"), 120, worker, "the run")
    assert done
    finished = _run(run.id)
    assert (finished.status, finished.error_message) == ("succeeded", "")
    assert (finished.rows_extracted, finished.rows_loaded, finished.attempts) == (
        FLIGHTS,
        FLIGHTS,
        1,
    )
    assert finished.worker.startswith("etl-test-")
    assert _destination_counts(flights_source) == (FLIGHTS, FLIGHTS)

    events = [json.loads(line) for line in worker.lines() if line.startswith("{")]
    # one run id in every line, the control plane's and the engine's: the UUID of _etl_run_id
    mine = [e for e in events if e.get("run_id") == run.uid.hex]
    messages = {e["message"] for e in mine}
    assert {"etl_run.started", "run.start", "run.succeeded", "etl_run.succeeded"} <= messages
    assert {e["run_pk"] for e in mine if e["message"].startswith("etl_run.")} == {run.id}
    started = next(e for e in mine if e["message"] == "etl_run.started")
    assert (started["data_source_id"], started["source_type"]) == (flights_source.id, "postgresql")
    assert PG_PASSWORD not in worker.log.read_text()


def test_killed_worker_run_is_reaped_and_rerun_loads_the_rest(
    start_worker: Callable[..., Worker], flights_source: DataSource
) -> None:
    """SIGKILL while the run is loading: the run stays `running` until its heartbeat is older
    than the threshold, then the reaper fails it (WorkerLostError) and the source is free; the
    rerun on a new worker succeeds and the destination holds every flight exactly once."""
    worker = start_worker()
    run = etl_run_enqueue(data_source=flights_source, trigger="api")
    _wait(
        lambda: (r := _run(run.id)).status == "running" and r.progress_rows >= 8_000,
        60,
        worker,
        "the run to load a few batches",
    )
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)

    killed = _run(run.id)
    assert killed.status == "running"
    assert 0 < killed.progress_rows < FLIGHTS
    assert etl_run_reap_stale(stale_after_s=3) == []  # heartbeats were < 3 s ago
    time.sleep(3.5)
    reaped = etl_run_reap_stale(stale_after_s=3)
    assert [r.id for r in reaped] == [run.id]
    failed = _run(run.id)
    assert (failed.status, failed.error_class) == ("failed", "WorkerLostError")
    assert failed.error_message.startswith(f"Run {run.id} sent no heartbeat since ")
    assert failed.finished_at is not None

    second = start_worker()
    rerun = etl_run_enqueue(data_source=flights_source, trigger="api")
    assert rerun.id != run.id
    _wait(lambda: _run(rerun.id).status in ("succeeded", "failed"), 120, second, "the rerun")
    finished = _run(rerun.id)
    assert (finished.status, finished.error_message) == ("succeeded", "")
    assert _destination_counts(flights_source) == (FLIGHTS, FLIGHTS)
    assert finished.rows_loaded == FLIGHTS - _committed_before(flights_source, finished)


def _committed_before(source: DataSource, rerun: EtlRun) -> int:
    """Rows the killed run committed before dying (0 unless it died between the destination
    commit and the state commit, when the rerun rolls forward and loads none of them again)."""
    with duckdb.connect(source.destination["path"], read_only=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM raw.flights WHERE _etl_run_id <> ?", [rerun.uid.hex]
        ).fetchone()[0]


def test_scheduler_webhook_run_succeeds_in_worker(
    start_worker: Callable[..., Worker],
    oidc: Any,  # noqa: F811  the webhook tests' fixture
    google_key: Any,  # noqa: F811
    local_connection: Connection,
    tmp_path: Path,
) -> None:
    """A Cloud Scheduler delivery with a valid ID token: 202, the run goes through Redis to the
    worker and succeeds with the 4 CSV rows; the same delivery again returns the same run."""
    from tests.ml_platform.api.test_scheduler_webhook import SCHEDULE_TIME, _claims, _deliver

    worker = start_worker()
    source = data_source_create(
        name="orders",
        connection=local_connection,
        dest_table_name="orders",
        file_pattern="*.csv",
        file_format="csv",
        destination={"type": "duckdb", "path": str(tmp_path / "o.duckdb"), "dataset": "raw"},
    )
    token = "Bearer " + google_key.sign(_claims())

    response = _deliver(source, token, X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME)

    assert response.status_code == 202
    run_id = response.json()["run_id"]
    _wait(lambda: _run(run_id).status in ("succeeded", "failed"), 60, worker, "the run")
    assert (_run(run_id).status, _run(run_id).rows_loaded) == ("succeeded", 4)
    again = _deliver(source, token, X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME)
    assert (again.status_code, again.json()["run_id"]) == (202, run_id)
    assert EtlRun.objects.count() == 1
