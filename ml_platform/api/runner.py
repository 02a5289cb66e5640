"""The runner API of Cloud Run Job mode: job config (with secrets) out, heartbeats and results in;
a parallel run's chunks are `api.runner_chunks`.

Only runner credentials are accepted (`RunnerAuthentication` + `IsRunner`): the shared
`ETL_RUNNER_TOKEN` or an allowed service account's Google ID token. A staff user's DRF token or
session is not, so no person's credential ever reads a config's secrets.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml_platform import selectors
from ml_platform.api.runs import EtlRunOutputSerializer
from ml_platform.auth.authentication import IsRunner, RunnerAuthentication
from ml_platform.services.runner import (
    RunnerAssignment,
    etl_run_heartbeat,
    etl_run_report,
    etl_run_runner_job,
    etl_run_runner_start,
)
from ml_platform.services.runner_chunks import etl_run_reader_claim


class RunnerApi(APIView):
    """A view of the runner API: runner credentials only."""

    authentication_classes = [RunnerAuthentication]
    permission_classes = [IsRunner]


class RunnerJobOutputSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(allow_null=True)
    job = serializers.DictField(help_text="the config contract, secrets in plain text")
    state = serializers.DictField(help_text="the engine SyncState JSON")
    heartbeat_interval_s = serializers.FloatField()
    full_refresh = serializers.BooleanField(
        help_text="the source was reset: reload everything and replace the table"
    )
    parallel = serializers.BooleanField(
        help_text="the run splits into chunks: Cloud Run task i extracts chunk i, task 0 commits"
    )
    staging = serializers.CharField(help_text="where a parallel run's chunks stage Parquet parts")

    class Meta:
        ref_name = "RunnerJob"


class DataSourceRunnerConfigApi(RunnerApi):
    """The job of a Cloud Run Job runner; runner credentials only (never a staff user).

    `GET /api/etl/sources/<id>/config/?run_id=<uuid>` reads, changing nothing: 200 `{"run_id",
    "job", "state", "heartbeat_interval_s"}`: the JobConfig with secrets resolved, the engine
    SyncState JSON and how often (seconds) to POST the heartbeat.

    `POST /api/etl/sources/<id>/config/` `{"run_id": <uuid>, "worker": <name>}` starts the run
    (marks it running by `worker`; a new `cli` run when `run_id` is omitted) and answers the
    same document. 409 when the run already finished (or, without `run_id`, another run is
    active); 404 for an unknown source or run; 400 when the stored config is unusable (a
    started run is then failed).
    """

    class FilterSerializer(serializers.Serializer):
        run_id = serializers.UUIDField(required=False)

        class Meta:
            ref_name = "RunnerConfigFilter"

    class InputSerializer(serializers.Serializer):
        run_id = serializers.UUIDField(required=False, allow_null=True, default=None)
        worker = serializers.CharField(required=False, max_length=255, default="", allow_blank=True)

        class Meta:
            ref_name = "RunnerStartInput"

    @extend_schema(parameters=[FilterSerializer], responses={200: RunnerJobOutputSerializer})
    def get(self, request: Request, source_id: int) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runner_job = etl_run_runner_job(
            data_source=selectors.data_source_get(id=source_id),
            run_uid=filters.validated_data.get("run_id"),
        )
        return Response(_runner_job_data(runner_job))

    @extend_schema(request=InputSerializer, responses={200: RunnerJobOutputSerializer})
    def post(self, request: Request, source_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        data_source = selectors.data_source_get(id=source_id)
        runner_job = etl_run_runner_start(
            data_source=data_source,
            run_uid=data.validated_data["run_id"],
            worker=data.validated_data["worker"] or f"runner:{request.user}",
        )
        return Response(_runner_job_data(runner_job))


def _runner_job_data(runner_job: RunnerAssignment) -> dict:
    return {
        "run_id": str(runner_job.run.uid) if runner_job.run is not None else None,
        "job": runner_job.job,
        "state": runner_job.state.model_dump(mode="json"),
        "heartbeat_interval_s": float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S),
        "full_refresh": runner_job.full_refresh,
        "parallel": runner_job.parallel,
        "staging": runner_job.staging,
    }


class EtlRunHeartbeatApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/heartbeat/` `{"progress_rows", "progress_bytes"}`: 204 while
    the run is running, 409 once it is not (e.g. reaped)."""

    class InputSerializer(serializers.Serializer):
        progress_rows = serializers.IntegerField(min_value=0, default=0)
        progress_bytes = serializers.IntegerField(min_value=0, default=0)

        class Meta:
            ref_name = "RunnerHeartbeat"

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, run_uid: uuid.UUID) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        etl_run_heartbeat(run_uid=run_uid, **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EtlRunResultApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/result/` with the RunResult JSON `python -m etl run` prints,
    or `{"status": "failed", "error_class", "error"}`.

    200 `{"recorded": true, "run": {...}}` when committed (state, file ledger, counts, status in
    one transaction, as the Celery path); `recorded: false` when the same outcome was already
    recorded (nothing changes); 409 when the run finished otherwise; 400 for a malformed result
    or one of another run; 404 for an unknown run.
    """

    class OutputSerializer(serializers.Serializer):
        recorded = serializers.BooleanField()
        run = EtlRunOutputSerializer()

        class Meta:
            ref_name = "RunnerResultRecorded"

    @extend_schema(request=dict, responses={200: OutputSerializer})
    def post(self, request: Request, run_uid: uuid.UUID) -> Response:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"result": ["Expected a JSON object."]})
        run, recorded = etl_run_report(run_uid=run_uid, report=dict(request.data))
        return Response(self.OutputSerializer({"recorded": recorded, "run": run}).data)


class EtlRunReaderClaimApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/reader/`: a one-task runner asks for a reader slot of its
    source's connection before reading; 200 `{"state": "claimed"}` or `{"state": "waiting",
    "retry_after_s"}` (ask again); 409 when the run is not running. Heartbeats renew the slot,
    the result frees it."""

    class OutputSerializer(serializers.Serializer):
        state = serializers.CharField()
        retry_after_s = serializers.FloatField(required=False)

        class Meta:
            ref_name = "RunnerReaderClaim"

    @extend_schema(request=None, responses={200: OutputSerializer})
    def post(self, request: Request, run_uid: uuid.UUID) -> Response:
        return Response(etl_run_reader_claim(run_uid=run_uid))
