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

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

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


LABEL_RUN_ID = "etl_run_id"
LABEL_LOAD_TYPE = "etl_load_type"
LABEL_PIPELINE = "etl_pipeline"
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]")


def job_labels(run_id: str, load_type: str, pipeline_id: str | None = None) -> dict[str, str]:
    """Return the labels put on every BigQuery job of a run (load, query, copy).

    `{"etl_run_id": run_id, "etl_load_type": load_type}` plus `"etl_pipeline": pipeline_id`
    (the control plane's data source id) when known. Values are made valid labels: lower
    case, every character other than a letter, digit, `_` or `-` replaced by `_`, at most 63
    characters (https://cloud.google.com/bigquery/docs/labels-intro#requirements).
    """

    def value(text: str) -> str:
        return _LABEL_INVALID.sub("_", text.lower())[:63]

    labels = {LABEL_RUN_ID: value(run_id), LABEL_LOAD_TYPE: value(load_type)}
    if pipeline_id is not None:
        labels[LABEL_PIPELINE] = value(str(pipeline_id))
    return labels


@dataclass(frozen=True)
class MergeKey:
    """How a `merge` load picks each primary key's latest row (destination column names)."""

    primary_key: list[str]
    """Columns identifying a row; none may be NULL."""
    order_by: list[str]
    """Columns ordering one key's versions within a run, the greatest is the latest: the
    cursor for table sources, `_etl_source_file` (the object's path) for file sources. Two
    rows with the same key and the same `order_by` values fail the load (PrimaryKeyError)."""


def duplicate_reason(key: MergeKey, row: tuple[Any, ...]) -> str:
    """Return the `PrimaryKeyError` reason for a duplicate found by a loader: `row` holds the
    key values, then the `order_by` values, then the number of rows sharing them."""
    n = len(key.primary_key)
    values = ", ".join(str(v) for v in row[:n])
    order = ", ".join(
        f"`{name}` = {value}" for name, value in zip(key.order_by, row[n:-1], strict=True)
    )
    return (
        f"{row[-1]} rows of this run have the key ({values}) and the same {order}, so none of "
        "them is the latest version; make the primary key unique per version"
    )


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
    merge_key: Callable[[], MergeKey] | None = None
    """`merge` only: called after the last batch (when destination names are final)."""
    source_line: Callable[[str, int], int | None] | None = None
    """(source file, row within it from 1) -> the physical line the row starts on, or None
    (`Extraction.source_line`); used only to word a load error."""
    on_unrepresentable: Literal["nearest", "fail"] = "nearest"
    """`JobConfig.on_unrepresentable`, for values only the destination cannot hold (a NULL
    array in BigQuery): load the nearest and count it in `LoadResult.warnings`, or fail."""


@dataclass
class LoadResult:
    rows_loaded: int
    schema: list[dict[str, str]]
    """Destination columns `{"name", "type"}` after the load (destination type names)."""
    warnings: list[str] = field(default_factory=list)
    """Values the destination changed, counted per column (the run's `warnings`)."""


@dataclass(frozen=True)
class CommittedLoad:
    run_id: str
    state: SyncState
    pipeline_id: str | None = None
    """The pipeline that committed it; None for entries older than pipeline ids."""


class Loader(ABC):
    """Writes batches into a destination table atomically, with the state in the same commit."""

    job_labels: dict[str, str] = {}  # noqa: RUF012  replaced per instance, never mutated
    """Labels for every job the destination runs (BigQuery; set by `etl.pipeline.run` from
    `job_labels` before `last_committed`)."""

    native_scans: frozenset[str] = frozenset()
    """File formats this destination reads itself from a local file
    (`etl.formats.native.NativeScan` among `LoadRequest.batches`); empty: record batches only."""

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
        or the new one); `merge` stages the rows, then in the commit each key's latest staged
        row (`request.merge_key()`) replaces the table's row with that key (a key not yet in the
        table is inserted; no row is deleted). New columns are added; a safe widening widens the destination column.
        Every row gets `_etl_run_id` and `_etl_loaded_at` (UTC). The state returned by
        `request.finalize()` is recorded in the load log in the same transaction. With
        `request.fence`, that transaction first checks that the newest load-log entry of the
        table is still `fence.expected_run_id`.

        Raises:
            SupersededError: another run committed into the table since the fence's entry;
                nothing was kept (terminal).
            TableOwnedError: another pipeline committed into the table (terminal).
            SchemaChangeError: an incoming column type narrows or conflicts (terminal).
            PrimaryKeyError: `merge` rows share a key and its ordering values (terminal).
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
    if found_pipeline_id is not None and found_pipeline_id != fence.pipeline_id:
        raise TableOwnedError(table, found_pipeline_id, fence.pipeline_id)
    if found_run_id != fence.expected_run_id:
        raise SupersededError(table, fence.expected_run_id, found_run_id)
