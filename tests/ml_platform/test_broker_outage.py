"""Triggers never strand runs when the broker goes away. The test starts its own redis-server on
a free port (the shared 127.0.0.1:6379 is never stopped), points Celery at it, runs a real
worker process on it, stops that Redis while Run Now (API and web) and the Cloud Scheduler
webhook are called, and starts it again (empty: no persistence, so messages still in it are
lost, as in a broker restart):

- every trigger is answered 503 JSON with `Retry-After` (nothing queued) or its run ran;
- after the recovery window no run is left `queued` (a run whose message was lost is enqueued
  again by the reaper and runs);
- one schedule time never yields two runs, also after its run finished.

Field reports: https://github.com/celery/celery/issues/1789 (tasks lost when Redis goes down
and up again), https://github.com/celery/celery/issues/4556 (publishing with Redis stopped hangs
instead of failing).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.db import connection as django_connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config import celery_app
from ml_platform.models import DataSource, EtlRun
from ml_platform.services import etl_run_reap_stale
from tests.ml_platform.api.test_scheduler_webhook import (  # noqa: F401  fixtures
    _claims,
    _deliver,
    certs_server,
    google_key,
    oidc,
)
from tests.ml_platform.test_worker import Worker, _broker_pools_reset, _wait, stop_all

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
T1 = "2026-01-05T06:00:00.000Z"
T2 = "2026-01-05T07:00:00.000Z"


@dataclass
class OwnRedis:
    """A redis-server of this test on `port` (no persistence), stopped and started at will."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnRedis]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = OwnRedis(port)
    server.start()
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setitem(celery_app.conf, "broker_url", server.url)
    _broker_pools_reset()
    try:
        yield server
    finally:
        _broker_pools_reset()
        server.stop()


@pytest.fixture
def start_worker(tmp_path: Path, own_redis: OwnRedis) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []

    def start() -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
            "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
            "CELERY_BROKER_URL": own_redis.url,
            "ETL_RUN_HEARTBEAT_INTERVAL_S": "0.5",
            # the test's own warehouse: the checkout's var/ may hold another session's tables
            "ETL_DEFAULT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--loglevel", "INFO", "-n", f"etl-outage-{uuid.uuid4().hex[:8]}@%h"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        worker = Worker(process, log)
        started.append(worker)
        _wait(lambda: any(" ready." in line for line in worker.lines()), 30, worker, "ready")
        return worker

    yield start
    stop_all(started, timeout_s=15)


def _finished(run_id: int, worker: Worker, timeout_s: float = 60) -> EtlRun:
    _wait(
        lambda: EtlRun.objects.get(pk=run_id).status in ("succeeded", "failed"),
        timeout_s, worker, f"run {run_id}",
    )  # fmt: skip
    return EtlRun.objects.get(pk=run_id)


def _assert_503(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "30"
    body = response.json()
    assert body["extra"] == {"retry_after_s": 30}
    assert body["message"].startswith("The task queue cannot take a run of data source ")
    assert body["message"].endswith("nothing was queued. Retry in 30 s.")


def test_broker_outage_strands_no_run(
    own_redis: OwnRedis,
    start_worker: Callable[[], Worker],
    oidc: Any,  # noqa: F811
    google_key: Any,  # noqa: F811
    csv_source: DataSource,
    settings: Any,
) -> None:
    """Redis stopped: API Run Now, web Run Now and the webhook answer 503 JSON and leave no
    run; Redis back: the webhook's retry of the same schedule time runs once and repeats
    return that run even after it finished; a run whose message died with a Redis restart is
    enqueued again by the reaper and runs; nothing stays queued."""
    settings.ETL_RUN_QUEUED_STALE_AFTER_S = 1.0
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    web = Client()
    web.force_login(staff)
    token = "Bearer " + google_key.sign(_claims())
    run_now = f"/api/etl/sources/{csv_source.id}/run/"
    worker = start_worker()

    first = api.post(run_now)
    assert first.status_code == 202
    assert _finished(first.json()["id"], worker).status == "succeeded"

    own_redis.stop()
    _assert_503(api.post(run_now))
    _assert_503(web.post(f"/etl/sources/{csv_source.id}/run/"))
    _assert_503(_deliver(csv_source, token, X_CLOUDSCHEDULER_SCHEDULETIME=T1))
    assert list(EtlRun.objects.values_list("status", flat=True)) == ["succeeded"]

    own_redis.start()
    retried = _deliver(csv_source, token, X_CLOUDSCHEDULER_SCHEDULETIME=T1)
    assert retried.status_code == 202
    t1_run = _finished(retried.json()["run_id"], worker)
    assert (t1_run.status, t1_run.attempts, t1_run.idempotency_key) == (
        "succeeded", 1, f"scheduler:{T1}",
    )  # fmt: skip
    again = _deliver(csv_source, token, X_CLOUDSCHEDULER_SCHEDULETIME=T1)
    assert (again.status_code, again.json()["run_id"]) == (202, t1_run.id)

    # a message lost in a broker restart: queued while no worker listens, then Redis restarts
    stop_all([worker], timeout_s=15)
    lost = _deliver(csv_source, token, X_CLOUDSCHEDULER_SCHEDULETIME=T2)
    assert lost.status_code == 202
    lost_id = lost.json()["run_id"]
    time.sleep(1.2)
    assert etl_run_reap_stale() == []  # older than the limit, but its message waits in Redis
    assert EtlRun.objects.get(pk=lost_id).status == "queued"
    own_redis.stop()
    own_redis.start()
    assert redis.Redis.from_url(own_redis.url).llen("celery") == 0
    assert etl_run_reap_stale() == []  # not failed: enqueued again
    worker = start_worker()
    recovered = _finished(lost_id, worker)
    assert (recovered.status, recovered.attempts, recovered.rows_loaded) == ("succeeded", 1, 0)
    repeat = _deliver(csv_source, token, X_CLOUDSCHEDULER_SCHEDULETIME=T2)
    assert (repeat.status_code, repeat.json()["run_id"]) == (202, lost_id)

    assert not EtlRun.objects.filter(status="queued").exists()
    runs = list(EtlRun.objects.order_by("id").values_list("status", "idempotency_key"))
    assert runs == [
        ("succeeded", None),
        ("succeeded", f"scheduler:{T1}"),
        ("succeeded", f"scheduler:{T2}"),
    ]
