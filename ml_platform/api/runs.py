"""Runs: list and detail, with counts, timings and the typed error."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml_platform import selectors
from ml_platform.models import EtlRun


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

    class Meta:
        ref_name = "EtlRun"


class EtlRunListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        data_source = serializers.IntegerField(required=False)
        status = serializers.ChoiceField(choices=EtlRun.Status.choices, required=False)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
        offset = serializers.IntegerField(required=False, min_value=0)

        class Meta:
            ref_name = "EtlRunFilter"

    class Pagination(LimitOffsetPagination):
        default_limit = 50
        max_limit = 500

    @extend_schema(parameters=[FilterSerializer], responses=EtlRunOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Runs newest first, `?data_source=`, `?status=`; `{"count", "next", "previous",
        "results"}` with `?limit=` (default 50) and `?offset=`."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.etl_run_list(
            data_source_id=filters.validated_data.get("data_source"),
            status=filters.validated_data.get("status"),
        )
        paginator = self.Pagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(EtlRunOutputSerializer(page, many=True).data)


class EtlRunDetailApi(APIView):
    @extend_schema(responses=EtlRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(EtlRunOutputSerializer(selectors.etl_run_get(id=run_id)).data)
