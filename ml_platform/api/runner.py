"""The runner API of Cloud Run Job mode: job config (with secrets) out, heartbeats and results in.

Only runner credentials are accepted (`RunnerAuthentication` + `IsRunner`): the shared
`ETL_RUNNER_TOKEN`, an allowed service account's Google ID token, or a staff user's DRF token.
Sessions are not, so a browser never sees a config's secrets.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml_platform import selectors
from ml_platform.api.runs import EtlRunOutputSerializer
from ml_platform.auth.authentication import IsRunner, RunnerAuthentication
from ml_platform.services.runner import (
    RunNotActiveError,
    etl_run_heartbeat,
    etl_run_report,
    etl_run_runner_start,
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class _RunnerApi(APIView):
    authentication_classes = [RunnerAuthentication]
    permission_classes = [IsRunner]


class DataSourceRunnerConfigApi(_RunnerApi):
    """`GET /api/etl/sources/<id>/config/?run_id=<uuid>&worker=<name>`.

    Marks the run running (a new `cli` run when `run_id` is omitted) and answers 200
    `{"run_id", "job", "state", "heartbeat_interval_s"}`: the JobConfig with secrets resolved,
    the engine SyncState JSON, and how often (seconds) to POST the heartbeat. 409 when the run
    already finished (or, without `run_id`, another run is active); 404 for an unknown source or
    run; 400 when the stored config is unusable (the run is then failed).
    """

    class FilterSerializer(serializers.Serializer):
        run_id = serializers.UUIDField(required=False)
        worker = serializers.CharField(required=False, max_length=255, default="")

        class Meta:
            ref_name = "RunnerConfigFilter"

    @extend_schema(parameters=[FilterSerializer], responses={200: dict})
    def get(self, request: Request, source_id: int) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data_source = selectors.data_source_get(id=source_id)
        try:
            runner_job = etl_run_runner_start(
                data_source=data_source,
                run_uid=filters.validated_data.get("run_id"),
                worker=filters.validated_data["worker"] or f"runner:{request.user}",
            )
        except RunNotActiveError as exc:
            raise Conflict(exc.message) from exc
        return Response(
            {
                "run_id": str(runner_job.run.uid),
                "job": runner_job.job,
                "state": runner_job.state.model_dump(mode="json"),
                "heartbeat_interval_s": float(settings.ETL_RUN_HEARTBEAT_INTERVAL_S),
            }
        )


class EtlRunHeartbeatApi(_RunnerApi):
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
        try:
            etl_run_heartbeat(run_uid=run_uid, **data.validated_data)
        except RunNotActiveError as exc:
            raise Conflict(exc.message) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class EtlRunResultApi(_RunnerApi):
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
        try:
            run, recorded = etl_run_report(run_uid=run_uid, report=dict(request.data))
        except RunNotActiveError as exc:
            raise Conflict(exc.message) from exc
        return Response(self.OutputSerializer({"recorded": recorded, "run": run}).data)
