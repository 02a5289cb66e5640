"""Fail the runs whose worker is gone (no heartbeat) or whose task never arrived, so they stop
blocking their data source."""

from __future__ import annotations

import datetime as dt

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_platform import selectors
from ml_platform.models import EtlRun
from ml_platform.services.runs import etl_run_fail

logger = structlog.get_logger(__name__)

RUN_WORKER_LOST = (
    "Run {run_id} sent no heartbeat since {last_seen} (worker {worker!r} lost: killed, out of "
    "memory or restarted); marked failed after {stale_after_s:g} s. Nothing it loaded without "
    "committing is kept; the next run reconciles the destination and loads what is missing."
)
RUN_NEVER_STARTED = (
    "Run {run_id} stayed queued since {queued_at} and no worker took it (its task message was "
    "lost); marked failed after {stale_after_s:g} s. Trigger the data source again."
)


class WorkerLostError(Exception):
    """Recorded as the `error_class` of a run the reaper failed (its worker died)."""


class RunNeverStartedError(Exception):
    """Recorded as the `error_class` of a queued run whose task message never arrived."""


def etl_run_reap_stale(
    *, now: dt.datetime | None = None, stale_after_s: float | None = None
) -> list[EtlRun]:
    """Fail the runs whose worker is gone, so they stop blocking their data source.

    A running run whose heartbeat (`updated_at`, refreshed every
    `settings.ETL_RUN_HEARTBEAT_INTERVAL_S` by the executing worker) is older than
    `settings.ETL_RUN_STALE_AFTER_S` seconds, and a queued run older than
    `settings.ETL_RUN_QUEUED_STALE_AFTER_S`, is marked failed (`WorkerLostError` /
    `RunNeverStartedError`). Sync state is not touched: what the dead worker loaded without
    committing was rolled back by the destination, and a load it did commit is found by the
    next run in the destination's load log (the engine rolls forward), so the next run loads
    exactly what is missing. A run failed here that was alive after all (stalled: a paused VM,
    swapping, a lock wait) cannot commit a second copy once another run has committed: the
    destination's fence refuses its commit and `etl_run_fail` records it as `superseded`.

    Args:
        now: the current time (UTC); defaults to now.
        stale_after_s: overrides `settings.ETL_RUN_STALE_AFTER_S` (seconds).

    Returns:
        The runs marked failed, oldest first.
    """
    now = now or timezone.now()
    if stale_after_s is None:
        stale_after_s = float(settings.ETL_RUN_STALE_AFTER_S)
    running_before = now - dt.timedelta(seconds=stale_after_s)
    queued_before = now - dt.timedelta(seconds=float(settings.ETL_RUN_QUEUED_STALE_AFTER_S))
    reaped = []
    for candidate in selectors.etl_run_list_stale(
        running_before=running_before, queued_before=queued_before
    ):
        with transaction.atomic():
            run = EtlRun.objects.select_for_update().get(pk=candidate.pk)
            if run.status == EtlRun.Status.RUNNING and run.updated_at < running_before:
                exc: Exception = WorkerLostError(
                    RUN_WORKER_LOST.format(
                        run_id=run.id,
                        last_seen=run.updated_at.isoformat(),
                        worker=run.worker,
                        stale_after_s=stale_after_s,
                    )
                )
            elif run.status == EtlRun.Status.QUEUED and run.queued_at < queued_before:
                exc = RunNeverStartedError(
                    RUN_NEVER_STARTED.format(
                        run_id=run.id,
                        queued_at=run.queued_at.isoformat(),
                        stale_after_s=float(settings.ETL_RUN_QUEUED_STALE_AFTER_S),
                    )
                )
            else:
                continue  # it moved on since the query
            run = etl_run_fail(run=run, exc=exc)
        logger.warning(
            "etl_run.reaped",
            run_id=run.id,
            data_source_id=run.data_source_id,
            error_class=run.error_class,
            worker=run.worker,
        )
        reaped.append(run)
    return reaped
