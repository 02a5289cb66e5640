"""PostgreSQL extractor: psycopg 3, named (server-side) cursor, REPEATABLE READ snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from etl.exceptions import SchemaMappingError, SourceQueryError, SourceUnavailableError
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor
from etl.schema import JSON_FIELD_METADATA, decimal_type

SCALAR_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "char": pa.string(),
    "citext": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "xml": pa.string(),
    "inet": pa.string(),
    "cidr": pa.string(),
    "macaddr": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.month_day_nano_interval(),
}
"""PostgreSQL type name -> Arrow type (numeric is sized from the column's precision/scale)."""

TEXT_LOADED = ("uuid", "json", "jsonb", "inet", "cidr", "macaddr", "xml", "interval")
"""Types read as their PostgreSQL text form (kept verbatim; intervals parsed from ISO 8601)."""


@register_extractor("postgresql")
class PostgresExtractor(SqlExtractor):
    """Extract a PostgreSQL table or custom SQL (`connection_params`: host, port, database,
    user, password, optional `sslmode`, `connect_timeout` seconds)."""

    quote_char = '"'

    def connect(self) -> Any:
        import psycopg
        from psycopg.types.string import TextLoader

        p = self.job.connection_params
        connection = psycopg.connect(
            host=p["host"],
            port=int(p.get("port") or 5432),
            dbname=p["database"],
            user=p["user"],
            password=p.get("password") or None,
            sslmode=p.get("sslmode", "prefer"),
            connect_timeout=int(p.get("connect_timeout", 10)),
            application_name="etl-runner",
        )
        for type_name in TEXT_LOADED:
            connection.adapters.register_loader(type_name, TextLoader)
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        connection.execute("SET TIME ZONE 'UTC'")
        connection.execute("SET intervalstyle = 'iso_8601'")
        return connection

    def stream(self, connection: Any, sql: str, params: Sequence[Any]) -> Any:
        cursor = connection.cursor(name="etl_extract")
        cursor.itersize = self.job.chunk_size
        cursor.execute(sql, list(params))
        return cursor

    def arrow_schema(self, cursor: Any) -> pa.Schema:
        types = cursor.connection.adapters.types
        fields = []
        for column in cursor.description:
            info = types.get(column.type_code)
            name = info.name if info else "unknown"
            is_array = bool(info) and column.type_code == info.array_oid
            if name == "numeric":
                arrow_type = decimal_type(column.precision, column.scale)
            elif name in SCALAR_TYPES:
                arrow_type = SCALAR_TYPES[name]
            elif info is None or is_array:
                raise SchemaMappingError(column.name, name + ("[]" if is_array else ""))
            else:
                arrow_type = pa.string()  # enums, domains over text, ...
            if is_array:
                if name in TEXT_LOADED:
                    raise SchemaMappingError(column.name, f"{name}[]", "arrays of it are not supported yet")
                arrow_type = pa.list_(arrow_type)
            metadata = JSON_FIELD_METADATA if name in ("json", "jsonb") else None
            fields.append(pa.field(column.name, arrow_type, metadata=metadata))
        return pa.schema(fields)

    def to_batch(self, rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        arrays = []
        for field, values in zip(schema, columns, strict=True):
            if field.type == pa.month_day_nano_interval():
                values = [_iso_interval(v) for v in values]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise SchemaMappingError(field.name, str(field.type), str(exc)) from exc
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def translate_error(self, exc: Exception) -> Exception | None:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):
            return SourceUnavailableError(self.source_label, _first_line(exc))
        if isinstance(exc, psycopg.Error):
            return SourceQueryError(self.source_label, _first_line(exc))
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _iso_interval(text: str | None) -> Any:
    """Parse an ISO 8601 interval (`P1Y2M3DT4H5M6.7S`, PostgreSQL `iso_8601` style) into
    `pyarrow.MonthDayNano`, keeping months, days and nanoseconds apart."""
    if text is None:
        return None
    import re

    match = re.fullmatch(
        r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
        r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?",
        text,
    )
    if match is None:
        raise ValueError(f"unexpected interval text {text!r}")
    years, months, weeks, days, hours, minutes, seconds = match.groups()
    from decimal import Decimal

    nanos = (int(hours or 0) * 3600 + int(minutes or 0) * 60) * 10**9
    nanos += int(Decimal(seconds or 0) * 10**9)
    return pa.MonthDayNano(
        [int(years or 0) * 12 + int(months or 0), int(weeks or 0) * 7 + int(days or 0), nanos]
    )


__all__ = ["PostgresExtractor"]
