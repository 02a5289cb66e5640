"""`JobConfig`: one data source's job, validated (the contract of shared/DESIGN.md §4).

Cross-field rules live here: the load type's required fields, merge keys, table-option columns,
BigQuery names."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from etl.config.base import (
    CURSOR_REQUIRED,
    FILE_SOURCES,
    IDENTIFIER,
    REQUIRED_CONNECTION_KEYS,
    SECRET_KEYS,
    TABLE_SOURCES,
    ConfigModel,
    FieldError,
    FileFormat,
    LoadType,
    SourceType,
    UnknownKeyError,
    WriteDisposition,
    config_error_from,
    needs_cursor,
    unknown_connection_key_message,
    unknown_connection_keys,
)
from etl.config.destination import (
    DestinationConfig,
)
from etl.config.files import FileFormatOptions


class JobConfig(ConfigModel):
    """One data source's job: the contract of shared/DESIGN.md §4.

    Use `JobConfig.parse(mapping)` to get a `ConfigError` naming the field instead of a
    pydantic `ValidationError`.
    """

    source_type: SourceType
    connection_params: dict[str, Any] = Field(repr=False)
    """Connection keys per `source_type` (DESIGN.md §4); secrets included, never logged."""
    load_type: LoadType = "transactional"
    """`transactional`: append only what is new; `catalog`: replace the table with a snapshot;
    `merge`: read like transactional, then each `primary_key`'s latest row replaces the
    destination's row (docs/config.md, "Merge")."""
    dest_table_name: str
    description: str = Field(default="", max_length=1000)
    """What the job is for, free text (at most 1,000 characters; the control plane's data
    source description). Moves no data: `etl validate` prints it with the verdict."""
    selected_columns: list[str] = Field(default_factory=list)
    """Source column names to keep, in this order; empty means all."""
    source_table_name: str | None = None
    """Table to read, optionally schema-qualified (`public.flights`; BigQuery `dataset.table`)."""
    custom_sql: str | None = None
    """A SELECT whose rows are extracted instead of `source_table_name`."""
    timestamp_column: str | None = None
    """The cursor column of transactional table loads (timestamp, date or integer)."""
    primary_key: list[str] = Field(default_factory=list)
    """Columns identifying a row; used to dedupe rows at the watermark (row hash otherwise);
    required by `merge`, whose destination holds one row per key."""
    cursor_lag_seconds: float = Field(default=0, ge=0)
    """Look-back below the watermark re-read each run to catch late rows (seconds, or cursor
    units for integer cursors)."""
    initial_value: str | int | None = None
    """Lower bound of the first transactional run (inclusive); None reads everything."""
    null_cursor: Literal["fail", "include", "exclude"] = "fail"
    """Rows whose cursor is NULL: fail the run with a count, load them once, or skip them."""
    on_bad_rows: Literal["fail", "quarantine"] = "fail"
    """Malformed input: fail before writing anything (default) or quarantine the bad rows."""
    on_unrepresentable: Literal["nearest", "fail"] = "nearest"
    """A value the destination cannot hold exactly (NaN or ±Infinity in a NUMERIC column,
    sub-microsecond time, an invalid date): `nearest` loads the nearest exact representation
    where one exists (nanoseconds truncated to microseconds, never rounded up across a second),
    else NULL, and counts every adjusted value per column in `RunResult.warnings`; `fail` fails
    the run naming the column (docs/config.md, "Unrepresentable values")."""
    allow_widen_to_string: bool = False
    """Schema evolution between runs: when a column's incoming type is neither the existing
    destination type nor a lossless widening of it (e.g. INTEGER then VARCHAR), `true` changes
    the destination column to STRING/VARCHAR (existing values become their text) instead of
    failing the run with a SchemaChangeError (docs/config.md, "Schema evolution")."""
    file_pattern: str = "*"
    """Glob matched against object paths relative to `file_prefix` (`**` crosses folders)."""
    file_prefix: str = ""
    """Folder prefix under the bucket, container or base path."""
    file_format: FileFormat | None = None
    file_format_options: FileFormatOptions = Field(default_factory=FileFormatOptions)
    chunk_size: int = Field(default=100_000, ge=1, le=10_000_000)
    """Maximum rows per `pyarrow.RecordBatch`."""
    parallelism: int = Field(default=1, ge=1, le=64)
    """Key ranges ("chunks") a PostgreSQL/MySQL table is split into and read by that many
    processes or workers at once (`etl run --parallel N`, Celery chunk tasks; etl/parallel/);
    1 reads it in one process. Other sources always read as one chunk (docs/parallel.md)."""
    destination: DestinationConfig = Field(default_factory=DestinationConfig)
    pipeline_id: str | None = Field(default=None, min_length=1, max_length=512)
    """Identity of the data source that owns the destination table (recorded with every load in
    the load log; a load into a table another pipeline owns is refused with `TableOwnedError`).
    The control plane sets `datasource:<id>`. None: derived from the source identity
    (`owner_id`), so a job file keeps its table while its source stays the same."""

    @field_validator("dest_table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @model_validator(mode="after")
    def _contract(self) -> JobConfig:
        unknown = unknown_connection_keys(self.source_type, self.connection_params)
        if unknown:
            raise UnknownKeyError(
                f"connection_params.{unknown[0]}",
                unknown_connection_key_message(self.source_type, unknown[0]),
                self.source_type,
            )
        missing = [
            key
            for key in REQUIRED_CONNECTION_KEYS[self.source_type]
            if self.connection_params.get(key) in (None, "")
        ]
        if missing:
            raise FieldError(
                f"connection_params.{missing[0]}",
                f"connection_params for {self.source_type} need {', '.join(missing)}",
            )
        port = self.connection_params.get("port")
        if port not in (None, "") and not (str(port).isdigit() and 0 < int(port) < 65536):
            raise FieldError("connection_params.port", "port must be an integer from 1 to 65535")
        if self.source_type in TABLE_SOURCES:
            if bool(self.source_table_name) == bool(self.custom_sql):
                raise FieldError(
                    "source_table_name", "give exactly one of source_table_name and custom_sql"
                )
            if needs_cursor(self.source_type, self.load_type) and not self.timestamp_column:
                raise FieldError(
                    "timestamp_column", CURSOR_REQUIRED.format(load_type=self.load_type)
                )
            if self.source_type == "bigquery":
                self._check_bigquery_names()
        elif self.file_format is None:
            raise FieldError(
                "file_format",
                "file_format is required for file sources (csv, parquet, json, jsonl)",
            )
        self._check_table_option_columns()
        return self

    @model_validator(mode="after")
    def _merge_needs_key(self) -> JobConfig:
        if self.load_type == "merge" and not self.primary_key:
            raise FieldError(
                "primary_key",
                "primary_key is required for a merge load: the columns that identify a row",
            )
        return self

    def _check_table_option_columns(self) -> None:
        """With `selected_columns`, a partition or clustering column must be one of them (or a
        column the loader adds: `_etl_loaded_at`, `_etl_source_file`); without it the columns
        are checked against the first batch's schema at load time (etl/load/bigquery/tables.py)."""
        if not self.selected_columns:
            return
        known = {*self.source_columns, "_etl_loaded_at", "_etl_run_id"}
        if self.is_file_source:
            known.add("_etl_source_file")
        dest = self.destination
        if dest.partitioning is not None and dest.partitioning.field:
            if dest.partitioning.field not in known:
                raise FieldError(
                    "destination.partitioning.field",
                    f"partition column {dest.partitioning.field!r} is not among selected_columns",
                )
        for name in dest.clustering:
            if name not in known:
                raise FieldError(
                    "destination.clustering",
                    f"clustering column {name!r} is not among selected_columns",
                )

    def _check_bigquery_names(self) -> None:
        """BigQuery names hold no backquote, backslash or line break (dataset and table names:
        letters, digits, `_`, `-` and Unicode letters; column names: no such characters either —
        https://cloud.google.com/bigquery/docs/tables#table_naming), so refusing them keeps a
        name from ever leaving its quoted identifier."""
        names = [("source_table_name", self.source_table_name or "")]
        names += [("selected_columns", c) for c in self.selected_columns]
        names += [("timestamp_column", self.timestamp_column or "")]
        names += [("primary_key", c) for c in self.primary_key]
        for field, name in names:
            if any(ch in name for ch in "`\\\n\r"):
                raise FieldError(
                    field,
                    f"{field} {name!r}: a BigQuery name cannot hold a backquote, backslash "
                    "or line break",
                )

    @property
    def is_file_source(self) -> bool:
        return self.source_type in FILE_SOURCES

    @property
    def source_columns(self) -> list[str]:
        """Columns a table source must read: `selected_columns` plus the cursor and primary key
        (needed for the window and dedup even when not selected); empty means all."""
        if not self.selected_columns:
            return []
        needed = list(self.selected_columns)
        for extra in [self.timestamp_column, *self.primary_key]:
            if extra and extra not in needed:
                needed.append(extra)
        return needed

    @property
    def owner_id(self) -> str:
        """The pipeline id recorded in the load log: `pipeline_id`, else one derived from the
        source's identity, never from a secret: `<source_type>://<host>[:port]/<database>/<table>`
        for database sources (`sql:<sha256 prefix>` for custom SQL), `bigquery://<project>/
        <table>`, and `<source_type>://<bucket | container | base_path>/<file_prefix>
        <file_pattern>` for file sources. Changing any of these parts changes the derived id;
        set `pipeline_id` to keep the table across such a change."""
        if self.pipeline_id:
            return self.pipeline_id
        params = self.connection_params
        if self.source_type in TABLE_SOURCES:
            what = self.source_table_name or (
                "sql:" + hashlib.sha256((self.custom_sql or "").encode()).hexdigest()[:16]
            )
            if self.source_type == "bigquery":
                return f"bigquery://{params.get('project')}/{what}"
            port = params.get("port")
            host = f"{params.get('host')}:{port}" if port not in (None, "") else params.get("host")
            return f"{self.source_type}://{host}/{params.get('database')}/{what}"
        place = params.get("bucket") or params.get("container") or params.get("base_path")
        return f"{self.source_type}://{place}/{self.file_prefix}{self.file_pattern}"

    @property
    def write_disposition(self) -> WriteDisposition:
        """`append` for transactional, `replace` (a snapshot) for catalog, `merge` for merge."""
        dispositions: dict[str, WriteDisposition] = {
            "transactional": "append",
            "catalog": "replace",
            "merge": "merge",
        }
        return dispositions[self.load_type]

    @property
    def window_key_columns(self) -> list[str]:
        """Columns whose values identify a row already loaded at the watermark (the boundary
        dedup of DESIGN.md §5): the primary key for transactional; for merge none, so the
        whole row's hash is used: an update that keeps its cursor value (at the watermark or
        inside the look-back) is a new version to load, while the very same row read again is
        still skipped (docs/config.md, "Merge")."""
        return [] if self.load_type == "merge" else list(self.primary_key)

    def redacted(self) -> dict[str, Any]:
        """Return the config as JSON-able data with every secret replaced by `***`."""
        data = self.model_dump(mode="json")
        data["connection_params"] = {
            key: ("***" if key in SECRET_KEYS and value else value)
            for key, value in data["connection_params"].items()
        }
        if data["destination"].get("credentials"):
            data["destination"]["credentials"] = "***"
        return data

    @classmethod
    def parse(cls, data: Any) -> JobConfig:
        """Validate a mapping against the contract.

        Raises:
            ConfigError: names the first invalid field (dotted path) and what is allowed.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error_from(exc) from None
