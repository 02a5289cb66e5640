"""How a parallel run's coordinator (`runs_parallel`) waits for its chunks: it publishes one
`ml_platform.etl_run_chunk` task per chunk, extracts pending chunks itself
(`runs_parallel_chunk`), puts a chunk whose heartbeat went stale back to pending with a new task
(or fails it after `settings.ETL_CHUNK_MAX_ATTEMPTS` attempts), and returns every chunk's report
once all are done; a chunk failed for good, or the run finished by someone else, ends the wait."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

import etl
from ml_platform.models import EtlRun, EtlRunChunk
from ml_platform.services.chunks import HELD_STATUSES
from ml_platform.services.runs_parallel_chunk import etl_run_chunk_execute

logger = structlog.get_logger(__name__)

CHUNK_FAILED = (
    "Chunk {index} of run {run_id} failed after {attempts} attempt(s): {error_class}: {error}. "
    "Nothing of the run was committed."
)
CHUNK_LOST = (
    "Chunk {index} of run {run_id} sent no heartbeat for {stale_after_s:g} s in each of "
    "{attempts} attempts (its workers were lost); the run stops, nothing was committed."
)
RUN_STOPPED = "Run {run_id} is {status}; its chunks are no longer waited for."


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


def chunk_report_load(data: dict[str, Any]) -> etl.ChunkReport:
    """Return the `etl.ChunkReport` stored as JSON on `EtlRunChunk.report`."""
    return etl.ChunkReport.from_dict(data)


def etl_run_chunk_task_id(*, chunk: EtlRunChunk) -> str:
    """Celery task id of a chunk's task: `etl-chunk-<run uid>-<index>-<attempt + 1>`."""
    return f"etl-chunk-{chunk.run.uid}-{chunk.index}-{chunk.attempt + 1}"


def etl_run_chunks_publish(*, run: EtlRun, chunk_ids: list[int]) -> None:
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
        active = chunk.status in HELD_STATUSES
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
            etl_run_chunks_publish(run=run, chunk_ids=[chunk.pk])


__all__ = [
    "ChunkFailedError",
    "RunStoppedError",
    "etl_run_chunks_publish",
    "etl_run_chunks_wait",
]
