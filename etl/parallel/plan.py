"""The documents a parallel run passes between processes: the plan and the chunk reports.

Both are frozen dataclasses that round-trip through JSON (`to_dict()` / `from_dict()`), so the
coordinator, the chunk readers and the committer may be different processes or machines (a
Celery task argument, a Cloud Run task's input, a file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from etl.state import SyncState, Watermark

PLAN_VERSION = 1
"""Bumped when a field changes meaning; `from_dict` refuses other versions."""


@dataclass(frozen=True)
class Chunk:
    """One key range of the run's window."""

    index: int
    """0 .. len(plan.chunks) - 1; names the chunk's staging folder `chunk-<index>`."""
    where: str | None
    """The range as a predicate in the source's SQL dialect, bounds inlined as literals
    (e.g. `"l_orderkey" >= 15001 AND "l_orderkey" < 30001`); None: the whole window."""
    low: str | None = None
    """Inclusive lower bound of the range as text (None: unbounded), for logs and reports."""
    high: str | None = None
    """Exclusive upper bound of the range as text (None: unbounded)."""


@dataclass(frozen=True)
class ChunkPlan:
    """A parallel run fixed before any chunk is read: window, snapshot, ranges, fence."""

    run_id: str
    source_type: str
    mode: str
    """`sql`: a PostgreSQL/MySQL read split into `chunks` over one fixed window (the new
    state is computed by the committer from the chunks' reports); `single`: any other source
    (files, BigQuery) read by one chunk through its usual extraction, whose report carries
    the new state."""
    chunks: tuple[Chunk, ...]
    split: str
    """How the ranges were made: `histogram:<column>` (pg_stats histogram bounds),
    `minmax:<column>` (min/max of an indexed key, even steps), `window:<column>` (the cursor's
    lower..upper bounds, even steps), `ctid` (PostgreSQL heap page ranges), `none` (one chunk)."""
    snapshot: str | None
    """PostgreSQL: the `pg_export_snapshot()` id every chunk imports; valid while the
    coordinator's transaction is open. None for MySQL (no shareable snapshot) and `single`."""
    upper: Watermark | None
    """The window's upper bound (inclusive, typed), read in the coordinator's snapshot below
    the in-flight cap; None when no row has a cursor value or for catalog loads."""
    null_count: int
    """Rows with a NULL cursor at the plan's instant."""
    notes: tuple[str, ...]
    """Warnings of the plan (in-flight cap), reported once in the run's warnings."""
    fence_run_id: str | None
    """Newest load-log entry of the table when the run planned (`etl.load.base.Fence`); the
    commit raises `SupersededError` when another run committed since."""
    pipeline_id: str
    """The owning pipeline (`JobConfig.owner_id`), recorded with the commit."""
    write_disposition: str
    """`append`, `replace` or `merge` (a `--full-refresh` plan replaces)."""
    staging: str
    """Root of the staging area: a local directory or an fsspec URL (`gs://bucket/prefix`);
    chunks write under `<staging>/<run_id>/chunk-<index>/attempt-<uuid>/`."""
    state: SyncState
    """The state the window was computed from (after any roll-forward from the load log)."""
    reconciled_run_id: str | None = None
    """Set when a committed run unknown to the caller's state was adopted (as `etl.run`)."""
    estimated_rows: int | None = None
    """Catalog statistics' row estimate of the table (`reltuples`, `TABLE_ROWS`), or None."""
    started_at: str = ""
    """ISO 8601 UTC instant the plan was made."""

    @property
    def run_folder(self) -> str:
        """`<staging>/<run_id>`: everything the run staged."""
        return f"{self.staging.rstrip('/')}/{self.run_id}"

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-able data (`from_dict` reads it back)."""
        data = asdict(self)
        data["version"] = PLAN_VERSION
        data["upper"] = self.upper.model_dump() if self.upper is not None else None
        data["state"] = self.state.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkPlan:
        """Return the plan `to_dict` gave.

        Raises:
            ValueError: the document is another plan version or misses a field.
        """
        data = dict(data)
        version = data.pop("version", None)
        if version != PLAN_VERSION:
            raise ValueError(f"chunk plan version {version!r} is not {PLAN_VERSION}")
        data["chunks"] = tuple(Chunk(**chunk) for chunk in data["chunks"])
        data["notes"] = tuple(data.get("notes", ()))
        data["upper"] = Watermark(**data["upper"]) if data.get("upper") else None
        data["state"] = SyncState.model_validate(data["state"])
        return cls(**data)


@dataclass(frozen=True)
class PartFile:
    """One Parquet file a chunk staged."""

    path: str
    """Full path or URL of the file (under the chunk's attempt folder)."""
    rows: int
    bytes: int
    """Size of the file, bytes."""


@dataclass(frozen=True)
class ChunkReport:
    """What one attempt of one chunk read and staged. Only the parts named here are loaded."""

    run_id: str
    index: int
    attempt: str
    """UUID4 hex of this attempt (a retry is a new attempt in a new folder)."""
    parts: tuple[PartFile, ...]
    """Staged Parquet files in read order; their rows are transformed (destination names)."""
    rows: int
    """Rows staged (after the window's dedup)."""
    rows_skipped: int
    """Rows read again but already loaded (watermark ties, look-back), as `RunResult`."""
    bytes_extracted: int
    """Arrow in-memory bytes of the batches read (as `RunResult.bytes_extracted`)."""
    columns: tuple[str, ...]
    """Source column names of the rows read, in order (what the row hash covers)."""
    column_map: dict[str, str]
    """Source -> destination column names the chunk's transform used."""
    max_cursor: Watermark | None = None
    """Largest cursor value among the rows read (None: no row or no cursor)."""
    boundary_keys: dict[str, int] = field(default_factory=dict)
    """Key -> copies of the rows read within the look-back of the new watermark (the
    boundary keys the next state keeps, etl/extract/incremental.py)."""
    null_keys: dict[str, int] = field(default_factory=dict)
    """Key -> copies of rows with a NULL cursor read (`null_cursor: include`)."""
    read_again: tuple[str, ...] = ()
    """`merge`: primary keys with stored versions that this chunk read again (their stored
    versions are replaced by the ones read now, etl/extract/incremental.py)."""
    warnings: tuple[str, ...] = ()
    next_state: SyncState | None = None
    """`single` plans only: the state the chunk's own extraction leads to (file ledger...)."""
    files_loaded: tuple[str, ...] = ()
    """`single` plans: objects read (file sources)."""
    files_skipped: int = 0
    replaced_files: tuple[str, ...] = ()
    """`single` plans: files whose earlier rows the load replaces."""
    rejects: str | None = None
    """`single` plans under `on_bad_rows: quarantine`: Parquet file of the rejected rows."""
    rows_rejected: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-able data (`from_dict` reads it back)."""
        data = asdict(self)
        data["max_cursor"] = self.max_cursor.model_dump() if self.max_cursor else None
        data["next_state"] = (
            self.next_state.model_dump(mode="json") if self.next_state is not None else None
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkReport:
        """Return the report `to_dict` gave."""
        data = dict(data)
        data["parts"] = tuple(PartFile(**part) for part in data["parts"])
        data["columns"] = tuple(data["columns"])
        data["warnings"] = tuple(data.get("warnings", ()))
        data["files_loaded"] = tuple(data.get("files_loaded", ()))
        data["replaced_files"] = tuple(data.get("replaced_files", ()))
        data["read_again"] = tuple(data.get("read_again", ()))
        data["max_cursor"] = Watermark(**data["max_cursor"]) if data.get("max_cursor") else None
        data["next_state"] = (
            SyncState.model_validate(data["next_state"]) if data.get("next_state") else None
        )
        return cls(**data)
