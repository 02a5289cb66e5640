"""The cloud schedule executor against a local gRPC Cloud Scheduler built from
google-cloud-scheduler's own message classes (tests/ml_platform/cloud_scheduler_server.py)."""

from __future__ import annotations

import grpc
import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask
from google.cloud import scheduler_v1

from ml_platform.models import Connection, DataSource
from ml_platform.services import data_source_create, data_source_delete, data_source_update
from tests.ml_platform.cloud_scheduler_server import (  # noqa: F401  fixture
    FakeCloudScheduler,
    cloud_scheduler,
)

pytestmark = pytest.mark.django_db

PARENT = "projects/test-project/locations/europe-west1"


def _source(connection: Connection, **kwargs) -> DataSource:
    return data_source_create(
        name="orders",
        connection=connection,
        dest_table_name="orders",
        file_pattern="*.csv",
        file_format="csv",
        **kwargs,
    )


def test_cloud_job_created_updated_deleted(
    cloud_scheduler: FakeCloudScheduler,  # noqa: F811
    local_connection: Connection,
) -> None:
    """Setting a schedule creates one job: POST to the source's webhook with an OIDC token of
    the configured service account and audience, the cron and zone, retry config; changing
    it updates the same job; clearing it deletes the job. No beat task is made."""
    source = _source(local_connection, schedule_cron="30 7 * * *", schedule_timezone="Europe/Kiev")
    name = f"{PARENT}/jobs/etl-source-{source.pk}"
    assert list(cloud_scheduler.jobs) == [name]
    job = cloud_scheduler.jobs[name]
    assert (job.schedule, job.time_zone) == ("30 7 * * *", "Europe/Kiev")
    target = job.http_target
    assert target.uri == f"https://etl.example.com/api/etl/sources/{source.pk}/scheduler-webhook/"
    assert target.http_method == scheduler_v1.HttpMethod.POST
    assert (target.oidc_token.service_account_email, target.oidc_token.audience) == (
        "scheduler@test-project.iam.gserviceaccount.com",
        "https://etl.example.com/webhook-audience",
    )
    retry = job.retry_config
    assert (retry.retry_count, retry.max_doublings) == (3, 4)
    assert retry.min_backoff_duration.total_seconds() == 30
    assert retry.max_backoff_duration.total_seconds() == 600
    assert job.attempt_deadline.total_seconds() == 60
    assert [method for method, _ in cloud_scheduler.calls] == ["GetJob", "CreateJob"]
    assert not PeriodicTask.objects.filter(name=f"etl-source-{source.pk}").exists()

    data_source_update(
        data_source=source,
        data={"schedule_cron": "*/15 * * * 1-5", "schedule_timezone": "America/New_York"},
    )
    job = cloud_scheduler.jobs[name]
    assert (job.schedule, job.time_zone) == ("*/15 * * * 1-5", "America/New_York")
    assert [method for method, _ in cloud_scheduler.calls][2:] == ["GetJob", "UpdateJob"]

    data_source_update(data_source=source, data={"enabled": False})
    assert cloud_scheduler.jobs == {}
    data_source_update(data_source=source, data={"enabled": True})
    assert list(cloud_scheduler.jobs) == [name]
    data_source_update(data_source=source, data={"schedule_cron": ""})
    assert cloud_scheduler.jobs == {}
    data_source_delete(data_source=source)  # no job: nothing to delete, no error
    assert cloud_scheduler.calls[-1][0] == "DeleteJob"


def test_cloud_source_delete_deletes_job(
    cloud_scheduler: FakeCloudScheduler,  # noqa: F811
    local_connection: Connection,
) -> None:
    """Deleting a scheduled source deletes its job."""
    source = _source(local_connection, schedule_cron="0 * * * *")
    assert len(cloud_scheduler.jobs) == 1
    data_source_delete(data_source=source)
    assert cloud_scheduler.jobs == {}


def test_cloud_already_exists_is_a_clear_error(
    cloud_scheduler: FakeCloudScheduler,  # noqa: F811
    local_connection: Connection,
) -> None:
    """ALREADY_EXISTS from CreateJob (another writer won the race) is a ValidationError on
    `schedule_cron` naming the job; the source is not saved."""
    cloud_scheduler.fail_next["CreateJob"] = (grpc.StatusCode.ALREADY_EXISTS, "Job exists.")
    with pytest.raises(ValidationError) as excinfo:
        _source(local_connection, schedule_cron="0 * * * *")
    message = excinfo.value.message_dict["schedule_cron"][0]
    assert message.startswith(f"Cloud Scheduler already has a job named {PARENT}/jobs/etl-source-")
    assert "Job exists." in message
    assert not DataSource.objects.exists()


def test_cloud_foreign_job_of_same_name_is_a_conflict(
    cloud_scheduler: FakeCloudScheduler,  # noqa: F811
    local_connection: Connection,
) -> None:
    """A job of the same name posting elsewhere is not taken over: Conflict, left unchanged."""
    source = _source(local_connection)
    name = f"{PARENT}/jobs/etl-source-{source.pk}"
    foreign = scheduler_v1.Job(
        name=name,
        schedule="0 0 * * *",
        time_zone="UTC",
        http_target=scheduler_v1.HttpTarget(uri="https://other.example.com/hook"),
    )
    cloud_scheduler.jobs[name] = foreign
    with pytest.raises(ValidationError, match="did not create .its target is https://other"):
        data_source_update(data_source=source, data={"schedule_cron": "5 * * * *"})
    assert cloud_scheduler.jobs[name].schedule == "0 0 * * *"
    source.refresh_from_db()
    assert source.schedule_cron == ""


@pytest.mark.parametrize(
    ("setting", "value", "detail"),
    [
        ("ETL_PUBLIC_BASE_URL", "ftp://etl.example.com", "URI must start with http(s)://."),
        ("ETL_CLOUD_SCHEDULER_PARENT", "projects/p/locations/Bad Place", "is invalid."),
    ],
    ids=["non-http-target", "bad-location"],
)
def test_cloud_invalid_argument_is_a_clear_error(
    cloud_scheduler: FakeCloudScheduler,  # noqa: F811
    local_connection: Connection,
    settings,
    setting: str,
    value: str,
    detail: str,
) -> None:
    """INVALID_ARGUMENT from the API is a ValidationError on `schedule_cron` carrying its
    message; nothing is saved."""
    setattr(settings, setting, value)
    with pytest.raises(ValidationError) as excinfo:
        _source(local_connection, schedule_cron="0 * * * *")
    message = excinfo.value.message_dict["schedule_cron"][0]
    assert message.startswith("Cloud Scheduler rejected the schedule: ")
    assert detail in message
    assert not DataSource.objects.exists()
