"""Parallel runs in Cloud Run Job mode: one execution with N tasks, each task extracting the
chunk of its `CLOUD_RUN_TASK_INDEX` and reporting it through the runner API.

Task 0 is the coordinator: it starts the run (`etl_run_runner_start`), plans the chunks (holding
PostgreSQL's exported snapshot), records the plan here (`etl_run_chunks_create`), extracts its
own chunk, waits until every chunk has a report (`etl_run_chunks_get`), commits them all in the
destination and reports the RunResult as a one-task run does. Tasks 1..N-1 read the job
(`GET .../config/?run_id=`, no side effect), wait for the plan, claim their chunk
(`etl_run_chunk_claim`, which also takes a reader slot of the connection or answers
`waiting`), send chunk heartbeats and report (`etl_run_chunk_report`).

The chunk rows, claims, attempts and heartbeats are the Celery path's (`chunks`, written by
both): a task Cloud Run retries after its container died claims its chunk again once
the previous attempt's heartbeat is older than `settings.ETL_CHUNK_STALE_AFTER_S` (attempt 2);
only reports of the attempt holding the claim are recorded. A coordinator started again for a
run that already has chunks fails the run (`CoordinatorLostError`): the snapshot is gone.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_platform.exceptions import ApplicationError
from ml_platform.models import EtlRun, EtlRunChunk
from ml_platform.services.chunks import (
    HELD_STATUSES,
    chunk_claim,
    chunk_held,
    chunk_record_done,
    chunk_record_failed,
)
from ml_platform.services.reader_slots import (
    reader_holder_of_chunk,
    reader_holder_of_run,
    reader_slot_release_holder,
    reader_slot_renew_holder,
    reader_slot_try,
)
from ml_platform.services.runner import RUN_NOT_ACTIVE, RunNotActiveError

logger = structlog.get_logger(__name__)

CHUNKS_EXIST = "Run {run_id} already has a chunk plan; a coordinator plans once per run."
CHUNK_UNKNOWN = "Run {run_id} has no chunk {index} (its plan has {count})."
CHUNK_NOT_HELD = "Chunk {index} of run {run_id} is not held by attempt {attempt} (now {status}, attempt {current})."
PLAN_INVALID = "The chunk plan must be a JSON object with a `chunks` array."


def _running(run_uid: uuid.UUID) -> EtlRun:
    run = EtlRun.objects.select_related("data_source__connection").get(uid=run_uid)
    if run.status != EtlRun.Status.RUNNING:
        raise RunNotActiveError(RUN_NOT_ACTIVE.format(run_id=run.uid, status=run.status))
    return run


@transaction.atomic
def etl_run_chunks_create(*, run_uid: uuid.UUID, plan: dict[str, Any]) -> list[EtlRunChunk]:
    """Record the coordinator task's chunk plan of running run `run_uid`: the plan JSON on the
    run and one pending chunk per planned chunk.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        RunNotActiveError: the run is not running.
        ApplicationError: the plan is not an object with a `chunks` array, or the run already
            has a plan.
    """
    run = _running(run_uid)
    if not isinstance(plan, dict) or not isinstance(plan.get("chunks"), list):
        raise ApplicationError(PLAN_INVALID)
    if EtlRunChunk.objects.filter(run=run).exists():
        raise ApplicationError(CHUNKS_EXIST.format(run_id=run.uid))
    EtlRun.objects.filter(pk=run.pk).update(chunk_plan=plan, updated_at=timezone.now())
    chunks = EtlRunChunk.objects.bulk_create(
        [EtlRunChunk(run=run, index=index) for index in range(len(plan["chunks"]))]
    )
    logger.info("etl_run.chunks_planned", **run.log_ids, chunks=len(chunks), executor="cloud_run")
    return chunks


def etl_run_chunks_get(*, run_uid: uuid.UUID) -> tuple[EtlRun, list[EtlRunChunk]]:
    """Return run `run_uid` (its `chunk_plan` None until the coordinator recorded it) and its
    chunks by index; changes nothing.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
    """
    run = EtlRun.objects.get(uid=run_uid)
    return run, list(EtlRunChunk.objects.filter(run=run).order_by("index"))


def _chunk(run: EtlRun, index: int) -> EtlRunChunk:
    chunk = EtlRunChunk.objects.filter(run=run, index=index).first()
    if chunk is None:
        count = EtlRunChunk.objects.filter(run=run).count()
        raise ApplicationError(CHUNK_UNKNOWN.format(run_id=run.uid, index=index, count=count))
    return chunk


def etl_run_chunk_claim(
    *, run_uid: uuid.UUID, index: int, worker: str, attempt: int | None = None
) -> dict[str, Any]:
    """Claim chunk `index` of running run `run_uid` for a runner task and take a reader slot.

    A pending chunk, or one whose holder's heartbeat is older than
    `settings.ETL_CHUNK_STALE_AFTER_S` (its container died), gets a new attempt. The caller
    then holds it while it waits for a reader slot: it calls again with that `attempt` until the
    answer is `claimed`.

    Args:
        run_uid: `EtlRun.uid`.
        index: the chunk's index in the plan.
        worker: the task's name (execution/task index).
        attempt: the attempt this caller already holds (waiting for a slot), else None.

    Returns:
        `{"state": "claimed", "attempt": n}` (extract now, holding a reader slot),
        `{"state": "waiting", "attempt": n, "retry_after_s": s}` (no free reader slot: call
        again with `attempt`), `{"state": "busy", "retry_after_s": s}` (another live attempt
        holds it), or `{"state": "done"}` (already reported).

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        RunNotActiveError: the run is not running (reaped, failed).
        ApplicationError: the run has no chunk `index`.
    """
    run = _running(run_uid)
    chunk = _chunk(run, index)
    if chunk.status == EtlRunChunk.Status.DONE:
        return {"state": "done"}
    held = attempt is not None and attempt == chunk.attempt and chunk.status in HELD_STATUSES
    if not held:
        refused = _chunk_take(run=run, chunk=chunk, worker=worker)
        if refused is not None:
            return refused
    return _chunk_reader_slot(run=run, chunk=chunk, worker=worker)


def _chunk_take(*, run: EtlRun, chunk: EtlRunChunk, worker: str) -> dict[str, Any] | None:
    """Claim `chunk` as a new attempt (`chunks.chunk_claim`: pending, or its holder's heartbeat
    stale) and refresh it; return the answer when it is not claimed here, else None."""
    if chunk.status == EtlRunChunk.Status.FAILED:
        return {"state": "failed"}
    stale_after_s = float(settings.ETL_CHUNK_STALE_AFTER_S)
    claimed = chunk_claim(
        chunk_id=chunk.pk,
        worker=worker,
        stale_before=timezone.now() - timezone.timedelta(seconds=stale_after_s),
        current_attempt=chunk.attempt,
    )
    if claimed is None:
        return {"state": "busy", "retry_after_s": float(settings.ETL_READER_WAIT_POLL_S)}
    if chunk.status != EtlRunChunk.Status.PENDING:
        logger.warning(
            "etl_run.chunk_lost",
            **run.log_ids,
            chunk=chunk.index,
            worker=chunk.worker,
            retried=True,
        )
    chunk.refresh_from_db()
    return None


def _chunk_reader_slot(*, run: EtlRun, chunk: EtlRunChunk, worker: str) -> dict[str, Any]:
    """Take a reader slot for the attempt holding `chunk`: `claimed` (the chunk is running),
    or `waiting` (its heartbeat and the seconds waited are refreshed)."""
    connection = run.data_source.connection
    holder = reader_holder_of_chunk(run=run, index=chunk.index, attempt=chunk.attempt)
    now = timezone.now()
    if reader_slot_try(connection=connection, holder=holder) is None:
        waited = (now - chunk.started_at).total_seconds() if chunk.started_at else 0.0
        EtlRunChunk.objects.filter(
            pk=chunk.pk, attempt=chunk.attempt, status=EtlRunChunk.Status.WAITING
        ).update(heartbeat_at=now, waited_s=round(waited, 3))
        if chunk.waited_s == 0:
            logger.info(
                "reader_slot.waiting",
                **run.log_ids,
                chunk=chunk.index,
                connection_id=connection.pk,
                max_readers=connection.max_readers,
            )
        poll_s = float(settings.ETL_READER_WAIT_POLL_S)
        return {"state": "waiting", "attempt": chunk.attempt, "retry_after_s": poll_s}
    EtlRunChunk.objects.filter(pk=chunk.pk, attempt=chunk.attempt).update(
        status=EtlRunChunk.Status.RUNNING, heartbeat_at=now
    )
    logger.info(
        "etl_run.chunk_started",
        **run.log_ids,
        chunk=chunk.index,
        attempt=chunk.attempt,
        worker=worker,
    )
    return {"state": "claimed", "attempt": chunk.attempt}


def _held(run: EtlRun, index: int, attempt: int) -> EtlRunChunk:
    chunk = _chunk(run, index)
    if chunk.attempt != attempt or chunk.status not in HELD_STATUSES:
        raise RunNotActiveError(
            CHUNK_NOT_HELD.format(
                index=index,
                run_id=run.uid,
                attempt=attempt,
                status=chunk.status,
                current=chunk.attempt,
            )
        )
    return chunk


def etl_run_chunk_heartbeat(*, run_uid: uuid.UUID, index: int, attempt: int) -> EtlRunChunk:
    """Refresh the heartbeat of chunk `index` held by `attempt` and renew its reader slot.

    Raises:
        RunNotActiveError: the run is not running, or the attempt lost the chunk.
    """
    run = _running(run_uid)
    chunk = _held(run, index, attempt)
    chunk_held(chunk.pk, attempt).update(heartbeat_at=timezone.now())
    reader_slot_renew_holder(holder=reader_holder_of_chunk(run=run, index=index, attempt=attempt))
    return chunk


def etl_run_chunk_report(
    *, run_uid: uuid.UUID, index: int, attempt: int, report: dict[str, Any]
) -> EtlRunChunk:
    """Record what attempt `attempt` of chunk `index` reports and free its reader slot: the
    engine's ChunkReport JSON (the chunk is done), or a failure `{"status": "failed",
    "error_class", "error", "transient"}` (pending again when transient and attempts are
    left, else failed: the coordinator then fails the run).

    Raises:
        RunNotActiveError: the run is not running, or the attempt no longer holds the chunk
            (its report is dropped; its parts are never loaded).
        ApplicationError: the report is not a JSON object.
    """
    if not isinstance(report, dict):
        raise ApplicationError("A chunk report must be a JSON object.")
    run = _running(run_uid)
    chunk = _held(run, index, attempt)
    if report.get("status") == "failed":
        retry = chunk_record_failed(
            run=run,
            chunk_id=chunk.pk,
            attempt=attempt,
            transient=bool(report.get("transient")),
            error_class=str(report.get("error_class") or "RunnerError"),
            exc=Exception(str(report.get("error") or "")),
        )
        logger.warning("etl_run.chunk_failed", **run.log_ids, chunk=index, retried=retry)
    else:
        rows = int(report.get("rows_extracted") or report.get("rows") or 0)
        chunk_record_done(chunk_id=chunk.pk, attempt=attempt, report=report, rows=rows)
        logger.info("etl_run.chunk_done", **run.log_ids, chunk=index, attempt=attempt, rows=rows)
    reader_slot_release_holder(holder=reader_holder_of_chunk(run=run, index=index, attempt=attempt))
    chunk.refresh_from_db()
    return chunk


def etl_run_reader_claim(*, run_uid: uuid.UUID) -> dict[str, Any]:
    """Take a reader slot of the source's connection for a one-task Cloud Run runner before it
    reads (the Celery path takes it in `etl_run_execute`). The runner's heartbeats renew it;
    its result report frees it; a dead runner's lease expires.

    Returns:
        `{"state": "claimed"}` (read now), or `{"state": "waiting", "retry_after_s": s}` (all
        `max_readers` slots busy: ask again; the run's heartbeat keeps it alive meanwhile).

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        RunNotActiveError: the run is not running.
    """
    run = _running(run_uid)
    connection = run.data_source.connection
    lease = reader_slot_try(connection=connection, holder=reader_holder_of_run(run=run))
    if lease is None:
        logger.info(
            "reader_slot.waiting",
            **run.log_ids,
            connection_id=connection.pk,
            max_readers=connection.max_readers,
        )
        return {"state": "waiting", "retry_after_s": float(settings.ETL_READER_WAIT_POLL_S)}
    return {"state": "claimed"}
