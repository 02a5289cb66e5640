"""The loader contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from etl.config import DestinationConfig, WriteDisposition
from etl.state import SyncState

RUN_ID_COLUMN = "_etl_run_id"
LOADED_AT_COLUMN = "_etl_loaded_at"
REJECTED_SUFFIX = "__rejected"
LOAD_LOG_TABLE = "_etl_loads"
"""Destination table recording, per committed load, the run id and the state it leads to."""


@dataclass
class LoadRequest:
    """One load of a stream into one destination table."""

    table: str
    """Destination table name (in the destination's dataset)."""
    batches: Iterator[pa.RecordBatch]
    """Transformed batches (destination column names)."""
    write_disposition: WriteDisposition
    run_id: str
    finalize: Callable[[], SyncState]
    """Called after the last batch, before commit; returns the state committed with the data."""
    replace_files: list[str] = field(default_factory=list)
    """Source files whose earlier rows (by `_etl_source_file`) are deleted in the same commit,
    and their earlier rejects in `<table>__rejected` (by `file`) with them."""
    on_batch: Callable[[int], None] | None = None
    """Progress callback, called with the rows of each batch loaded (not yet committed)."""
    rejected_rows: Callable[[], pa.Table] | None = None
    """`on_bad_rows: quarantine`: called after `finalize()`; its rows (`REJECTED_SCHEMA`) are
    appended to `<table>__rejected` (with `_etl_run_id`, `_etl_loaded_at`) in the same commit."""
    allow_widen_to_string: bool = False
    """`JobConfig.allow_widen_to_string`: a column whose type changes in a way no lossless
    widening covers becomes STRING instead of failing the load."""
    fault_hook: Callable[[str], None] | None = None
    """Test-only phase callback (`etl.pipeline.FaultHook`); loaders call it with `catalog.swap`
    between a snapshot's swap and the load-log write when those are separate steps."""


@dataclass
class LoadResult:
    rows_loaded: int
    schema: list[dict[str, str]]
    """Destination columns `{"name", "type"}` after the load (destination type names)."""


@dataclass(frozen=True)
class CommittedLoad:
    run_id: str
    state: SyncState


class Loader(ABC):
    """Writes batches into a destination table atomically, with the state in the same commit."""

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    @abstractmethod
    def last_committed(self, table: str) -> CommittedLoad | None:
        """Return the last load committed into `table` (run id and state), or None."""

    @abstractmethod
    def load(self, request: LoadRequest) -> LoadResult:
        """Load `request.batches` into `request.table`, all or nothing.

        `append` adds rows; `replace` swaps in a new table atomically (readers see the old table
        or the new one). New columns are added; a safe widening widens the destination column.
        Every row gets `_etl_run_id` and `_etl_loaded_at` (UTC). The state returned by
        `request.finalize()` is recorded in the load log in the same transaction.

        Raises:
            SchemaChangeError: an incoming column type narrows or conflicts (terminal).
            DestinationError: the destination rejected the rows (terminal).
            TransientError subclasses: the destination is unreachable or busy.
        """

    def close(self) -> None:  # noqa: B027  optional hook
        """Release connections."""
