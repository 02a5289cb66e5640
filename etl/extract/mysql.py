"""MySQL / MariaDB extractor: PyMySQL unbuffered cursor (SSCursor), consistent snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from etl.exceptions import (
    MissingDependencyError,
    SchemaMappingError,
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
)
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor
from etl.schema import JSON_FIELD_METADATA, decimal_type

UNSIGNED_FLAG = 32
BINARY_CHARSET = 63

# MySQL protocol column type codes (include/field_types.h)
_TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _NULL, _TIMESTAMP, _LONGLONG, _INT24 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9)
_DATE, _TIME, _DATETIME, _YEAR, _NEWDATE, _VARCHAR, _BIT, _JSON = 10, 11, 12, 13, 14, 15, 16, 245
_DECIMAL, _NEWDECIMAL, _ENUM, _SET = 0, 246, 247, 248
_BLOBS = {249, 250, 251, 252}
_STRINGS = {_VARCHAR, 253, 254}

INTEGER_TYPES = {
    # type code: (signed, unsigned)
    _TINY: (pa.int8(), pa.int16()),
    _SHORT: (pa.int16(), pa.int32()),
    _INT24: (pa.int32(), pa.int32()),
    _LONG: (pa.int32(), pa.int64()),
    _LONGLONG: (pa.int64(), pa.uint64()),
    _YEAR: (pa.int16(), pa.int16()),
}
"""Integer columns: unsigned values get the next wider type (BIGINT UNSIGNED: uint64)."""


@register_extractor("mysql")
class MySqlExtractor(SqlExtractor):
    """Extract a MySQL/MariaDB table or custom SQL (`connection_params`: host, port, database,
    user, password, optional `connect_timeout` seconds). The session time zone is UTC, so
    TIMESTAMP columns arrive as UTC instants; DATETIME stays a wall-clock (naive) value."""

    quote_char = "`"

    def connect(self) -> Any:
        try:
            import pymysql
            import pymysql.cursors
        except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
            raise MissingDependencyError("PyMySQL", "The mysql source") from exc
        p = self.job.connection_params
        connection = pymysql.connect(
            host=p["host"],
            port=int(p.get("port") or 3306),
            database=p["database"],
            user=p["user"],
            password=p.get("password") or "",
            connect_timeout=int(p.get("connect_timeout", 10)),
            charset="utf8mb4",
            autocommit=False,
            init_command="SET time_zone = '+00:00'",
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return connection

    def fetch_one(self, connection: Any, sql: str) -> tuple[Any, ...]:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return tuple(cursor.fetchone())

    def placeholder(self, index: int, value: Any) -> str:
        return "%s"

    def stream(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import pymysql.cursors

        cursor = connection.cursor(pymysql.cursors.SSCursor)
        cursor.execute(sql, tuple(params) or None)
        schema = self.arrow_schema(cursor)
        chunk_size = self.job.chunk_size

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while rows := cursor.fetchmany(chunk_size):
                    yield self.to_batch(rows, schema)
            finally:
                cursor.close()

        return schema, batches()

    def arrow_schema(self, cursor: Any) -> pa.Schema:
        fields = []
        for field in cursor._result.fields:  # PyMySQL keeps flags and charset only here
            name, code = field.name, field.type_code
            unsigned = bool(field.flags & UNSIGNED_FLAG)
            binary = field.charsetnr == BINARY_CHARSET
            metadata = None
            if code in INTEGER_TYPES:
                arrow_type = INTEGER_TYPES[code][unsigned]
            elif code in (_DECIMAL, _NEWDECIMAL):
                scale = field.scale
                precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
                arrow_type = decimal_type(precision, scale)
            elif code == _FLOAT:
                arrow_type = pa.float32()
            elif code == _DOUBLE:
                arrow_type = pa.float64()
            elif code in (_DATE, _NEWDATE):
                arrow_type = pa.date32()
            elif code == _DATETIME:
                arrow_type = pa.timestamp("us")
            elif code == _TIMESTAMP:
                arrow_type = pa.timestamp("us", tz="UTC")
            elif code == _TIME:
                arrow_type = pa.duration("us")
            elif code == _BIT:
                arrow_type = pa.int64()
            elif code == _JSON:
                arrow_type, metadata = pa.string(), JSON_FIELD_METADATA
            elif code in _STRINGS | _BLOBS | {_ENUM, _SET}:
                arrow_type = pa.binary() if binary and code not in (_ENUM, _SET) else pa.string()
            elif code == _NULL:
                arrow_type = pa.null()
            else:
                raise SchemaMappingError(name, f"mysql type code {code}")
            fields.append(pa.field(name, arrow_type, metadata=metadata))
        return pa.schema(fields)

    def to_batch(self, rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        arrays = []
        for field, values in zip(schema, columns, strict=True):
            if pa.types.is_timestamp(field.type) and field.type.tz:
                values = [_as_utc(v) for v in values]
            elif field.type == pa.int64() and values and isinstance(_first(values), bytes):
                values = [None if v is None else int.from_bytes(v, "big") for v in values]
            elif field.type == pa.string() and values and isinstance(_first(values), set):
                values = [None if v is None else ",".join(sorted(v)) for v in values]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise SchemaMappingError(field.name, str(field.type), str(exc)) from exc
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def bind(self, value: Any) -> Any:
        """Bind aware datetimes as naive UTC: the session time zone is UTC."""
        import datetime as dt

        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def translate_error(self, exc: Exception) -> Exception | None:
        import pymysql

        if not isinstance(exc, pymysql.Error):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        if code in (1044, 1045, 1142, 1698):  # access denied to user, database or table
            return SourceAuthError(self.source_label, f"({code}) {reason}")
        if isinstance(exc, pymysql.OperationalError) and (2000 <= code < 3000 or code in (1205, 1213)):
            return SourceUnavailableError(self.source_label, reason)
        return SourceQueryError(self.source_label, f"({code}) {reason}")


def _first(values: Sequence[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _as_utc(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
