"""Record how an `EtlRun` ended: succeeded (its state, ledger and counts in one transaction),
failed or requeued (error class and message, secrets removed), or superseded."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

import etl
from ml_platform import selectors
from ml_platform.models import DataSource, EtlRun
from ml_platform.services.connections import credentials_read
from ml_platform.services.secrets import redact, secret_read, secret_strings
from ml_platform.services.state import sync_state_save

logger = structlog.get_logger(__name__)

ERROR_MESSAGE_MAX_CHARS = 10_000


@transaction.atomic
def etl_run_succeed(*, run: EtlRun, result: etl.RunResult) -> EtlRun:
    """In one transaction, store `result.state` (DataSourceState, ProcessedFile rows) and mark the
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
            **run.log_ids,
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
        **run.log_ids,
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
    run.error_message = error_message_redacted(
        data_source=run.data_source, message=error_message, exc=exc
    )
    run.full_clean(validate_constraints=False)
    run.save()
    if not requeue:
        # a parallel run's chunks not yet staged are abandoned (late reports are dropped)
        from ml_platform.services.chunks import etl_run_chunks_abandon

        etl_run_chunks_abandon(run=run)
    return run


def error_message_redacted(
    *, data_source: DataSource, message: str = "", exc: BaseException | None = None
) -> str:
    """Return `message` (else `exc`'s text, else its repr) as a run's or a chunk's stored
    error message: `data_source`'s secrets replaced by `***`, at most
    `ERROR_MESSAGE_MAX_CHARS` characters."""
    text = message or str(exc) or repr(exc)
    return redact(text, secrets_of(data_source))[:ERROR_MESSAGE_MAX_CHARS]


def secrets_of(data_source: DataSource) -> list[str]:
    """The secret strings of `data_source`'s connection and destination credentials (those
    that can be read), to replace by `***` in a run's or a chunk's error message."""
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
