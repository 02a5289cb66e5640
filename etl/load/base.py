"""The loader contract."""

from __future__ import annotations

import re
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


def duplicate_reason(key: MergeKey, row: tuple) -> str:  # type: ignore[type-arg]
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
    fault_hook: Callable[[str], None] | None = None
    """Test-only phase callback (`etl.pipeline.FaultHook`); loaders call it with `catalog.swap`
    between a snapshot's swap and the load-log write when those are separate steps."""
    merge_key: Callable[[], MergeKey] | None = None
    """`merge` only: called after the last batch (when destination names are final)."""


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

    job_labels: dict[str, str] = {}  # noqa: RUF012  replaced per instance, never mutated
    """Labels for every job the destination runs (BigQuery; set by `etl.pipeline.run` from
    `job_labels` before `last_committed`)."""

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    @abstractmethod
    def last_committed(self, table: str) -> CommittedLoad | None:
        """Return the last load committed into `table` (run id and state), or None."""

    @abstractmethod
    def load(self, request: LoadRequest) -> LoadResult:
        """Load `request.batches` into `request.table`, all or nothing.

        `append` adds rows; `replace` swaps in a new table atomically (readers see the old table
        or the new one); `merge` stages the rows, then in the commit each key's latest staged
        row (`request.merge_key()`) replaces the table's row with that key (a key not yet in the
        table is inserted; no row is deleted). New columns are added; a safe widening widens the destination column.
        Every row gets `_etl_run_id` and `_etl_loaded_at` (UTC). The state returned by
        `request.finalize()` is recorded in the load log in the same transaction.

        Raises:
            SchemaChangeError: an incoming column type narrows or conflicts (terminal).
            PrimaryKeyError: `merge` rows share a key and its ordering values (terminal).
            DestinationError: the destination rejected the rows (terminal).
            TransientError subclasses: the destination is unreachable or busy.
        """

    def close(self) -> None:  # noqa: B027  optional hook
        """Release connections."""
