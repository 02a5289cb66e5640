"""Celery tasks: thin wrappers that take ids and call the service of the same name (R4)."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task

from etl import TransientError

logger = structlog.get_logger(__name__)

RETRY_BASE_COUNTDOWN_S = 30
"""First retry after 30 s, then 60, 120, ... (doubling per attempt)."""


def _etl_run_execute_failure(
    self: Any, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any
) -> None:
    """Mark the run failed when the task failed outside the service (e.g. the retry could not
    be published), so it does not stay queued and block its source."""
    from ml_platform.models import EtlRun
    from ml_platform.services import etl_run_fail

    run_pk = args[0] if args else kwargs.get("run_pk")
    run = EtlRun.objects.filter(pk=run_pk).first()
    ids = run.log_ids if run is not None else {"run_pk": run_pk}
    logger.error("etl_run_execute.failed", **ids, task_id=task_id, error_class=type(exc).__name__)
    if run is not None and run.status in EtlRun.ACTIVE_STATUSES:
        etl_run_fail(run=run, exc=exc)


@shared_task(
    bind=True,
    name="ml_platform.etl_run_execute",
    acks_late=True,
    max_retries=5,
    on_failure=_etl_run_execute_failure,
)
def etl_run_execute(self: Any, run_pk: int) -> None:
    """Execute the run whose id is `run_pk`; every log line of it carries the run's `run_id`
    (the engine's UUID, `_etl_run_id`) and `run_pk` (`EtlRun.log_ids`). On
    `etl.TransientError` put it back to queued and retry after 30, 60, 120, 240, 480 seconds;
    any other error fails the run at once."""
    # in-body imports: services import this module to enqueue (HackSoft)
    from ml_platform import selectors
    from ml_platform.services import etl_run_execute as etl_run_execute_service
    from ml_platform.services.run_logs import etl_run_log_capture

    run = selectors.etl_run_get(id=run_pk)
    structlog.contextvars.bind_contextvars(
        **run.log_ids,
        data_source_id=run.data_source_id,
        source_type=run.data_source.connection.type,
    )
    # an eager task (one machine, no worker) is not retried: there is no one to run it after
    # the backoff, and Celery cannot retry eagerly while eager errors propagate (celery#8056)
    can_retry = not self.request.is_eager and self.request.retries < self.max_retries
    try:
        with etl_run_log_capture(run=run):
            etl_run_execute_service(
                run=run, worker=self.request.hostname or "", requeue_on_transient=can_retry
            )
    except TransientError as exc:
        if not can_retry:
            raise
        raise self.retry(
            exc=exc, countdown=RETRY_BASE_COUNTDOWN_S * 2**self.request.retries
        ) from exc
    finally:
        structlog.contextvars.clear_contextvars()


@shared_task(bind=True, name="ml_platform.etl_run_chunk", acks_late=True, ignore_result=True)
def etl_run_chunk(self: Any, chunk_id: int) -> int | None:
    """Extract chunk `chunk_id` of a parallel run into the run's staging and record its report
    (`services.runs_parallel_chunk.etl_run_chunk_execute`). Idempotent: a chunk already taken or
    finished, or of a run no longer running, is left alone (a redelivered message after a
    SIGKILL). Not retried by Celery: the run's coordinator re-publishes a chunk whose worker
    was lost. Returns the chunk's attempt number, or None when nothing was done."""
    from ml_platform.services.runs_parallel_chunk import etl_run_chunk_execute

    chunk = etl_run_chunk_execute(chunk_id=chunk_id, worker=self.request.hostname or "")
    return chunk.attempt if chunk is not None else None


@shared_task(name="ml_platform.etl_run_reap_stale", acks_late=True, ignore_result=True)
def etl_run_reap_stale() -> list[int]:
    """Fail runs whose worker died (no heartbeat) or whose message was lost; beat runs it every
    `CELERY_BEAT_SCHEDULE["etl-run-reap-stale"]` seconds. Returns the ids of the runs failed."""
    from ml_platform.services import etl_run_reap_stale as etl_run_reap_stale_service

    return [run.id for run in etl_run_reap_stale_service()]


@shared_task(name="ml_platform.data_source_run_scheduled", ignore_result=True)
def data_source_run_scheduled(data_source_id: int) -> int | None:
    """Enqueue a run of data source `data_source_id` (trigger `beat`), sent by django-celery-beat
    on the source's schedule. A source deleted or disabled since is skipped (None); a source
    already queued or running gets no second run. Returns the run id."""
    from ml_platform import selectors
    from ml_platform.models import EtlRun
    from ml_platform.services import etl_run_enqueue

    data_source = selectors.data_source_get_enabled(id=data_source_id)
    if data_source is None:
        logger.info("data_source_run_scheduled.skipped", data_source_id=data_source_id)
        return None
    return etl_run_enqueue(data_source=data_source, trigger=EtlRun.Trigger.BEAT).id


@shared_task(name="ml_platform.alerts_evaluate", acks_late=True)
def alerts_evaluate() -> int:
    """Open, alert and close alert incidents (beat, every `ETL_ALERT_INTERVAL_S`); idempotent.
    Returns the number of incidents opened or closed."""
    from ml_platform.services.alerts import alerts_evaluate as alerts_evaluate_service

    return len(alerts_evaluate_service())
