"""The loader contract: what a load is given (`LoadRequest`), what it does (`Loader`), and the
policy every loader applies to replaced files and rejected rows (`replaced`).

Every loader also keeps the load log (etl/load/loadlog.py: roll forward, fencing, ownership).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from etl.config import DestinationConfig, WriteDisposition
from etl.load.loadlog import CommittedLoad, Fence
from etl.state import SyncState

RUN_ID_COLUMN = "_etl_run_id"
LOADED_AT_COLUMN = "_etl_loaded_at"


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

    def rejects(self) -> pa.Table | None:
        """Return the rows to append to `<table>__rejected` in this commit (`rejected_rows()`,
        called after `finalize()`), or None when no row was rejected."""
        rejected = self.rejected_rows() if self.rejected_rows else None
        return rejected if rejected is not None and rejected.num_rows else None


@dataclass(frozen=True)
class Replaced:
    """What a load's commit deletes of earlier loads before it writes its own rows and rejects,
    in the same transaction: one policy for every loader (`replaced`)."""

    row_files: list[str]
    """Source files whose earlier rows (by `_etl_source_file`) leave the table: an append's
    changed files (a merge replaces their rows by key; a snapshot replaces every row)."""
    all_rejects: bool
    """Every earlier row of `<table>__rejected` goes: a snapshot's rejects are its own."""
    reject_files: list[str]
    """Source files whose earlier rejects (by `file`) go with their earlier rows (append,
    merge)."""


def replaced(request: LoadRequest) -> Replaced:
    """Return what `request`'s commit deletes of earlier loads (`Replaced`)."""
    snapshot = request.write_disposition == "replace"
    files = [] if snapshot else list(request.replace_files)
    return Replaced(
        row_files=files if request.write_disposition == "append" else [],
        all_rejects=snapshot,
        reject_files=files,
    )


@dataclass
class LoadResult:
    rows_loaded: int
    schema: list[dict[str, str]]
    """Destination columns `{"name", "type"}` after the load (destination type names)."""
    warnings: list[str] = field(default_factory=list)
    """Values the destination changed, counted per column (the run's `warnings`)."""


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
