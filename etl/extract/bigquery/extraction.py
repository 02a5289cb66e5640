"""The rows of one planned BigQuery read: a Storage Read API session or, as the fallback, the
REST API's result pages of a query (etl/extract/bigquery/__init__.py), filtered by the window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import structlog

from etl.bigquery_client import translate
from etl.config import JobConfig
from etl.exceptions import EtlError
from etl.extract.base import Extraction
from etl.extract.bigquery.storage_read import StorageRead, conform, stream_count
from etl.extract.window_plan import WindowPlan
from etl.state import SyncState

logger = structlog.get_logger(__name__)

STORAGE_READ = "storage_read"
REST_PAGES = "rest_pages"
READ_FALLBACK = (
    "BigQuery source {what}: the Storage Read API was not used ({reason}); the rows were read "
    "through the REST API's result pages instead, which is much slower. Grant "
    "`bigquery.readsessions.create` (role BigQuery Read Session User) on the project, or set "
    "`connection_params.storage_api_endpoint` with a custom `api_endpoint`."
)
"""The run's warning when the REST fallback was used (docs/config.md, "BigQuery source")."""


def _refused(exc: Exception) -> bool:
    """Whether a Storage Read API error means "read another way" rather than "fail the run":
    permission denied, not found (a destination table it cannot see), invalid argument,
    failed precondition, not implemented."""
    from google.api_core import exceptions as api

    return isinstance(
        exc,
        (api.Forbidden, api.NotFound, api.BadRequest, api.FailedPrecondition,
         api.MethodNotImplemented),
    )  # fmt: skip


class BigQueryExtraction(Extraction):
    """The rows of one planned read, as batches of at most `chunk_size` rows (streams
    interleaved, no order), filtered by the incremental window."""

    def __init__(self, job: JobConfig, what: str, client: Any) -> None:
        super().__init__()
        self.job, self.what, self.client = job, what, client
        """The job, the source's name in messages, and its BigQuery (REST) client."""
        self.reader: Any = None
        """`BigQueryReadClient`, or None when the Storage Read API is not used."""
        self.plan: WindowPlan | None = None
        self.extras: list[str] = []
        """Columns read only to match the stored keys; dropped before loading."""
        self.schema: pa.Schema | None = None
        """Columns yielded (None: the REST pages' own, unknown before the first page)."""
        self.method = ""
        """`storage_read` or `rest_pages`: how the rows are read (logged with the stream count)."""
        self.streams = 0
        self._source: Iterator[pa.RecordBatch] = iter(())
        self._notes: list[str] = []

    def fallback(self, reason: str) -> None:
        """Record, once, that the REST pages are read instead of the Storage Read API."""
        logger.warning("extract.bigquery.storage_read_not_used", source=self.what,
                       reason=reason)  # fmt: skip
        if not self._notes:
            self._notes.append(READ_FALLBACK.format(what=self.what, reason=reason))

    def _bind(self, schema: pa.Schema) -> None:
        self.schema = schema if self.plan is None else self.plan.bind(schema, self.extras)

    def open_storage(
        self,
        table: str,
        mapped: tuple[pa.Schema, list[str], set[str]],
        columns: list[str],
        restriction: str,
        *,
        estimate: int | None,
        table_bytes: int | None,
    ) -> bool:
        """Open a read session on `table` (of `table_bytes` bytes, None when unknown: it sets
        the streams, `stream_count`); False (and a fallback note) when it is refused."""
        schema, names, repeated = mapped
        try:
            read = StorageRead(
                self.reader,
                billing_project=self.job.connection_params["project"],
                table=table,
                selected_fields=names if columns else [],
                row_restriction=restriction,
                convert=lambda page: conform(page, schema, names, repeated),
                max_streams=stream_count(table_bytes),
            )
        except Exception as exc:
            if not _refused(exc):
                raise
            self.fallback(f"read session on {table} refused: {str(exc)[:300]}")
            return False
        self._bind(schema)
        self.method, self.streams, self._source = STORAGE_READ, read.streams, read.batches()
        if self.job.load_type == "catalog" or self.plan and self.plan.lower is None:
            self.estimated_rows = estimate
        logger.info("extract.bigquery.read", source=self.what, method=self.method,
                    streams=self.streams, row_restriction=bool(restriction))  # fmt: skip
        return True

    def open_rest(self, rows: Any, schema: pa.Schema | None) -> None:
        """Read the REST API's result pages of a finished query (the documented fallback)."""
        if schema is not None:
            self._bind(schema)
        self.method, self.streams, self._source = REST_PAGES, 0, rows.to_arrow_iterable()
        logger.info("extract.bigquery.read", source=self.what, method=self.method,
                    streams=0, row_restriction=False)  # fmt: skip

    def batches(self) -> Iterator[pa.RecordBatch]:
        job = self.job
        window = self.plan.window if self.plan is not None else None
        yielded = False
        try:
            for raw in self._source:
                if self.schema is None:
                    self._bind(raw.schema)
                for offset in range(0, raw.num_rows, job.chunk_size):
                    batch = raw.slice(offset, job.chunk_size)
                    if window is not None:
                        batch = window.filter(batch)
                        if self.extras:
                            assert self.schema is not None  # bound on the first page
                            batch = batch.select(self.schema.names)
                    if batch.num_rows:
                        yielded = True
                        yield batch
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001  every API error is translated
            raise translate(exc, self.what, source=True) from exc
        if window is not None:
            self.stats.rows_skipped = window.rows_skipped
        self.stats.warnings.extend(self._notes)
        if not yielded and self.schema is not None:
            yield pa.RecordBatch.from_pylist([], schema=self.schema)  # the table gets its columns

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        if self.plan is None:
            return state
        return self.plan.window.next_state(state, self.schema.names if self.schema else ())

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()  # stops the reader threads of a read left unfinished
        if self.reader is not None:
            self.reader.transport.close()
            self.reader = None
        self.client.close()
