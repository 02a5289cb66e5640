"""Parallel runs (`DataSource.parallelism` > 1): one table read as N key ranges ("chunks") by
any number of Celery workers, committed once.

The run's own task is the coordinator. It plans the chunks with `etl.chunk_plan` (which holds
PostgreSQL's exported snapshot open until the commit), records one `EtlRunChunk` row per chunk,
publishes one `ml_platform.etl_run_chunk` task per chunk, and extracts chunks itself too, so
its worker slot is not idle (`runs_parallel_wait`). Every extractor claims a chunk with one
conditional UPDATE (`chunks.chunk_claim`, `status = pending`), which is atomic on PostgreSQL
and SQLite alike; a chunk task that finds its chunk taken or finished does nothing
(`runs_parallel_chunk`). While a chunk is extracted its worker refreshes the chunk's
`heartbeat_at`; when the coordinator sees a heartbeat older than
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
import uuid
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import etl
from ml_platform.models import DataSource, EtlRun, EtlRunChunk
from ml_platform.services.job_config import job_config_build
from ml_platform.services.runs_execute import etl_run_attempt
from ml_platform.services.runs_finish import etl_run_fail
from ml_platform.services.runs_lock import destination_writer_lock
from ml_platform.services.runs_parallel_wait import etl_run_chunks_publish, etl_run_chunks_wait
from ml_platform.services.runs_progress import run_progress_recorder
from ml_platform.services.state import sync_state_full_refresh_pending, sync_state_get_engine

logger = structlog.get_logger(__name__)

PARALLEL_SOURCE_TYPES = frozenset({"postgresql", "mysql"})
"""Source types whose table reads split into key ranges (issue 14)."""

COORDINATOR_LOST = (
    "Run {run_id} was started again after its coordinator was lost (worker killed or "
    "restarted): the chunks' shared snapshot is gone, so nothing of it is kept. The next run "
    "reconciles the destination and loads what is missing."
)


class CoordinatorLostError(etl.TerminalError):
    """A parallel run's coordinator was started again: its snapshot is gone (terminal)."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = run_id
        super().__init__(COORDINATOR_LOST.format(run_id=run_id))


def run_is_parallel(*, data_source: DataSource) -> bool:
    """Return whether runs of `data_source` split into chunks: `parallelism` > 1 and a
    PostgreSQL or MySQL source (a table, split on its key; custom SQL, split on its cursor
    window). Other sources read as one piece whatever their `parallelism`."""
    return (
        int(data_source.parallelism or 1) > 1
        and data_source.connection.type in PARALLEL_SOURCE_TYPES
    )


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
    log = logger.bind(**run.log_ids, data_source_id=run.data_source.id)
    if EtlRunChunk.objects.filter(run=run).exists():
        exc = CoordinatorLostError(run.uid)
        etl_run_fail(run=run, exc=exc)
        log.warning("etl_run.coordinator_lost")
        raise exc
    return etl_run_attempt(
        run=run,
        log=log,
        requeue_on_transient=requeue_on_transient,
        work=lambda lock: _etl_run_coordinate(run=run, worker=worker, lock=lock, log=log),
        on_requeue=lambda: _chunks_drop(run=run),
    )


def _etl_run_coordinate(
    *, run: EtlRun, worker: str, lock: contextlib.ExitStack, log: Any
) -> etl.RunResult:
    """Plan `run`'s chunks holding the destination's writer lock (entered on `lock`) and the
    source's snapshot, publish and extract them, and commit every report at once."""
    data_source = run.data_source
    job = job_config_build(data_source=data_source)
    state = sync_state_get_engine(data_source=data_source)
    log.info(
        "etl_run.started",
        source_type=job.source_type,
        attempt=run.attempts,
        parallelism=data_source.parallelism,
    )
    lock.enter_context(destination_writer_lock(job=job, run_pk=run.pk))
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
        etl_run_chunks_publish(run=run, chunk_ids=chunk_ids)
        reports = etl_run_chunks_wait(run=run, job=job, plan=plan, worker=worker)
        return coordinator.commit(reports, progress=run_progress_recorder(run=run, forward=None))


def _chunks_drop(*, run: EtlRun) -> None:
    """Drop `run`'s chunks and plan: the retry of a requeued run plans anew."""
    EtlRunChunk.objects.filter(run=run).delete()
    EtlRun.objects.filter(pk=run.pk).update(chunk_plan=None)


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


__all__ = [
    "CoordinatorLostError",
    "chunk_staging",
    "etl_run_chunks_record",
    "etl_run_execute_parallel",
    "job_for_role",
    "run_is_parallel",
]
