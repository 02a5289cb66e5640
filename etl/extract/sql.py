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
    """Base of the DB-API extractors; subclasses supply the dialect and the type mapping."""

    quote_char = '"'

    @abstractmethod
    def connect(self) -> Any:
        """Open a DB-API connection inside a read-only, repeatable-read snapshot transaction."""

    @abstractmethod
    def stream(self, connection: Any, sql: str, params: Sequence[Any]) -> Any:
        """Execute `sql` on a server-side (unbuffered) cursor and return the cursor."""

    @abstractmethod
    def arrow_schema(self, cursor: Any) -> pa.Schema:
        """Return the Arrow schema of the executed cursor's columns."""

    @abstractmethod
    def to_batch(self, rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
        """Convert fetched rows into one batch of `schema`."""

    def bind(self, value: Any) -> Any:
        """Return a cursor value as the driver binds it (dialects override for time zones)."""
        return value

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
        job = self.job
        if not job.selected_columns:
            return "*"
        needed = list(job.selected_columns)
        for extra in [job.timestamp_column, *job.primary_key]:
            if extra and extra not in needed:
                needed.append(extra)
        return ", ".join(self.quote(name) for name in needed)

    def extract(self, state: SyncState) -> Extraction:
        try:
            connection = self.connect()
        except Exception as exc:
            raise (self.translate_error(exc) or exc) from exc
        try:
            return self._plan(connection, state)
        except Exception as exc:
            connection.close()
            translated = self.translate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    def _plan(self, connection: Any, state: SyncState) -> Extraction:
        job = self.job
        select = f"SELECT {self.column_list()} FROM {self.relation()}"
        if job.load_type == "catalog":
            cursor = self.stream(connection, select, [])
            return SqlExtraction(self, connection, cursor, window=None)
        assert job.timestamp_column is not None
        cursor_sql = self.quote(job.timestamp_column)
        probe = connection.cursor()
        probe.execute(
            f"SELECT MAX({cursor_sql}), COUNT(*) - COUNT({cursor_sql}) FROM {self.relation()}"
        )
        upper, null_count = probe.fetchone()
        probe.close()
        if null_count and job.null_cursor == "fail":
            raise NullCursorError(
                job.source_table_name or "custom_sql", job.timestamp_column, int(null_count)
            )
        lower = state.watermark.minus(job.cursor_lag_seconds) if state.watermark else None
        if lower is None and job.initial_value is not None:
            lower = job.initial_value
        conditions, params = [], []
        if upper is not None:
            conditions.append(f"{cursor_sql} <= %s")
            params.append(self.bind(upper))
            if lower is not None:
                conditions.insert(0, f"{cursor_sql} >= %s")
                params.insert(0, self.bind(lower))
        else:
            conditions.append("1 = 0")
        where = " AND ".join(conditions)
        if job.null_cursor == "include" and null_count:
            where = f"({where}) OR {cursor_sql} IS NULL"
        cursor = self.stream(connection, f"{select} WHERE {where}", params)
        schema = self.arrow_schema(cursor)
        cursor_type = schema.field(job.timestamp_column).type
        upper_value = pa.scalar(upper, type=cursor_type).as_py() if upper is not None else None
        window = CursorWindow(
            state=state,
            cursor_column=job.timestamp_column,
            key_columns=job.primary_key,
            lag=job.cursor_lag_seconds,
            upper=upper_value,
            null_policy=job.null_cursor,
        )
        return SqlExtraction(self, connection, cursor, window=window, schema=schema)


class SqlExtraction(Extraction):
    """Streams an executed server-side cursor as batches; owns the connection."""

    def __init__(
        self,
        extractor: SqlExtractor,
        connection: Any,
        cursor: Any,
        *,
        window: CursorWindow | None,
        schema: pa.Schema | None = None,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.connection = connection
        self.cursor = cursor
        self.window = window
        self.schema = schema or extractor.arrow_schema(cursor)

    def batches(self) -> Iterator[pa.RecordBatch]:
        chunk_size = self.extractor.job.chunk_size
        yielded = False
        try:
            while rows := self.cursor.fetchmany(chunk_size):
                batch = self.extractor.to_batch(rows, self.schema)
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
        if not yielded:
            yield pa.RecordBatch.from_pylist([], schema=self.schema)  # the table gets its columns

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        return self.window.next_state(state) if self.window is not None else state

    def close(self) -> None:
        for resource in (self.cursor, self.connection):
            try:
                resource.close()
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
