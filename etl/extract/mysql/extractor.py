"""MySQL / MariaDB extractor: rows read straight into Arrow by connectorx (native code).

PyMySQL holds the run's snapshot transaction: it reads the cursor's upper bound and the exact
column metadata (`LIMIT 0` of the query: type code, unsigned flag, binary charset, precision and
scale). connectorx then streams the rows into Arrow record batches over its own connection (the
MySQL binary protocol decoded in Rust), reading natively only the types whose native decoding is
proven exact (integers, floats, YEAR, text, binary, JSON, ENUM, SET) and having the server cast
the others to text (DECIMAL, DATE, DATETIME, TIMESTAMP: connectorx fixes decimals at scale 10 and
fails on zero dates) or to integers (TIME as microseconds, BIT as an unsigned integer, DECIMAL(p, s)
up to 18 digits as the integer value * 10^s). The text
columns are parsed by Arrow casts, so values and warnings are those of the server's own text.
connectorx's batches are taken off its unbounded channel as they come, the backlog a slow
destination leaves spilled to disk (etl/extract/mysql/drain.py), so memory stays bounded.

The streamed query is one statement, so it reads a consistent snapshot of its own; its cursor
bounds are inlined as typed literals (connectorx takes no parameters), the upper one read in the
PyMySQL snapshot, so both connections agree on the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from etl.exceptions import (
    MissingDependencyError,
)
from etl.extract.inflight import (
    MYSQL_CLOCK_ONLY_SQL,
    MYSQL_INFLIGHT_SQL,
    NOT_VISIBLE,
    InflightCap,
)
from etl.extract.mysql.decode import DecodeMixin
from etl.extract.mysql.drain import drained
from etl.extract.mysql.errors import (
    ErrorsMixin,
)
from etl.extract.mysql.types import (
    ENCODERS,
    INVALID_DATE_WARNING,
    NATIVE_BATCH_ROWS,
    NATIVE_CODES,
    SESSION_SETUP,
    T_BIT,
    T_DECIMAL,
    T_NEWDECIMAL,
    T_NULL,
    T_TIME,
    as_utc,
    sql_literal,
)
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor
from etl.schema import SCALED_MAX_PRECISION


@register_extractor("mysql")
class MySqlExtractor(DecodeMixin, ErrorsMixin, SqlExtractor):
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
                instant=as_utc(cap_utc),
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
            instant=as_utc(cap_utc),
            wall=cap_wall,
            probed_at=as_utc(probed_at),
            oldest=as_utc(min(starts)) if starts else None,
            holder=f"connection {holder}" if holder is not None else "",
        )

    def estimate_rows(self, connection: Any) -> int | None:
        """`information_schema.TABLES.TABLE_ROWS` of the table (InnoDB: an estimate from its
        statistics, MySQL manual "The INFORMATION_SCHEMA TABLES Table")."""
        if self.job.custom_sql or not self.job.source_table_name:
            return None
        *schema, name = self.job.source_table_name.split(".")
        database = sql_literal(schema[0]) if schema else "DATABASE()"
        (value,) = self.fetch_one(
            connection,
            "SELECT (SELECT TABLE_ROWS FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {database} AND TABLE_NAME = {sql_literal(name)})",
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
        return sql_literal(self.bind(value))

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

        def translate(exc: BaseException) -> BaseException | None:
            # a Rust panic is a BaseException (pyo3)
            if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
                return self._driver_error(exc)
            return None

        def batches() -> Iterator[pa.RecordBatch]:
            # taken off connectorx's unbounded channel as they come (etl/extract/mysql/drain.py)
            iterator = drained(reader, translate)
            try:
                for raw in iterator:
                    arrays = [
                        convert(field, column)
                        for field, column, convert in zip(
                            schema, raw.columns, converters, strict=True
                        )
                    ]
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema)
            finally:
                iterator.close()

        return schema, batches()

    def _read_plan(
        self, field: pa.Field, code: int
    ) -> tuple[str, Callable[[pa.Field, pa.Array], pa.Array]]:
        """Return the SQL expression connectorx reads for a column and the function that
        turns what it returns into the column's Arrow type."""
        name = self.quote(field.name)
        if code == T_NULL:
            return "CAST(NULL AS CHAR)", lambda field, array: pa.nulls(len(array))
        if code == T_TIME:  # -838:59:59.999999 .. 838:59:59.999999 as signed microseconds
            return f"CAST(TIME_TO_SEC({name}) * 1000000 AS SIGNED)", self._cast
        if code == T_BIT:  # big-endian bits as an unsigned integer
            return f"CAST({name} AS UNSIGNED)", self._cast
        if code in NATIVE_CODES:
            return name, self._cast
        if (
            code in (T_DECIMAL, T_NEWDECIMAL)
            and pa.types.is_decimal128(field.type)
            and field.type.precision <= SCALED_MAX_PRECISION
        ):  # DECIMAL(p, s), p <= 18: value * 10^s as BIGINT, exact (no text to parse)
            factor = f" * 1{'0' * field.type.scale}" if field.type.scale else ""
            return f"CAST({name}{factor} AS SIGNED)", self._unscale
        return f"CAST({name} AS CHAR)", self._from_text

    def _url(self) -> str:
        p = self.job.connection_params
        password = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
        host = f"[{p['host']}]" if ":" in str(p["host"]) else p["host"]  # an IPv6 address
        return (
            f"mysql://{quote(str(p['user']), safe='')}{password}@{host}:"
            f"{int(p.get('port') or 3306)}/{quote(str(p['database']), safe='')}"
        )

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
