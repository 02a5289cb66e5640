"""Incremental window and boundary dedup for cursor-based table extraction (DESIGN.md §5).

A run reads rows with `lower <= cursor <= upper`, where `lower` is the stored watermark minus
`cursor_lag_seconds` and `upper` the largest cursor value in the same snapshot. Rows at or below
the old watermark were possibly loaded before: their keys (primary key, or a hash of the whole
row) are compared with the keys the state remembers and only unseen rows pass. The keys of rows
within the lag of the new watermark are remembered for the next run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.state import SyncState, Watermark


def row_keys(batch: pa.RecordBatch, key_columns: Sequence[str]) -> list[str]:
    """Return one stable key per row: the primary key values as JSON, or a SHA-1 of the row.

    Keys depend only on the values, so the same source row gives the same key in every run.
    """
    columns = list(key_columns) or batch.schema.names
    values = [batch.column(name).to_pylist() for name in columns]
    keys = []
    for row in zip(*values, strict=True):
        text = json.dumps(row, default=str, separators=(",", ":"))
        keys.append(text if key_columns else hashlib.sha1(text.encode()).hexdigest())
    return keys


class CursorWindow:
    """Filters a stream of batches to the rows not loaded before and tracks the next state.

    Args:
        state: the stored state (watermark, boundary keys, NULL-row keys).
        cursor_column: source name of the cursor column.
        key_columns: primary key columns; empty means the row hash.
        lag: `cursor_lag_seconds`.
        upper: largest cursor value in the snapshot (Python value), or None when no rows.
        null_policy: `include` keeps rows with a NULL cursor once each; `exclude` drops them.
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
    ) -> None:
        self.cursor_column = cursor_column
        self.key_columns = list(key_columns)
        self.lag = lag
        self.old = state.watermark
        self.seen = set(state.boundary_keys)
        self.seen_null = set(state.null_keys)
        self.null_policy = null_policy
        self.upper = upper
        self.new_watermark = self.old
        if upper is not None:
            candidate = Watermark.from_python(upper)
            if self.old is None or candidate.as_python() > self.old.as_python():
                self.new_watermark = candidate
        self.keep_from = self.new_watermark.minus(lag) if self.new_watermark else None
        self.next_boundary: set[str] = set()
        self.next_null: set[str] = set()
        self.rows_skipped = 0

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Return the rows of `batch` not loaded before, remembering boundary keys."""
        cursor = batch.column(self.cursor_column)
        is_null = pc.is_null(cursor)
        keep = pc.invert(is_null)
        if self.null_policy == "include" and pc.any(is_null).as_py():
            null_rows = batch.filter(is_null)
            keys = row_keys(null_rows, self.key_columns)
            self.next_null.update(keys)
            fresh = pa.array([key not in self.seen_null for key in keys], pa.bool_())
            keep = pc.replace_with_mask(keep, is_null, fresh)
        if self.old is not None:
            old_value = pa.scalar(self.old.as_python(), type=cursor.type)
            at_or_below = pc.fill_null(pc.less_equal(cursor, old_value), False)
            if pc.any(at_or_below).as_py():
                keys = row_keys(batch.filter(at_or_below), self.key_columns)
                fresh = pa.array([key not in self.seen for key in keys], pa.bool_())
                keep = pc.and_(
                    keep, pc.replace_with_mask(pc.invert(at_or_below), at_or_below, fresh)
                )
        if self.keep_from is not None:
            near_top = pc.fill_null(
                pc.greater_equal(cursor, pa.scalar(self.keep_from, type=cursor.type)), False
            )
            if pc.any(near_top).as_py():
                self.next_boundary.update(row_keys(batch.filter(near_top), self.key_columns))
        kept = batch.filter(keep)
        self.rows_skipped += batch.num_rows - kept.num_rows
        return kept

    def next_state(self, state: SyncState) -> SyncState:
        """Return `state` with the new watermark and remembered keys."""
        if self.new_watermark == self.old:
            boundary = self.seen | self.next_boundary
        else:
            boundary = self.next_boundary
        return state.model_copy(
            update={
                "watermark": self.new_watermark,
                "boundary_keys": sorted(boundary),
                "null_keys": sorted(self.seen_null | self.next_null),
            }
        )
