"""The loader contract, and the load log every loader keeps.

The load log (`<dataset>._etl_loads`: table_name, run_id, committed_at, rows_loaded, state,
pipeline_id) gets one row per committed load, in the same transaction as the rows. It serves
three rules (docs/config.md, "Exactly once and the load log"):

- Roll forward: a run whose process died between the destination commit and the state write is
  found by the next run (`Loader.last_committed`), which adopts its state.
- Fencing: a run plans from the newest entry it read (`Fence.expected_run_id`); its commit
  checks, inside the commit's transaction, that this entry is still the newest, else it rolls
  back with `SupersededError`. A run presumed dead (stalled, reaped) that wakes up after
  another run committed can therefore never commit a second copy.
- Ownership: each entry names the pipeline (data source) that made it. A table whose newest
  entry belongs to another pipeline is refused with `TableOwnedError` before anything is
  written, and its state is never adopted. `<table>__rejected` follows its table. Entries
  written before `pipeline_id` existed (NULL) belong to no one: the next pipeline to load
  claims the table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from etl.config import DestinationConfig, WriteDisposition
from etl.exceptions import SupersededError, TableOwnedError
from etl.state import SyncState

RUN_ID_COLUMN = "_etl_run_id"
LOADED_AT_COLUMN = "_etl_loaded_at"
REJECTED_SUFFIX = "__rejected"
LOAD_LOG_TABLE = "_etl_loads"
"""Destination table recording, per committed load, the run id, the state it leads to and the
pipeline that made it."""


def owned_with(table: str) -> list[str]:
    """Return the tables whose load-log owner must match a load into `table`: the table, its
    `__rejected` table, and the table a `__rejected` table belongs to."""
    names = [table, table + REJECTED_SUFFIX]
    if table.endswith(REJECTED_SUFFIX):
        names.append(table.removesuffix(REJECTED_SUFFIX))
    return names


@dataclass(frozen=True)
class Fence:
    """What a run planned from: its commit succeeds only if the load log still agrees."""

    expected_run_id: str | None
    """Run id of the newest load-log entry of the table when the run planned (None: the log
    had none); the commit raises `SupersededError` when the newest entry is another one."""
    pipeline_id: str
    """The loading pipeline (`JobConfig.owner_id`), recorded in the load-log row; a newer entry
    of another pipeline raises `TableOwnedError`."""


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
    fence: Fence | None = None
    """What the run planned from (`etl.run` always sets it). None: an unfenced load (a loader
    used on its own), which records no pipeline id."""
    allow_widen_to_string: bool = False
    """`JobConfig.allow_widen_to_string`: a column whose type changes in a way no lossless
    widening covers becomes STRING instead of failing the load."""
    column_sources: Callable[[], dict[str, str]] | None = None
    """Destination column name -> source column name (BigQuery column descriptions)."""
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
    pipeline_id: str | None = None
    """The pipeline that committed it; None for entries older than pipeline ids."""


class Loader(ABC):
    """Writes batches into a destination table atomically, with the state in the same commit."""

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    @abstractmethod
    def last_committed(self, table: str, pipeline_id: str | None = None) -> CommittedLoad | None:
        """Return the newest load committed into `table` (run id, state, pipeline), or None.

        Args:
            table: destination table name.
            pipeline_id: the asking pipeline; None skips the ownership check.

        Raises:
            TableOwnedError: the newest entry of `table` (or of its `__rejected` table, or of
                the table it is the `__rejected` table of) belongs to another pipeline; its
                state is not returned.
        """

    @abstractmethod
    def load(self, request: LoadRequest) -> LoadResult:
        """Load `request.batches` into `request.table`, all or nothing.

        `append` adds rows; `replace` swaps in a new table atomically (readers see the old table
        or the new one). New columns are added; a safe widening widens the destination column.
        Every row gets `_etl_run_id` and `_etl_loaded_at` (UTC). The state returned by
        `request.finalize()` is recorded in the load log in the same transaction. With
        `request.fence`, that transaction first checks that the newest load-log entry of the
        table is still `fence.expected_run_id`.

        Raises:
            SupersededError: another run committed into the table since the fence's entry;
                nothing was kept (terminal).
            TableOwnedError: another pipeline committed into the table (terminal).
            SchemaChangeError: an incoming column type narrows or conflicts (terminal).
            DestinationError: the destination rejected the rows (terminal).
            TransientError subclasses: the destination is unreachable or busy.
        """

    def close(self) -> None:  # noqa: B027  optional hook
        """Release connections."""


def check_owner(table: str, pipeline_id: str | None, owners: dict[str, str | None]) -> None:
    """Refuse a load into `table` by `pipeline_id` when another pipeline owns it.

    Args:
        table: the destination table.
        pipeline_id: the loading pipeline; None checks nothing.
        owners: table name -> pipeline id of its newest load-log entry (None: a legacy entry),
            for the names of `owned_with(table)` that have entries.

    Raises:
        TableOwnedError: names `table` and the owning pipeline.
    """
    if pipeline_id is None:
        return
    for name in owned_with(table):
        owner = owners.get(name)
        if owner is not None and owner != pipeline_id:
            raise TableOwnedError(table, owner, pipeline_id)


def check_fence(
    table: str, fence: Fence, found_run_id: str | None, found_pipeline_id: str | None
) -> None:
    """Refuse a commit whose plan is stale: the newest load-log entry of `table`, read inside
    the commit's transaction (`found_*`; None when there is none), must be the fence's.

    Raises:
        TableOwnedError: the newest entry was made by another pipeline.
        SupersededError: it was made by another run of this pipeline.
    """
    if found_run_id == fence.expected_run_id:
        return
    if found_pipeline_id is not None and found_pipeline_id != fence.pipeline_id:
        raise TableOwnedError(table, found_pipeline_id, fence.pipeline_id)
    raise SupersededError(table, fence.expected_run_id, found_run_id)
