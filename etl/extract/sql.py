"""Shared logic of the SQL table extractors (PostgreSQL, MySQL).

A transactional run first reads which transactions are open on the source (the in-flight cap,
etl/extract/inflight.py), then opens one read-only transaction with a consistent snapshot,
reads the upper bound of the cursor (below the cap) and the NULL count in it, and streams the
window through a server-side cursor into `pyarrow.RecordBatch`es, so memory stays bounded by
`chunk_size` whatever the table size.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from etl.extract.base import Extraction, Extractor
from etl.extract.inflight import WALL_UNKNOWN, InflightCap
from etl.extract.keys import check_spec_columns
from etl.extract.sql_extraction import SqlExtraction, close_quietly
from etl.extract.window_plan import WindowPlan, plan_window, refuse_null_cursor
from etl.state import SyncState


@dataclass(frozen=True)
class WindowBounds:
    """The window a transactional/merge run reads, fixed once in the run's snapshot."""

    upper: Any
    """Largest cursor value to read (inclusive; Python value), below the in-flight cap; None
    when the source holds no row with a cursor value."""
    null_count: int = 0
    """Rows whose cursor is NULL (read under `null_cursor: include`)."""
    notes: list[str] = field(default_factory=list)
    """Warnings of the plan (in-flight cap), reported with the run's."""


@dataclass(frozen=True)
class ChunkRead:
    """One chunk of a parallel run (etl/parallel/): the window the coordinator fixed, the
    chunk's key range and the snapshot to read in."""

    window: WindowBounds | None
    """The run's window as the coordinator read it; None for a catalog (snapshot) read."""
    where: str | None = None
    """A predicate in the source's SQL dialect (bounds inlined as literals) ANDed to the read:
    the chunk's key range; None reads the whole window."""
    snapshot: str | None = None
    """PostgreSQL: the id `pg_export_snapshot()` returned in the coordinator's transaction,
    imported with `SET TRANSACTION SNAPSHOT`; None elsewhere (MySQL has no shareable snapshot)."""


class SqlExtractor(Extractor):
    """Base of the SQL extractors; subclasses supply the driver, dialect and type mapping."""

    quote_char = '"'
    snapshot_id: str | None = None
    """Exported snapshot `begin_snapshot` imports (PostgreSQL), set from `ChunkRead.snapshot`."""

    @abstractmethod
    def connect(self) -> Any:
        """Open a connection; no snapshot is taken before `begin_snapshot`."""

    @abstractmethod
    def begin_snapshot(self, connection: Any) -> None:
        """Start the read-only, repeatable-read transaction whose snapshot the run reads."""

    @abstractmethod
    def probe_inflight(self, connection: Any) -> InflightCap:
        """Read, before the snapshot, the server's clock and the start of the oldest
        transaction open in other sessions (etl/extract/inflight.py). A view the connection
        may not read gives a cap from the clock alone and a warning, never an error."""

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

    def estimate_rows(self, connection: Any) -> int | None:
        """Return the catalog's row estimate of `source_table_name` (no scan), or None when
        the dialect has none, the job reads custom SQL, or the table was never analysed."""
        return None

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

    def extract(self, state: SyncState, *, chunk: ChunkRead | None = None) -> Extraction:
        """Plan the run: a transactional run reads the window `lower <= cursor <= upper` where
        `upper` is the largest cursor value of the snapshot below the in-flight cap
        (etl/extract/inflight.py: rows a transaction still open may yet precede wait for the
        next run) and `lower` comes from `state` (etl/extract/incremental.py).

        With `chunk` (a parallel run's chunk, etl/parallel/), no probe is made and no bound is
        read: the window is the coordinator's, the read is narrowed by `chunk.where` and runs
        in `chunk.snapshot` when given.

        Raises:
            SourceUnavailableError: the source cannot be reached (transient).
            SourceQueryError, SourceAuthError: the query or the credentials are rejected.
            NullCursorError: NULL cursor values under `null_cursor: fail`.
            IncrementalSettingsError: the state cannot be matched with the current settings
                (another cursor column, a key column gone).
        """
        try:
            connection = self.connect()
        except Exception as exc:
            raise (self.translate_error(exc) or exc) from exc
        try:
            cap = None
            if chunk is not None:
                self.snapshot_id = chunk.snapshot
            elif self.job.load_type != "catalog":  # transactional and merge read a window
                cap = self.probe_inflight(connection)
            self.begin_snapshot(connection)
            if chunk is not None:
                return self._plan(connection, state, None, chunk)
            return self._plan(connection, state, cap)
        except Exception as exc:
            close_quietly(connection)
            translated = self.translate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    def window_bounds(self, connection: Any, cap: InflightCap) -> WindowBounds:
        """Read, in the run's snapshot, the largest cursor value below the in-flight `cap` and
        the rows with a NULL cursor (a transactional or merge run's window).

        Raises:
            NullCursorError: NULL cursor values under `null_cursor: fail`.
        """
        job = self.job
        assert job.timestamp_column is not None
        cursor_sql = self.quote(job.timestamp_column)
        upper, null_count = self.fetch_one(connection, self._bounds_sql(cursor_sql))
        refuse_null_cursor(job, null_count)
        notes = list(cap.warnings)
        bound = cap.bound_for(upper) if upper is not None else None
        if bound is None and isinstance(upper, dt.datetime):
            notes.append(WALL_UNKNOWN.format(cursor=job.timestamp_column))
        if bound is not None and upper >= bound:
            # rows a transaction still open may yet precede are left for the next run
            (upper,) = self.fetch_one(
                connection,
                f"SELECT MAX({cursor_sql}) FROM {self.relation()} "
                f"WHERE {cursor_sql} < {self.placeholder(1, bound)}",
            )
            held = cap.held_back(job.timestamp_column, bound)
            if held:
                notes.append(held)
        return WindowBounds(upper=upper, null_count=int(null_count or 0), notes=notes)

    def _plan(
        self,
        connection: Any,
        state: SyncState,
        cap: InflightCap | None,
        chunk: ChunkRead | None = None,
    ) -> Extraction:
        job = self.job
        select = f"SELECT {self.column_list()} FROM {self.relation()}"
        narrow = f" WHERE {chunk.where}" if chunk is not None and chunk.where else ""
        if job.load_type == "catalog":
            # before the stream holds the connection
            estimate = self.estimate_rows(connection) if chunk is None else None
            schema, batches = self.stream(connection, select + narrow, [])
            extraction = SqlExtraction(self, connection, schema, batches, window=None)
            extraction.estimated_rows = estimate
            return extraction
        assert job.timestamp_column is not None
        cursor_sql = self.quote(job.timestamp_column)
        if chunk is not None and chunk.window is not None:
            bounds = chunk.window
        else:
            assert cap is not None
            bounds = self.window_bounds(connection, cap)
        upper, null_count, notes = bounds.upper, bounds.null_count, list(bounds.notes)
        plan = plan_window(job, state, upper=upper, null_count=null_count)
        params: list[Any] = []

        def render(value: Any) -> str:
            params.append(self.bind(value))
            return self.placeholder(len(params), value)

        where = plan.where(cursor_sql, render, "1 = 0")
        if chunk is not None and chunk.where:
            where = f"({where}) AND ({chunk.where})"
        extras = self._key_columns_to_add(connection, plan)
        if extras:
            columns = ", ".join(self.quote(name) for name in [*job.source_columns, *extras])
            select = f"SELECT {columns} FROM {self.relation()}"
        first_read = state.watermark is None and job.initial_value is None and chunk is None
        estimate = self.estimate_rows(connection) if first_read else None
        schema, batches = self.stream(connection, f"{select} WHERE {where}", params)
        output = plan.bind(schema, extras)
        window = plan.window
        extraction = SqlExtraction(self, connection, output, batches, window=window)
        extraction.notes = notes
        extraction.estimated_rows = estimate
        return extraction

    def _bounds_sql(self, cursor_sql: str) -> str:
        """Return the query of the cursor's largest value and its NULL count. On a table both
        are answered from an index on the cursor (MAX from its last entry; PostgreSQL and
        InnoDB index NULLs, so `IS NULL` is an index lookup): `COUNT(*) - COUNT(cursor)` would
        scan the whole table on every run (1.2 s on PostgreSQL, 3.5 s on MariaDB for TPC-H
        lineitem SF 1). Custom SQL is read once, both figures in one pass."""
        relation = self.relation()
        if self.job.custom_sql:
            return f"SELECT MAX({cursor_sql}), COUNT(*) - COUNT({cursor_sql}) FROM {relation}"
        return (
            f"SELECT (SELECT MAX({cursor_sql}) FROM {relation}), "
            f"(SELECT COUNT(*) FROM {relation} WHERE {cursor_sql} IS NULL)"
        )

    def _key_columns_to_add(self, connection: Any, plan: WindowPlan) -> list[str]:
        """Return the columns the stored boundary keys were computed from that `selected_columns`
        leaves out: they are read too, to match the keys, and dropped before loading.

        Raises:
            IncrementalSettingsError: such a column no longer exists in the source.
        """
        extras = plan.extra_columns(self.job.source_columns)
        if extras:
            assert plan.window.old_spec is not None
            schema, batches = self.stream(
                connection, f"SELECT * FROM {self.relation()} WHERE 1 = 0", []
            )
            for _ in batches:
                pass
            check_spec_columns(plan.window.old_spec, schema.names)
        return extras
