"""Connections: CRUD (credentials write-only), test, and browse schemas, tables, columns, files."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import etl
from ml_platform import selectors
from ml_platform.api.common import (
    ListFilterSerializer,
    model_input_serializer,
    paginated_response,
    paginated_schema,
)
from ml_platform.models import Connection, SourceType
from ml_platform.services import (
    connection_create,
    connection_delete,
    connection_update,
    probes,
)
from ml_platform.services.connections import CREDENTIAL_KEYS, UPDATABLE_FIELDS


class ConnectionOutputSerializer(serializers.ModelSerializer):
    """A connection as the API shows it: never its credentials, only whether some are stored;
    its fields as the model defines them."""

    extra_params = serializers.SerializerMethodField()
    has_credentials = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Connection"
        model = Connection
        fields = ["id", *UPDATABLE_FIELDS, "has_credentials", "created_at", "updated_at"]
        read_only_fields = fields

    def get_extra_params(self, obj: Connection) -> dict:
        return {
            key: ("***" if key in etl.SECRET_KEYS and value else value)
            for key, value in (obj.extra_params or {}).items()
        }

    def get_has_credentials(self, obj: Connection) -> bool:
        return bool(obj.credentials)


def _connection_get(connection_id: int) -> Connection:
    return selectors.connection_get(id=connection_id)


def _connection_keys_check(source_type: str, objects: dict[str, Any]) -> None:
    """Refuse (400, the JSON error shape) every key of the `extra_params` and `credentials`
    objects in `objects` that the engine's `connection_params` of `source_type` do not take
    (`etl.CONNECTION_KEYS`): a misspelt key (`sslmod`) would otherwise be stored and ignored.
    A credentials key no type takes is left to the service (its own message lists them).

    Raises:
        serializers.ValidationError: keyed by `extra_params` / `credentials`, one message per
            unknown key naming it, the closest allowed key and every allowed one.
    """
    errors = {}
    for field, value in objects.items():
        if not isinstance(value, dict):
            continue
        keys = [k for k in value if k in CREDENTIAL_KEYS] if field == "credentials" else value
        unknown = etl.unknown_connection_keys(source_type, keys)
        if unknown:
            errors[field] = [etl.unknown_connection_key_message(source_type, k) for k in unknown]
    if errors:
        raise serializers.ValidationError(errors)


def _input_serializer(ref_name: str, *, required: tuple[str, ...] = (), **declared: Any) -> Any:
    """The writable fields but credentials, as the model defines them; only `required` are
    required, the service applies defaults and checks what the connection's type needs
    (errors name the field)."""
    serializer = model_input_serializer(
        ref_name,
        Connection,
        UPDATABLE_FIELDS,
        required=required,
        extra_params=serializers.DictField(required=False),
        **declared,
    )
    serializer.NESTED_KEYS = {
        "credentials": CREDENTIAL_KEYS
    }  # `password` -> `credentials.password`
    return serializer


class ConnectionListApi(APIView):
    class FilterSerializer(ListFilterSerializer):
        ORDERING = ("name", "type", "created_at", "updated_at")
        type = serializers.ChoiceField(choices=SourceType.choices, required=False)

        class Meta:
            ref_name = "ConnectionFilter"

    InputSerializer = _input_serializer(
        "ConnectionCreateInput",
        required=("name", "type"),
        credentials=serializers.DictField(
            required=False,
            allow_null=True,
            write_only=True,
            help_text=f"Secrets ({', '.join(sorted(CREDENTIAL_KEYS))}); encrypted at rest, "
            "never returned.",
        ),
    )

    @extend_schema(
        operation_id="etl_connections_list",
        parameters=[FilterSerializer],
        responses=paginated_schema(ConnectionOutputSerializer, "PaginatedConnectionList"),
    )
    def get(self, request: Request) -> Response:
        """List connections (by name unless `?ordering=`), `?type=` filters; paginated."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(
            request=request,
            view=self,
            queryset=selectors.connection_list(type=filters.validated_data.get("type")),
            serializer_class=ConnectionOutputSerializer,
            ordering=filters.validated_data.get("ordering"),
        )

    @extend_schema(request=InputSerializer, responses={201: ConnectionOutputSerializer})
    def post(self, request: Request) -> Response:
        """Create a connection; credentials are stored encrypted and never returned."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _connection_keys_check(
            data["type"],
            {"extra_params": data.get("extra_params"), "credentials": data.get("credentials")},
        )
        connection = connection_create(**data)
        return Response(ConnectionOutputSerializer(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetailApi(APIView):
    InputSerializer = _input_serializer(
        "ConnectionUpdateInput",
        credentials=serializers.DictField(
            required=False, write_only=True, help_text="Replaces the stored credentials."
        ),
        clear_credentials=serializers.BooleanField(required=False, default=False),
    )

    @extend_schema(responses=ConnectionOutputSerializer)
    def get(self, request: Request, connection_id: int) -> Response:
        return Response(ConnectionOutputSerializer(_connection_get(connection_id)).data)

    @extend_schema(request=InputSerializer, responses=ConnectionOutputSerializer)
    def patch(self, request: Request, connection_id: int) -> Response:
        """Change the given fields; `credentials` replaces the stored ones (absent: kept)."""
        connection = _connection_get(connection_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        extra = data["extra_params"] if "extra_params" in data else connection.extra_params
        _connection_keys_check(
            data.get("type", connection.type),
            {"extra_params": extra, "credentials": data.get("credentials")},
        )
        credentials = data.pop("credentials", None)
        clear = data.pop("clear_credentials", False)
        connection = connection_update(
            connection=connection, data=data, credentials=credentials, clear_credentials=clear
        )
        return Response(ConnectionOutputSerializer(connection).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, connection_id: int) -> Response:
        """Delete a connection no data source uses (400 names the sources otherwise)."""
        connection_delete(connection=_connection_get(connection_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionTestApi(APIView):
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        message = serializers.CharField()
        duration_ms = serializers.IntegerField()
        details = serializers.DictField()

        class Meta:
            ref_name = "ConnectionTestResult"

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, connection_id: int) -> Response:
        """Connect for real (SQL: `SELECT 1`; files: list the root; BigQuery: list datasets).
        A failed connection is `ok: false` with the reason, still 200."""
        result = probes.connection_test(connection=_connection_get(connection_id))
        return Response(self.OutputSerializer(result).data)


class ConnectionSchemasApi(APIView):
    @extend_schema(responses={200: {"type": "array", "items": {"type": "string"}}})
    def get(self, request: Request, connection_id: int) -> Response:
        """Schema (PostgreSQL) or database (MySQL) names."""
        return Response(probes.connection_browse_schemas(connection=_connection_get(connection_id)))


class ConnectionTablesApi(APIView):
    class OutputSerializer(serializers.Serializer):
        schema = serializers.CharField()
        name = serializers.CharField()
        kind = serializers.ChoiceField(choices=["table", "view"])

        class Meta:
            ref_name = "ConnectionTable"

    @extend_schema(
        parameters=[OpenApiParameter("schema", str, description="default: the default schema")],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, connection_id: int) -> Response:
        """Tables and views of `?schema=`."""
        tables = probes.connection_browse_tables(
            connection=_connection_get(connection_id), schema=request.query_params.get("schema")
        )
        return Response(self.OutputSerializer(tables, many=True).data)


class ConnectionColumnsApi(APIView):
    class FilterSerializer(serializers.Serializer):
        table = serializers.CharField(help_text="`table` or `schema.table`")

        class Meta:
            ref_name = "ConnectionColumnsFilter"

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        type = serializers.CharField()
        nullable = serializers.BooleanField()
        primary_key = serializers.BooleanField()

        class Meta:
            ref_name = "ConnectionColumn"

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request, connection_id: int) -> Response:
        """Columns of `?table=` in table order, with database types."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        columns = probes.connection_browse_columns(
            connection=_connection_get(connection_id), table=filters.validated_data["table"]
        )
        return Response(self.OutputSerializer(columns, many=True).data)


class ConnectionFilesApi(APIView):
    class FilterSerializer(serializers.Serializer):
        prefix = serializers.CharField(required=False, allow_blank=True, default="")
        pattern = serializers.CharField(
            required=False, default="**", help_text="glob relative to prefix; ** crosses folders"
        )

        class Meta:
            ref_name = "ConnectionFilesFilter"

    class OutputSerializer(serializers.Serializer):
        class FileSerializer(serializers.Serializer):
            key = serializers.CharField()
            size = serializers.IntegerField(help_text="bytes")
            last_modified = serializers.CharField(allow_null=True)
            version = serializers.CharField()

            class Meta:
                ref_name = "ConnectionFile"

        files = FileSerializer(many=True)
        truncated = serializers.BooleanField()

        class Meta:
            ref_name = "ConnectionFiles"

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request: Request, connection_id: int) -> Response:
        """Objects under `?prefix=` matching `?pattern=` (as a file data source matches them)."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        listing = probes.connection_browse_files(
            connection=_connection_get(connection_id), **filters.validated_data
        )
        return Response(self.OutputSerializer(listing).data)
