"""The extractor contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from etl.config import JobConfig
from etl.formats.rejects import Rejects
from etl.state import SyncState


@dataclass
class ExtractStats:
    """Counters an extraction fills while its batches are consumed."""

    rows_skipped: int = 0
    """Rows read again but already loaded (watermark ties, look-back window, NULL cursors)."""
    files_skipped: int = 0
    """Objects matched but unchanged since the last run."""
    files: list[str] = field(default_factory=list)
    """Objects read in this run, in order."""
    warnings: list[str] = field(default_factory=list)


class Extraction(ABC):
    """One run's read of a source: a stream of batches, then the state it leads to.

    Use as a context manager; `close()` releases connections and file handles.
    """

    def __init__(self) -> None:
        self.stats = ExtractStats()
        self.rejects = Rejects()
        """Rows set aside under `on_bad_rows: quarantine`, complete once `batches()` is done."""

    @abstractmethod
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the rows to load.

        Yields:
            pa.RecordBatch: at most `JobConfig.chunk_size` rows each, columns named as in the
            source (file sources add `_etl_source_file`); timestamps with a zone are UTC.

        Raises:
            SourceUnavailableError: connection lost or timed out (transient).
            SourceQueryError, BadInputError, NullCursorError, SchemaMappingError (terminal).
        """

    @abstractmethod
    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        """Return `state` advanced past everything yielded by run `run_id`.

        Call only after `batches()` is exhausted.
        """

    current_file: str = ""
    """Key of the file being read (file sources), for error messages."""

    estimated_rows: int | None = None
    """Rows this read is expected to yield, from the source's catalog statistics (PostgreSQL
    `pg_class.reltuples`, MySQL `information_schema.TABLES.TABLE_ROWS`) when the run reads a
    whole table; None when unknown. An estimate for progress (% and ETA), never a count."""

    @property
    def replaced_files(self) -> list[str]:
        """Source files whose rows already in the destination must be replaced by this load."""
        return []

    def source_line(self, file: str, row: int) -> int | None:
        """Return the physical line (from 1) where row `row` (from 1, as yielded) of source file
        `file` starts; None when not known (table sources, formats without lines). Called on
        the error path only (a destination naming a staged row)."""
        return None

    def close(self) -> None:  # noqa: B027  optional hook
        """Release resources; safe to call twice."""

    def __enter__(self) -> Extraction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Extractor(ABC):
    """Reads one source described by a `JobConfig`."""

    job_labels: dict[str, str] = {}  # noqa: RUF012  replaced per instance, never mutated
    """Labels for every BigQuery job the extractor runs (set by `etl.pipeline.run`)."""

    native_scans: frozenset[str] = frozenset()
    """File formats the destination reads itself (`Loader.native_scans`, set by
    `etl.pipeline.run`): the file extractor may yield `etl.formats.native.NativeScan`s for
    them instead of record batches. Empty for any other reader (preview, tests)."""

    def __init__(self, job: JobConfig) -> None:
        self.job = job

    @abstractmethod
    def extract(self, state: SyncState) -> Extraction:
        """Plan the read of what is new since `state` (transactional) or everything (catalog).

        Raises:
            SourceUnavailableError: the source cannot be reached (transient).
            SourceQueryError: the table, columns or SQL are rejected (terminal).
        """
