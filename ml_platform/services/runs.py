"""Writes of `EtlRun` that queue a run: create it (idempotent per source and key), hand it to
the executor (Celery or Cloud Run) and publish its task.

Executing a run is `runs_execute`; recording its outcome (succeeded, failed, requeued,
superseded) is `runs_finish`; the heartbeat and progress counters a running run writes are in
`runs_progress`; failing runs whose worker is gone is `runs_reap`."""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction

import etl
from ml_platform import selectors
from ml_platform.models import DataSource, EtlRun, EtlRunKey
from ml_platform.services.runs_finish import etl_run_fail

logger = structlog.get_logger(__name__)

RUN_ENQUEUE_UNAVAILABLE = (
    "The task queue cannot take a run of data source {data_source_id} now ({reason}); nothing "
    "was queued. Retry in {retry_after_s} s."
)
BROKER_UNAVAILABLE_CLASS = "BrokerUnavailableError"


class RunEnqueueUnavailableError(etl.TransientError):
    """The broker refused or could not be reached when a run was handed to it; the run was
    removed, so nothing stays queued. The API answers 503 with `Retry-After`."""

    def __init__(self, *, data_source_id: int, reason: str, retry_after_s: int) -> None:
        self.data_source_id, self.reason, self.retry_after_s = data_source_id, reason, retry_after_s
        self.message = RUN_ENQUEUE_UNAVAILABLE.format(
            data_source_id=data_source_id, reason=reason, retry_after_s=retry_after_s
        )
        super().__init__(self.message)


def etl_run_create(
    *, data_source: DataSource, trigger: str, idempotency_key: str | None = None
) -> tuple[EtlRun, bool]:
    """Return `(run, created)`: the run `idempotency_key` was answered with for this source if
    any (whatever its status), else the source's queued or running run, else a new queued run.

    A key answered with an already active run is remembered (`EtlRunKey`), so the same key
    returns that run later too, even after it finished. Does not enqueue anything;
    `etl_run_enqueue` and `run_etl` build on it.
    """
    for _ in range(3):
        existing, by_key = _etl_run_existing(
            data_source=data_source, idempotency_key=idempotency_key
        )
        if existing is not None:
            if idempotency_key is not None and not by_key:
                existing = _etl_run_key_remember(
                    data_source=data_source, key=idempotency_key, run=existing
                )
            return existing, False
        run = EtlRun(data_source=data_source, trigger=trigger, idempotency_key=idempotency_key)
        # uniqueness (one key, one active run per source) is the database's to enforce: a
        # concurrent trigger that wins the insert is returned on the next pass
        run.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            continue
        logger.info(
            "etl_run.created", **run.log_ids, data_source_id=data_source.id, trigger=trigger
        )
        return run, True
    raise IntegrityError(f"could not create or find a run of data source {data_source.id}")


def _etl_run_existing(
    *, data_source: DataSource, idempotency_key: str | None
) -> tuple[EtlRun | None, bool]:
    """Return `(run, found_by_key)`."""
    if idempotency_key is not None:
        keyed = selectors.etl_run_get_by_idempotency_key(
            data_source=data_source, key=idempotency_key
        )
        if keyed is not None:
            return keyed, True
    return selectors.etl_run_get_active(data_source=data_source), False


def _etl_run_key_remember(*, data_source: DataSource, key: str, run: EtlRun) -> EtlRun:
    """Record that `key` was answered with `run`; return the run the key is bound to (a
    concurrent trigger may have bound it first)."""
    try:
        with transaction.atomic():
            EtlRunKey.objects.create(data_source=data_source, key=key, run=run)
    except IntegrityError:
        bound = EtlRunKey.objects.select_related("run").filter(data_source=data_source, key=key)
        return bound.first().run if bound.exists() else run
    return run


def etl_run_enqueue(
    *,
    data_source: DataSource,
    trigger: str,
    idempotency_key: str | None = None,
    return_failed: bool = False,
) -> EtlRun:
    """Record a queued run and hand it to the executor of `settings.ETL_EXECUTOR`: the
    `ml_platform.etl_run_execute` Celery task (`celery`) or a Cloud Run Job execution
    (`cloud_run`, see `etl_run_cloud_run_start`), once the run is committed.

    A second trigger for a source that is already queued or running, or one that repeats an
    idempotency key (e.g. Cloud Scheduler's `X-CloudScheduler-ScheduleTime`), returns the
    existing run and enqueues nothing.

    Called outside a transaction (a request), the task is published before returning: when
    the broker cannot take it the run is deleted and `RunEnqueueUnavailableError` raised, so no
    run stays queued without a message. Inside a caller's transaction the task is published on
    its commit, and a publish failure then marks the run failed (`BrokerUnavailableError`).

    With eager Celery (`CELERY_TASK_ALWAYS_EAGER`, the README's default `make run`) the run
    executes inside this call, and its failure propagates (`CELERY_TASK_EAGER_PROPAGATES`).

    Args:
        data_source: the source to run.
        trigger: an `EtlRun.Trigger` value.
        idempotency_key: optional; unique per data source.
        return_failed: for a request's Run Now: a run that failed inside this call (eager
            Celery) is returned, recorded failed with its error, instead of its error raised,
            so the API answers the run and the web page shows it, not a 500.

    Returns:
        The new or the existing run.

    Raises:
        RunEnqueueUnavailableError: the broker is down or refused the message (transient).
    """
    with transaction.atomic():
        run, created = etl_run_create(
            data_source=data_source, trigger=trigger, idempotency_key=idempotency_key
        )
    if not created:
        return run
    if settings.ETL_EXECUTOR == "cloud_run":
        from ml_platform.services.cloud_run import etl_run_cloud_run_start

        transaction.on_commit(lambda: etl_run_cloud_run_start(run=run))
        return run
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _etl_run_publish_or_fail(run=run))
        return run
    return _etl_run_publish_now(run=run, return_failed=return_failed)


def _etl_run_publish_now(*, run: EtlRun, return_failed: bool) -> EtlRun:
    """Publish new run `run`'s task outside a transaction (`etl_run_enqueue`): a broker that
    cannot take it deletes the run; with eager Celery the run executes here, and with
    `return_failed` its failure is recorded and the run returned instead of the error raised.

    Raises:
        RunEnqueueUnavailableError: the broker is down or refused the message (transient).
    """
    try:
        etl_run_publish(run=run)
    except RunEnqueueUnavailableError:
        # no message, no run: the caller answers 503 and the sender retries
        EtlRun.objects.filter(pk=run.pk, status=EtlRun.Status.QUEUED).delete()
        raise
    except Exception as exc:
        if not return_failed:
            raise
        # eager Celery ran the task here and the service recorded the failure on the run
        run.refresh_from_db()
        if run.status in EtlRun.ACTIVE_STATUSES:  # failed outside the service: record it
            etl_run_fail(run=run, exc=exc)
            run.refresh_from_db()
        logger.warning("etl_run.failed_inline", run_pk=run.id, error_class=type(exc).__name__)
        return run
    if return_failed:
        run.refresh_from_db()  # eager Celery: the run's outcome is already recorded
    return run


def etl_run_task_id(*, run: EtlRun) -> str:
    """Return the Celery task id of `run`'s `etl_run_execute` message (`etl-run-<uid>`), by
    which the reaper finds it in the broker."""
    return f"etl-run-{run.uid}"


def etl_run_publish(*, run: EtlRun) -> None:
    """Publish `run`'s `etl_run_execute` task (run inline when Celery is eager).

    Raises:
        RunEnqueueUnavailableError: the broker could not be reached or refused the message
            after Celery's publish retries.
    """
    from kombu.exceptions import OperationalError

    from ml_platform.tasks import etl_run_execute as etl_run_execute_task

    task_id = etl_run_task_id(run=run)
    if etl_run_execute_task.app.conf.task_always_eager:
        etl_run_execute_task.apply_async(args=[run.id], task_id=task_id)
        return
    try:
        etl_run_execute_task.apply_async(args=[run.id], task_id=task_id)
    except (OperationalError, OSError) as exc:
        logger.warning(
            "etl_run.enqueue_failed",
            **run.log_ids,
            data_source_id=run.data_source_id,
            error_class=type(exc).__name__,
        )
        # the class only: a broker error's text may carry the broker URL and its password
        raise RunEnqueueUnavailableError(
            data_source_id=run.data_source_id,
            reason=f"broker unavailable: {type(exc).__name__}",
            retry_after_s=int(settings.ETL_ENQUEUE_RETRY_AFTER_S),
        ) from exc


def _etl_run_publish_or_fail(*, run: EtlRun) -> None:
    try:
        etl_run_publish(run=run)
    except RunEnqueueUnavailableError as exc:
        etl_run_fail(run=run, exc=exc, error_class=BROKER_UNAVAILABLE_CLASS)
