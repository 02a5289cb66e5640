"""Writes of `EtlRun`: create/enqueue a run, execute it through the engine, record the outcome.

The heartbeat and progress counters a running run writes are in `runs_progress`; failing runs
whose worker is gone is `runs_reap`."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

import etl
from etl.pipeline import fault_hook_from_spec
from ml_platform import selectors
from ml_platform.models import DataSource, EtlRun, EtlRunKey
from ml_platform.services.connections import credentials_read
from ml_platform.services.job_config import job_config_build
from ml_platform.services.runs_lock import destination_writer_lock
from ml_platform.services.runs_progress import ProgressCallback, RunHeartbeat, run_progress_recorder
from ml_platform.services.secrets import redact, secret_read, secret_strings
from ml_platform.services.state import (
    sync_state_full_refresh_pending,
    sync_state_get_engine,
    sync_state_save,
)

logger = structlog.get_logger(__name__)

ERROR_MESSAGE_MAX_CHARS = 10_000


RUN_ENQUEUE_UNAVAILABLE = (
    "The task queue cannot take a run of data source {data_source_id} now ({reason}); nothing "
    "was queued. Retry in {retry_after_s} s."
)
BROKER_UNAVAILABLE_CLASS = "BrokerUnavailableError"


class RunEnqueueUnavailableError(etl.TransientError):
    """The broker refused or could not be reached when a run was handed to it; the run was
    removed, so nothing stays queued. The API answers 503 with `Retry-After`."""

    def __init__(self, *, data_source_id: int, reason: str, retry_after_s: int) -> None:
        self.data_source_id, self.reason, self.retry_after_s = data_source_id, reason, retry_after_s
        self.message = RUN_ENQUEUE_UNAVAILABLE.format(
            data_source_id=data_source_id, reason=reason, retry_after_s=retry_after_s
        )
        super().__init__(self.message)


def etl_run_create(
    *, data_source: DataSource, trigger: str, idempotency_key: str | None = None
) -> tuple[EtlRun, bool]:
    """Return `(run, created)`: the run `idempotency_key` was answered with for this source if
    any (whatever its status), else the source's queued or running run, else a new queued run.

    A key answered with an already active run is remembered (`EtlRunKey`), so the same key
    returns that run later too, even after it finished. Does not enqueue anything;
    `etl_run_enqueue` and `run_etl` build on it.
    """
    for _ in range(3):
        existing, by_key = _etl_run_existing(
            data_source=data_source, idempotency_key=idempotency_key
        )
        if existing is not None:
            if idempotency_key is not None and not by_key:
                existing = _etl_run_key_remember(
                    data_source=data_source, key=idempotency_key, run=existing
                )
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


def _etl_run_existing(
    *, data_source: DataSource, idempotency_key: str | None
) -> tuple[EtlRun | None, bool]:
    """Return `(run, found_by_key)`."""
    if idempotency_key is not None:
        keyed = selectors.etl_run_get_by_idempotency_key(
            data_source=data_source, key=idempotency_key
        )
        if keyed is not None:
            return keyed, True
    return selectors.etl_run_get_active(data_source=data_source), False


def _etl_run_key_remember(*, data_source: DataSource, key: str, run: EtlRun) -> EtlRun:
    """Record that `key` was answered with `run`; return the run the key is bound to (a
    concurrent trigger may have bound it first)."""
    try:
        with transaction.atomic():
            EtlRunKey.objects.create(data_source=data_source, key=key, run=run)
    except IntegrityError:
        bound = EtlRunKey.objects.select_related("run").filter(data_source=data_source, key=key)
        return bound.first().run if bound.exists() else run
    return run


def etl_run_enqueue(
    *,
    data_source: DataSource,
    trigger: str,
    idempotency_key: str | None = None,
    return_failed: bool = False,
) -> EtlRun:
    """Record a queued run and hand it to the executor of `settings.ETL_EXECUTOR`: the
    `ml_platform.etl_run_execute` Celery task (`celery`) or a Cloud Run Job execution
    (`cloud_run`, see `etl_run_cloud_run_start`), once the run is committed.

    A second trigger for a source that is already queued or running, or one that repeats an
    idempotency key (e.g. Cloud Scheduler's `X-CloudScheduler-ScheduleTime`), returns the
    existing run and enqueues nothing.

    Called outside a transaction (a request), the task is published before returning: when
    the broker cannot take it the run is deleted and `RunEnqueueUnavailableError` raised, so no
    run stays queued without a message. Inside a caller's transaction the task is published on
    its commit, and a publish failure then marks the run failed (`BrokerUnavailableError`).

    With eager Celery (`CELERY_TASK_ALWAYS_EAGER`, the README's default `make run`) the run
    executes inside this call, and its failure propagates (`CELERY_TASK_EAGER_PROPAGATES`).

    Args:
        data_source: the source to run.
        trigger: an `EtlRun.Trigger` value.
        idempotency_key: optional; unique per data source.
        return_failed: for a request's Run Now: a run that failed inside this call (eager
            Celery) is returned, recorded failed with its error, instead of its error raised,
            so the API answers the run and the web page shows it, not a 500.

    Returns:
        The new or the existing run.

    Raises:
        RunEnqueueUnavailableError: the broker is down or refused the message (transient).
    """
    with transaction.atomic():
        run, created = etl_run_create(
            data_source=data_source, trigger=trigger, idempotency_key=idempotency_key
        )
    if not created:
        return run
    if settings.ETL_EXECUTOR == "cloud_run":
        from ml_platform.services.cloud_run import etl_run_cloud_run_start

        transaction.on_commit(lambda: etl_run_cloud_run_start(run=run))
        return run
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _etl_run_publish_or_fail(run=run))
        return run
    try:
        etl_run_publish(run=run)
    except RunEnqueueUnavailableError:
        # no message, no run: the caller answers 503 and the sender retries
        EtlRun.objects.filter(pk=run.pk, status=EtlRun.Status.QUEUED).delete()
        raise
    except Exception as exc:
        if not return_failed:
            raise
        # eager Celery ran the task here and the service recorded the failure on the run
        run.refresh_from_db()
        if run.status in EtlRun.ACTIVE_STATUSES:  # failed outside the service: record it
            etl_run_fail(run=run, exc=exc)
            run.refresh_from_db()
        logger.warning("etl_run.failed_inline", run_id=run.id, error_class=type(exc).__name__)
        return run
    if return_failed:
        run.refresh_from_db()  # eager Celery: the run's outcome is already recorded
    return run


def etl_run_task_id(*, run: EtlRun) -> str:
    """Return the Celery task id of `run`'s `etl_run_execute` message (`etl-run-<uid>`), by
    which the reaper finds it in the broker."""
    return f"etl-run-{run.uid}"


def etl_run_publish(*, run: EtlRun) -> None:
    """Publish `run`'s `etl_run_execute` task (run inline when Celery is eager).

    Raises:
        RunEnqueueUnavailableError: the broker could not be reached or refused the message
            after Celery's publish retries.
    """
    from kombu.exceptions import OperationalError

    from ml_platform.tasks import etl_run_execute as etl_run_execute_task

    task_id = etl_run_task_id(run=run)
    if etl_run_execute_task.app.conf.task_always_eager:
        etl_run_execute_task.apply_async(args=[run.id], task_id=task_id)
        return
    try:
        etl_run_execute_task.apply_async(args=[run.id], task_id=task_id)
    except (OperationalError, OSError) as exc:
        logger.warning(
            "etl_run.enqueue_failed",
            run_id=run.id,
            data_source_id=run.data_source_id,
            error_class=type(exc).__name__,
        )
        # the class only: a broker error's text may carry the broker URL and its password
        raise RunEnqueueUnavailableError(
            data_source_id=run.data_source_id,
            reason=f"broker unavailable: {type(exc).__name__}",
            retry_after_s=int(settings.ETL_ENQUEUE_RETRY_AFTER_S),
        ) from exc


def _etl_run_publish_or_fail(*, run: EtlRun) -> None:
    try:
        etl_run_publish(run=run)
    except RunEnqueueUnavailableError as exc:
        etl_run_fail(run=run, exc=exc, error_class=BROKER_UNAVAILABLE_CLASS)


def etl_run_execute(
    *,
    run: EtlRun,
    progress: ProgressCallback | None = None,
    on_estimate: Callable[[int], None] | None = None,
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
        on_estimate: optional callback given the source's row estimate when known (`etl.run`).
        worker: who executes it (Celery hostname); defaults to `host:pid`.
        requeue_on_transient: on `etl.TransientError`, put the run back to queued (the caller
            retries) instead of marking it failed.

    Returns:
        The run, succeeded.

    Raises:
        etl.TransientError / etl.TerminalError and anything else the run raised, after the run
        was marked failed (or requeued; `superseded` for `etl.SupersededError`, a terminal
        error) with the error's class and its message with secrets removed; sync state is then
        left exactly as it was.
    """
    run, started = etl_run_start(run=run, worker=worker or f"{socket.gethostname()}:{os.getpid()}")
    if not started:
        logger.info("etl_run.skipped", run_id=run.id, status=run.status)
        return run
    data_source = run.data_source
    log = logger.bind(run_id=run.id, data_source_id=data_source.id)
    heartbeat = RunHeartbeat(run_id=run.id, interval_s=float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S))
    heartbeat.start()
    writer_lock = contextlib.ExitStack()
    try:
        job = job_config_build(data_source=data_source)
        state = sync_state_get_engine(data_source=data_source)
        log.info("etl_run.started", source_type=job.source_type, attempt=run.attempts)
        # one writer per DuckDB file: wait for a run loading the same file (heartbeat running)
        writer_lock.enter_context(destination_writer_lock(job=job, run_id=run.id))
        result = etl.run(
            job,
            state,
            run_id=run.uid.hex,
            progress=run_progress_recorder(run=run, forward=progress),
            on_estimate=on_estimate,
            full_refresh=sync_state_full_refresh_pending(data_source=data_source),
            fault_hook=fault_hook_from_spec(settings.ETL_FAULT_INJECT),  # "" outside tests
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
    finally:
        writer_lock.close()


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
    before = selectors.sync_state_get(data_source=run.data_source)
    run.watermark_before = before.watermark_value if before else ""
    run.watermark_after = result.state.watermark.value if result.state.watermark else ""
    sync_state_save(data_source=run.data_source, state=result.state, run=run)
    run.status = EtlRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.duration_s = result.duration_s
    run.rows_extracted = result.rows_extracted
    run.rows_loaded = run.progress_rows = result.rows_loaded
    run.rows_skipped = result.rows_skipped
    run.rows_rejected = result.rows_rejected
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
        rows_rejected=run.rows_rejected,
        warnings=len(run.warnings),
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
    connection and destination replaced by `***`. Sync state is not touched.

    An `etl.SupersededError` (the destination refused the commit: another run committed after
    this one planned) marks the run `superseded` instead, also when the reaper had already
    failed it as lost: the run turned out alive, and this is what became of it."""
    run = (
        EtlRun.objects.select_for_update().select_related("data_source__connection").get(pk=run.pk)
    )
    superseded = (error_class or type(exc).__name__) == etl.SupersededError.__name__
    if run.status not in EtlRun.ACTIVE_STATUSES and not (
        superseded and run.status == EtlRun.Status.FAILED
    ):
        return run  # already finished (e.g. reaped): keep the first outcome
    now = timezone.now()
    if superseded:
        run.status = EtlRun.Status.SUPERSEDED
    else:
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
