"""The `cloud` schedule executor: one Google Cloud Scheduler HTTP job per scheduled data source.

The job `<ETL_CLOUD_SCHEDULER_PARENT>/jobs/etl-source-<id>` POSTs to the source's scheduler
webhook (`ETL_PUBLIC_BASE_URL` + `/api/etl/sources/<id>/scheduler-webhook/`) with an OIDC
token of `ETL_CLOUD_SCHEDULER_SERVICE_ACCOUNT` for audience `SCHEDULER_OIDC_AUDIENCE` (the one
the webhook checks), on the source's cron and time zone, with the retry config below. API
errors become `ValidationError`s keyed by `schedule_cron`, shown next to the field.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.urls import reverse

from ml_platform.models import DataSource
from ml_platform.services.schedules import periodic_task_name

logger = structlog.get_logger(__name__)

RETRY_COUNT = 3
"""Attempts after a failed delivery (the webhook answers 202 at once; failures are outages)."""
MIN_BACKOFF_S = 30  # seconds
MAX_BACKOFF_S = 600  # seconds
MAX_DOUBLINGS = 4
ATTEMPT_DEADLINE_S = 60  # seconds a delivery may take

CLOUD_JOB_EXISTS = (
    "Cloud Scheduler already has a job named {name} that this source did not create ({detail}); "
    "another ETL Runner deployment may use the same project and location."
)
CLOUD_JOB_INVALID = "Cloud Scheduler rejected the schedule: {detail}"
CLOUD_JOB_FAILED = "Cloud Scheduler could not save the schedule ({code}): {detail}"
CLOUD_SETTING_MISSING = "{name} must be set when ETL_SCHEDULER_EXECUTOR is 'cloud'."


def cloud_scheduler_client() -> Any:
    """Return a `CloudSchedulerClient`: Application Default Credentials, or, with
    `ETL_CLOUD_SCHEDULER_EMULATOR_HOST` (`host:port`, tests), plain gRPC to that address."""
    from google.cloud import scheduler_v1

    host = settings.ETL_CLOUD_SCHEDULER_EMULATOR_HOST
    if not host:
        return scheduler_v1.CloudSchedulerClient()
    import grpc
    from google.cloud.scheduler_v1.services.cloud_scheduler.transports import (
        CloudSchedulerGrpcTransport,
    )

    return scheduler_v1.CloudSchedulerClient(
        transport=CloudSchedulerGrpcTransport(channel=grpc.insecure_channel(host))
    )


def cloud_job_name(*, data_source_id: int) -> str:
    """Return the job's full resource name (`projects/P/locations/L/jobs/etl-source-<id>`)."""
    parent = _required("ETL_CLOUD_SCHEDULER_PARENT").rstrip("/")
    return f"{parent}/jobs/{periodic_task_name(data_source_id=data_source_id)}"


def scheduler_webhook_url(*, data_source_id: int) -> str:
    """Return the public URL Cloud Scheduler posts to for this source."""
    base = _required("ETL_PUBLIC_BASE_URL").rstrip("/")
    return base + reverse("api:sources:scheduler-webhook", args=[data_source_id])


def cloud_job_build(*, data_source: DataSource) -> Any:
    """Return the `scheduler_v1.Job` the source's schedule needs (not sent anywhere)."""
    from google.cloud import scheduler_v1
    from google.protobuf import duration_pb2

    return scheduler_v1.Job(
        name=cloud_job_name(data_source_id=data_source.pk),
        description=f"ETL Runner data source {data_source.name}"[:500],
        schedule=data_source.schedule_cron,
        time_zone=data_source.schedule_timezone,
        http_target=scheduler_v1.HttpTarget(
            uri=scheduler_webhook_url(data_source_id=data_source.pk),
            http_method=scheduler_v1.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=b"{}",
            oidc_token=scheduler_v1.OidcToken(
                service_account_email=_required("ETL_CLOUD_SCHEDULER_SERVICE_ACCOUNT"),
                audience=_required("SCHEDULER_OIDC_AUDIENCE"),
            ),
        ),
        retry_config=scheduler_v1.RetryConfig(
            retry_count=RETRY_COUNT,
            min_backoff_duration=duration_pb2.Duration(seconds=MIN_BACKOFF_S),
            max_backoff_duration=duration_pb2.Duration(seconds=MAX_BACKOFF_S),
            max_doublings=MAX_DOUBLINGS,
        ),
        attempt_deadline=duration_pb2.Duration(seconds=ATTEMPT_DEADLINE_S),
    )


def cloud_job_save(*, data_source: DataSource) -> Any:
    """Create the source's job, or update it when this deployment created it before.

    A job of the same name whose HTTP target is not this source's webhook belongs to someone
    else (another deployment in the same project and location) and is left alone.

    Returns:
        The job as Cloud Scheduler stored it.

    Raises:
        ValidationError: keyed by `schedule_cron`: the schedule or zone is refused
            (InvalidArgument / BadRequest), the name is taken (AlreadyExists / Conflict, or a
            foreign job), or another API error, with Cloud Scheduler's message.
    """
    from google.api_core import exceptions as api

    client = cloud_scheduler_client()
    job = cloud_job_build(data_source=data_source)
    try:
        try:
            current = client.get_job(name=job.name)
        except api.NotFound:
            current = None
        if current is None:
            parent = job.name.rsplit("/jobs/", 1)[0]
            saved, action = client.create_job(parent=parent, job=job), "created"
        elif current.http_target.uri != job.http_target.uri:
            raise api.Conflict(f"its target is {current.http_target.uri or 'not HTTP'}")
        else:
            saved, action = client.update_job(job=job), "updated"
    except api.GoogleAPICallError as exc:
        raise _validation_error(exc, job.name) from exc
    logger.info(
        "schedule.cloud_job_saved",
        data_source_id=data_source.pk,
        job=job.name,
        action=action,
        cron=job.schedule,
        timezone=job.time_zone,
    )
    return saved


def cloud_job_delete(*, data_source_id: int) -> None:
    """Delete the source's job; one that does not exist is not an error.

    Raises:
        ValidationError: another API error, keyed by `schedule_cron`.
    """
    from google.api_core import exceptions as api

    name = cloud_job_name(data_source_id=data_source_id)
    try:
        cloud_scheduler_client().delete_job(name=name)
    except api.NotFound:
        return
    except api.GoogleAPICallError as exc:
        raise _validation_error(exc, name) from exc
    logger.info("schedule.cloud_job_deleted", data_source_id=data_source_id, job=name)


def _validation_error(exc: Any, name: str) -> ValidationError:
    from google.api_core import exceptions as api

    detail = exc.message or str(exc)
    if isinstance(exc, api.Conflict):  # AlreadyExists is a Conflict (409)
        message = CLOUD_JOB_EXISTS.format(name=name, detail=detail)
    elif isinstance(exc, api.BadRequest):  # InvalidArgument is a BadRequest (400)
        message = CLOUD_JOB_INVALID.format(detail=detail)
    else:
        message = CLOUD_JOB_FAILED.format(code=type(exc).__name__, detail=detail)
    logger.warning("schedule.cloud_job_refused", job=name, error_class=type(exc).__name__)
    return ValidationError({"schedule_cron": message})


def _required(name: str) -> str:
    value = getattr(settings, name, "")
    if not value:
        raise ImproperlyConfigured(CLOUD_SETTING_MISSING.format(name=name))
    return value
