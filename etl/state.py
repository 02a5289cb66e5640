"""Sync state carried between runs, and the result of one run.

`SyncState` is the engine's own JSON document (the `--state` file; the control plane stores its
parts in `SyncState` / `ProcessedFile` rows). It changes only after a load has committed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WatermarkType = Literal["timestamp", "timestamptz", "date", "integer", "decimal", "string"]


class Watermark(BaseModel):
    """The largest cursor value loaded so far, with its type.

    `value` is text so full precision survives JSON: ISO 8601 with microseconds for
    `timestamp` (naive wall clock) and `timestamptz` (UTC, `+00:00`), `YYYY-MM-DD` for `date`,
    decimal digits for `integer` / `decimal`.
    """

    model_config = ConfigDict(frozen=True)

    value: str
    type: WatermarkType

    def as_python(self) -> Any:
        """Return the value as the Python type a DB-API driver binds (datetime, date, int, ...)."""
        if self.type == "timestamptz":
            return dt.datetime.fromisoformat(self.value).astimezone(dt.UTC)
        if self.type == "timestamp":
            return dt.datetime.fromisoformat(self.value)
        if self.type == "date":
            return dt.date.fromisoformat(self.value)
        if self.type == "integer":
            return int(self.value)
        if self.type == "decimal":
            return Decimal(self.value)
        return self.value

    def minus(self, lag: float) -> Any:
        """Return the value `lag` seconds (days for dates are whole seconds / 86400; cursor units
        for numbers) below the watermark, as a Python value."""
        value = self.as_python()
        if not lag:
            return value
        if isinstance(value, dt.datetime):
            return value - dt.timedelta(seconds=lag)
        if isinstance(value, dt.date):
            return value - dt.timedelta(days=int(lag // 86400))
        if isinstance(value, int):
            return value - int(lag)
        if isinstance(value, Decimal):
            return value - Decimal(str(lag))
        return value

    @classmethod
    def from_python(cls, value: Any) -> Watermark:
        """Build a watermark from a cursor value read from the source (Python / Arrow scalar)."""
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                return cls(
                    value=value.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                    type="timestamptz",
                )
            return cls(value=value.isoformat(timespec="microseconds"), type="timestamp")
        if isinstance(value, dt.date):
            return cls(value=value.isoformat(), type="date")
        if isinstance(value, bool):
            raise TypeError("a boolean column cannot be a cursor")
        if isinstance(value, int):
            return cls(value=str(value), type="integer")
        if isinstance(value, Decimal):
            return cls(value=str(value), type="decimal")
        if isinstance(value, float):
            return cls(value=repr(value), type="decimal")
        return cls(value=str(value), type="string")


class FileRecord(BaseModel):
    """One processed object in the file ledger (keyed by path in `SyncState.files`)."""

    version: str
    """Generation (GCS), ETag (S3, Azure) or mtime in ns (local): changes when the object does."""
    size: int
    """Bytes."""
    last_modified: str | None = None
    """ISO 8601 UTC."""
    rows: int = 0
    run_id: str = ""


class BoundarySpec(BaseModel):
    """The settings `SyncState.boundary_keys` / `null_keys` were computed with, and the cursor
    range they cover, so a run with other settings can still tell loaded rows from new ones
    (etl/extract/incremental.py; docs/config.md "Incremental table loads")."""

    cursor_column: str
    """Source name of the cursor the watermark belongs to."""
    key_columns: list[str] = Field(default_factory=list)
    """`primary_key` the keys were made from; empty: a SHA-1 of the `hash_columns` values."""
    hash_columns: list[str] = Field(default_factory=list)
    """Columns (source names, in order) the row hash covers when `key_columns` is empty."""
    lag_seconds: float = 0
    """`cursor_lag_seconds` of the run that wrote the state (informative)."""
    version_columns: list[str] = Field(default_factory=list)
    """`merge`: the primary key each row hash is prefixed with (`<key JSON>#<SHA-1>`), so a
    key read again in a later version drops its earlier versions' keys."""
    keys_from: Watermark | None = None
    """Lowest cursor value from which `boundary_keys` hold every loaded row up to the
    watermark (inclusive); rows below it and at or below the watermark count as loaded."""


class SyncState(BaseModel):
    """Everything a data source remembers between runs (JSON round-trips exactly)."""

    last_run_id: str | None = None
    """Run whose load committed this state; a destination holding a later run's commit is rolled
    forward to that run's state before new work starts."""
    watermark: Watermark | None = None
    boundary_keys: list[str] = Field(default_factory=list)
    """Keys (primary key JSON or row hash) of rows loaded whose cursor lies within
    `cursor_lag_seconds` of the watermark (exactly at it when the lag is 0), sorted. A multiset:
    a key appears once per copy loaded, so identical rows of a table without a primary key keep
    their multiplicity."""
    null_keys: list[str] = Field(default_factory=list)
    """Keys of rows with a NULL cursor loaded under the `include` policy (a multiset, sorted)."""
    boundary: BoundarySpec | None = None
    """How `boundary_keys` were computed; None in states written before it existed (the job's
    current settings are then assumed, as those versions did)."""
    column_map: dict[str, str] = Field(default_factory=dict)
    """Source column name -> destination column name, stable across runs."""
    files: dict[str, FileRecord] = Field(default_factory=dict)
    """File ledger: path (relative to the prefix root) -> the version loaded."""


class RunResult(BaseModel):
    """What one `etl.run` did. Counts are rows, sizes bytes (Arrow in-memory), times seconds."""

    run_id: str
    status: Literal["succeeded", "failed"] = "succeeded"
    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_skipped: int = 0
    """Rows read again (watermark ties, look-back window) and not loaded because already loaded."""
    rows_rejected: int = 0
    """Rows set aside in `<table>__rejected` under `on_bad_rows: quarantine` (not loaded)."""
    bytes_extracted: int = 0
    files_loaded: list[str] = Field(default_factory=list)
    files_skipped: int = 0
    """Objects matched but unchanged since the last run."""
    warnings: list[str] = Field(default_factory=list)
    destination_table: str = ""
    schema_: list[dict[str, str]] = Field(default_factory=list, alias="schema")
    """Destination columns: `{"name", "source_name", "type"}` (Arrow type text)."""
    state: SyncState
    reconciled_run_id: str | None = None
    """Set when a previous run's committed load was found and its state adopted."""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0

    model_config = ConfigDict(populate_by_name=True)

    @property
    def rows_per_second(self) -> float:
        return self.rows_loaded / self.duration_s if self.duration_s else 0.0
