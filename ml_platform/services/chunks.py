"""The `EtlRunChunk` rows of a parallel run, written the same way by both executors: Celery
(`runs_parallel`, `runs_parallel_chunk`) and Cloud Run Job mode (`runner_chunks`).

An extractor claims a chunk with one conditional UPDATE (`chunk_claim`), which is atomic on
PostgreSQL and SQLite alike; the claim makes a new attempt, and only that attempt's writes
(`chunk_held`: heartbeats, its report, its failure) change the row, so the report of an attempt
that lost its claim is dropped.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ml_platform.models import EtlRun, EtlRunChunk
from ml_platform.services.runs_finish import error_message_redacted

HELD_STATUSES = (EtlRunChunk.Status.WAITING, EtlRunChunk.Status.RUNNING)
"""Statuses of a chunk an attempt holds: waiting for a reader slot, or extracting."""
CHUNK_ABANDONED = "Run {run_id} ended {status} before this chunk was staged; it is not loaded."


class ChunkAbandonedError(Exception):
    """Recorded as the `error_class` of a chunk whose run ended before the chunk was staged."""


def chunk_claim(
    *,
    chunk_id: int,
    worker: str,
    stale_before: dt.datetime | None = None,
    current_attempt: int | None = None,
) -> int | None:
    """Claim chunk `chunk_id` of a running run for `worker` as a new attempt (status
    `waiting`, error and wait cleared); return the new attempt number, or None when it is not
    claimable or another extractor claimed it first.

    Args:
        chunk_id: `EtlRunChunk.id`.
        worker: who extracts it (Celery hostname, or the Cloud Run task).
        stale_before: also claim the chunk from an attempt whose heartbeat is older than this
            (its worker died); None: only a pending chunk.
        current_attempt: claim only while the chunk is still at this attempt (as the caller
            read it); None: any.
    """
    now = timezone.now()
    claimable = Q(status=EtlRunChunk.Status.PENDING)
    if stale_before is not None:
        claimable |= Q(status__in=HELD_STATUSES, heartbeat_at__lt=stale_before)
    chunks = EtlRunChunk.objects.filter(claimable, pk=chunk_id, run__status=EtlRun.Status.RUNNING)
    if current_attempt is not None:
        chunks = chunks.filter(attempt=current_attempt)
    claimed = chunks.update(
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


def chunk_held(chunk_id: int, attempt: int) -> QuerySet[EtlRunChunk]:
    """Return the chunk row while `attempt` still holds it (waiting or running): a write
    through it changes nothing once another attempt took the chunk or it finished."""
    return EtlRunChunk.objects.filter(pk=chunk_id, attempt=attempt, status__in=HELD_STATUSES)


def chunk_record_done(*, chunk_id: int, attempt: int, report: dict, rows: int) -> bool:
    """Record the engine's ChunkReport JSON `report` of `attempt` (the chunk is done, `rows`
    staged); return False when the attempt no longer held the chunk (nothing recorded)."""
    now = timezone.now()
    return bool(
        chunk_held(chunk_id, attempt).update(
            status=EtlRunChunk.Status.DONE,
            report=report,
            rows=rows,
            finished_at=now,
            heartbeat_at=now,
        )
    )


def chunk_record_failed(
    *,
    run: EtlRun,
    chunk_id: int,
    attempt: int,
    transient: bool,
    error_class: str,
    exc: BaseException,
) -> bool:
    """Record that `attempt` failed with `exc` (message stored with the source's secrets
    removed): pending again when `transient` and the attempt is below
    `settings.ETL_CHUNK_MAX_ATTEMPTS` (another attempt extracts it), else failed (the
    coordinator fails the run). Return whether the chunk is retried."""
    retry = transient and attempt < int(settings.ETL_CHUNK_MAX_ATTEMPTS)
    chunk_held(chunk_id, attempt).update(
        status=EtlRunChunk.Status.PENDING if retry else EtlRunChunk.Status.FAILED,
        finished_at=None if retry else timezone.now(),
        error_class=error_class[:255],
        error_message=error_message_redacted(data_source=run.data_source, exc=exc),
    )
    return retry


def etl_run_chunks_abandon(*, run: EtlRun) -> int:
    """Mark the chunks of finished run `run` that were not staged yet as failed
    (`ChunkAbandonedError`), so the run page does not show them as still extracting and a late
    report of one is dropped; return how many. Called when a run fails or is superseded."""
    return EtlRunChunk.objects.filter(
        run=run, status__in=(EtlRunChunk.Status.PENDING, *HELD_STATUSES)
    ).update(
        status=EtlRunChunk.Status.FAILED,
        finished_at=timezone.now(),
        error_class=ChunkAbandonedError.__name__,
        error_message=CHUNK_ABANDONED.format(run_id=run.uid, status=run.status),
    )
