"""The read of a SQL table extractor (etl/extract/sql.py) once planned: its stream of typed
batches, re-chunked and filtered to the rows not loaded before, and the connection it owns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa

from etl.config import JobConfig
from etl.extract.base import Extraction
from etl.extract.incremental import CursorWindow
from etl.extract.prefetch import prefetch
from etl.formats.base import empty_batch
from etl.state import SyncState


class StreamSource(Protocol):
    """What a `SqlExtraction` uses of its extractor (a `SqlExtractor`)."""

    job: JobConfig

    def translate_error(self, exc: Exception) -> Exception | None: ...

    def warnings(self) -> list[str]: ...


class SqlExtraction(Extraction):
    """Re-chunks a stream of typed batches to `chunk_size` rows; owns the connection. The
    stream is decoded a few batches ahead in a thread of its own (`etl.extract.prefetch`)."""

    def __init__(
        self,
        extractor: StreamSource,
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
        """Columns yielded: those of the job (any read only to match old keys are dropped)."""
        self.stream = stream
        self.window = window
        self.notes: list[str] = []
        """Warnings of the plan (in-flight cap), reported with the run's."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        chunk_size = self.extractor.job.chunk_size
        yielded = False
        try:
            for raw in prefetch(self.stream):
                for offset in range(0, raw.num_rows, chunk_size):
                    batch = raw.slice(offset, chunk_size)
                    if self.window is not None:
                        batch = self.window.filter(batch)
                        if batch.num_columns != len(self.schema):
                            batch = batch.select(self.schema.names)
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
        self.stats.warnings.extend([*self.notes, *self.extractor.warnings()])
        if not yielded:
            yield empty_batch(self.schema)  # the table gets its columns

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        if self.window is None:
            return state
        return self.window.next_state(state, self.schema.names)

    def close(self) -> None:
        close_quietly(self.connection)


def close_quietly(connection: Any) -> None:
    """Close `connection`, ignoring the error of a connection already broken."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001  closing a broken connection must not mask the error
        pass
