"""Errors raised by the engine.

The root `EtlError` has exactly two branches: `TransientError` (a retry may succeed: network,
timeout, lock) and `TerminalError` (config, schema or data must be fixed first). Callers retry
only `TransientError` (shared/STYLE.md §5). Messages never contain credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class EtlError(Exception):
    """Root of every engine error."""


class TransientError(EtlError):
    """A retry of the same run may succeed (network, timeout, lock, rate limit)."""


class TerminalError(EtlError):
    """The run cannot succeed until config, schema or data change."""


class ConfigError(TerminalError, ValueError):
    """A JobConfig or state document is invalid; `field` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnknownSourceTypeError(ConfigError):
    def __init__(self, source_type: str, known: Sequence[str]) -> None:
        self.source_type, self.known = source_type, list(known)
        super().__init__(
            f"Unknown source type `{source_type}`. Registered: {', '.join(self.known)}.",
            field="source_type",
        )


class UnknownDestinationTypeError(ConfigError):
    def __init__(self, destination_type: str, known: Sequence[str]) -> None:
        self.destination_type, self.known = destination_type, list(known)
        super().__init__(
            f"Unknown destination type `{destination_type}`. Registered: {', '.join(self.known)}.",
            field="destination.type",
        )


class UnknownConnectionKeyError(ConfigError):
    """`connection_params` hold a key the source type does not take (a misspelt `sslmod`
    would otherwise be ignored); `key` is the first such key, `allowed` every key taken."""

    def __init__(self, message: str, source_type: str, key: str, allowed: Iterable[str]) -> None:
        self.source_type, self.key, self.allowed = source_type, key, sorted(allowed)
        super().__init__(message, field=f"connection_params.{key}")


class MissingDependencyError(TerminalError, ImportError):
    def __init__(self, package: str, feature: str) -> None:
        self.package, self.feature = package, feature
        super().__init__(f"{feature} needs `{package}`: pip install '{package}'.")


class SourceUnavailableError(TransientError):
    """The source could not be reached or timed out; `source` names it without secrets."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"Source {source} is unavailable: {reason}. The run can be retried.")


class SourceAuthError(TerminalError):
    """The source rejected the credentials or denied access; `source` names it without secrets."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(
            f"Source {source} rejected the credentials or denied access: {reason}. Fix "
            "connection_params (keys, secret, connection string) or the permissions; a retry "
            "alone will not succeed."
        )


class SourceQueryError(TerminalError):
    """The source rejected the query (unknown table or column, bad custom SQL, permissions)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"Source {source} rejected the query: {reason}")


class NullCursorError(TerminalError):
    """Rows with a NULL cursor value exist and the policy is `fail`."""

    def __init__(self, table: str, cursor_column: str, count: int) -> None:
        self.table, self.cursor_column, self.count = table, cursor_column, count
        super().__init__(
            f"{count} row(s) of {table} have NULL in cursor column `{cursor_column}`; nothing was "
            "loaded and the watermark is unchanged. Set `null_cursor` to `include` or `exclude` "
            "to load them anyway or skip them."
        )


INCREMENTAL_CURSOR_CHANGED = (
    "`timestamp_column` changed from `{before}` to `{after}` since the state was written "
    "(watermark {watermark} of `{before}`): which rows are loaded cannot be told by the new "
    "cursor, so nothing was loaded. Restore `{before}`, or reload: empty the destination table "
    "and clear the source's state."
)
INCREMENTAL_KEY_COLUMN_MISSING = (
    "the boundary keys in the state were computed from column `{column}` ({what}), which the "
    "source no longer has: the rows at the watermark cannot be told apart from new ones, so "
    "nothing was loaded. Restore the column, or reload: empty the destination table and clear "
    "the source's state."
)


class IncrementalSettingsError(TerminalError):
    """A transactional table run cannot be planned from the stored state with the current
    settings (the cursor column changed, or a column the boundary keys were computed from is
    gone); nothing was loaded and the state is unchanged. `setting` names the JobConfig field."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{message} (field `{setting}`)")


class BadInputError(TerminalError):
    """A source file or row cannot be read; names the file, line and column when known."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason, self.file, self.line, self.column = reason, file, line, column
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"line {line}" if line is not None else "",
                f"column `{column}`" if column else "",
            )
            if part
        )
        super().__init__(
            f"Bad input ({where}): {reason}. Nothing was loaded and state is unchanged."
            if where
            else f"Bad input: {reason}. Nothing was loaded and state is unchanged."
        )


class SchemaMappingError(TerminalError):
    """A source type has no mapping to Arrow or to the destination."""

    def __init__(self, column: str, source_type: str, reason: str = "no mapping") -> None:
        self.column, self.source_type = column, source_type
        super().__init__(f"Column `{column}` of type `{source_type}` cannot be loaded: {reason}.")


class UnrepresentableValueError(TerminalError):
    """A value the destination cannot hold exactly (NaN or ±Infinity in a numeric column, ...)
    was read under `on_unrepresentable: fail`; names the table and the column."""

    def __init__(
        self, table: str, column: str, value: str, source_type: str, nearest: str = "as NULL"
    ) -> None:
        self.table, self.column, self.value, self.source_type = table, column, value, source_type
        super().__init__(
            f"Column `{column}` of {table} holds {value!r}, which no {source_type} destination "
            "type represents exactly (on_unrepresentable: fail). Nothing was loaded and state is "
            f"unchanged; set `on_unrepresentable: nearest` to load such values {nearest}, counted "
            "in the run's warnings."
        )


class InfiniteCursorError(TerminalError):
    """The cursor column's bound in the source is PostgreSQL `infinity` / `-infinity`, which
    cannot be a watermark: after it, every later run would read nothing."""

    def __init__(self, table: str, column: str, value: str) -> None:
        self.table, self.column, self.value = table, column, value
        super().__init__(
            f"Cursor column `{column}` of {table} holds {value!r}, which cannot be a watermark "
            "(no later value exists, so every later run would load nothing). Nothing was loaded "
            f"and state is unchanged; leave such rows out with custom SQL (`WHERE {column} <> "
            f"'{value}'`) or choose another cursor column."
        )


class SchemaChangeError(TerminalError):
    """An incoming column narrows or changes the type of an existing destination column."""

    def __init__(
        self, table: str, column: str, existing: str, incoming: str, file: str | None = None
    ) -> None:
        self.table, self.column, self.existing, self.incoming = table, column, existing, incoming
        self.file = file
        where = f"source file {file}" if file else "source"
        super().__init__(
            f"Column `{column}` of {table} is {existing} in the destination but {incoming} in the "
            f"{where}; this change is not a safe widening. Nothing was loaded."
            + (
                " Fix the file, set `allow_widen_to_string: true`, or give the column its type "
                "in file_format_options.column_types."
                if file
                else ""
            )
        )


class DestinationError(TerminalError):
    """The destination rejected the load (permissions, invalid data)."""


class SupersededError(TerminalError):
    """Another run committed into the table after this run planned from the load log (this run
    stalled, was presumed dead and its work was redone): its commit was refused and rolled back.

    `expected_run_id` is the newest load-log entry the run planned from (None: the log held no
    entry for the table), `found_run_id` the newest one at commit time (None: none).
    """

    def __init__(self, table: str, expected_run_id: str | None, found_run_id: str | None) -> None:
        self.table = table
        self.expected_run_id, self.found_run_id = expected_run_id, found_run_id
        super().__init__(
            f"Commit into {table} refused: this run planned from load "
            f"{expected_run_id or '(none: the load log was empty)'}, but the load log's newest "
            f"entry is now {found_run_id or '(none)'}, committed by another run meanwhile. "
            "Nothing of this run was kept; the next run continues from the newer load. Not "
            "retried."
        )


class TableOwnedError(TerminalError):
    """The destination table's load log belongs to another pipeline (data source): loading
    into it would replace or mix that pipeline's rows and adopt its state."""

    def __init__(self, table: str, owner: str, pipeline_id: str) -> None:
        self.table, self.owner, self.pipeline_id = table, owner, pipeline_id
        super().__init__(
            f"Table {table} belongs to pipeline `{owner}`; pipeline `{pipeline_id}` may not load "
            "into it (nor into its `__rejected` table). Nothing was written. Choose another "
            "dest_table_name or dataset."
        )


class PrimaryKeyError(TerminalError):
    """A `merge` load's rows do not identify one latest version per `primary_key`: a key
    column holds NULL, or two rows share the key and the value that orders versions."""

    def __init__(self, table: str, columns: Sequence[str], reason: str) -> None:
        self.table, self.columns, self.reason = table, list(columns), reason
        super().__init__(
            f"Merge into {table} on primary key ({', '.join(self.columns)}): {reason}. "
            "Nothing was loaded and state is unchanged."
        )


class SnapshotExpiredError(TransientError):
    """A parallel run's PostgreSQL chunk could not import the plan's exported snapshot: the
    coordinator's transaction has ended (it exited, or its connection broke), so no chunk of
    this plan can be read any more. Transient for the run (start it again: a new plan), final
    for the plan."""

    def __init__(self, run_id: str, snapshot: str) -> None:
        self.run_id, self.snapshot = run_id, snapshot
        super().__init__(
            f"Run {run_id}: the source snapshot {snapshot} is no longer exported (the "
            "coordinator's transaction ended before every chunk was read). Nothing was "
            "committed; start the run again."
        )


class PreviewSchemasDifferError(TerminalError):
    """The files a preview read hold incompatible types for one column (`etl.preview`), so they
    cannot be shown, nor loaded, as one table."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"The previewed files have columns of incompatible types: {reason}")
