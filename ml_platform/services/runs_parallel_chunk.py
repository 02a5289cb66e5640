"""One chunk of a parallel run extracted by a Celery worker (the `ml_platform.etl_run_chunk`
task, or the coordinator itself, `runs_parallel`): claim it, hold a reader slot of the source's
connection, extract it into the run's staging (`etl.chunk_extract`) and record its report or
its failure on the chunk row, where the coordinator reads it."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

import etl
from ml_platform.models import EtlRunChunk
from ml_platform.services.chunks import (
    chunk_claim,
    chunk_held,
    chunk_record_done,
    chunk_record_failed,
)
from ml_platform.services.job_config import job_config_build
from ml_platform.services.reader_slots import reader_holder_of_chunk, reader_slot
from ml_platform.services.runs_progress import Pulse

logger = structlog.get_logger(__name__)


def chunk_plan_load(data: dict[str, Any]) -> etl.ChunkPlan:
    """Return the `etl.ChunkPlan` stored as JSON on `EtlRun.chunk_plan`."""
    return etl.ChunkPlan.from_dict(data)


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
        chunk_held(self.chunk_id, self.attempt).update(heartbeat_at=timezone.now())


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
    claimed = _chunk_claim(chunk_id=chunk_id, worker=worker)
    if claimed is None:
        return None
    chunk, attempt = claimed
    log = logger.bind(**chunk.run.log_ids, chunk=chunk.index, attempt=attempt)
    pulse = _ChunkPulse(chunk_id=chunk_id, attempt=attempt)
    pulse.start()
    hook = etl.fault_hook_from_spec(settings.ETL_FAULT_INJECT) if inject_faults else None
    try:
        _chunk_extract(
            chunk=chunk,
            attempt=attempt,
            worker=worker,
            job=job,
            plan=plan,
            hook=hook,
            log=log,
            pulse=pulse,
        )
    except BaseException as exc:  # noqa: BLE001  task boundary: record on the chunk
        pulse.stop()
        _chunk_failed(chunk=chunk, attempt=attempt, exc=exc, log=log)
        if not isinstance(exc, Exception):
            raise  # Ctrl-C, SystemExit: stop the process
        # an Exception is recorded on the chunk, where the coordinator reads it: not re-raised
    return EtlRunChunk.objects.get(pk=chunk_id)


def _chunk_claim(*, chunk_id: int, worker: str) -> tuple[EtlRunChunk, int] | None:
    """Claim chunk `chunk_id` for `worker` (`chunks.chunk_claim`); return it with its run and
    connection, and the new attempt, or None when it is gone or not claimable."""
    chunk = (
        EtlRunChunk.objects.select_related("run__data_source__connection")
        .filter(pk=chunk_id)
        .first()
    )
    if chunk is None:
        return None  # its plan was dropped (the run was requeued and planned anew)
    attempt = chunk_claim(chunk_id=chunk_id, worker=worker)
    if attempt is None:
        logger.info("etl_run.chunk_skipped", **chunk.run.log_ids, chunk=chunk.index)
        return None
    return chunk, attempt


def _chunk_failed(*, chunk: EtlRunChunk, attempt: int, exc: BaseException, log: Any) -> None:
    """Record that `attempt` failed with `exc`: pending again for a transient error while
    attempts are left, else failed."""
    retry = chunk_record_failed(
        run=chunk.run,
        chunk_id=chunk.pk,
        attempt=attempt,
        # the plan's snapshot is gone: no attempt of this plan can read it, the run re-plans
        transient=isinstance(exc, etl.TransientError)
        and not isinstance(exc, etl.SnapshotExpiredError),
        error_class=type(exc).__name__,
        exc=exc,
    )
    log.warning("etl_run.chunk_failed", error_class=type(exc).__name__, retried=retry)


def _chunk_extract(
    *,
    chunk: EtlRunChunk,
    attempt: int,
    worker: str,
    job: etl.JobConfig | None,
    plan: Any,
    hook: Any,
    log: Any,
    pulse: _ChunkPulse,
) -> None:
    """Extract `chunk`, claimed by `attempt`, holding a reader slot (the chunk is `waiting`
    until it has one, then `running`); stop `pulse` and record the report."""
    run = chunk.run
    started = time.monotonic()
    job = job or job_config_build(data_source=run.data_source)
    plan = plan if plan is not None else chunk_plan_load(run.chunk_plan)

    def waiting(waited_s: float) -> None:
        chunk_held(chunk.pk, attempt).update(
            heartbeat_at=timezone.now(), waited_s=round(waited_s, 3)
        )

    with reader_slot(
        connection=run.data_source.connection,
        holder=reader_holder_of_chunk(run=run, index=chunk.index, attempt=attempt),
        on_wait=waiting,
        log_fields={**run.log_ids, "chunk": chunk.index},
    ) as lease:
        chunk_held(chunk.pk, attempt).update(
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
    recorded = chunk_record_done(
        chunk_id=chunk.pk, attempt=attempt, report=report.to_dict(), rows=rows
    )
    log.info(
        "etl_run.chunk_done",
        rows=rows,
        duration_s=round(time.monotonic() - started, 3),
        recorded=recorded,
    )
