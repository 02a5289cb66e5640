"""Shared logic of the SQL table extractors (PostgreSQL, MySQL).

A run opens one read-only transaction with a consistent snapshot, reads the upper bound of the
cursor (and the NULL count) in it, then streams the window through a server-side cursor into
`pyarrow.RecordBatch`es, so memory stays bounded by `chunk_size` whatever the table size.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from etl.config import JobConfig
from etl.exceptions import NullCursorError
from etl.extract.base import Extraction, Extractor
from etl.extract.incremental import CursorWindow
from etl.state import SyncState


class SqlExtractor(Extractor):
    """Base of the SQL extractors; subclasses supply the driver, dialect and type mapping."""

    quote_char = '"'

    @abstractmethod
    def connect(self) -> Any:
        """Open a connection inside a read-only, repeatable-read snapshot transaction."""

    @abstractmethod
    def fetch_one(self, connection: Any, sql: str) -> tuple[Any, ...]:
        """Run `sql` in the snapshot and return its single row as Python values."""

    @abstractmethod
    def stream(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Run `sql` unbuffered; return the Arrow schema and an iterator of typed batches."""

    @abstractmethod
    def placeholder(self, index: int, value: Any) -> str:
        """Return the SQL text that binds parameter number `index` (from 1) holding `value`."""

    def bind(self, value: Any) -> Any:
        """Return a cursor value as the driver binds it (dialects override for time zones)."""
        return value

    def warnings(self) -> list[str]:
        """Return what the read changed and the run should report (e.g. invalid dates)."""
        return []

    @abstractmethod
    def translate_error(self, exc: Exception) -> Exception | None:
        """Return the engine error for a driver exception, or None if it is not a driver error."""

    @property
    def source_label(self) -> str:
        """`type://user@host:port/database`: names the source in messages, never the password."""
        p = self.job.connection_params
        return (
            f"{self.job.source_type}://{p.get('user')}@{p.get('host')}:{p.get('port', '')}"
            f"/{p.get('database')}"
        )

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def relation(self) -> str:
        """Return the FROM clause: the quoted table or the custom SQL as a derived table."""
        if self.job.custom_sql:
            return f"({self.job.custom_sql.strip().rstrip(';')}) AS _etl_src"
        assert self.job.source_table_name is not None
        return ".".join(self.quote(part) for part in self.job.source_table_name.split("."))

    def column_list(self) -> str:
        return ", ".join(self.quote(name) for name in self.job.source_columns) or "*"

    def extract(self, state: SyncState) -> Extraction:
        try:
            connection = self.connect()
        except Exception as exc:
            raise (self.translate_error(exc) or exc) from exc
        try:
            return self._plan(connection, state)
        except Exception as exc:
            _close(connection)
            translated = self.translate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    def _plan(self, connection: Any, state: SyncState) -> Extraction:
        job = self.job
        select = f"SELECT {self.column_list()} FROM {self.relation()}"
        if job.load_type == "catalog":
            schema, batches = self.stream(connection, select, [])
            return SqlExtraction(self, connection, schema, batches, window=None)
        assert job.timestamp_column is not None
        cursor_sql = self.quote(job.timestamp_column)
        upper, null_count = self.fetch_one(
            connection,
            f"SELECT MAX({cursor_sql}), COUNT(*) - COUNT({cursor_sql}) FROM {self.relation()}",
        )
        if null_count and job.null_cursor == "fail":
            raise NullCursorError(
                job.source_table_name or "custom_sql", job.timestamp_column, int(null_count)
            )
        lower = state.watermark.minus(job.cursor_lag_seconds) if state.watermark else None
        if lower is None and job.initial_value is not None:
            lower = job.initial_value
        params: list[Any] = []
        if upper is None:
            where = "1 = 0"
        else:
            bounds = [(">=", lower)] if lower is not None else []
            conditions = []
            for operator, value in [*bounds, ("<=", upper)]:
                params.append(self.bind(value))
                conditions.append(f"{cursor_sql} {operator} {self.placeholder(len(params), value)}")
            where = " AND ".join(conditions)
        if job.null_cursor == "include" and null_count:
            where = f"({where}) OR {cursor_sql} IS NULL"
        schema, batches = self.stream(connection, f"{select} WHERE {where}", params)
        cursor_type = schema.field(job.timestamp_column).type
        upper_value = pa.scalar(upper, type=cursor_type).as_py() if upper is not None else None
        window = CursorWindow(
            state=state,
            cursor_column=job.timestamp_column,
            key_columns=job.window_key_columns,
            lag=job.cursor_lag_seconds,
            upper=upper_value,
            null_policy=job.null_cursor,
        )
        return SqlExtraction(self, connection, schema, batches, window=window)


class SqlExtraction(Extraction):
    """Re-chunks a stream of typed batches to `chunk_size` rows; owns the connection."""

    def __init__(
        self,
        extractor: SqlExtractor,
        connection: Any,
        schema: pa.Schema,
        stream: Iterator[pa.RecordBatch],
        *,
        window: CursorWindow | None,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.connection = connection
        self.schema = schema
        self.stream = stream
        self.window = window

    def batches(self) -> Iterator[pa.RecordBatch]:
        chunk_size = self.extractor.job.chunk_size
        yielded = False
        try:
            for raw in self.stream:
                for offset in range(0, raw.num_rows, chunk_size):
                    batch = raw.slice(offset, chunk_size)
                    if self.window is not None:
                        batch = self.window.filter(batch)
                    if batch.num_rows:
                        yielded = True
                        yield batch
        except Exception as exc:
            translated = self.extractor.translate_error(exc)
            if translated is None:
                raise
            raise translated from exc
        if self.window is not None:
            self.stats.rows_skipped = self.window.rows_skipped
        self.stats.warnings.extend(self.extractor.warnings())
        if not yielded:
            yield pa.RecordBatch.from_pylist([], schema=self.schema)  # the table gets its columns

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        return self.window.next_state(state) if self.window is not None else state

    def close(self) -> None:
        _close(self.connection)


def _close(connection: Any) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001  closing a broken connection must not mask the error
        pass


def build_sqlalchemy_url(job: JobConfig, drivername: str) -> Any:
    """Return a SQLAlchemy `URL` for a postgresql/mysql `connection_params` mapping."""
    from sqlalchemy.engine import URL

    p = job.connection_params
    return URL.create(
        drivername,
        username=p.get("user"),
        password=p.get("password") or None,
        host=p.get("host"),
        port=int(p["port"]) if p.get("port") else None,
        database=p.get("database"),
    )
