"""The incremental window plan shared by every table extractor (PostgreSQL, MySQL, BigQuery).

Given the cursor's largest value `upper` and its NULL count in the run's snapshot, a plan fixes
what the run reads: `lower <= cursor <= upper` (`lower` from the stored state, never below the
lowest value the stored boundary keys cover, else `initial_value`; none on a first run), plus
the rows with a NULL cursor under `null_cursor: include`. Each extractor renders the bounds in
its own dialect (bound parameters, or literals in a BigQuery read session's `row_restriction`)
and, once the read's Arrow schema is known, binds the plan to it: the upper bound is converted
to the cursor column's type, so the stored watermark holds the value as the column gives it
(issue 15: this decision was made twice and had drifted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from etl.config import JobConfig
from etl.exceptions import NullCursorError
from etl.extract.arrow_values import python_value, scalar
from etl.extract.incremental import CursorWindow
from etl.extract.keys import check_spec_columns, spec_columns
from etl.state import SyncState


def refuse_null_cursor(job: JobConfig, null_count: int) -> None:
    """Fail the run when the cursor has NULLs and the policy is `fail`.

    Raises:
        NullCursorError: `null_count` > 0 under `null_cursor: fail`.
    """
    if null_count and job.null_cursor == "fail":
        assert job.timestamp_column is not None
        raise NullCursorError(
            job.source_table_name or "custom_sql", job.timestamp_column, int(null_count)
        )


@dataclass
class WindowPlan:
    """What one transactional (or merge) run of a table reads, and the filter that dedups it."""

    window: CursorWindow
    """Filters the batches read to the rows not loaded before and computes the next state."""
    lower: Any
    """Lowest cursor value read (inclusive, Python value), or None: no lower bound."""
    upper: Any
    """Largest cursor value read (inclusive, Python value as the probe returned it), or None:
    the source holds no cursor value, nothing but NULL-cursor rows is read."""
    include_nulls: bool
    """Rows with a NULL cursor are read too (`null_cursor: include` and some exist)."""

    def bounds(self) -> list[tuple[str, Any]] | None:
        """Return the cursor bounds as (`>=` or `<=`, value) pairs to AND, or None when the
        window holds no cursor value (read nothing but NULL-cursor rows)."""
        if self.upper is None:
            return None
        lower = [(">=", self.lower)] if self.lower is not None else []
        return [*lower, ("<=", self.upper)]

    def where(self, cursor_sql: str, render: Callable[[Any], str], false_sql: str) -> str:
        """Return the SQL condition of the window.

        Args:
            cursor_sql: the quoted cursor column.
            render: returns the SQL text of one bound value (a placeholder it binds, or a
                literal), called lower bound first.
            false_sql: the dialect's always-false condition, for an empty window.
        """
        bounds = self.bounds()
        if bounds is None:
            where = false_sql
        else:
            where = " AND ".join(f"{cursor_sql} {op} {render(value)}" for op, value in bounds)
        if self.include_nulls:
            where = f"({where}) OR {cursor_sql} IS NULL"
        return where

    def extra_columns(self, source_columns: Sequence[str]) -> list[str]:
        """Return the columns the stored boundary keys were computed from that
        `source_columns` (the job's, empty: all) leaves out: they are read too, to match the
        keys, and dropped before loading."""
        spec = self.window.old_spec
        if spec is None or not source_columns:
            return []
        return [c for c in spec_columns(spec) if c not in source_columns]

    def bind(self, schema: pa.Schema, extras: Sequence[str] = ()) -> pa.Schema:
        """Fix the plan to the Arrow schema of the read (before any batch is filtered).

        Checks that the stored keys' columns are read, makes the row hash cover the loaded
        columns, and converts the upper bound to the cursor column's Arrow type (the new
        watermark). Returns the schema of the batches to load (without `extras`).

        Raises:
            IncrementalSettingsError: a column the stored keys were computed from is gone.
        """
        window = self.window
        if window.old_spec is not None and spec_columns(window.old_spec):
            check_spec_columns(window.old_spec, schema.names)
        output = pa.schema([field for field in schema if field.name not in extras])
        if not window.key_columns:
            window.hash_columns = output.names
        cursor_type = schema.field(window.cursor_column).type
        upper = python_value(scalar(self.upper, cursor_type)) if self.upper is not None else None
        window.set_upper(upper)
        return output


def plan_window(job: JobConfig, state: SyncState, *, upper: Any, null_count: int) -> WindowPlan:
    """Return the window a run reads, from the cursor's maximum `upper` and NULL count.

    Raises:
        NullCursorError: NULL cursor values under `null_cursor: fail`.
        IncrementalSettingsError: the state belongs to another cursor column.
    """
    refuse_null_cursor(job, null_count)
    assert job.timestamp_column is not None
    window = CursorWindow(
        state=state,
        cursor_column=job.timestamp_column,
        key_columns=job.window_key_columns,
        version_columns=job.primary_key if job.load_type == "merge" else (),
        lag=job.cursor_lag_seconds,
        upper=upper,
        null_policy=job.null_cursor,
    )
    lower = window.lower
    if lower is None and job.initial_value is not None:
        lower = job.initial_value
    return WindowPlan(
        window=window,
        lower=lower,
        upper=upper,
        include_nulls=job.null_cursor == "include" and bool(null_count),
    )
