"""Cloud Run executor: `etl_run_enqueue` with `ETL_EXECUTOR=cloud_run` calls `Jobs.RunJob` on a
local gRPC server built from google-cloud-run's own message classes (`RunJobRequest` in,
`google.longrunning.Operation` out), reached through `ETL_CLOUD_RUN_EMULATOR_HOST` by the
production client code (`JobsGrpcTransport` over an insecure channel). No Cloud Run emulator
exists; this server is the Admin API's wire contract, not a mock of our code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.cloud import run_v2
from google.longrunning import operations_pb2

from ml_platform.models import DataSource, EtlRun
from ml_platform.services import etl_run_enqueue
from ml_platform.services.cloud_run import CLOUD_RUN_NOT_CONFIGURED, CLOUD_RUN_START_FAILED

pytestmark = pytest.mark.django_db

JOB = "projects/test-project/locations/europe-west1/jobs/etl-runner"


@dataclass
class FakeCloudRun:
    """The `google.cloud.run.v2.Jobs` service on 127.0.0.1: records each RunJob request and its
    metadata; `abort` makes it answer with a gRPC error; `on_run_job` is called with each
    request (e.g. to start the runner as Cloud Run would)."""

    address: str
    requests: list[run_v2.RunJobRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    abort: tuple[grpc.StatusCode, str] | None = None
    on_run_job: Callable[[run_v2.RunJobRequest], None] | None = None


@pytest.fixture
def cloud_run_server() -> Iterator[FakeCloudRun]:
    fake = FakeCloudRun(address="")

    def run_job(request: run_v2.RunJobRequest, context: grpc.ServicerContext) -> Any:
        fake.requests.append(request)
        fake.metadata.append(dict(context.invocation_metadata()))
        if fake.abort is not None:
            context.abort(*fake.abort)
        if fake.on_run_job is not None:
            fake.on_run_job(request)
        return operations_pb2.Operation(
            name=f"projects/test-project/locations/europe-west1/operations/op-{len(fake.requests)}",
            done=False,
        )

    handler = grpc.method_handlers_generic_handler(
        "google.cloud.run.v2.Jobs",
        {
            "RunJob": grpc.unary_unary_rpc_method_handler(
                run_job,
                request_deserializer=run_v2.RunJobRequest.deserialize,
                response_serializer=operations_pb2.Operation.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.stop(grace=None)


@pytest.fixture
def cloud_run_executor(settings: Any, cloud_run_server: FakeCloudRun) -> FakeCloudRun:
    """`ETL_EXECUTOR=cloud_run` with job `JOB` on `cloud_run_server`."""
    settings.ETL_EXECUTOR = "cloud_run"
    settings.ETL_CLOUD_RUN_JOB = JOB
    settings.ETL_CLOUD_RUN_EMULATOR_HOST = cloud_run_server.address
    return cloud_run_server


def test_enqueue_runs_job_with_runner_args(
    cloud_run_executor: FakeCloudRun,
    csv_source: DataSource,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """On commit, one RunJob names the job and overrides the container args with the runner
    command of this run; the run stays queued (the runner starts it) and no task ran."""
    with django_capture_on_commit_callbacks(execute=True):
        run = etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)

    assert len(cloud_run_executor.requests) == 1
    request = cloud_run_executor.requests[0]
    assert request.name == JOB
    assert [list(o.args) for o in request.overrides.container_overrides] == [
        ["-m", "etl", "run", "--data-source-id", str(csv_source.id), "--run-id", str(run.uid)]
    ]
    # the regional routing header the client derives from the job name
    assert cloud_run_executor.metadata[0]["x-goog-request-params"] == "location=europe-west1"
    run.refresh_from_db()
    assert (run.status, run.attempts, run.rows_loaded, run.error_class) == ("queued", 0, 0, "")


def test_enqueue_twice_runs_job_once(
    cloud_run_executor: FakeCloudRun,
    csv_source: DataSource,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A second trigger while the run is queued returns it and starts no second execution."""
    with django_capture_on_commit_callbacks(execute=True):
        first = etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)
    with django_capture_on_commit_callbacks(execute=True):
        second = etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)

    assert second.pk == first.pk
    assert len(cloud_run_executor.requests) == 1


@pytest.mark.parametrize(
    ("code", "error_class", "status_text"),
    [
        (grpc.StatusCode.NOT_FOUND, "NotFound", "404"),
        (grpc.StatusCode.PERMISSION_DENIED, "PermissionDenied", "403"),
    ],
    ids=["not-found", "permission-denied"],
)
def test_api_error_fails_run(
    code: grpc.StatusCode,
    error_class: str,
    status_text: str,
    cloud_run_executor: FakeCloudRun,
    csv_source: DataSource,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The Admin API refusing RunJob marks the run failed with the API error's class and a
    message naming the job, the run and the API's own message; the source is free again."""
    cloud_run_executor.abort = (code, f"Resource '{JOB}' was refused.")
    with django_capture_on_commit_callbacks(execute=True):
        run = etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)

    run.refresh_from_db()
    assert (run.status, run.error_class) == ("failed", error_class)
    prefix = CLOUD_RUN_START_FAILED.format(job=JOB, run_id=run.uid, error=status_text)
    assert run.error_message.startswith(prefix)
    assert f"Resource '{JOB}' was refused." in run.error_message
    assert run.finished_at is not None
    assert EtlRun.objects.filter(status__in=EtlRun.ACTIVE_STATUSES).count() == 0


def test_job_not_configured_fails_run(
    settings: Any, csv_source: DataSource, django_capture_on_commit_callbacks: Any
) -> None:
    """`ETL_EXECUTOR=cloud_run` without `ETL_CLOUD_RUN_JOB`: the run fails saying what to set."""
    settings.ETL_EXECUTOR = "cloud_run"
    settings.ETL_CLOUD_RUN_JOB = ""
    with django_capture_on_commit_callbacks(execute=True):
        run = etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)

    run.refresh_from_db()
    assert (run.status, run.error_class, run.error_message) == (
        "failed",
        "CloudRunNotConfiguredError",
        CLOUD_RUN_NOT_CONFIGURED,
    )
