"""Fail the runs whose worker is gone (no heartbeat), and enqueue again (or fail) the queued runs
whose task message was lost, so they stop blocking their data source."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_platform import selectors
from ml_platform.models import EtlRun
from ml_platform.services.runs import (
    RunEnqueueUnavailableError,
    etl_run_publish,
    etl_run_task_id,
)
from ml_platform.services.runs_finish import etl_run_fail

logger = structlog.get_logger(__name__)

RUN_WORKER_LOST = (
    "Run {run_id} sent no heartbeat since {last_seen} (worker {worker!r} lost: killed, out of "
    "memory or restarted); marked failed after {stale_after_s:g} s. Nothing it loaded without "
    "committing is kept; the next run reconciles the destination and loads what is missing."
)
RUN_NEVER_STARTED = (
    "Run {run_id} stayed queued since {queued_at} and no worker took it (its task message was "
    "lost, e.g. in a broker restart); marked failed after {stale_after_s:g} s. Trigger the "
    "data source again."
)


class WorkerLostError(Exception):
    """Recorded as the `error_class` of a run the reaper failed (its worker died)."""


class RunNeverStartedError(Exception):
    """Recorded as the `error_class` of a queued run whose task message never arrived."""


def etl_run_reap_stale(
    *, now: dt.datetime | None = None, stale_after_s: float | None = None
) -> list[EtlRun]:
    """Fail the runs whose worker is gone, so they stop blocking their data source; enqueue
    again the queued runs whose task message was lost.

    A queued run older than `settings.ETL_RUN_QUEUED_STALE_AFTER_S` whose `etl_run_execute`
    message is neither waiting in the broker nor held by a worker in two looks 0.5 s apart (see
    `broker_task_ids`; e.g. lost in a broker restart) is enqueued again; under eager Celery
    (no broker) it is failed instead, and so is any run still queued after
    `settings.ETL_RUN_QUEUED_MAX_AGE_S` (the only limit with `ETL_EXECUTOR=cloud_run`, whose
    runs have no broker message, or with a broker other than Redis).

    A running run whose heartbeat (`updated_at`, refreshed every
    `settings.ETL_RUN_HEARTBEAT_INTERVAL_S` by the executing worker) is older than
    `settings.ETL_RUN_STALE_AFTER_S` seconds is marked failed (`WorkerLostError`; a queued run
    failed as above records
    `RunNeverStartedError`). Sync state is not touched: what the dead worker loaded without
    committing was rolled back by the destination, and a load it did commit is found by the
    next run in the destination's load log (the engine rolls forward), so the next run loads
    exactly what is missing. A run failed here that was alive after all (stalled: a paused VM,
    swapping, a lock wait) cannot commit a second copy once another run has committed: the
    destination's fence refuses its commit and `etl_run_fail` records it as `superseded`.

    Args:
        now: the current time (UTC); defaults to now.
        stale_after_s: overrides `settings.ETL_RUN_STALE_AFTER_S` (seconds).

    Returns:
        The runs marked failed, oldest first (runs enqueued again are logged,
        `etl_run.requeued`).
    """
    plan = _ReapPlan.make(now=now or timezone.now(), stale_after_s=stale_after_s)
    candidates = list(
        selectors.etl_run_list_stale(
            running_before=plan.running_before, queued_before=plan.queued_before
        )
    )
    queued = [run for run in candidates if run.status == EtlRun.Status.QUEUED]
    if settings.ETL_EXECUTOR != "celery":
        plan.in_broker = None  # Cloud Run executions hold no broker message: wait for max age
    elif queued and not plan.eager:
        plan.in_broker = _broker_task_ids_twice(queued)
    reaped = []
    for candidate in candidates:
        with transaction.atomic():
            run = EtlRun.objects.select_for_update().get(pk=candidate.pk)
            exc = _reap_error(run, plan)
            if exc is None:
                continue
            run = etl_run_fail(run=run, exc=exc)
        logger.warning(
            "etl_run.reaped",
            **run.log_ids,
            data_source_id=run.data_source_id,
            error_class=run.error_class,
            worker=run.worker,
        )
        reaped.append(run)
    return reaped


@dataclass
class _ReapPlan:
    """The limits one reaper pass applies (times UTC, durations in seconds)."""

    stale_after_s: float
    queued_stale_s: float
    queued_max_s: float
    running_before: dt.datetime
    queued_before: dt.datetime
    queued_max_before: dt.datetime
    eager: bool
    in_broker: set[str] | None = field(default_factory=set)
    """Task ids seen in the broker; None: the broker cannot tell (or holds no messages)."""

    @classmethod
    def make(cls, *, now: dt.datetime, stale_after_s: float | None) -> _ReapPlan:
        stale_s = float(settings.ETL_RUN_STALE_AFTER_S if stale_after_s is None else stale_after_s)
        queued_stale_s = float(settings.ETL_RUN_QUEUED_STALE_AFTER_S)
        queued_max_s = max(float(settings.ETL_RUN_QUEUED_MAX_AGE_S), queued_stale_s)
        return cls(
            stale_after_s=stale_s,
            queued_stale_s=queued_stale_s,
            queued_max_s=queued_max_s,
            running_before=now - dt.timedelta(seconds=stale_s),
            queued_before=now - dt.timedelta(seconds=queued_stale_s),
            queued_max_before=now - dt.timedelta(seconds=queued_max_s),
            eager=_celery_eager(),
        )


def _reap_error(run: EtlRun, plan: _ReapPlan) -> Exception | None:
    """The error to fail `run` (locked) with, or None to leave it: it moved on, it waits for
    a free worker, or its lost message was sent again (`_etl_run_republish`)."""
    if run.status == EtlRun.Status.RUNNING and run.updated_at < plan.running_before:
        return WorkerLostError(
            RUN_WORKER_LOST.format(
                run_id=run.id,
                last_seen=run.updated_at.isoformat(),
                worker=run.worker,
                stale_after_s=plan.stale_after_s,
            )
        )
    if run.status != EtlRun.Status.QUEUED or run.queued_at >= plan.queued_before:
        return None  # it moved on since the query
    too_old = run.queued_at < plan.queued_max_before
    if not too_old and (not plan.eager or plan.in_broker is None):
        if plan.in_broker is None or etl_run_task_id(run=run) in plan.in_broker:
            return None  # waits for a free worker (or the broker cannot be read)
        _etl_run_republish(run=run)  # its message was lost: send it again
        return None
    return RunNeverStartedError(
        RUN_NEVER_STARTED.format(
            run_id=run.id,
            queued_at=run.queued_at.isoformat(),
            stale_after_s=plan.queued_max_s if too_old else plan.queued_stale_s,
        )
    )


BROKER_RECHECK_S = 0.5
"""A message a worker is taking is briefly in neither the queue nor `unacked`: look twice."""


def _celery_eager() -> bool:
    from celery import current_app

    return bool(current_app.conf.task_always_eager)


def _broker_task_ids_twice(queued: list[EtlRun]) -> set[str] | None:
    first = broker_task_ids()
    if first is None or all(etl_run_task_id(run=run) in first for run in queued):
        return first
    time.sleep(BROKER_RECHECK_S)
    second = broker_task_ids()
    return None if second is None else first | second


def _etl_run_republish(*, run: EtlRun) -> None:
    try:
        etl_run_publish(run=run)
    except RunEnqueueUnavailableError:
        return  # the broker is down again: the next pass tries again
    logger.warning("etl_run.requeued", **run.log_ids, data_source_id=run.data_source_id)


QUEUE_PRIORITY_SEPARATOR = "\x06\x16"
"""kombu's Redis transport keeps priority levels of queue `q` in lists `q`, `q\\x06\\x163`, ..."""
UNACKED_KEY = "unacked"
"""kombu's Redis transport: hash of the messages workers hold (acks_late, ETA/countdown)."""


def broker_task_ids() -> set[str] | None:
    """Return the ids of the tasks the broker holds: waiting in a queue or delivered to a
    worker and not yet acknowledged (running, or waiting for a retry countdown).

    Inspectable for the Redis transport (kombu's `queue` lists and `unacked` hash); for other
    brokers, or a broker that cannot be reached, None (unknown: the reaper then waits for
    `ETL_RUN_QUEUED_MAX_AGE_S`).
    """
    import redis
    from celery import current_app

    app = current_app
    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    queues = {str(app.conf.task_default_queue or "celery")}
    queues |= {str(name) for name in (app.amqp.queues or {})}
    keys = [
        f"{queue}{suffix}"
        for queue in sorted(queues)
        for suffix in ["", *(f"{QUEUE_PRIORITY_SEPARATOR}{p}" for p in range(1, 10))]
    ]
    ids: set[str] = set()
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            for key in keys:
                for raw in client.lrange(key, 0, -1):
                    ids.add(_task_id(raw))
            for raw in client.hvals(UNACKED_KEY):
                ids.add(_task_id(raw, held=True))
        finally:
            client.close()
    except redis.RedisError as exc:
        logger.warning("etl_run.broker_unreadable", error_class=type(exc).__name__)
        return None
    ids.discard("")
    return ids


def _task_id(raw: bytes, *, held: bool = False) -> str:
    try:
        message = json.loads(raw)
        if held:  # [message, exchange, routing_key]
            message = message[0]
        return str(message.get("headers", {}).get("id") or "")
    except (ValueError, TypeError, IndexError, AttributeError):
        return ""
