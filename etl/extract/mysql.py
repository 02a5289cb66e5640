"""MySQL / MariaDB extractor: rows read straight into Arrow by connectorx (native code).

PyMySQL holds the run's snapshot transaction: it reads the cursor's upper bound and the exact
column metadata (`LIMIT 0` of the query: type code, unsigned flag, binary charset, precision and
scale). connectorx then streams the rows into Arrow record batches over its own connection (the
MySQL binary protocol decoded in Rust), reading natively only the types whose native decoding is
proven exact (integers, floats, YEAR, text, binary, JSON, ENUM, SET) and having the server cast
the others to text (DECIMAL, DATE, DATETIME, TIMESTAMP: connectorx fixes decimals at scale 10 and
fails on zero dates) or to integers (TIME as microseconds, BIT as an unsigned integer). The text
columns are parsed by Arrow casts, so values and warnings are those of the server's own text.

The streamed query is one statement, so it reads a consistent snapshot of its own; its cursor
bounds are inlined as typed literals (connectorx takes no parameters), the upper one read in the
PyMySQL snapshot, so both connections agree on the window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import (
    MissingDependencyError,
    SchemaMappingError,
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
    UnrepresentableValueError,
)
from etl.extract.inflight import (
    MYSQL_CLOCK_ONLY_SQL,
    MYSQL_INFLIGHT_SQL,
    NOT_VISIBLE,
    InflightCap,
)
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor
from etl.schema import JSON_FIELD_METADATA, decimal_type


def _encoders() -> dict[Any, Any]:
    from pymysql.converters import conversions

    return {key: value for key, value in conversions.items() if not isinstance(key, int)}


ENCODERS = _encoders()
"""PyMySQL's conversions without its decoders: parameters are still escaped by Python type."""

INVALID_DATE_WARNING = (
    "column `{column}`: {count} {values} zero/invalid date loaded as NULL "
    "(on_unrepresentable: nearest)"
)
"""The run warning of a column whose zero or invalid dates ('0000-00-00', '2020-02-30') were
loaded as NULL; under `on_unrepresentable: fail` the first one fails the run instead."""

UNSIGNED_FLAG = 32
BINARY_CHARSET = 63

# MySQL protocol column type codes (include/field_types.h)
_TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _NULL, _TIMESTAMP, _LONGLONG, _INT24 = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
)
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


NATIVE_CODES = frozenset(
    {
        _TINY,
        _SHORT,
        _INT24,
        _LONG,
        _LONGLONG,
        _YEAR,
        _FLOAT,
        _DOUBLE,
        _JSON,
        _ENUM,
        _SET,
        *_STRINGS,
        *_BLOBS,
    }
)
"""Type codes connectorx decodes exactly (tests/etl/extract/test_mysql.py proves each one)."""

NATIVE_BATCH_ROWS = 10_000
"""Most rows connectorx puts in one batch (fewer when `chunk_size` is smaller). Measured on TPC-H
lineitem SF 1 into DuckDB (2 cores): 10,000-row batches 20.9 s / 476 MB peak RSS, 100,000-row
batches 26.0 s / 600 MB; extraction alone 164 MB vs 245 MB."""

SESSION_SETUP = ["SET time_zone = '+00:00'"]
"""Run by connectorx on its connection before the query: TIMESTAMP text is UTC."""

TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
"""Server error codes a retry may get past: too many connections, shutdown, lock wait or
deadlock, server gone or lost."""


@register_extractor("mysql")
class MySqlExtractor(SqlExtractor):
    """Extract a MySQL/MariaDB table or custom SQL (`connection_params`: host, port, database,
    user, password, optional `connect_timeout` seconds). The session time zone is UTC, so
    TIMESTAMP columns arrive as UTC instants; DATETIME stays a wall-clock (naive) value.
    Batches hold at most `chunk_size` rows, and at most NATIVE_BATCH_ROWS."""

    quote_char = "`"

    def __init__(self, job: Any) -> None:
        super().__init__(job)
        self.invalid_dates: dict[str, int] = {}
        """Column -> zero or invalid date values read as NULL."""

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
            # values arrive as the server's text and are converted per column by Arrow casts
            # (`to_batch`), not per value in Python: PyMySQL's converters were a quarter of
            # the extraction time
            conv=ENCODERS,
            init_command="SET time_zone = '+00:00'",
        )
        return connection

    def begin_snapshot(self, connection: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def probe_inflight(self, connection: Any) -> InflightCap:
        """Read `INNODB_TRX` and `PROCESSLIST` before the snapshot: the oldest start of a
        read-write InnoDB transaction or of a running statement in another session (`NOW()`
        is a statement's start), and the wall-clock cap in the server's default `time_zone`
        (`DATETIME` columns written by `NOW()` hold that zone's wall clock). Both views need
        the PROCESS privilege: without it the cap is the server's clock alone and the run's
        warnings say so."""
        import pymysql

        try:
            values = self.fetch_one(connection, MYSQL_INFLIGHT_SQL)
        except pymysql.err.OperationalError as exc:
            # 1227: PROCESS not granted; 1109/1054: a server without these views or columns
            if not exc.args or exc.args[0] not in (1227, 1109, 1054):
                raise
            cap_utc, cap_wall = self.fetch_one(connection, MYSQL_CLOCK_ONLY_SQL)
            return InflightCap(
                instant=_as_utc(cap_utc),
                wall=cap_wall,
                warnings=[
                    NOT_VISIBLE.format(
                        count="all",
                        reason="this user lacks the PROCESS privilege: grant it"
                        if exc.args[0] == 1227
                        else f"({exc.args[0]}) {exc.args[1] if len(exc.args) > 1 else ''}",
                    )
                ],
            )
        cap_utc, cap_wall, probed_at, oldest_trx, oldest_statement, holder = values
        starts = [value for value in (oldest_trx, oldest_statement) if value is not None]
        return InflightCap(
            instant=_as_utc(cap_utc),
            wall=cap_wall,
            probed_at=_as_utc(probed_at),
            oldest=_as_utc(min(starts)) if starts else None,
            holder=f"connection {holder}" if holder is not None else "",
        )

    def estimate_rows(self, connection: Any) -> int | None:
        """`information_schema.TABLES.TABLE_ROWS` of the table (InnoDB: an estimate from its
        statistics, MySQL manual "The INFORMATION_SCHEMA TABLES Table")."""
        if self.job.custom_sql or not self.job.source_table_name:
            return None
        *schema, name = self.job.source_table_name.split(".")
        database = _literal(schema[0]) if schema else "DATABASE()"
        (value,) = self.fetch_one(
            connection,
            "SELECT (SELECT TABLE_ROWS FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {database} AND TABLE_NAME = {_literal(name)})",
        )
        return int(value) if value is not None else None

    def fetch_one(self, connection: Any, sql: str) -> tuple[Any, ...]:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            schema = self.arrow_schema(cursor)
            row = cursor.fetchone()
        return tuple(self.to_batch([row], schema).to_pylist()[0].values())

    def placeholder(self, index: int, value: Any) -> str:
        """Return the bound as a typed literal (connectorx takes no parameters): aware
        datetimes as UTC wall clock (the session time zone of both connections is UTC)."""
        return _literal(self.bind(value))

    def stream(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        try:
            import connectorx
        except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
            raise MissingDependencyError("connectorx", "The mysql source") from exc
        # bounds are inlined as literals by `placeholder`: no parameters reach the drivers
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql}) AS _etl_q LIMIT 0")
            schema = self.arrow_schema(cursor)
            codes = [field.type_code for field in cursor._result.fields]
            cursor.fetchall()
        columns, converters = [], []
        for field, code in zip(schema, codes, strict=True):
            expression, converter = self._read_plan(field, code)
            columns.append(f"{expression} AS {self.quote(field.name)}")
            converters.append(converter)
        query = f"SELECT {', '.join(columns)} FROM ({sql}) AS _etl_q"
        try:
            reader = connectorx.read_sql(
                self._url(),
                query,
                return_type="arrow_stream",
                batch_size=min(self.job.chunk_size, NATIVE_BATCH_ROWS),
                pre_execution_query=SESSION_SETUP,
            )
        except Exception as exc:  # noqa: BLE001  connectorx raises plain RuntimeErrors
            raise self._driver_error(exc) from None

        def batches() -> Iterator[pa.RecordBatch]:
            iterator = iter(reader)
            while True:
                try:
                    raw = next(iterator)
                except StopIteration:
                    return
                except BaseException as exc:  # a Rust panic is a BaseException (pyo3)
                    if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
                        raise self._driver_error(exc) from None
                    raise
                arrays = [
                    convert(field, column)
                    for field, column, convert in zip(schema, raw.columns, converters, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

        return schema, batches()

    def _read_plan(
        self, field: pa.Field, code: int
    ) -> tuple[str, Callable[[pa.Field, pa.Array], pa.Array]]:
        """Return the SQL expression connectorx reads for a column and the function that
        turns what it returns into the column's Arrow type."""
        name = self.quote(field.name)
        if code == _NULL:
            return "CAST(NULL AS CHAR)", lambda field, array: pa.nulls(len(array))
        if code == _TIME:  # -838:59:59.999999 .. 838:59:59.999999 as signed microseconds
            return f"CAST(TIME_TO_SEC({name}) * 1000000 AS SIGNED)", self._cast
        if code == _BIT:  # big-endian bits as an unsigned integer
            return f"CAST({name} AS UNSIGNED)", self._cast
        if code in NATIVE_CODES:
            return name, self._cast
        return f"CAST({name} AS CHAR)", self._from_text

    def _cast(self, field: pa.Field, array: pa.Array) -> pa.Array:
        if array.type == field.type:
            return array
        try:
            return pc.cast(array, field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaMappingError(field.name, str(field.type), str(exc)) from exc

    def _from_text(self, field: pa.Field, text: pa.Array) -> pa.Array:
        """Convert server text (DECIMAL, DATE, DATETIME, TIMESTAMP) into the column's type."""
        target = field.type
        try:
            if target == pa.string():
                return text
            if pa.types.is_timestamp(target) or pa.types.is_date(target):
                return self._temporal(field, text)
            return pc.cast(text, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SchemaMappingError(field.name, str(target), str(exc)) from exc

    def _url(self) -> str:
        p = self.job.connection_params
        password = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
        host = f"[{p['host']}]" if ":" in str(p["host"]) else p["host"]  # an IPv6 address
        return (
            f"mysql://{quote(str(p['user']), safe='')}{password}@{host}:"
            f"{int(p.get('port') or 3306)}/{quote(str(p['database']), safe='')}"
        )

    def _driver_error(self, exc: BaseException) -> ConnectorxError:
        """Return connectorx's failure as a ConnectorxError with the first line of its message,
        the password (plain and percent-encoded) replaced by `***`."""
        text = str(exc).strip()
        message = text.splitlines()[0][:500] if text else type(exc).__name__
        password = self.job.connection_params.get("password")
        if password:
            for secret in (self._url(), quote(str(password), safe=""), str(password)):
                message = message.replace(secret, "***")
        return ConnectorxError(message)

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
            elif code == _BIT:  # BIT(M), M <= 64 bits: BIT(64) needs uint64
                arrow_type = pa.uint64() if field.length > 63 else pa.int64()
                metadata = {b"mysql.bit": b"1"}
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
        """Convert PyMySQL rows of server text (bytes for binary-collated columns) into typed
        columns (the snapshot's single-row queries; the table itself streams through `stream`).

        Zero or invalid dates (`0000-00-00`, `2020-02-30`) become NULL and are counted in the
        run's warnings; any other value that does not convert raises SchemaMappingError.
        """
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = [
            self._column(field, values) for field, values in zip(schema, columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _column(self, field: pa.Field, values: Sequence[Any]) -> pa.Array:
        target = field.type
        try:
            if pa.types.is_binary(target):
                return pa.array(values, type=pa.binary())
            if pa.types.is_duration(target):  # TIME: may be negative or beyond 24 h
                return pa.array([_time_value(v) for v in values], type=target)
            if field.metadata and field.metadata.get(b"mysql.bit"):
                return pa.array(
                    [None if v is None else int.from_bytes(v, "big") for v in values], type=target
                )
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
        ) as exc:
            raise SchemaMappingError(field.name, str(target), str(exc)) from exc
        return self._from_text(field, _text_array(values))

    def _temporal(self, field: pa.Field, text: pa.Array) -> pa.Array:
        naive = pa.timestamp("us") if pa.types.is_timestamp(field.type) else pa.date32()
        try:
            values = pc.cast(text, naive, safe=True)
            # Arrow reads year 0 ('0000-12-19'), which MySQL stores but no date of the
            # destinations means (DuckDB reads 1 BC, BigQuery refuses it): such a batch takes
            # the per-value path below, as one holding '0000-00-00' does
            if pc.any(pc.less(pc.year(values), 1)).as_py():
                raise pa.ArrowInvalid("year 0")
        except pa.ArrowInvalid:
            valid = [_valid_date(v) for v in text.to_pylist()]
            invalid = sum(1 for v, ok in zip(text.to_pylist(), valid, strict=True) if v and not ok)
            if invalid and self.job.on_unrepresentable == "fail":
                value = next(
                    v for v, ok in zip(text.to_pylist(), valid, strict=True) if v and not ok
                )
                raise UnrepresentableValueError(
                    self.job.source_table_name or "custom_sql", field.name, value, "date"
                ) from None
            self.invalid_dates[field.name] = self.invalid_dates.get(field.name, 0) + invalid
            values = pc.cast(pc.if_else(pa.array(valid), text, None), naive, safe=True)
        # TIMESTAMP columns are UTC instants (session time_zone '+00:00'), DATETIME wall clock
        return values.cast(field.type) if field.type != naive else values

    def warnings(self) -> list[str]:
        return [
            INVALID_DATE_WARNING.format(
                column=name, count=count, values="value" if count == 1 else "values"
            )
            for name, count in sorted(self.invalid_dates.items())
        ]

    def bind(self, value: Any) -> Any:
        """Bind aware datetimes as naive UTC: the session time zone is UTC."""
        import datetime as dt

        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def translate_error(self, exc: Exception) -> Exception | None:
        import pymysql

        if isinstance(exc, ConnectorxError):
            return self._translate_connectorx(exc)
        if not isinstance(exc, pymysql.Error):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        if code in (1044, 1045, 1142, 1698):  # access denied to user, database or table
            return SourceAuthError(self.source_label, f"({code}) {reason}")
        if isinstance(exc, pymysql.OperationalError) and (
            2000 <= code < 3000 or code in (1205, 1213)
        ):
            return SourceUnavailableError(self.source_label, reason)
        return SourceQueryError(self.source_label, f"({code}) {reason}")

    def _translate_connectorx(self, exc: ConnectorxError) -> Exception:
        message = str(exc)
        match = re.search(r"ERROR (\d+) \(\w+\): (.*?)\s*}?$", message)
        code = int(match.group(1)) if match else 0
        reason = f"({code}) {match.group(2)}" if match else message
        if code in (1044, 1045, 1142, 1698):  # access denied to user, database or table
            return SourceAuthError(self.source_label, reason)
        if code in TRANSIENT_CODES or (not match and _is_network_failure(message)):
            return SourceUnavailableError(self.source_label, reason)
        return SourceQueryError(self.source_label, reason)


class ConnectorxError(RuntimeError):
    """A connectorx failure, its message cut to the first line with the password removed."""


NETWORK_FAILURES = (
    "drivererror",
    "ioerror",
    "connection refused",
    "could not connect",
    "broken pipe",
    "connection reset",
    "unexpected eof",
    "timed out",
    "server has gone away",
    "lost connection",
)
"""connectorx messages (lowercased) of failures a retry may get past."""


def _is_network_failure(message: str) -> bool:
    lowered = message.lower()
    return any(text.lower() in lowered for text in NETWORK_FAILURES)


def _literal(value: Any) -> str:
    """Return a MySQL literal of a cursor bound, typed so it compares with the column:
    `TIMESTAMP'...'` (microseconds kept), `DATE'...'`, integers and decimals as digits, text
    as a hex string in utf8mb4 (no escaping rules, whatever the sql_mode)."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return (
            f"TIMESTAMP'{value.replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')}'"
        )
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    text = str(value).encode()
    return f"_utf8mb4 X'{text.hex()}'" if text else "''"


def _as_utc(value: Any) -> Any:
    """Return a naive UTC wall clock (session `time_zone` '+00:00') as an aware UTC datetime."""
    import datetime as dt

    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _text_array(values: Sequence[Any]) -> pa.Array:
    """Return the column as an Arrow string array without touching each value in Python:
    PyMySQL gives bytes for binary-collated columns (numbers, dates) and str for text."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, bytes):
        return pa.array(values, type=pa.binary()).cast(pa.string())
    return pa.array(values, type=pa.string())


def _text(value: Any) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _time_value(value: Any) -> Any:
    """Parse MySQL TIME text (`-838:59:59.000000` .. `838:59:59`) into a timedelta."""
    import datetime as dt

    text = _text(value)
    if text is None:
        return None
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    return sign * dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def _valid_date(text: str | None) -> bool:
    import datetime as dt

    if not text:
        return False
    try:
        dt.datetime.fromisoformat(text) if " " in text or "T" in text else dt.date.fromisoformat(
            text
        )
    except ValueError:
        return False
    return True
