"""The load log every loader keeps, and the rules it serves.

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

from dataclasses import dataclass
from typing import NamedTuple

from etl.exceptions import SupersededError, TableOwnedError
from etl.state import SyncState

REJECTED_SUFFIX = "__rejected"
"""Suffix of a table's quarantine side table (`on_bad_rows: quarantine`)."""
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


class LogEntry(NamedTuple):
    """The newest load-log entry of a table, as a loader reads it."""

    run_id: str
    state: str
    """The committed `SyncState`, as JSON."""
    pipeline_id: str | None
    """None: an entry older than pipeline ids (owned by no one)."""


@dataclass(frozen=True)
class CommittedLoad:
    run_id: str
    state: SyncState
    pipeline_id: str | None = None
    """The pipeline that committed it; None for entries older than pipeline ids."""


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


def committed_load(
    table: str, pipeline_id: str | None, newest: dict[str, LogEntry]
) -> CommittedLoad | None:
    """Return `Loader.last_committed`'s answer from `newest` (table name -> newest load-log
    entry, for the names of `owned_with(table)` that have one).

    Raises:
        TableOwnedError: another pipeline owns `table` (`check_owner`).
    """
    check_owner(table, pipeline_id, {name: entry.pipeline_id for name, entry in newest.items()})
    entry = newest.get(table)
    if entry is None:
        return None
    return CommittedLoad(
        run_id=entry.run_id,
        state=SyncState.model_validate_json(entry.state),
        pipeline_id=entry.pipeline_id,
    )


def check_fence_newest(table: str, fence: Fence, newest: dict[str, LogEntry]) -> None:
    """`check_fence` against the newest entry of `table` in `newest` (a loader's read of the
    load log inside, or just before, its commit)."""
    entry = newest.get(table)
    check_fence(table, fence, entry.run_id if entry else None, entry.pipeline_id if entry else None)


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
