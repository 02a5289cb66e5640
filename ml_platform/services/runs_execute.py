"""Execute a queued `EtlRun` through the engine: mark it running, build its JobConfig and
state, call `etl.run` under the destination's writer lock, and hand the outcome to `runs_finish`."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import etl
from ml_platform.models import EtlRun
from ml_platform.services.job_config import job_config_build
from ml_platform.services.reader_slots import reader_holder_of_run, reader_slot
from ml_platform.services.runs_finish import etl_run_fail, etl_run_succeed
from ml_platform.services.runs_lock import destination_writer_lock
from ml_platform.services.runs_progress import RunHeartbeat, run_progress_recorder
from ml_platform.services.state import sync_state_full_refresh_pending, sync_state_get_engine

logger = structlog.get_logger(__name__)


def etl_run_execute(
    *,
    run: EtlRun,
    progress: etl.ProgressCallback | None = None,
    on_estimate: Callable[[int], None] | None = None,
    worker: str = "",
    requeue_on_transient: bool = False,
) -> EtlRun:
    """Run `run` through the engine and record the outcome.

    Marks the run running, builds the JobConfig (secrets resolved here, never stored on the
    run) and the engine state, calls `etl.run`, then in ONE transaction stores the new
    `DataSourceState`, mirrors the file ledger into `ProcessedFile` rows and marks the run succeeded
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
        logger.info("etl_run.skipped", **run.log_ids, status=run.status)
        return run
    from ml_platform.services.runs_parallel import etl_run_execute_parallel, run_is_parallel

    if run_is_parallel(data_source=run.data_source):
        return etl_run_execute_parallel(
            run=run, worker=run.worker, requeue_on_transient=requeue_on_transient
        )
    log = logger.bind(**run.log_ids, data_source_id=run.data_source.id)
    return etl_run_attempt(
        run=run,
        log=log,
        requeue_on_transient=requeue_on_transient,
        work=lambda lock: _etl_run_engine(
            run=run, log=log, lock=lock, progress=progress, on_estimate=on_estimate
        ),
    )


def etl_run_attempt(
    *,
    run: EtlRun,
    log: Any,
    requeue_on_transient: bool,
    work: Callable[[contextlib.ExitStack], etl.RunResult],
    on_requeue: Callable[[], None] | None = None,
) -> EtlRun:
    """Execute running run `run`'s engine work and record its outcome: succeeded with the
    `etl.RunResult` `work` returns, or failed (requeued, with `requeue_on_transient`, on an
    `etl.TransientError`, after `on_requeue`) with the error re-raised.

    The run's heartbeat beats meanwhile; `work` enters the locks it takes (the destination's
    writer lock, a reader slot) on the stack it is given, which is held until the outcome is
    recorded, as the heartbeat is."""
    heartbeat = RunHeartbeat(run_pk=run.pk, interval_s=float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S))
    heartbeat.start()
    locks = contextlib.ExitStack()
    try:
        result = work(locks)
        heartbeat.stop()
        return etl_run_succeed(run=run, result=result)
    except BaseException as exc:  # noqa: BLE001  worker boundary: record, re-raise; Ctrl-C too,
        # or the run would stay `running` and block its source
        requeue = requeue_on_transient and isinstance(exc, etl.TransientError)
        heartbeat.stop()
        if requeue and on_requeue is not None:
            on_requeue()
        etl_run_fail(run=run, exc=exc, requeue=requeue)
        log.warning("etl_run.failed", error_class=type(exc).__name__, requeued=requeue)
        raise
    finally:
        locks.close()


def _etl_run_engine(
    *,
    run: EtlRun,
    log: Any,
    lock: contextlib.ExitStack,
    progress: etl.ProgressCallback | None,
    on_estimate: Callable[[int], None] | None,
) -> etl.RunResult:
    """Build the run's JobConfig and engine state and call `etl.run` holding the destination's
    writer lock and a reader slot of the source's connection, both entered on `lock` (one
    writer per DuckDB file: a run loading the same file is waited for; at most
    `Connection.max_readers` readers of one source database: `services.reader_slots`)."""
    data_source = run.data_source
    job = job_config_build(data_source=data_source)
    state = sync_state_get_engine(data_source=data_source)
    log.info("etl_run.started", source_type=job.source_type, attempt=run.attempts)
    lock.enter_context(destination_writer_lock(job=job, run_pk=run.pk))
    lock.enter_context(
        reader_slot(
            connection=data_source.connection,
            holder=reader_holder_of_run(run=run),
            log_fields=run.log_ids,
        )
    )
    return etl.run(
        job,
        state,
        run_id=run.uid.hex,
        progress=run_progress_recorder(run=run, forward=progress),
        on_estimate=on_estimate,
        full_refresh=sync_state_full_refresh_pending(data_source=data_source),
        fault_hook=etl.fault_hook_from_spec(settings.ETL_FAULT_INJECT),  # "" outside tests
    )


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
