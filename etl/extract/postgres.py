"""PostgreSQL extractor: ADBC (binary COPY straight into Arrow) in a REPEATABLE READ snapshot.

The rows never become Python objects: the ADBC driver decodes PostgreSQL's binary COPY format
into Arrow record batches in C++. Types it leaves opaque are cast on the server to text
(uuid, inet, xml, enums, ...) or converted here (numeric -> decimal by the column's declared
precision and scale, json/jsonb -> JSON-marked strings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import (
    MissingDependencyError,
    SchemaMappingError,
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
)
from etl.extract.inflight import (
    NOT_VISIBLE,
    PG_CLOCK_ONLY_SQL,
    PG_INFLIGHT_COLUMNS,
    PG_INFLIGHT_SQL,
    STANDBY,
    InflightCap,
)
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor
from etl.schema import JSON_FIELD_METADATA, decimal_type

PG_TYPE = b"POSTGRESQL:type"
PG_TYPMOD = b"POSTGRESQL:typmod"

NATIVE_TYPES = frozenset(
    {
        "int2",
        "int4",
        "int8",
        "oid",
        "float4",
        "float8",
        "bool",
        "text",
        "varchar",
        "bpchar",
        "name",
        "char",
        "bytea",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "numeric",
        "json",
        "jsonb",
    }
)
"""PostgreSQL types the ADBC driver decodes into a usable Arrow type; others are read as text."""

BATCH_HINT_MAX_BYTES = 2 << 20
"""Upper bound of the driver's batch size, bytes (`adbc.postgresql.batch_size_hint_bytes`).
Measured on TPC-H lineitem SF 0.25 -> DuckDB: 12.8 MB batches peak at ~395 MB RSS, 4 MB at
~310 MB, 2 MB at ~270 MB, with the same CPU time."""


AUTH_FAILURES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "no password supplied",
    "authentication failed",
)
"""libpq/server messages a retry cannot fix (wrong credentials, role or database missing)."""
NETWORK_FAILURES = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "could not translate host name",
    "connection reset",
    "the database system is starting up",
    "too many connections",
    "terminating connection",
    "server terminated abnormally",
)
"""Messages of failures a retry may get past."""


@register_extractor("postgresql")
class PostgresExtractor(SqlExtractor):
    """Extract a PostgreSQL table or custom SQL (`connection_params`: host, port, database,
    user, password, optional `sslmode`, `connect_timeout` seconds)."""

    quote_char = '"'

    def connect(self) -> Any:
        try:
            import adbc_driver_postgresql
        except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
            raise MissingDependencyError("adbc-driver-postgresql", "The postgresql source") from exc
        p = self.job.connection_params
        user = quote(str(p["user"]), safe="")
        password = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
        query = urlencode(
            {
                "sslmode": p.get("sslmode", "prefer"),
                "connect_timeout": int(p.get("connect_timeout", 10)),
                "application_name": "etl-runner",
            }
        )
        uri = (
            f"postgresql://{user}{password}@{p['host']}:{int(p.get('port') or 5432)}/"
            f"{quote(str(p['database']), safe='')}?{query}"
        )
        return _Connection(adbc_driver_postgresql.connect(uri))

    def begin_snapshot(self, connection: Any) -> None:
        connection.connection.set_autocommit(False)  # ADBC sends BEGIN
        connection.execute_update("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        connection.execute_update("SET TIME ZONE 'UTC'")

    def probe_inflight(self, connection: Any) -> InflightCap:
        """Read `pg_stat_activity` in autocommit mode, before the snapshot: the oldest
        `xact_start` of other sessions of this database (client backends and background
        workers, not autovacuum nor other ETL Runner runs, which only read), and the wall-clock
        cap in the session's default `TimeZone`. Sessions of other roles show `xact_start`
        only to superusers and members of `pg_read_all_stats`: when some are hidden, the
        run's warnings say so."""
        import adbc_driver_manager

        try:
            values = self.fetch_one(connection, PG_INFLIGHT_SQL)
        except adbc_driver_manager.ProgrammingError as exc:  # the view is not readable
            instant, wall = self.fetch_one(connection, PG_CLOCK_ONLY_SQL)
            reason = f"pg_stat_activity cannot be read: {_first_line(exc)}"
            return InflightCap(
                instant=instant,
                wall=wall,
                warnings=[NOT_VISIBLE.format(count="all", reason=reason)],
            )
        row = dict(zip(PG_INFLIGHT_COLUMNS, values, strict=True))
        cap = InflightCap(
            instant=row["cap"],
            wall=row["cap_wall"],
            probed_at=row["probed_at"],
            oldest=row["oldest"],
            holder=row["holder"] or "",
        )
        if row["hidden"]:
            cap.warnings.append(
                NOT_VISIBLE.format(
                    count=row["hidden"],
                    reason="their role is not visible to this user: grant it pg_read_all_stats",
                )
            )
        if row["standby"]:
            cap.warnings.append(STANDBY)
        return cap

    def fetch_one(self, connection: Any, sql: str) -> tuple[Any, ...]:
        statement, reader = connection.query(sql)
        try:
            table = reader.read_all()
        finally:
            connection.release(statement)
        values = []
        for field, column in zip(table.schema, table.columns, strict=True):
            value = column[0].as_py() if column[0].is_valid else None
            if field.metadata and field.metadata.get(PG_TYPE) == b"numeric" and value is not None:
                value = Decimal(value if isinstance(value, str) else str(value))
            values.append(value)
        return tuple(values)

    def placeholder(self, index: int, value: Any) -> str:
        """Return the bound as a typed literal, not a `$n` parameter: the driver streams a
        result through binary COPY only for a query without parameters (with parameters it
        fetches the whole result into memory first). Values are the watermark's own (datetime,
        date, int, Decimal) or `initial_value`, quoted as a string literal."""
        return _literal(value)

    def stream(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        # bounds are inlined as literals by `placeholder`: no parameters reach the driver
        statement, reader = connection.query(f"SELECT * FROM ({sql}) AS _etl_q LIMIT 0")
        try:
            raw = reader.read_all().schema
        finally:
            connection.release(statement)
        columns = []
        for field in raw:
            pg_type = _pg_type(field)
            name = self.quote(field.name)
            is_array = pg_type.startswith("_")
            base = pg_type.removeprefix("_")
            if pg_type == "numeric":
                # the server's text form, cast to decimal in Arrow: ~4x less CPU than the
                # driver's own decoding of binary numerics (which also yields text)
                columns.append(f"{name}::text AS {name}")
            elif base in NATIVE_TYPES:
                columns.append(name)
            else:
                columns.append(f"{name}::text{'[]' if is_array else ''} AS {name}")
        # the driver sizes its batches in bytes: aim near `chunk_size` rows (~128 bytes a row
        # is typical of warehouse rows), at most BATCH_HINT_MAX_BYTES: each MB of a driver
        # batch costs ~10 MB of peak RSS downstream (casts, prefetch queue, DuckDB's scan)
        hint = min(max(self.job.chunk_size * 128, 1 << 16), BATCH_HINT_MAX_BYTES)
        statement, reader = connection.query(
            f"SELECT {', '.join(columns)} FROM ({sql}) AS _etl_q",
            {"adbc.postgresql.batch_size_hint_bytes": str(hint)},
        )
        schema = pa.schema(
            [
                _arrow_field(declared if _pg_type(declared) == "numeric" else field)
                for declared, field in zip(raw, reader.schema, strict=True)
            ]
        )

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    yield _convert(batch, schema)
            finally:
                connection.release(statement)

        return schema, batches()

    def translate_error(self, exc: Exception) -> Exception | None:
        try:
            import adbc_driver_manager
        except ModuleNotFoundError:  # pragma: no cover
            return None
        # a connection lost while a result streams surfaces from the Arrow reader as an OSError
        # carrying libpq's message, not as an adbc_driver_manager.Error
        from_stream = isinstance(exc, OSError) and str(exc).startswith("[libpq]")
        if not isinstance(exc, adbc_driver_manager.Error) and not from_stream:
            return None
        message = _first_line(exc)
        password = self.job.connection_params.get("password")
        if password:
            message = message.replace(str(password), "***").replace(
                quote(str(password), safe=""), "***"
            )
        lowered = message.lower()
        if any(text in lowered for text in AUTH_FAILURES) or re.search(
            r'(role|database) ".*" does not exist', lowered
        ):
            return SourceAuthError(self.source_label, message)
        if any(text in lowered for text in NETWORK_FAILURES):
            return SourceUnavailableError(self.source_label, message)
        return SourceQueryError(self.source_label, message)


class _Connection:
    """An ADBC connection (autocommit until `begin_snapshot` turns it off: one transaction),
    used through ADBC's low-level API: its DB-API module imports `pyarrow.dataset` and with it
    pandas (~50 MB, ~0.3 s)."""

    def __init__(self, database: Any) -> None:
        import adbc_driver_manager

        self.database = database
        try:
            self.connection = adbc_driver_manager.AdbcConnection(database)
        except BaseException:
            database.close()
            raise
        self.statements: list[Any] = []

    def query(
        self, sql: str, options: dict[str, str] | None = None
    ) -> tuple[Any, pa.RecordBatchReader]:
        """Run `sql`; return its statement (close it when done) and its result stream."""
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.connection)
        self.statements.append(statement)
        if options:
            statement.set_options(**options)
        statement.set_sql_query(sql)
        handle, _ = statement.execute_query()
        return statement, pa.RecordBatchReader.from_stream(handle)

    def release(self, statement: Any) -> None:
        """Close `statement` unless the connection has already closed it (ADBC counts the
        closes of a connection's statements and fails on a second one)."""
        if statement in self.statements:
            self.statements.remove(statement)
            statement.close()

    def execute_update(self, sql: str) -> None:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.connection)
        try:
            statement.set_sql_query(sql)
            statement.execute_update()
        finally:
            statement.close()

    def close(self) -> None:
        for closable in [*self.statements, self.connection, self.database]:
            try:
                closable.close()
            except Exception:  # noqa: BLE001  a broken connection must still be released
                pass
        self.statements.clear()


def _literal(value: Any) -> str:
    """Return a PostgreSQL literal of a cursor bound, typed so it compares with the column."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        kind = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"'{value.isoformat()}'::{kind}"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}::bigint"
    if isinstance(value, (Decimal, float)):
        return f"'{value}'::numeric"
    return "'" + str(value).replace("'", "''") + "'"


def _pg_type(field: pa.Field) -> str:
    return (field.metadata or {}).get(PG_TYPE, b"").decode() or "unknown"


def _arrow_field(field: pa.Field) -> pa.Field:
    """Return the field as loaded: numeric -> decimal(p, s), json -> JSON-marked string."""
    pg_type = _pg_type(field)
    data_type = field.type
    metadata = None
    if pg_type == "numeric":
        typmod = int((field.metadata or {}).get(PG_TYPMOD, b"-1"))
        if typmod >= 4:
            data_type = decimal_type(((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF)
        else:
            data_type = decimal_type(None, None)
    elif pg_type in ("json", "jsonb"):
        data_type, metadata = pa.string(), JSON_FIELD_METADATA
    elif isinstance(data_type, pa.ExtensionType):
        data_type = data_type.storage_type
    elif pa.types.is_list(data_type) and isinstance(data_type.value_type, pa.ExtensionType):
        data_type = pa.list_(data_type.value_type.storage_type)
    return pa.field(field.name, data_type, metadata=metadata)


def _convert(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for target, array in zip(schema, batch.columns, strict=True):
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        if array.type != target.type:
            try:
                array = pc.cast(array, target.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMappingError(target.name, str(target.type), str(exc)) from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
