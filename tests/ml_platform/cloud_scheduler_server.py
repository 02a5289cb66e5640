"""A local Cloud Scheduler for tests: a real gRPC server speaking `google.cloud.scheduler.v1.
CloudScheduler`, its requests and responses (de)serialized by google-cloud-scheduler's own
message classes, holding jobs in memory. It checks what the real API checks that the service
can get wrong (job name shape, HTTP(S) target, known time zone) and answers with the real
status codes (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT). The package ships no servicer
(no `cloudscheduler_pb2_grpc`), so the methods are registered through a generic handler."""

from __future__ import annotations

import re
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.cloud import scheduler_v1
from google.protobuf import empty_pb2

SERVICE = "google.cloud.scheduler.v1.CloudScheduler"
JOB_NAME = re.compile(r"^projects/[A-Za-z0-9:.-]+/locations/[a-z0-9-]+/jobs/[A-Za-z0-9_-]{1,500}$")


class FakeCloudScheduler:
    """In-memory jobs keyed by name; `calls` records (method, request); `fail_next[method]` =
    (StatusCode, message) makes the next call of that method fail once."""

    def __init__(self) -> None:
        self.jobs: dict[str, scheduler_v1.Job] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_next: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.lock = threading.Lock()

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request))
        if method in self.fail_next:
            code, message = self.fail_next.pop(method)
            context.abort(code, message)

    def _check(self, job: scheduler_v1.Job, context: grpc.ServicerContext) -> None:
        if not JOB_NAME.match(job.name):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Job name {job.name!r} is invalid.")
        if not job.http_target.uri.startswith(("http://", "https://")):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "URI must start with http(s)://.")
        if job.time_zone and job.time_zone not in zoneinfo.available_timezones():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid time zone {job.time_zone}.")

    def GetJob(self, request: Any, context: grpc.ServicerContext) -> scheduler_v1.Job:
        self._enter("GetJob", request, context)
        with self.lock:
            if request.name not in self.jobs:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Job not found: {request.name}")
            return self.jobs[request.name]

    def CreateJob(self, request: Any, context: grpc.ServicerContext) -> scheduler_v1.Job:
        self._enter("CreateJob", request, context)
        job = request.job
        self._check(job, context)
        if not job.name.startswith(request.parent + "/jobs/"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Job name is not under parent.")
        with self.lock:
            if job.name in self.jobs:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Job {job.name} already exists.")
            job.state = scheduler_v1.Job.State.ENABLED
            self.jobs[job.name] = job
            return job

    def UpdateJob(self, request: Any, context: grpc.ServicerContext) -> scheduler_v1.Job:
        self._enter("UpdateJob", request, context)
        job = request.job
        self._check(job, context)
        with self.lock:
            if job.name not in self.jobs:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Job not found: {job.name}")
            job.state = scheduler_v1.Job.State.ENABLED
            self.jobs[job.name] = job
            return job

    def DeleteJob(self, request: Any, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self._enter("DeleteJob", request, context)
        with self.lock:
            if self.jobs.pop(request.name, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Job not found: {request.name}")
        return empty_pb2.Empty()


def _handler(method: Callable[..., Any], request_type: Any, response_type: Any) -> Any:
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request_type.deserialize,
        response_serializer=response_type.serialize
        if hasattr(response_type, "serialize")
        else response_type.SerializeToString,
    )


@pytest.fixture
def cloud_scheduler(settings: Any) -> Iterator[FakeCloudScheduler]:
    """Start the server on a free loopback port and point the cloud executor at it, with
    project `test-project`, location `europe-west1`, public base URL
    `https://etl.example.com`, service account `scheduler@test-project.iam...` and audience
    `https://etl.example.com/webhook-audience`."""
    fake = FakeCloudScheduler()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "GetJob": _handler(fake.GetJob, scheduler_v1.GetJobRequest, scheduler_v1.Job),
        "CreateJob": _handler(fake.CreateJob, scheduler_v1.CreateJobRequest, scheduler_v1.Job),
        "UpdateJob": _handler(fake.UpdateJob, scheduler_v1.UpdateJobRequest, scheduler_v1.Job),
        "DeleteJob": _handler(fake.DeleteJob, scheduler_v1.DeleteJobRequest, empty_pb2.Empty),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings.ETL_SCHEDULER_EXECUTOR = "cloud"
    settings.ETL_CLOUD_SCHEDULER_EMULATOR_HOST = f"127.0.0.1:{port}"
    settings.ETL_CLOUD_SCHEDULER_PARENT = "projects/test-project/locations/europe-west1"
    settings.ETL_PUBLIC_BASE_URL = "https://etl.example.com"
    settings.ETL_CLOUD_SCHEDULER_SERVICE_ACCOUNT = "scheduler@test-project.iam.gserviceaccount.com"
    settings.SCHEDULER_OIDC_AUDIENCE = "https://etl.example.com/webhook-audience"
    try:
        yield fake
    finally:
        server.stop(grace=None)
