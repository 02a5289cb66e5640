"""Data sources: CRUD (validated against the config contract), preview, Run Now."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import etl
from ml_platform import selectors
from ml_platform.api.common import (
    ListFilterSerializer,
    StrictInputSerializer,
    model_input_serializer,
    paginated_response,
    paginated_schema,
)
from ml_platform.api.runs import EtlRunOutputSerializer
from ml_platform.models import DataSource, EtlRun, SourceType
from ml_platform.services import (
    data_source_create,
    data_source_delete,
    data_source_update,
    etl_run_enqueue,
)
from ml_platform.services.data_sources import UPDATABLE_FIELDS
from ml_platform.services.job_config import job_config_errors
from ml_platform.services.preview import data_source_preview
from ml_platform.services.state import sync_state_reset


class DataSourceOutputSerializer(serializers.ModelSerializer):
    """A data source, its fields as the model defines them; `destination_credentials` is never
    shown, only whether it is stored."""

    source_type = serializers.CharField(source="connection.type")
    # the JSON fields as stored: a wrongly typed value is shown (and named in `config_errors`)
    destination = serializers.SerializerMethodField(
        help_text="the destination block; secret keys (credentials, ...) shown as ***"
    )
    has_destination_credentials = serializers.SerializerMethodField()
    config_errors = serializers.SerializerMethodField(
        help_text="why the stored config does not build a job, by field; {} when it does"
    )

    class Meta:
        ref_name = "DataSource"
        model = DataSource
        fields = [
            "id",
            "source_type",
            *UPDATABLE_FIELDS,
            "has_destination_credentials",
            "config_errors",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_destination(self, obj: DataSource) -> Any:
        if not isinstance(obj.destination, dict):
            return obj.destination  # wrongly typed: shown as stored, named in config_errors
        return {
            key: ("***" if key in etl.SECRET_KEYS and value else value)
            for key, value in obj.destination.items()
        }

    def get_has_destination_credentials(self, obj: DataSource) -> bool:
        return bool(obj.destination_credentials)

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
    )
    def get_config_errors(self, obj: DataSource) -> dict[str, list[str]]:
        return job_config_errors(data_source=obj)


def _input_serializer(ref_name: str, *, required: tuple[str, ...] = (), **declared: Any) -> Any:
    """The writable fields, as the model defines them (JSON fields with their shapes); only
    `required` are required, the service applies defaults and the contract (errors name the
    field)."""
    strings = serializers.ListField
    return model_input_serializer(
        ref_name,
        DataSource,
        UPDATABLE_FIELDS,
        required=required,
        selected_columns=strings(child=serializers.CharField(), required=False),
        primary_key=strings(child=serializers.CharField(), required=False),
        file_format_options=serializers.DictField(required=False),
        destination=serializers.DictField(required=False),
        destination_credentials=serializers.JSONField(
            required=False,
            write_only=True,
            help_text='Service-account JSON object, or "anonymous"; encrypted, never returned.',
        ),
        **declared,
    )


class DataSourceListApi(APIView):
    class FilterSerializer(ListFilterSerializer):
        ORDERING = ("name", "load_type", "dest_table_name", "created_at", "updated_at")
        type = serializers.ChoiceField(
            choices=SourceType.choices, required=False, help_text="the connection's type"
        )
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
        load_type = serializers.ChoiceField(choices=DataSource.LoadType.choices, required=False)
        connection = serializers.IntegerField(required=False, min_value=1)

        class Meta:
            ref_name = "DataSourceFilter"

    InputSerializer = _input_serializer(
        "DataSourceCreateInput", required=("name", "connection", "dest_table_name")
    )

    @extend_schema(
        operation_id="etl_sources_list",
        parameters=[FilterSerializer],
        responses=paginated_schema(DataSourceOutputSerializer, "PaginatedDataSourceList"),
    )
    def get(self, request: Request) -> Response:
        """List data sources (by name unless `?ordering=`), filtered by `?type=`, `?enabled=`,
        `?load_type=`, `?connection=`; paginated."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        sources = selectors.data_source_list(
            enabled=given.get("enabled"),
            source_type=given.get("type"),
            load_type=given.get("load_type"),
            connection_id=given.get("connection"),
        )
        return paginated_response(
            request=request,
            view=self,
            queryset=sources,
            serializer_class=DataSourceOutputSerializer,
            ordering=given.get("ordering"),
        )

    @extend_schema(request=InputSerializer, responses={201: DataSourceOutputSerializer})
    def post(self, request: Request) -> Response:
        """Create a data source; the fields must form a valid JobConfig with the connection
        (400 names the field and what is allowed)."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data_source = data_source_create(**serializer.validated_data)
        return Response(
            DataSourceOutputSerializer(data_source).data, status=status.HTTP_201_CREATED
        )


class DataSourceDetailApi(APIView):
    InputSerializer = _input_serializer(
        "DataSourceUpdateInput",
        clear_destination_credentials=serializers.BooleanField(required=False, default=False),
    )

    @extend_schema(responses=DataSourceOutputSerializer)
    def get(self, request: Request, source_id: int) -> Response:
        return Response(DataSourceOutputSerializer(selectors.data_source_get(id=source_id)).data)

    @extend_schema(request=InputSerializer, responses=DataSourceOutputSerializer)
    def patch(self, request: Request, source_id: int) -> Response:
        """Change the given fields and re-validate the whole contract."""
        data_source = selectors.data_source_get(id=source_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        credentials = data.pop("destination_credentials", None)
        clear = data.pop("clear_destination_credentials", False)
        data_source = data_source_update(
            data_source=data_source,
            data=data,
            destination_credentials=credentials,
            clear_destination_credentials=clear,
        )
        return Response(DataSourceOutputSerializer(data_source).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        """Delete a data source with its runs, state and schedule (not its destination table)."""
        data_source_delete(data_source=selectors.data_source_get(id=source_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DataSourceResetApi(APIView):
    @extend_schema(request=None, responses=DataSourceOutputSerializer)
    def post(self, request: Request, source_id: int) -> Response:
        """Reset the source's state: its next run reads everything again and replaces the
        destination table atomically (a full reload, no duplicates). 400 while a run is queued
        or running."""
        data_source = selectors.data_source_get(id=source_id)
        sync_state_reset(data_source=data_source)
        return Response(DataSourceOutputSerializer(data_source).data)


class DataSourcePreviewApi(APIView):
    class FilterSerializer(StrictInputSerializer):
        limit = serializers.IntegerField(required=False, default=20, min_value=1)

        class Meta:
            ref_name = "DataSourcePreviewFilter"

        def validate_limit(self, value: int) -> int:
            maximum = int(settings.ETL_PREVIEW_MAX_ROWS)
            if value > maximum:
                raise serializers.ValidationError(f"Ensure this value is at most {maximum}.")
            return value

    class OutputSerializer(serializers.Serializer):
        class ColumnSerializer(serializers.Serializer):
            source_name = serializers.CharField()
            name = serializers.CharField(help_text="destination column name")
            arrow_type = serializers.CharField()
            destination_type = serializers.CharField()

            class Meta:
                ref_name = "DataSourcePreviewColumn"

        columns = ColumnSerializer(many=True)
        rows = serializers.ListField(child=serializers.DictField())

        class Meta:
            ref_name = "DataSourcePreview"

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="rows, 1..ETL_PREVIEW_MAX_ROWS")],
        responses=OutputSerializer,
    )
    def get(self, request: Request, source_id: int) -> Response:
        """The first `limit` rows as they would be loaded: destination column names and types.
        Reads the source through the engine; writes nothing anywhere."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data_source = selectors.data_source_get(id=source_id)
        errors = job_config_errors(data_source=data_source)
        if errors:  # a stored config gone bad: 400 naming the field, never a 500
            raise serializers.ValidationError(errors)
        preview = data_source_preview(
            data_source=data_source, limit=filters.validated_data["limit"]
        )
        return Response(self.OutputSerializer(preview).data)


class DataSourceRunApi(APIView):
    @extend_schema(request=None, responses={202: EtlRunOutputSerializer, 503: dict})
    def post(self, request: Request, source_id: int) -> Response:
        """Run Now: queue a run (202). When the source already has a queued or running run,
        that run is returned and nothing new starts. 503 with `Retry-After` when the broker
        cannot take the run (nothing is queued then). With eager Celery the run executes within
        the request: a failed run is answered as such (`status` `failed`, `error_class`,
        `error_message`), still 202."""
        run = etl_run_enqueue(
            data_source=selectors.data_source_get(id=source_id),
            trigger=EtlRun.Trigger.API,
            return_failed=True,
        )
        return Response(EtlRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)
