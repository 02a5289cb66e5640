"""The control-plane side of Cloud Run Job mode: hand a runner its job, record what it reports.

A runner (`python -m etl run --data-source-id N --run-id R`) starts the run and gets its
JobConfig (secrets resolved) and engine state from `etl_run_runner_start`, sends heartbeats
through `etl_run_heartbeat`, and reports the RunResult (or its failure) to `etl_run_report`,
which commits exactly as the Celery path does (`etl_run_succeed` / `etl_run_fail`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pydantic
import structlog
from django.db import transaction
from django.utils import timezone

import etl
from ml_platform.exceptions import ApplicationError
from ml_platform.models import DataSource, EtlRun
from ml_platform.services.job_config import job_config_build, job_config_data
from ml_platform.services.reader_slots import (
    reader_holder_of_run,
    reader_slot_release_holder,
    reader_slot_renew_holder,
)
from ml_platform.services.runs import etl_run_create
from ml_platform.services.runs_execute import etl_run_start
from ml_platform.services.runs_finish import etl_run_fail, etl_run_succeed
from ml_platform.services.state import sync_state_full_refresh_pending, sync_state_get_engine

logger = structlog.get_logger(__name__)

RUN_NOT_ACTIVE = (
    "Run {run_id} is {status}; the runner may start it or report on it only while it is queued "
    "or running."
)
RUN_OF_OTHER_SOURCE = "Run {run_id} belongs to data source {other_id}, not {source_id}."
SOURCE_BUSY = (
    "Data source {source_id} already has run {run_id} {status}; pass its run id or wait until "
    "it finishes."
)
RESULT_OF_OTHER_RUN = "The result is of run {result_run_id}, not of run {run_id}."
RESULT_INVALID = "Invalid run result: {error}"
RUNNER_ERROR_CLASS = "RunnerError"
"""`error_class` recorded when a runner's failure report names none."""


class RunNotActiveError(ApplicationError):
    """The run already finished (or another run is active): the API answers 409."""

    code = "run_not_active"
    status = 409


@dataclass(frozen=True)
class RunnerAssignment:
    """The run a runner is given, on the control plane's side: the `EtlRun` row, its job and
    state. The API answers it as the wire document the runner parses into
    `etl.runner_client.RunnerJob` (`RunnerJobOutputSerializer`)."""

    run: EtlRun | None
    """None when read without a run (`etl_run_runner_job` with no `run_uid`)."""
    job: dict[str, Any]
    """The config contract (DESIGN.md §4), validated, secrets in plain text."""
    state: etl.SyncState
    full_refresh: bool = False
    """The source was reset (`sync_state_reset`): the runner reloads and replaces the table."""
    parallel: bool = False
    """The run splits into chunks (`runs_parallel.run_is_parallel`): one Cloud Run task each."""
    staging: str = ""
    """Where a parallel run's chunks stage their Parquet parts (`runs_parallel.chunk_staging`)."""


def etl_run_runner_start(
    *, data_source: DataSource, run_uid: uuid.UUID | None, worker: str
) -> RunnerAssignment:
    """Mark the run running by `worker` and return its job config and engine state.

    Args:
        data_source: the source the runner was started for.
        run_uid: the run (`EtlRun.uid`) the executor triggered; None starts a new run (trigger
            `cli`) unless the source already has one queued or running.
        worker: the runner's name (Cloud Run execution, or host:pid), kept on the run.

    Returns:
        The running run, its JobConfig data and the state after its source's last success.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        ApplicationError: the run belongs to another data source.
        RunNotActiveError: the run already finished, or (no `run_uid`) another run is active.
        etl.ConfigError / CredentialsUnreadableError: the stored config is unusable; the run
            was marked failed with it.
    """
    if run_uid is None:
        run, created = etl_run_create(data_source=data_source, trigger=EtlRun.Trigger.CLI)
        if not created:
            raise RunNotActiveError(
                SOURCE_BUSY.format(source_id=data_source.id, run_id=run.uid, status=run.status)
            )
    else:
        run = _run_of_source(data_source=data_source, run_uid=run_uid)
    if run.status in EtlRun.ACTIVE_STATUSES and run.chunks.exists():
        # a parallel run's coordinator task started again: the chunks' snapshot is gone
        from ml_platform.services.runs_parallel import CoordinatorLostError

        run = etl_run_fail(run=run, exc=CoordinatorLostError(run.uid))
    run, started = etl_run_start(run=run, worker=worker)
    if not started:
        raise RunNotActiveError(RUN_NOT_ACTIVE.format(run_id=run.uid, status=run.status))
    return _runner_assignment(run=run, worker=worker)


def _runner_assignment(*, run: EtlRun, worker: str) -> RunnerAssignment:
    """Return the job config and engine state of started run `run`; the run is failed when
    its stored config is unusable (the error is raised)."""
    try:
        job_config_build(data_source=run.data_source)
        job = job_config_data(data_source=run.data_source)
        state = sync_state_get_engine(data_source=run.data_source)
    except etl.EtlError as exc:
        etl_run_fail(run=run, exc=exc)
        raise
    logger.info(
        "etl_run.runner_started",
        **run.log_ids,
        data_source_id=run.data_source_id,
        worker=worker,
        attempt=run.attempts,
    )
    return RunnerAssignment(
        run=run,
        job=job,
        state=state,
        full_refresh=sync_state_full_refresh_pending(data_source=run.data_source),
        **_parallel_fields(run),
    )


def etl_run_runner_job(*, data_source: DataSource, run_uid: uuid.UUID | None) -> RunnerAssignment:
    """Return the job config and engine state of `data_source` (and the run `run_uid`, when
    given), changing nothing: no run is created, started or failed.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        ApplicationError: the run belongs to another data source.
        etl.ConfigError / CredentialsUnreadableError: the stored config is unusable.
    """
    run = None if run_uid is None else _run_of_source(data_source=data_source, run_uid=run_uid)
    job_config_build(data_source=data_source)
    job = job_config_data(data_source=data_source)
    return RunnerAssignment(
        run=run,
        job=job,
        state=sync_state_get_engine(data_source=data_source),
        full_refresh=sync_state_full_refresh_pending(data_source=data_source),
        **(_parallel_fields(run) if run is not None else {}),
    )


def _run_of_source(*, data_source: DataSource, run_uid: uuid.UUID) -> EtlRun:
    """Return run `run_uid` of `data_source`.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        ApplicationError: the run belongs to another data source.
    """
    run = EtlRun.objects.get(uid=run_uid)
    if run.data_source_id != data_source.id:
        raise ApplicationError(
            RUN_OF_OTHER_SOURCE.format(
                run_id=run.uid, other_id=run.data_source_id, source_id=data_source.id
            )
        )
    return run


def _parallel_fields(run: EtlRun) -> dict[str, Any]:
    from ml_platform.services.runs_parallel import chunk_staging, run_is_parallel

    if not run_is_parallel(data_source=run.data_source):
        return {}
    return {"parallel": True, "staging": chunk_staging(run=run)}


def etl_run_heartbeat(*, run_uid: uuid.UUID, progress_rows: int, progress_bytes: int) -> EtlRun:
    """Refresh a running run's heartbeat (`updated_at`) and progress counters (rows, bytes).

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        RunNotActiveError: the run is not running (e.g. the reaper failed it).
    """
    updated = EtlRun.objects.filter(uid=run_uid, status=EtlRun.Status.RUNNING).update(
        updated_at=timezone.now(), progress_rows=progress_rows, progress_bytes=progress_bytes
    )
    run = EtlRun.objects.get(uid=run_uid)
    if not updated:
        raise RunNotActiveError(RUN_NOT_ACTIVE.format(run_id=run.uid, status=run.status))
    reader_slot_renew_holder(holder=reader_holder_of_run(run=run))  # while the runner reads
    return run


def etl_run_report(*, run_uid: uuid.UUID, report: dict[str, Any]) -> tuple[EtlRun, bool]:
    """Record a runner's outcome of run `run_uid`, as the Celery path records its own.

    `report` is the RunResult JSON `python -m etl run` prints (`status: succeeded`): the state,
    file ledger and counts are committed in one transaction by `etl_run_succeed`. Or a failure
    `{"status": "failed", "error_class", "error"}`: the run is failed by `etl_run_fail` (secrets
    removed from the message) and sync state is untouched.

    Args:
        run_uid: `EtlRun.uid`.
        report: the runner's JSON document.

    Returns:
        `(run, recorded)`: `recorded` False when the run had already finished with this same
        outcome (a repeated report), which changes nothing.

    Raises:
        EtlRun.DoesNotExist: no run has `run_uid`.
        ApplicationError: the report is not a RunResult or failure, or is of another run.
        RunNotActiveError: the run already finished with another outcome.
    """
    run = EtlRun.objects.get(uid=run_uid)
    result, error_class, error_message = _report_read(run=run, report=report)
    with transaction.atomic():
        run = (
            EtlRun.objects.select_for_update()
            .select_related("data_source__connection")
            .get(pk=run.pk)
        )
        # a reaped run that was alive and whose commit was refused: record that it was superseded
        superseded = (
            error_class == etl.SupersededError.__name__ and run.status == EtlRun.Status.FAILED
        )
        if run.status in EtlRun.ACTIVE_STATUSES or superseded:
            if result is not None:
                run = etl_run_succeed(run=run, result=result)
            else:
                run = etl_run_fail(run=run, error_class=error_class, error_message=error_message)
            logger.info("etl_run.reported", **run.log_ids, status=run.status)
            reader_slot_release_holder(holder=reader_holder_of_run(run=run))
            return run, True
        if _same_outcome(run=run, result=result, error_class=error_class):
            logger.info("etl_run.report_repeated", **run.log_ids, status=run.status)
            return run, False
    raise RunNotActiveError(RUN_NOT_ACTIVE.format(run_id=run.uid, status=run.status))


def _report_read(*, run: EtlRun, report: dict[str, Any]) -> tuple[etl.RunResult | None, str, str]:
    """Return `(result, error_class, error_message)` of a runner's report on `run`: the
    RunResult (no error) or, for a failure report, None and the error.

    Raises:
        ApplicationError: the report is not a RunResult, or is of another run.
    """
    if report.get("status") == "failed":
        error_class = str(report.get("error_class") or RUNNER_ERROR_CLASS)
        return None, error_class, str(report.get("error") or error_class)
    try:
        result = etl.RunResult.model_validate(report)
    except pydantic.ValidationError as exc:
        raise ApplicationError(
            RESULT_INVALID.format(error=exc.errors(include_url=False, include_input=False))
        ) from None
    if result.run_id not in (run.uid.hex, str(run.uid)):
        raise ApplicationError(
            RESULT_OF_OTHER_RUN.format(result_run_id=result.run_id, run_id=run.uid)
        )
    return result, "", ""


def _same_outcome(*, run: EtlRun, result: etl.RunResult | None, error_class: str) -> bool:
    if result is None:
        return (
            run.status in (EtlRun.Status.FAILED, EtlRun.Status.SUPERSEDED)
            and run.error_class == error_class[:255]
        )
    return run.status == EtlRun.Status.SUCCEEDED and (
        run.rows_extracted,
        run.rows_loaded,
        run.bytes_extracted,
    ) == (result.rows_extracted, result.rows_loaded, result.bytes_extracted)
