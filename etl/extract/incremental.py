"""Incremental window and boundary dedup for cursor-based table extraction (DESIGN.md §5).

A run reads rows with `lower <= cursor <= upper`. `upper` is the largest cursor value in the
run's snapshot (capped below the oldest transaction still open on the source by the SQL
extractors, etl/extract/inflight.py); `lower` is the stored watermark minus
`cursor_lag_seconds`, but never below `BoundarySpec.keys_from`, the lowest cursor value the
stored keys cover. Rows at or below the old watermark were possibly loaded before: their keys
(primary key, or a SHA-1 of the row when there is none) are matched against the stored keys,
copy by copy (a multiset: two identical rows of a keyless table stay two), and only the copies
not loaded before pass. The keys of the rows within the lag of the new watermark are kept for
the next run, with the settings they were computed with (`SyncState.boundary`), so a run with a
larger look-back, another primary key or other columns still matches them without re-loading
anything; a changed cursor column is refused (`IncrementalSettingsError`).

Merge (`version_columns` = the primary key): keys are row hashes prefixed with the row's
primary key (`<key JSON>#<SHA-1>`), one per version loaded. When a run reads a key again, the
keys of its earlier versions are dropped from the next state: otherwise a row whose content
went A -> B -> A at one cursor value would find A's key still stored and be skipped as loaded,
leaving B (a replaced version) in the destination.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.extract.arrow_values import FALSE, all_false, booleans, scalar
from etl.extract.keys import (
    check_spec_columns,
    row_keys,
    stored_spec,
    version_of,
    versioned_keys,
)
from etl.state import BoundarySpec, SyncState, Watermark


class CursorWindow:
    """Filters a stream of batches to the rows not loaded before and tracks the next state.

    Args:
        state: the stored state (watermark, boundary keys, NULL-row keys, their `boundary`).
        cursor_column: source name of the cursor column.
        key_columns: primary key columns; empty means the row hash.
        lag: `cursor_lag_seconds`.
        upper: largest cursor value of the window (Python value), or None when no rows.
        null_policy: `include` keeps rows with a NULL cursor once each; `exclude` drops them.
        hash_columns: columns the row hash covers when `key_columns` is empty (the job's own
            columns, without any read only to match old keys); None: every column of a batch.
        version_columns: `merge`: the primary key; keys are versioned (`versioned_keys`) and
            a key read again replaces its earlier versions' keys in the next state.

    Raises:
        IncrementalSettingsError: the cursor column differs from the state's.
    """

    def __init__(
        self,
        *,
        state: SyncState,
        cursor_column: str,
        key_columns: Sequence[str],
        lag: float,
        upper: Any,
        null_policy: str,
        hash_columns: Sequence[str] | None = None,
        version_columns: Sequence[str] = (),
    ) -> None:
        self.cursor_column = cursor_column
        self.version_columns = list(version_columns)
        self.key_columns = list(key_columns)
        self.hash_columns = list(hash_columns) if hash_columns is not None else None
        self.lag = lag
        self.old = state.watermark
        self.old_spec = stored_spec(
            state, cursor_column=cursor_column, key_columns=key_columns, lag=lag
        )
        self.old_keys = Counter(state.boundary_keys)
        self.old_null = Counter(state.null_keys)
        self.remaining = Counter(self.old_keys)
        self.remaining_null = Counter(self.old_null)
        self.null_policy = null_policy
        self.next_boundary: Counter[str] = Counter()
        self.next_null: Counter[str] = Counter()
        self.rows_skipped = 0
        # merge: primary keys holding stored versions, and those of them read in this run
        stored_versions = self.old_spec is not None and self.old_spec.version_columns
        self.versioned = {version_of(k) for k in self.old_keys} if stored_versions else set()
        self.read_again: set[str] = set()
        self.set_upper(upper)

    def set_upper(self, upper: Any) -> None:
        """Set the largest cursor value of the window (before any batch is filtered)."""
        self.upper = upper
        self.new_watermark = self.old
        if upper is not None:
            candidate = Watermark.from_python(upper)
            if self.old is None or candidate.as_python() > self.old.as_python():
                self.new_watermark = candidate
        self.keep_from = self.new_watermark.minus(self.lag) if self.new_watermark else None

    @property
    def lower(self) -> Any:
        """Lowest cursor value to read (Python value): the watermark minus the lag, never
        below the lowest value the stored keys cover; None on a first run."""
        if self.old is None:
            return None
        lower = self.old.minus(self.lag)
        keys_from = self.old_spec.keys_from if self.old_spec is not None else None
        if keys_from is not None and keys_from.as_python() > lower:
            return keys_from.as_python()
        return lower

    def new_spec(self, names: Sequence[str]) -> BoundarySpec:
        """Return the spec the next state's keys are computed with (`names`: batch columns)."""
        hashed = [] if self.key_columns else list(self.hash_columns or names)
        return BoundarySpec(
            cursor_column=self.cursor_column,
            key_columns=self.key_columns,
            hash_columns=hashed,
            lag_seconds=self.lag,
            version_columns=self.version_columns,
        )

    def _spec_changed(self, names: Sequence[str]) -> bool:
        if self.old_spec is None:
            return False
        new = self.new_spec(names)
        if self.old_spec.version_columns != new.version_columns:
            return True
        if self.old_spec.key_columns or new.key_columns:
            return self.old_spec.key_columns != new.key_columns
        # a legacy state hashed every column read
        return bool(self.old_spec.hash_columns) and self.old_spec.hash_columns != new.hash_columns

    def _old_keys(self, rows: pa.RecordBatch) -> list[str]:
        spec = self.old_spec
        assert spec is not None
        if spec.key_columns or spec.hash_columns:
            check_spec_columns(spec, rows.schema.names)
            if spec.version_columns:
                return versioned_keys(rows, spec.version_columns, spec.hash_columns)
            return row_keys(rows, spec.key_columns, spec.hash_columns)
        return row_keys(rows, (), self.new_spec(rows.schema.names).hash_columns)

    def _new_keys(self, rows: pa.RecordBatch) -> list[str]:
        spec = self.new_spec(rows.schema.names)
        if spec.version_columns:
            return versioned_keys(rows, spec.version_columns, spec.hash_columns)
        return row_keys(rows, spec.key_columns, spec.hash_columns)

    @staticmethod
    def _consume(keys: list[str], remaining: Counter[str]) -> pa.Array:
        """Return, per key, whether this copy is new, using up one stored copy per match."""
        fresh = []
        for key in keys:
            if remaining[key] > 0:
                remaining[key] -= 1
                fresh.append(False)
            else:
                fresh.append(True)
        return booleans(fresh)

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Return the rows of `batch` not loaded before, remembering boundary keys.

        Raises:
            IncrementalSettingsError: a column the stored keys were computed from is missing.
        """
        cursor = batch.column(self.cursor_column)
        is_null = pc.is_null(cursor)
        keep = pc.invert(is_null)
        if self.null_policy == "include" and pc.any(is_null).as_py():
            null_rows = batch.filter(is_null)
            self.next_null.update(self._new_keys(null_rows))
            old = self._old_keys(null_rows) if self.old_spec else self._new_keys(null_rows)
            keep = pc.replace_with_mask(keep, is_null, self._consume(old, self.remaining_null))
        lower = self.lower
        if lower is not None:
            below = pc.fill_null(pc.less(cursor, scalar(lower, cursor.type)), FALSE)
            keep = pc.and_(keep, pc.invert(below))
        else:
            below = all_false(batch.num_rows)
        if self.old is not None:
            old_value = scalar(self.old.as_python(), cursor.type)
            at_or_below = pc.fill_null(pc.less_equal(cursor, old_value), FALSE)
            at_or_below = pc.and_(at_or_below, pc.invert(below))
            if pc.any(at_or_below).as_py():
                fresh = self._consume(self._old_keys(batch.filter(at_or_below)), self.remaining)
                keep = pc.and_(
                    keep, pc.replace_with_mask(pc.invert(at_or_below), at_or_below, fresh)
                )
        if self.keep_from is not None:
            near_top = pc.fill_null(
                pc.greater_equal(cursor, scalar(self.keep_from, cursor.type)), FALSE
            )
            near_top = pc.and_(near_top, pc.invert(below))
            if pc.any(near_top).as_py():
                self.next_boundary.update(self._new_keys(batch.filter(near_top)))
        if self.versioned:
            read = batch.filter(pc.invert(below))
            if read.num_rows:
                pks = set(row_keys(read, self.version_columns))
                self.read_again.update(pks & self.versioned)
        if self.hash_columns is None and not self.key_columns:
            self.hash_columns = list(batch.schema.names)
        kept = batch.filter(keep)
        self.rows_skipped += batch.num_rows - kept.num_rows
        return kept

    def next_state(self, state: SyncState, names: Sequence[str] = ()) -> SyncState:
        """Return `state` with the new watermark, the keys to remember and how they were made.

        A key is kept once per copy in the destination: the larger of the copies loaded before
        and the copies read in this run.
        """
        spec = self.new_spec(names)
        same = not self._spec_changed(names)
        boundary = Counter(self.next_boundary)
        if same:
            for key, count in boundary.items():
                boundary[key] = max(count, self.old_keys[key])
        nulls = Counter(self.next_null)
        if same:
            for key, count in self.old_null.items():
                nulls[key] = max(count, nulls[key])
        lower = self.lower
        if self.old is not None and self.new_watermark == self.old:
            if same:
                for key, count in self.old_keys.items():
                    boundary[key] = max(count, boundary[key])
                keys_from = self.old_spec.keys_from if self.old_spec else None
            else:
                keys_from = Watermark.from_python(lower)
        elif self.keep_from is None:
            keys_from = None
        elif lower is not None and lower > self.keep_from:
            keys_from = Watermark.from_python(lower)
        else:
            keys_from = Watermark.from_python(self.keep_from)
        if same and self.read_again:
            # merge: a key read in this run keeps only the versions read now
            for key in list(boundary):
                if version_of(key) in self.read_again and key not in self.next_boundary:
                    del boundary[key]
        return state.model_copy(
            update={
                "watermark": self.new_watermark,
                "boundary_keys": sorted(boundary.elements()),
                "null_keys": sorted(nulls.elements()),
                "boundary": spec.model_copy(update={"keys_from": keys_from})
                if self.new_watermark is not None
                else None,
            }
        )
