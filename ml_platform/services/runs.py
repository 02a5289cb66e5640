"""Writes of `EtlRun`: create/enqueue a run, execute it through the engine, record the outcome."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

import etl
from ml_platform import selectors
from ml_platform.models import DataSource, EtlRun
from ml_platform.services.connections import credentials_read
from ml_platform.services.job_config import job_config_build
from ml_platform.services.secrets import redact, secret_read, secret_strings
from ml_platform.services.state import sync_state_get_engine, sync_state_save

logger = structlog.get_logger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (rows loaded so far, bytes extracted so far) after each batch."""

ERROR_MESSAGE_MAX_CHARS = 10_000

RUN_WORKER_LOST = (
    "Run {run_id} sent no heartbeat since {last_seen} (worker {worker!r} lost: killed, out of "
    "memory or restarted); marked failed after {stale_after_s:g} s. Nothing it loaded without "
    "committing is kept; the next run reconciles the destination and loads what is missing."
)
RUN_NEVER_STARTED = (
    "Run {run_id} stayed queued since {queued_at} and no worker took it (its task message was "
    "lost); marked failed after {stale_after_s:g} s. Trigger the data source again."
)


class WorkerLostError(Exception):
    """Recorded as the `error_class` of a run the reaper failed (its worker died)."""


class RunNeverStartedError(Exception):
    """Recorded as the `error_class` of a queued run whose task message never arrived."""


def etl_run_create(
    *, data_source: DataSource, trigger: str, idempotency_key: str | None = None
) -> tuple[EtlRun, bool]:
    """Return `(run, created)`: the run with `idempotency_key` for this source if one exists
    (whatever its status), else the source's queued or running run, else a new queued run.

    Does not enqueue anything; `etl_run_enqueue` and `run_etl` build on it.
    """
    for _ in range(3):
        existing = _etl_run_existing(data_source=data_source, idempotency_key=idempotency_key)
        if existing is not None:
            return existing, False
        run = EtlRun(data_source=data_source, trigger=trigger, idempotency_key=idempotency_key)
        # uniqueness (one key, one active run per source) is the database's to enforce: a
        # concurrent trigger that wins the insert is returned on the next pass
        run.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            continue
        logger.info(
            "etl_run.created", run_id=run.id, data_source_id=data_source.id, trigger=trigger
        )
        return run, True
    raise IntegrityError(f"could not create or find a run of data source {data_source.id}")


def _etl_run_existing(*, data_source: DataSource, idempotency_key: str | None) -> EtlRun | None:
    if idempotency_key is not None:
        keyed = selectors.etl_run_get_by_idempotency_key(
            data_source=data_source, key=idempotency_key
        )
        if keyed is not None:
            return keyed
    return selectors.etl_run_get_active(data_source=data_source)


@transaction.atomic
def etl_run_enqueue(
    *, data_source: DataSource, trigger: str, idempotency_key: str | None = None
) -> EtlRun:
    """Record a queued run and, on commit, hand it to the executor of `settings.ETL_EXECUTOR`:
    the `ml_platform.etl_run_execute` Celery task (`celery`) or a Cloud Run Job execution
    (`cloud_run`, see `etl_run_cloud_run_start`).

    A second trigger for a source that is already queued or running, or one that repeats an
    idempotency key (e.g. Cloud Scheduler's `X-CloudScheduler-ScheduleTime`), returns the
    existing run and enqueues nothing.

    Args:
        data_source: the source to run.
        trigger: an `EtlRun.Trigger` value.
        idempotency_key: optional; unique per data source.

    Returns:
        The new or the existing run.
    """
    from ml_platform.tasks import etl_run_execute as etl_run_execute_task

    run, created = etl_run_create(
        data_source=data_source, trigger=trigger, idempotency_key=idempotency_key
    )
    if created and settings.ETL_EXECUTOR == "cloud_run":
        from ml_platform.services.cloud_run import etl_run_cloud_run_start

        transaction.on_commit(lambda: etl_run_cloud_run_start(run=run))
    elif created:
        transaction.on_commit(lambda: etl_run_execute_task.delay(run.id))
    return run


def etl_run_execute(
    *,
    run: EtlRun,
    progress: ProgressCallback | None = None,
    worker: str = "",
    requeue_on_transient: bool = False,
) -> EtlRun:
    """Run `run` through the engine and record the outcome.

    Marks the run running, builds the JobConfig (secrets resolved here, never stored on the
    run) and the engine state, calls `etl.run`, then in ONE transaction stores the new
    `SyncState`, mirrors the file ledger into `ProcessedFile` rows and marks the run succeeded
    with its counts (rows, bytes, seconds). A run that is no longer queued or running (a
    redelivered task) is returned unchanged.

    Args:
        run: a queued (or, redelivered, running) run.
        progress: optional callback `(rows_loaded, bytes_extracted)` after each batch.
        worker: who executes it (Celery hostname); defaults to `host:pid`.
        requeue_on_transient: on `etl.TransientError`, put the run back to queued (the caller
            retries) instead of marking it failed.

    Returns:
        The run, succeeded.

    Raises:
        etl.TransientError / etl.TerminalError and anything else the run raised, after the run
        was marked failed (or requeued) with the error's class and its message with secrets
        removed; sync state is then left exactly as it was.
    """
    run, started = etl_run_start(run=run, worker=worker or f"{socket.gethostname()}:{os.getpid()}")
    if not started:
        logger.info("etl_run.skipped", run_id=run.id, status=run.status)
        return run
    data_source = run.data_source
    log = logger.bind(run_id=run.id, data_source_id=data_source.id)
    heartbeat = _Heartbeat(run_id=run.id, interval_s=float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S))
    heartbeat.start()
    try:
        job = job_config_build(data_source=data_source)
        state = sync_state_get_engine(data_source=data_source)
        log.info("etl_run.started", source_type=job.source_type, attempt=run.attempts)
        result = etl.run(
            job, state, run_id=run.uid.hex, progress=_progress_recorder(run=run, forward=progress)
        )
        heartbeat.stop()
        return etl_run_succeed(run=run, result=result)
    except BaseException as exc:  # noqa: BLE001  worker boundary: record, re-raise; Ctrl-C too,
        # or the run would stay `running` and block its source
        requeue = requeue_on_transient and isinstance(exc, etl.TransientError)
        heartbeat.stop()
        etl_run_fail(run=run, exc=exc, requeue=requeue)
        log.warning("etl_run.failed", error_class=type(exc).__name__, requeued=requeue)
        raise


def etl_run_start(*, run: EtlRun, worker: str) -> tuple[EtlRun, bool]:
    """Mark a queued (or, executed again, running) run running by `worker` and count the
    attempt; return `(run, started)`, `started` False (run unchanged) when it already finished."""
    with transaction.atomic():
        run = (
            EtlRun.objects.select_for_update()
            .select_related("data_source__connection")
            .get(pk=run.pk)
        )
        if run.status not in EtlRun.ACTIVE_STATUSES:
            return run, False
        run.status = EtlRun.Status.RUNNING
        run.started_at = timezone.now()
        run.finished_at = None
        run.attempts += 1
        run.worker = worker[:255]
        run.error_class = run.error_message = ""
        run.progress_rows = run.progress_bytes = 0
        run.full_clean(validate_constraints=False)
        run.save()
    return run, True


@transaction.atomic
def etl_run_succeed(*, run: EtlRun, result: etl.RunResult) -> EtlRun:
    """In one transaction, store `result.state` (SyncState, ProcessedFile rows) and mark the
    run succeeded with the result's counts (rows, bytes, files) and duration (seconds).

    Used by `etl_run_execute` (Celery) and `etl_run_report` (Cloud Run runner). A run that is
    no longer queued or running is returned unchanged and its state is not stored.
    """
    current = EtlRun.objects.select_for_update().get(pk=run.pk)
    if current.status not in EtlRun.ACTIVE_STATUSES:
        # reaped while alive (e.g. the database was unreachable for the heartbeat): the load is
        # committed in the destination, whose load log lets the next run roll forward to it
        logger.warning(
            "etl_run.finished_after_reap",
            run_id=run.id,
            status=current.status,
            rows_loaded=result.rows_loaded,
        )
        return current
    sync_state_save(data_source=run.data_source, state=result.state, run=run)
    run.status = EtlRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.duration_s = result.duration_s
    run.rows_extracted = result.rows_extracted
    run.rows_loaded = run.progress_rows = result.rows_loaded
    run.rows_skipped = result.rows_skipped
    run.bytes_extracted = run.progress_bytes = result.bytes_extracted
    run.files_loaded = len(result.files_loaded)
    run.files_skipped = result.files_skipped
    run.warnings = list(result.warnings)
    run.reconciled_run_id = result.reconciled_run_id or ""
    run.full_clean(validate_constraints=False)
    run.save()
    logger.info(
        "etl_run.succeeded",
        run_id=run.id,
        rows_loaded=run.rows_loaded,
        bytes=run.bytes_extracted,
        duration_s=run.duration_s,
    )
    return run


@transaction.atomic
def etl_run_fail(
    *,
    run: EtlRun,
    exc: BaseException | None = None,
    requeue: bool = False,
    error_class: str = "",
    error_message: str = "",
) -> EtlRun:
    """Mark `run` failed (or, with `requeue`, queued again) with `exc`'s class and message (or
    `error_class` / `error_message` when given, e.g. as a runner reported them), secrets of its
    connection and destination replaced by `***`. Sync state is not touched."""
    run = (
        EtlRun.objects.select_for_update().select_related("data_source__connection").get(pk=run.pk)
    )
    if run.status not in EtlRun.ACTIVE_STATUSES:
        return run  # already finished (e.g. reaped): keep the first outcome
    now = timezone.now()
    run.status = EtlRun.Status.QUEUED if requeue else EtlRun.Status.FAILED
    run.finished_at = None if requeue else now
    if run.started_at:
        run.duration_s = round((now - run.started_at).total_seconds(), 3)
    run.error_class = (error_class or type(exc).__name__)[:255]
    run.error_message = redact(
        error_message or str(exc) or repr(exc), _secrets_of(run.data_source)
    )[:ERROR_MESSAGE_MAX_CHARS]
    run.full_clean(validate_constraints=False)
    run.save()
    return run


def etl_run_reap_stale(
    *, now: dt.datetime | None = None, stale_after_s: float | None = None
) -> list[EtlRun]:
    """Fail the runs whose worker is gone, so they stop blocking their data source.

    A running run whose heartbeat (`updated_at`, refreshed every
    `settings.ETL_RUN_HEARTBEAT_INTERVAL_S` by the executing worker) is older than
    `settings.ETL_RUN_STALE_AFTER_S` seconds, and a queued run older than
    `settings.ETL_RUN_QUEUED_STALE_AFTER_S`, is marked failed (`WorkerLostError` /
    `RunNeverStartedError`). Sync state is not touched: what the dead worker loaded without
    committing was rolled back by the destination, and a load it did commit is found by the
    next run in the destination's load log (the engine rolls forward), so the next run loads
    exactly what is missing.

    Args:
        now: the current time (UTC); defaults to now.
        stale_after_s: overrides `settings.ETL_RUN_STALE_AFTER_S` (seconds).

    Returns:
        The runs marked failed, oldest first.
    """
    now = now or timezone.now()
    if stale_after_s is None:
        stale_after_s = float(settings.ETL_RUN_STALE_AFTER_S)
    running_before = now - dt.timedelta(seconds=stale_after_s)
    queued_before = now - dt.timedelta(seconds=float(settings.ETL_RUN_QUEUED_STALE_AFTER_S))
    reaped = []
    for candidate in selectors.etl_run_list_stale(
        running_before=running_before, queued_before=queued_before
    ):
        with transaction.atomic():
            run = EtlRun.objects.select_for_update().get(pk=candidate.pk)
            if run.status == EtlRun.Status.RUNNING and run.updated_at < running_before:
                exc: Exception = WorkerLostError(
                    RUN_WORKER_LOST.format(
                        run_id=run.id,
                        last_seen=run.updated_at.isoformat(),
                        worker=run.worker,
                        stale_after_s=stale_after_s,
                    )
                )
            elif run.status == EtlRun.Status.QUEUED and run.queued_at < queued_before:
                exc = RunNeverStartedError(
                    RUN_NEVER_STARTED.format(
                        run_id=run.id,
                        queued_at=run.queued_at.isoformat(),
                        stale_after_s=float(settings.ETL_RUN_QUEUED_STALE_AFTER_S),
                    )
                )
            else:
                continue  # it moved on since the query
            run = etl_run_fail(run=run, exc=exc)
        logger.warning(
            "etl_run.reaped",
            run_id=run.id,
            data_source_id=run.data_source_id,
            error_class=run.error_class,
            worker=run.worker,
        )
        reaped.append(run)
    return reaped


class _Heartbeat:
    """Refresh the running run's `updated_at` every `interval_s` seconds from a daemon thread,
    so the reaper can tell a long batch from a dead worker."""

    def __init__(self, *, run_id: int, interval_s: float) -> None:
        self.run_id, self.interval_s = run_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"etl-run-{run_id}-heartbeat", daemon=True
        )

    def start(self) -> None:
        # inside an open transaction (an eager task in a request or a test) a second
        # connection's write would wait on this one's lock; only a detached worker needs a pulse
        if self.interval_s > 0 and not transaction.get_connection().in_atomic_block:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.interval_s):
                try:
                    EtlRun.objects.filter(pk=self.run_id, status=EtlRun.Status.RUNNING).update(
                        updated_at=timezone.now()
                    )
                except Exception as exc:  # noqa: BLE001  thread boundary: next beat retries
                    logger.warning(
                        "etl_run.heartbeat_failed", run_id=self.run_id, error=type(exc).__name__
                    )
        finally:
            connection.close()


def _progress_recorder(*, run: EtlRun, forward: ProgressCallback | None) -> ProgressCallback:
    interval = float(settings.ETL_RUN_PROGRESS_INTERVAL_S)
    last = [0.0]

    def record(rows: int, nbytes: int) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            # a counter write outside the run's final transaction, so others can watch it
            EtlRun.objects.filter(pk=run.pk).update(
                progress_rows=rows, progress_bytes=nbytes, updated_at=timezone.now()
            )
        if forward is not None:
            forward(rows, nbytes)

    return record


def _secrets_of(data_source: DataSource) -> list[str]:
    values: list[Any] = []
    try:
        values.append(credentials_read(connection=data_source.connection))
    except etl.EtlError:
        pass
    try:
        values.append(secret_read(data_source.destination_credentials, owner="destination"))
    except etl.EtlError:
        pass
    return list(secret_strings(values))
