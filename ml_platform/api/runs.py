"""Runs: list and detail, with counts, timings and the typed error."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml_platform import selectors
from ml_platform.api.common import ListFilterSerializer, paginated_response, paginated_schema
from ml_platform.models import EtlRun


class EtlRunChunkOutputSerializer(serializers.Serializer):
    """One key range of a parallel run."""

    index = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, waiting (for a reader slot), running, done")
    attempt = serializers.IntegerField(help_text="1 = first; more when its worker was lost")
    worker = serializers.CharField()
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    waited_s = serializers.FloatField(help_text="seconds waited for a reader slot")
    rows = serializers.IntegerField()
    error_class = serializers.CharField()
    error_message = serializers.CharField()

    class Meta:
        ref_name = "EtlRunChunk"


class EtlRunOutputSerializer(serializers.Serializer):
    """One run: status transitions (queued/started/finished/heartbeat times, UTC), counts
    (rows, bytes, files; rejected rows), warnings, watermark before and after, duration in
    seconds and the error class and message (secrets removed)."""

    id = serializers.IntegerField()
    uid = serializers.CharField(source="uid.hex", help_text="stamped on loaded rows as _etl_run_id")
    data_source = serializers.IntegerField(source="data_source_id")
    data_source_name = serializers.CharField(source="data_source.name")
    trigger = serializers.CharField()
    status = serializers.CharField()
    has_warnings = serializers.BooleanField(
        help_text="succeeded with warnings or rejected rows (shown amber)"
    )
    status_label = serializers.CharField(help_text='e.g. "Succeeded with warnings"')
    idempotency_key = serializers.CharField(allow_null=True)
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(source="updated_at")
    duration_s = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    worker = serializers.CharField()
    rows_extracted = serializers.IntegerField()
    rows_loaded = serializers.IntegerField()
    rows_skipped = serializers.IntegerField()
    rows_rejected = serializers.IntegerField(help_text="rows set aside in <table>__rejected")
    bytes_extracted = serializers.IntegerField()
    files_loaded = serializers.IntegerField()
    files_skipped = serializers.IntegerField()
    progress_rows = serializers.IntegerField()
    progress_bytes = serializers.IntegerField()
    warnings = serializers.ListField(child=serializers.CharField())
    watermark_before = serializers.CharField()
    watermark_after = serializers.CharField()
    reconciled_run_id = serializers.CharField()
    error_class = serializers.CharField()
    error_message = serializers.CharField()
    chunks = EtlRunChunkOutputSerializer(
        many=True,
        source="chunks.all",
        help_text="a parallel run's key ranges (DataSource.parallelism > 1); [] otherwise",
    )

    class Meta:
        ref_name = "EtlRun"


class EtlRunListApi(APIView):
    class FilterSerializer(ListFilterSerializer):
        ORDERING = ("queued_at", "started_at", "finished_at", "duration_s", "rows_loaded")
        data_source = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=EtlRun.Status.choices, required=False)
        trigger = serializers.ChoiceField(choices=EtlRun.Trigger.choices, required=False)
        queued_after = serializers.DateTimeField(required=False, help_text="inclusive, ISO 8601")
        queued_before = serializers.DateTimeField(required=False, help_text="exclusive, ISO 8601")

        class Meta:
            ref_name = "EtlRunFilter"

    @extend_schema(
        operation_id="etl_runs_list",
        parameters=[FilterSerializer],
        responses=paginated_schema(EtlRunOutputSerializer, "PaginatedEtlRunList"),
    )
    def get(self, request: Request) -> Response:
        """Runs newest first (or `?ordering=`), filtered by `?data_source=`, `?status=`,
        `?trigger=`, `?queued_after=` / `?queued_before=`; paginated."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        runs = selectors.etl_run_list(
            data_source_id=given.get("data_source"),
            status=given.get("status"),
            trigger=given.get("trigger"),
            queued_after=given.get("queued_after"),
            queued_before=given.get("queued_before"),
        )
        return paginated_response(
            request=request,
            view=self,
            queryset=runs,
            serializer_class=EtlRunOutputSerializer,
            ordering=given.get("ordering"),
        )


class EtlRunDetailApi(APIView):
    @extend_schema(responses=EtlRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(EtlRunOutputSerializer(selectors.etl_run_get(id=run_id)).data)
