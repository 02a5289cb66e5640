"""Start runs as Cloud Run Job executions (`settings.ETL_EXECUTOR = "cloud_run"`).

Each run is one execution of the job `settings.ETL_CLOUD_RUN_JOB` whose container args are
overridden with `-m etl run --data-source-id N --run-id R` (and its task count with the source's
`parallelism` for a parallel run: task `CLOUD_RUN_TASK_INDEX` i extracts chunk i, task 0
coordinates, see `services.runner_chunks`); the container's image, entrypoint
(`python`), `ETL_API_URL` and `ETL_RUNNER_TOKEN` come from the job's own definition.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings

from ml_platform.models import EtlRun
from ml_platform.services.runs_finish import etl_run_fail

logger = structlog.get_logger(__name__)

CLOUD_RUN_NOT_CONFIGURED = (
    "ETL_EXECUTOR is cloud_run but ETL_CLOUD_RUN_JOB is empty: set it to "
    "projects/<project>/locations/<region>/jobs/<job>."
)
CLOUD_RUN_START_FAILED = "Cloud Run job {job} could not start run {run_id}: {error}"
CLOUD_RUN_TIMEOUT_S = 30.0
"""Deadline of the RunJob call, seconds (it returns once the execution is created)."""


class CloudRunNotConfiguredError(Exception):
    """Recorded as the `error_class` of a run started while `ETL_CLOUD_RUN_JOB` is empty."""


def cloud_run_jobs_client() -> Any:
    """Return a `google.cloud.run_v2.JobsClient`: Application Default Credentials against
    run.googleapis.com, or plaintext gRPC to `settings.ETL_CLOUD_RUN_EMULATOR_HOST` when set."""
    from google.cloud import run_v2

    host = settings.ETL_CLOUD_RUN_EMULATOR_HOST
    if not host:
        return run_v2.JobsClient()
    import grpc
    from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport

    return run_v2.JobsClient(transport=JobsGrpcTransport(channel=grpc.insecure_channel(host)))


def runner_args(*, run: EtlRun) -> list[str]:
    """Return the runner container's args for `run` (after the `python` entrypoint)."""
    return [
        "-m",
        "etl",
        "run",
        "--data-source-id",
        str(run.data_source_id),
        "--run-id",
        str(run.uid),
    ]


def etl_run_cloud_run_start(*, run: EtlRun) -> EtlRun:
    """Trigger one execution of `settings.ETL_CLOUD_RUN_JOB` for the queued `run`.

    The run stays queued until the runner fetches its config (then running). When the job is
    not configured or the Cloud Run Admin API refuses the call (not found, permission denied,
    unavailable, no credentials), the run is marked failed with the API error's class and a
    message naming the job; nothing is raised.

    Returns:
        The run: queued, or failed when the execution could not be started.
    """
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import run_v2

    job = settings.ETL_CLOUD_RUN_JOB
    log = logger.bind(**run.log_ids, data_source_id=run.data_source_id, job=job)
    if not job:
        log.error("etl_run.cloud_run_not_configured")
        return etl_run_fail(run=run, exc=CloudRunNotConfiguredError(CLOUD_RUN_NOT_CONFIGURED))
    from ml_platform.services.runs_parallel import run_is_parallel

    # a parallel run is one execution of N tasks: task i extracts chunk i, task 0 coordinates
    task_count = run.data_source.parallelism if run_is_parallel(data_source=run.data_source) else 1
    overrides = run_v2.RunJobRequest.Overrides(
        container_overrides=[
            run_v2.RunJobRequest.Overrides.ContainerOverride(args=runner_args(run=run))
        ],
        task_count=task_count,
    )
    try:
        with cloud_run_jobs_client() as client:
            operation = client.run_job(
                request=run_v2.RunJobRequest(name=job, overrides=overrides),
                timeout=CLOUD_RUN_TIMEOUT_S,
            )
            operation_name = operation.operation.name
    except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
        log.error("etl_run.cloud_run_start_failed", error_class=type(exc).__name__)
        return etl_run_fail(
            run=run,
            exc=exc,
            error_message=CLOUD_RUN_START_FAILED.format(job=job, run_id=run.uid, error=exc),
        )
    log.info("etl_run.cloud_run_started", operation=operation_name, task_count=task_count)
    return run
