"""Parallel runs (`DataSource.parallelism` > 1): one table read as N key ranges ("chunks") by
any number of Celery workers, committed once.

The run's own task is the coordinator. It plans the chunks with `etl.chunk_plan` (which holds
PostgreSQL's exported snapshot open until the commit), records one `EtlRunChunk` row per chunk,
publishes one `ml_platform.etl_run_chunk` task per chunk, and extracts chunks itself too, so
its worker slot is not idle. Every extractor claims a chunk with one conditional UPDATE
(`status = pending`), which is atomic on PostgreSQL and SQLite alike; a chunk task that finds
its chunk taken or finished does nothing. While a chunk is extracted its worker refreshes the
chunk's `heartbeat_at`; when the coordinator sees a heartbeat older than
`settings.ETL_CHUNK_STALE_AFTER_S` (its worker was killed), it puts that chunk alone back to
pending with a new task (the next claim is attempt 2); the other chunks keep their reports.
A report is recorded only by the attempt that holds the claim, so a late report of a lost
attempt is dropped, and only the Parquet parts named in the recorded reports are loaded.
Once every chunk has a report, `coordinator.commit(reports)` loads all parts with the load log
in one destination transaction, and the run's state is stored as for a one-reader run
(`etl_run_succeed`).

A lost coordinator (worker killed) loses the snapshot: its run stops sending heartbeats and the
reaper fails it (`WorkerLostError`), as for any run; a coordinator task started again for a run
that already has chunks fails it at once (`CoordinatorLostError`). The next run reconciles the
destination and loads what is missing. Chunk readers take a reader slot of the connection
(`reader_slots`), waiting for one when `Connection.max_readers` are busy.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

import etl
from ml_platform.models import DataSource, EtlRun, EtlRunChunk
from ml_platform.services.job_config import job_config_build
from ml_platform.services.reader_slots import reader_slot
from ml_platform.services.runs_finish import (
    ERROR_MESSAGE_MAX_CHARS,
    etl_run_fail,
    etl_run_succeed,
    secrets_of,
)
from ml_platform.services.runs_lock import destination_writer_lock
from ml_platform.services.runs_progress import Pulse, RunHeartbeat, run_progress_recorder
from ml_platform.services.secrets import redact
from ml_platform.services.state import sync_state_full_refresh_pending, sync_state_get_engine

logger = structlog.get_logger(__name__)

PARALLEL_SOURCE_TYPES = frozenset({"postgresql", "mysql"})
"""Source types whose table reads split into key ranges (issue 14)."""

COORDINATOR_LOST = (
    "Run {run_id} was started again after its coordinator was lost (worker killed or "
    "restarted): the chunks' shared snapshot is gone, so nothing of it is kept. The next run "
    "reconciles the destination and loads what is missing."
)
CHUNK_FAILED = (
    "Chunk {index} of run {run_id} failed after {attempts} attempt(s): {error_class}: {error}. "
    "Nothing of the run was committed."
)
CHUNK_LOST = (
    "Chunk {index} of run {run_id} sent no heartbeat for {stale_after_s:g} s in each of "
    "{attempts} attempts (its workers were lost); the run stops, nothing was committed."
)
RUN_STOPPED = "Run {run_id} is {status}; its chunks are no longer waited for."


class CoordinatorLostError(etl.TerminalError):
    """A parallel run's coordinator was started again: its snapshot is gone (terminal)."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = run_id
        super().__init__(COORDINATOR_LOST.format(run_id=run_id))


class ChunkFailedError(etl.TerminalError):
    """A chunk failed for good (terminal error, or `ETL_CHUNK_MAX_ATTEMPTS` used up)."""

    def __init__(
        self, *, run_id: uuid.UUID, index: int, attempts: int, error_class: str, error: str
    ):
        self.run_id, self.index, self.attempts = run_id, index, attempts
        self.error_class, self.error = error_class, error
        super().__init__(
            CHUNK_FAILED.format(
                index=index, run_id=run_id, attempts=attempts, error_class=error_class, error=error
            )
        )


class ChunkLostError(Exception):
    """Recorded as the `error_class` of a chunk whose every attempt lost its worker."""


class RunStoppedError(etl.TerminalError):
    """The run was finished by someone else (reaped) while the coordinator waited."""

    def __init__(self, run_id: uuid.UUID, status: str) -> None:
        self.run_id, self.status = run_id, status
        super().__init__(RUN_STOPPED.format(run_id=run_id, status=status))


def run_is_parallel(*, data_source: DataSource) -> bool:
    """Return whether runs of `data_source` split into chunks: `parallelism` > 1 and a
    PostgreSQL or MySQL source (a table, split on its key; custom SQL, split on its cursor
    window). Other sources read as one piece whatever their `parallelism`."""
    return (
        int(data_source.parallelism or 1) > 1
        and data_source.connection.type in PARALLEL_SOURCE_TYPES
    )


def chunk_plan_load(data: dict[str, Any]) -> etl.ChunkPlan:
    """Return the `etl.ChunkPlan` stored as JSON on `EtlRun.chunk_plan`."""
    return etl.ChunkPlan.from_dict(data)


def chunk_report_load(data: dict[str, Any]) -> etl.ChunkReport:
    """Return the `etl.ChunkReport` stored as JSON on `EtlRunChunk.report`."""
    return etl.ChunkReport.from_dict(data)


def chunk_staging(*, run: EtlRun) -> str:
    """Return the staging root of `run`'s chunk parts (`settings.ETL_STAGING_DIR`: a folder
    every worker can reach, or an fsspec URL such as `gs://bucket/prefix`); the engine puts the
    run's parts under `<root>/<run uid hex>/` and removes them after the commit."""
    return str(settings.ETL_STAGING_DIR)


def job_for_role(job: etl.JobConfig, *, role: str) -> etl.JobConfig:
    """Return `job` whose PostgreSQL sessions are named after their role in `pg_stat_activity`
    (`application_name`: `<name> snapshot` for the coordinator's snapshot session, `<name>`
    for chunk readers; `<name>` is the connection's `application_name` param, default
    `etl-runner`), so a DBA tells the session holding the snapshot from the readers."""
    if job.source_type != "postgresql" or role != "snapshot":
        return job
    params = dict(job.connection_params)
    params["application_name"] = f"{params.get('application_name') or 'etl-runner'} snapshot"
    return job.model_copy(update={"connection_params": params})


def etl_run_execute_parallel(*, run: EtlRun, worker: str, requeue_on_transient: bool) -> EtlRun:
    """Coordinate parallel run `run` (already marked running by `etl_run_start`): plan, publish
    and extract chunks, wait for every report, commit them all with the state at once.

    Args:
        run: the run, running, of a source with `run_is_parallel`.
        worker: this worker's name, recorded on the chunks it extracts.
        requeue_on_transient: on `etl.TransientError`, put the run back to queued (its chunks
            are dropped; the retry plans again) instead of failing it.

    Returns:
        The run, succeeded.

    Raises:
        CoordinatorLostError: the run already had chunks (its earlier coordinator was lost).
        ChunkFailedError: a chunk failed for good; nothing was committed.
        etl.SnapshotExpiredError: a chunk found the plan's PostgreSQL snapshot gone (transient: the
            run is requeued and plans again).
        etl.SupersededError / etl.TransientError / etl.TerminalError: as `etl_run_execute`.
    """
    data_source = run.data_source
    log = logger.bind(**run.log_ids, data_source_id=data_source.id)
    if EtlRunChunk.objects.filter(run=run).exists():
        exc = CoordinatorLostError(run.uid)
        etl_run_fail(run=run, exc=exc)
        log.warning("etl_run.coordinator_lost")
        raise exc
    heartbeat = RunHeartbeat(run_pk=run.pk, interval_s=float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S))
    heartbeat.start()
    writer_lock = contextlib.ExitStack()
    try:
        job = job_config_build(data_source=data_source)
        state = sync_state_get_engine(data_source=data_source)
        log.info(
            "etl_run.started",
            source_type=job.source_type,
            attempt=run.attempts,
            parallelism=data_source.parallelism,
        )
        writer_lock.enter_context(destination_writer_lock(job=job, run_pk=run.pk))
        with etl.chunk_plan(
            job_for_role(job, role="snapshot"),
            state,
            run_id=run.uid.hex,
            staging=chunk_staging(run=run),
            full_refresh=sync_state_full_refresh_pending(data_source=data_source),
        ) as coordinator:
            plan = coordinator.plan
            chunk_ids = etl_run_chunks_record(run=run, plan=plan)
            log.info("etl_run.chunks_planned", chunks=len(chunk_ids))
            _chunks_publish(run=run, chunk_ids=chunk_ids)
            reports = etl_run_chunks_wait(run=run, job=job, plan=plan, worker=worker)
            result = coordinator.commit(
                reports, progress=run_progress_recorder(run=run, forward=None)
            )
        heartbeat.stop()
        return etl_run_succeed(run=run, result=result)
    except BaseException as exc:  # noqa: BLE001  worker boundary: record, re-raise
        requeue = requeue_on_transient and isinstance(exc, etl.TransientError)
        heartbeat.stop()
        if requeue:
            EtlRunChunk.objects.filter(run=run).delete()  # the retry plans anew
            EtlRun.objects.filter(pk=run.pk).update(chunk_plan=None)
        etl_run_fail(run=run, exc=exc, requeue=requeue)
        log.warning("etl_run.failed", error_class=type(exc).__name__, requeued=requeue)
        raise
    finally:
        writer_lock.close()


@transaction.atomic
def etl_run_chunks_record(*, run: EtlRun, plan: Any) -> list[int]:
    """Store `plan` on the run and one pending `EtlRunChunk` per planned chunk; return the
    chunks' ids by index."""
    run.chunk_plan = plan.to_dict()  # the instance the run's final save writes
    EtlRun.objects.filter(pk=run.pk).update(chunk_plan=run.chunk_plan, updated_at=timezone.now())
    chunks = EtlRunChunk.objects.bulk_create(
        [EtlRunChunk(run=run, index=index) for index in range(len(plan.chunks))]
    )
    return [chunk.pk for chunk in chunks]


def etl_run_chunk_task_id(*, chunk: EtlRunChunk) -> str:
    """Celery task id of a chunk's task: `etl-chunk-<run uid>-<index>-<attempt + 1>`."""
    return f"etl-chunk-{chunk.run.uid}-{chunk.index}-{chunk.attempt + 1}"


def _chunks_publish(*, run: EtlRun, chunk_ids: list[int]) -> None:
    """Publish one `etl_run_chunk` task per chunk; none under eager Celery (the coordinator
    extracts every chunk itself). A broker that refuses is logged: the coordinator then
    extracts the chunks alone."""
    from kombu.exceptions import OperationalError

    from ml_platform.tasks import etl_run_chunk as etl_run_chunk_task

    if etl_run_chunk_task.app.conf.task_always_eager:
        return
    for chunk in EtlRunChunk.objects.filter(pk__in=chunk_ids).select_related("run"):
        try:
            etl_run_chunk_task.apply_async(
                args=[chunk.pk], task_id=etl_run_chunk_task_id(chunk=chunk)
            )
        except (OperationalError, OSError) as exc:
            logger.warning(
                "etl_run.chunk_publish_failed",
                **run.log_ids,
                chunk=chunk.index,
                error_class=type(exc).__name__,
            )


def etl_run_chunks_wait(*, run: EtlRun, job: etl.JobConfig, plan: Any, worker: str) -> list[Any]:
    """Extract pending chunks of `run` here and wait until every chunk has a report; return the
    reports (`etl.ChunkReport`) by chunk index.

    Looks at the chunks every `settings.ETL_CHUNK_POLL_INTERVAL_S` seconds; a chunk whose
    heartbeat is older than `settings.ETL_CHUNK_STALE_AFTER_S` goes back to pending with a new
    task (`etl_run.chunk_lost`), or fails after `settings.ETL_CHUNK_MAX_ATTEMPTS` attempts.

    Raises:
        ChunkFailedError: a chunk failed for good.
        etl.SnapshotExpiredError: a chunk found the plan's snapshot gone (transient).
        RunStoppedError: the run was finished meanwhile (reaped).
    """
    stale_after_s = float(settings.ETL_CHUNK_STALE_AFTER_S)
    poll_s = float(settings.ETL_CHUNK_POLL_INTERVAL_S)
    staged_before = 0
    while True:
        chunks = list(EtlRunChunk.objects.filter(run=run).order_by("index"))
        for chunk in chunks:
            if chunk.status == EtlRunChunk.Status.FAILED:
                if chunk.error_class == etl.SnapshotExpiredError.__name__:
                    # transient for the run: its task retries it with a new plan and snapshot
                    raise etl.SnapshotExpiredError(run.uid.hex, str(plan.snapshot))
                raise ChunkFailedError(
                    run_id=run.uid,
                    index=chunk.index,
                    attempts=chunk.attempt,
                    error_class=chunk.error_class,
                    error=chunk.error_message,
                )
        if all(chunk.status == EtlRunChunk.Status.DONE for chunk in chunks):
            return [chunk_report_load(chunk.report) for chunk in chunks]
        status = EtlRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status != EtlRun.Status.RUNNING:
            raise RunStoppedError(run.uid, str(status))
        staged = sum(chunk.rows for chunk in chunks if chunk.status == EtlRunChunk.Status.DONE)
        if staged != staged_before:  # rows staged so far, shown on the run page while it reads
            staged_before = staged
            EtlRun.objects.filter(pk=run.pk).update(progress_rows=staged)
        _chunks_requeue_stale(run=run, chunks=chunks, stale_after_s=stale_after_s)
        pending = EtlRunChunk.objects.filter(run=run, status=EtlRunChunk.Status.PENDING)
        next_id = pending.order_by("index").values_list("pk", flat=True).first()
        if next_id is not None:
            etl_run_chunk_execute(
                chunk_id=next_id, worker=worker, job=job, plan=plan, inject_faults=False
            )
            continue
        time.sleep(poll_s)


def _chunks_requeue_stale(*, run: EtlRun, chunks: list[EtlRunChunk], stale_after_s: float) -> None:
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=stale_after_s)
    for chunk in chunks:
        active = chunk.status in (EtlRunChunk.Status.WAITING, EtlRunChunk.Status.RUNNING)
        if not active or chunk.heartbeat_at is None or chunk.heartbeat_at >= cutoff:
            continue
        lost = EtlRunChunk.objects.filter(
            pk=chunk.pk, attempt=chunk.attempt, status=chunk.status, heartbeat_at__lt=cutoff
        )
        log = logger.bind(**run.log_ids, chunk=chunk.index, attempt=chunk.attempt)
        if chunk.attempt >= int(settings.ETL_CHUNK_MAX_ATTEMPTS):
            lost.update(
                status=EtlRunChunk.Status.FAILED,
                finished_at=now,
                error_class=ChunkLostError.__name__,
                error_message=CHUNK_LOST.format(
                    index=chunk.index,
                    run_id=run.uid,
                    stale_after_s=stale_after_s,
                    attempts=chunk.attempt,
                ),
            )
            log.error("etl_run.chunk_lost", worker=chunk.worker, retried=False)
            continue
        if lost.update(status=EtlRunChunk.Status.PENDING, updated_at=now):
            log.warning("etl_run.chunk_lost", worker=chunk.worker, retried=True)
            chunk.refresh_from_db()
            _chunks_publish(run=run, chunk_ids=[chunk.pk])


def _chunk_claim(*, chunk_id: int, worker: str) -> int | None:
    """Claim pending chunk `chunk_id` for `worker`; return the new attempt number, or None when
    it is not pending (taken, finished, or its run no longer running)."""
    now = timezone.now()
    claimed = EtlRunChunk.objects.filter(
        pk=chunk_id, status=EtlRunChunk.Status.PENDING, run__status=EtlRun.Status.RUNNING
    ).update(
        status=EtlRunChunk.Status.WAITING,
        attempt=F("attempt") + 1,
        worker=worker[:255],
        heartbeat_at=now,
        started_at=now,
        finished_at=None,
        waited_s=0,
        error_class="",
        error_message="",
        updated_at=now,
    )
    if not claimed:
        return None
    return EtlRunChunk.objects.filter(pk=chunk_id).values_list("attempt", flat=True).get()


class _ChunkPulse(Pulse):
    """Refresh a claimed chunk's `heartbeat_at` every `settings.ETL_RUN_HEARTBEAT_INTERVAL_S`
    seconds while it is extracted."""

    failed_event = "etl_run.chunk_heartbeat_failed"

    def __init__(self, *, chunk_id: int, attempt: int) -> None:
        super().__init__(
            interval_s=float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S),
            name=f"etl-chunk-{chunk_id}-heartbeat",
        )
        self.chunk_id, self.attempt = chunk_id, attempt
        self.fields = {"chunk_id": chunk_id, "attempt": attempt}

    def beat(self) -> None:
        _chunk_mine(self.chunk_id, self.attempt).update(heartbeat_at=timezone.now())


def _chunk_mine(chunk_id: int, attempt: int) -> Any:
    """The chunk row while `attempt` still holds its claim."""
    return EtlRunChunk.objects.filter(
        pk=chunk_id,
        attempt=attempt,
        status__in=(EtlRunChunk.Status.WAITING, EtlRunChunk.Status.RUNNING),
    )


def etl_run_chunk_execute(
    *,
    chunk_id: int,
    worker: str = "",
    job: etl.JobConfig | None = None,
    plan: Any = None,
    inject_faults: bool = True,
) -> EtlRunChunk | None:
    """Claim chunk `chunk_id` and extract it (`etl.chunk_extract`) into the run's staging,
    holding a reader slot of the source's connection; record its report.

    Safe to call any number of times (a redelivered or repeated task): a chunk that is not
    pending, or whose run is not running, is left alone (None is returned). A report arriving
    after this attempt lost its claim (its heartbeat went stale and another attempt took the
    chunk) is dropped. An `etl.TransientError` puts the chunk back to pending (the coordinator
    extracts it again) until `settings.ETL_CHUNK_MAX_ATTEMPTS`; any other error fails it.

    Args:
        chunk_id: `EtlRunChunk.id`.
        worker: who extracts it (Celery hostname); defaults to `host:pid`.
        job: the run's JobConfig when the caller has it (the coordinator); else built here.
        plan: the run's `etl.ChunkPlan` when the caller has it; else read from the run.
        inject_faults: test-only: pass `settings.ETL_FAULT_INJECT`'s hook (phases `chunk.batch`,
            `chunk.staged` of `etl.chunk_extract`, and `chunk.extracted` before the report is
            recorded); the coordinator's own chunks pass False.

    Returns:
        The chunk as recorded, or None when it was not claimed here.
    """
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    chunk = (
        EtlRunChunk.objects.select_related("run__data_source__connection")
        .filter(pk=chunk_id)
        .first()
    )
    if chunk is None:
        return None  # its plan was dropped (the run was requeued and planned anew)
    attempt = _chunk_claim(chunk_id=chunk_id, worker=worker)
    if attempt is None:
        logger.info("etl_run.chunk_skipped", **chunk.run.log_ids, chunk=chunk.index)
        return None
    run = chunk.run
    log = logger.bind(**run.log_ids, chunk=chunk.index, attempt=attempt)
    pulse = _ChunkPulse(chunk_id=chunk_id, attempt=attempt)
    pulse.start()
    started = time.monotonic()
    hook = etl.fault_hook_from_spec(settings.ETL_FAULT_INJECT) if inject_faults else None
    try:
        job = job or job_config_build(data_source=run.data_source)
        plan = plan if plan is not None else chunk_plan_load(run.chunk_plan)

        def waiting(waited_s: float) -> None:
            _chunk_mine(chunk_id, attempt).update(
                heartbeat_at=timezone.now(), waited_s=round(waited_s, 3)
            )

        with reader_slot(
            connection=run.data_source.connection,
            holder=f"chunk:{run.pk}/{chunk.index}#{attempt}",
            on_wait=waiting,
            log_fields={**run.log_ids, "chunk": chunk.index},
        ) as lease:
            _chunk_mine(chunk_id, attempt).update(
                status=EtlRunChunk.Status.RUNNING,
                heartbeat_at=timezone.now(),
                waited_s=lease.waited_s,
            )
            log.info("etl_run.chunk_started", worker=worker, waited_s=lease.waited_s)
            report = etl.chunk_extract(job, plan, chunk.index, fault_hook=hook)
        if hook is not None:
            hook("chunk.extracted")
        pulse.stop()
        rows = int(report.rows)
        recorded = _chunk_mine(chunk_id, attempt).update(
            status=EtlRunChunk.Status.DONE,
            report=report.to_dict(),
            rows=rows,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
        log.info(
            "etl_run.chunk_done",
            rows=rows,
            duration_s=round(time.monotonic() - started, 3),
            recorded=bool(recorded),
        )
    except BaseException as exc:  # noqa: BLE001  task boundary: record on the chunk
        pulse.stop()
        # the plan's snapshot is gone: no attempt of this plan can read it, the run re-plans
        retry = (
            isinstance(exc, etl.TransientError)
            and not isinstance(exc, etl.SnapshotExpiredError)
            and attempt < int(settings.ETL_CHUNK_MAX_ATTEMPTS)
        )
        _chunk_mine(chunk_id, attempt).update(
            status=EtlRunChunk.Status.PENDING if retry else EtlRunChunk.Status.FAILED,
            finished_at=None if retry else timezone.now(),
            error_class=type(exc).__name__[:255],
            error_message=_redacted(run, exc),
        )
        log.warning("etl_run.chunk_failed", error_class=type(exc).__name__, retried=retry)
        if not isinstance(exc, Exception):
            raise  # Ctrl-C, SystemExit: stop the process
        # an Exception is recorded on the chunk, where the coordinator reads it: not re-raised
    return EtlRunChunk.objects.get(pk=chunk_id)


def _redacted(run: EtlRun, exc: BaseException) -> str:
    return redact(str(exc) or repr(exc), secrets_of(run.data_source))[:ERROR_MESSAGE_MAX_CHARS]


CHUNK_ABANDONED = "Run {run_id} ended {status} before this chunk was staged; it is not loaded."


class ChunkAbandonedError(Exception):
    """Recorded as the `error_class` of a chunk whose run ended before the chunk was staged."""


def etl_run_chunks_abandon(*, run: EtlRun) -> int:
    """Mark the chunks of finished run `run` that were not staged yet as failed
    (`ChunkAbandonedError`), so the run page does not show them as still extracting and a late
    report of one is dropped; return how many. Called when a run fails or is superseded."""
    return EtlRunChunk.objects.filter(
        run=run,
        status__in=(
            EtlRunChunk.Status.PENDING,
            EtlRunChunk.Status.WAITING,
            EtlRunChunk.Status.RUNNING,
        ),
    ).update(
        status=EtlRunChunk.Status.FAILED,
        finished_at=timezone.now(),
        error_class=ChunkAbandonedError.__name__,
        error_message=CHUNK_ABANDONED.format(run_id=run.uid, status=run.status),
    )


def etl_run_chunks_summary(*, run: EtlRun) -> dict[str, Any]:
    """Return counts of `run`'s chunks by status and the seconds they waited for reader slots,
    for the run page and API: `{"total", "done", "running", "waiting", "pending", "failed",
    "waited_s", "retried"}`."""
    chunks = list(EtlRunChunk.objects.filter(run=run))
    summary: dict[str, Any] = {"total": len(chunks)}
    for status in EtlRunChunk.Status.values:
        summary[status] = sum(1 for chunk in chunks if chunk.status == status)
    summary["waited_s"] = round(sum(chunk.waited_s for chunk in chunks), 3)
    summary["retried"] = sum(1 for chunk in chunks if chunk.attempt > 1)
    return summary


__all__ = [
    "ChunkFailedError",
    "CoordinatorLostError",
    "etl_run_chunk_execute",
    "etl_run_chunks_record",
    "etl_run_chunks_summary",
    "etl_run_chunks_wait",
    "etl_run_execute_parallel",
    "run_is_parallel",
]
