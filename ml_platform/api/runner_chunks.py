"""The runner API of a parallel run in Cloud Run Job mode: the chunk plan, and each task's
claim, heartbeats and report of its chunk (`services.runner_chunks`). Runner credentials only,
as the rest of the runner API (`api.runner`)."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ml_platform.api.runner import RunnerApi
from ml_platform.services.runner_chunks import (
    etl_run_chunk_claim,
    etl_run_chunk_heartbeat,
    etl_run_chunk_report,
    etl_run_chunks_create,
    etl_run_chunks_get,
)


class RunnerChunkOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, waiting, running, done, failed")
    attempt = serializers.IntegerField()
    worker = serializers.CharField()
    report = serializers.JSONField(allow_null=True, help_text="the engine's ChunkReport JSON")
    error_class = serializers.CharField()
    error_message = serializers.CharField()

    class Meta:
        ref_name = "RunnerChunk"


class RunnerChunksOutputSerializer(serializers.Serializer):
    run_status = serializers.CharField()
    plan = serializers.JSONField(allow_null=True, help_text="the ChunkPlan JSON; null until made")
    chunks = RunnerChunkOutputSerializer(many=True)

    class Meta:
        ref_name = "RunnerChunks"


class EtlRunChunksApi(RunnerApi):
    """A parallel run's chunks in Cloud Run Job mode (runner credentials only).

    `GET /api/etl/runs/<uuid>/chunks/`: 200 `{"run_status", "plan", "chunks": [...]}` (plan
    null until the coordinator task recorded it); changes nothing.

    `POST /api/etl/runs/<uuid>/chunks/` `{"plan": <ChunkPlan JSON>}` (task 0, once): 201 with
    the same document; 409 when the run is not running; 400 when it already has a plan.
    """

    class InputSerializer(serializers.Serializer):
        plan = serializers.JSONField()

        class Meta:
            ref_name = "RunnerChunksInput"

    @extend_schema(responses={200: RunnerChunksOutputSerializer})
    def get(self, request: Request, run_uid: uuid.UUID) -> Response:
        run, chunks = etl_run_chunks_get(run_uid=run_uid)
        return Response(_chunks_data(run, chunks))

    @extend_schema(request=InputSerializer, responses={201: RunnerChunksOutputSerializer})
    def post(self, request: Request, run_uid: uuid.UUID) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        etl_run_chunks_create(run_uid=run_uid, plan=data.validated_data["plan"])
        run, chunks = etl_run_chunks_get(run_uid=run_uid)
        return Response(_chunks_data(run, chunks), status=status.HTTP_201_CREATED)


def _chunks_data(run: Any, chunks: list) -> dict:
    return RunnerChunksOutputSerializer(
        {"run_status": run.status, "plan": run.chunk_plan, "chunks": chunks}
    ).data


class EtlRunChunkClaimApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/chunks/<index>/claim/` `{"worker", "attempt"}`: 200
    `{"state": "claimed"|"waiting"|"busy"|"done"|"failed", "attempt", "retry_after_s"}`;
    `claimed` means extract now (a reader slot is held); `waiting` means call again with the
    attempt. 409 when the run is not running."""

    class InputSerializer(serializers.Serializer):
        worker = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
        attempt = serializers.IntegerField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "RunnerChunkClaimInput"

    class OutputSerializer(serializers.Serializer):
        state = serializers.CharField()
        attempt = serializers.IntegerField(required=False)
        retry_after_s = serializers.FloatField(required=False)

        class Meta:
            ref_name = "RunnerChunkClaim"

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request, run_uid: uuid.UUID, index: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = etl_run_chunk_claim(
            run_uid=run_uid,
            index=index,
            worker=data.validated_data["worker"] or f"runner:{request.user}",
            attempt=data.validated_data["attempt"],
        )
        return Response(answer)


class EtlRunChunkHeartbeatApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/chunks/<index>/heartbeat/` `{"attempt"}`: 204 while that
    attempt holds the chunk (its reader slot is renewed too), 409 once it does not."""

    class InputSerializer(serializers.Serializer):
        attempt = serializers.IntegerField(min_value=1)

        class Meta:
            ref_name = "RunnerChunkHeartbeat"

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, run_uid: uuid.UUID, index: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        etl_run_chunk_heartbeat(
            run_uid=run_uid, index=index, attempt=data.validated_data["attempt"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EtlRunChunkReportApi(RunnerApi):
    """`POST /api/etl/runs/<uuid>/chunks/<index>/report/` `{"attempt", "report"}` with the
    engine's ChunkReport JSON, or `{"status": "failed", "error_class", "error", "transient"}`:
    200 with the chunk; 409 when that attempt no longer holds the chunk (the report is dropped)
    or the run is not running."""

    class InputSerializer(serializers.Serializer):
        attempt = serializers.IntegerField(min_value=1)
        report = serializers.JSONField()

        class Meta:
            ref_name = "RunnerChunkReportInput"

    @extend_schema(request=InputSerializer, responses={200: RunnerChunkOutputSerializer})
    def post(self, request: Request, run_uid: uuid.UUID, index: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        chunk = etl_run_chunk_report(
            run_uid=run_uid,
            index=index,
            attempt=data.validated_data["attempt"],
            report=data.validated_data["report"],
        )
        return Response(RunnerChunkOutputSerializer(chunk).data)
