"""`JobConfig`: the config contract of shared/DESIGN.md §4, validated.

One JobConfig describes one data source: where rows come from (`source_type`,
`connection_params`, table / custom SQL / files), how they are loaded (`load_type`,
`timestamp_column`, `primary_key`, ...) and where they go (`destination`). Field names are kept
from the original platform so existing configs keep working. Secrets are plain values here; the
control plane resolves them from encrypted storage, and `repr()` never shows them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl.exceptions import ConfigError

SourceType = Literal["postgresql", "mysql", "bigquery", "gcs", "s3", "azure_blob", "local"]
LoadType = Literal["transactional", "catalog", "merge"]
FileFormat = Literal["csv", "parquet", "json", "jsonl"]
WriteDisposition = Literal["append", "replace", "merge"]

TABLE_SOURCES = frozenset({"postgresql", "mysql", "bigquery"})
FILE_SOURCES = frozenset({"gcs", "s3", "azure_blob", "local"})

REQUIRED_CONNECTION_KEYS: dict[str, tuple[str, ...]] = {
    "postgresql": ("host", "database", "user"),
    "mysql": ("host", "database", "user"),
    "bigquery": ("project",),
    "local": ("base_path",),
    "s3": ("bucket",),
    "gcs": ("bucket",),
    "azure_blob": ("container",),
}
"""Keys each source type needs in `connection_params` (DESIGN.md §4)."""

SECRET_KEYS = frozenset(
    {
        "password",
        "aws_secret_access_key",
        "credentials",
        "connection_string",
        "account_key",
        "sas_token",
        "token",
    }
)
"""`connection_params` keys whose values are never logged, shown or put in error messages."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}$")
"""BigQuery project ids (`my-project-123`, domain-scoped `example.com:my-project`)."""


class _FieldError(ValueError):
    """A cross-field rule broken; `field` is the dotted field the user must change."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileFormatOptions(_Model):
    """Options of `file_format`; unknown keys are rejected so typos are caught."""

    delimiter: str = ","
    """CSV field separator, one character (e.g. `;`, `\\t`, `|`)."""
    encoding: str = "utf-8"
    """Text encoding of CSV/JSON files (`utf-8`, `utf-8-sig`, `latin-1`, `cp1252`, ...)."""
    has_header: bool = True
    """CSV: the first line holds column names; otherwise columns are named `column_1`, ..."""
    quote_char: str = '"'
    """CSV quote character; quoted fields may contain delimiters and newlines."""
    escape_char: str | None = None
    """CSV escape character; None means quotes are escaped by doubling."""
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "NULL", "null", "\\N"])
    """CSV strings read as NULL."""
    skip_rows: int = Field(default=0, ge=0)
    """CSV lines skipped before the header."""
    allow_quoted_newlines: bool = True
    """CSV: quoted fields may contain line breaks (LF, CRLF or CR), as spreadsheet and database
    exports write them (RFC 4180 section 2.6; BigQuery's option of the same name). A quote that
    is never closed still fails the run naming the file and the line it opens on (a file
    holding a line break inside quotes is checked once more, with Python's csv module).
    `false`: a value spanning lines fails the run at its line."""
    decimal_point: str = "."
    """CSV decimal separator of numbers (`,` for `1,5` with a `;` delimiter)."""
    column_types: dict[str, str] = Field(default_factory=dict)
    """CSV column name -> type, overriding inference: string, integer, float, boolean, date,
    timestamp (wall clock), timestamptz (UTC instant) or decimal(P,S)."""
    catalog_files: Literal["all", "latest"] = "all"
    """Catalog load of files: `all` matching files, or only the `latest` by last-modified."""

    @field_validator("column_types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        from etl.formats.types import named_type

        for name, kind in value.items():
            try:
                named_type(kind)
            except ValueError as exc:
                raise ValueError(f"column {name!r}: {exc}") from None
        return value

    @field_validator("delimiter", "quote_char", "decimal_point")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


PARTITION_UNITS = ("DAY", "HOUR", "MONTH", "YEAR")
MAX_CLUSTERING_COLUMNS = 4
"""https://cloud.google.com/bigquery/docs/clustered-tables#limitations: up to four columns."""
MAX_RANGE_PARTITIONS = 10_000
"""https://cloud.google.com/bigquery/quotas#partitioned_tables: partitions per table."""


class Partitioning(_Model):
    """`destination.partitioning` (BigQuery only): time-unit or integer-range partitioning.

    Time: `{"type": "DAY" | "HOUR" | "MONTH" | "YEAR", "field": column or null (ingestion
    time), "expiration_days": n, "require_filter": bool}`; the column must be DATE, TIMESTAMP or
    DATETIME (HOUR: not DATE). Integer range: `{"field", "start", "end", "interval"}` on an
    INT64 column, at most 10,000 partitions. Rules:
    https://cloud.google.com/bigquery/docs/partitioned-tables. The partitioning is fixed at
    creation: BigQuery cannot change it afterwards (a changed value fails the run).
    """

    type: Literal["DAY", "HOUR", "MONTH", "YEAR"] | None = None
    """Time unit of time partitioning (DAY when no `start`/`end`/`interval` is given)."""
    field: str | None = None
    """Destination column partitioned on; None: ingestion time (`_PARTITIONTIME`)."""
    expiration_days: float | None = Field(default=None, gt=0)
    """Time partitioning: a partition is deleted this many days after its time."""
    require_filter: bool = False
    """Queries must filter on the partition column (`require_partition_filter`)."""
    start: int | None = None
    """Integer range: first value of the first partition (inclusive)."""
    end: int | None = None
    """Integer range: end of the last partition (exclusive)."""
    interval: int | None = Field(default=None, gt=0)
    """Integer range: width of each partition."""

    @property
    def is_range(self) -> bool:
        return self.start is not None or self.end is not None or self.interval is not None

    @model_validator(mode="after")
    def _shape(self) -> Partitioning:
        if not self.is_range:
            return self
        if None in (self.start, self.end, self.interval):
            raise ValueError("integer-range partitioning needs start, end and interval")
        if self.type is not None:
            raise ValueError("give either `type` (time partitioning) or start/end/interval")
        if not self.field:
            raise ValueError("integer-range partitioning needs `field` (an INT64 column)")
        if self.expiration_days is not None:
            raise ValueError("expiration_days applies to time partitioning only")
        assert self.start is not None and self.end is not None and self.interval is not None
        if self.end <= self.start:
            raise ValueError("`end` must be greater than `start`")
        count = -(-(self.end - self.start) // self.interval)
        if count > MAX_RANGE_PARTITIONS:
            raise ValueError(
                f"start/end/interval make {count:,} partitions; BigQuery allows "
                f"{MAX_RANGE_PARTITIONS:,} per table"
            )
        return self


def _label_char(ch: str, *, first: bool) -> bool:
    """BigQuery label characters: lowercase letters, international characters, and (not first
    in a key) digits, `_` and `-` (https://cloud.google.com/bigquery/docs/labels-intro#requirements)."""
    letter = ch.isalpha() and not ch.isupper()
    return letter if first else letter or ch.isdigit() or ch in "_-"


class DestinationConfig(_Model):
    """Where rows are loaded: the embedded DuckDB file or a BigQuery dataset."""

    type: Literal["duckdb", "bigquery"] = "duckdb"
    path: str = "warehouse.duckdb"
    """DuckDB database file (duckdb only)."""
    dataset: str = "raw_data"
    """Schema (DuckDB) or dataset (BigQuery) holding the destination table."""
    project: str | None = None
    """BigQuery project id (bigquery only)."""
    location: str | None = None
    """BigQuery location, e.g. `EU` (bigquery only)."""
    credentials: dict[str, Any] | str | None = Field(default=None, repr=False)
    """Service-account JSON; None: Application Default Credentials; "anonymous": the emulator."""
    api_endpoint: str | None = None
    """BigQuery API endpoint override (the emulator)."""
    memory_limit: str = "128MB"
    """DuckDB only: the database's memory limit while loading (DuckDB size text, e.g. `1GB`);
    large loads spill to the database file instead of growing the process. A load fills
    DuckDB's buffers up to the limit: 128MB keeps a run's peak RSS under 300 MB (TPC-H
    lineitem SF 1 from PostgreSQL: 404 MB with 256MB, 297 MB with 128MB, same wall time)."""
    timeout_s: float = Field(default=600, gt=0)
    """BigQuery only: deadline for one API call with its retries, and for one job, in seconds."""

    partitioning: Partitioning | None = None
    """BigQuery only: time or integer-range partitioning (`Partitioning`), set at creation."""
    clustering: list[str] = Field(default_factory=list, max_length=MAX_CLUSTERING_COLUMNS)
    """BigQuery only: up to 4 destination columns, in order, the table is clustered on."""
    description: str | None = Field(default=None, max_length=16_384)
    """BigQuery only: the table's description."""
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    """BigQuery only: table labels (key: 1-63 lowercase letters, digits, `_`, `-`, starting
    with a letter; value: 0-63 of the same; at most 64)."""

    @field_validator("clustering")
    @classmethod
    def _clustering(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a column is named twice")
        if any(not name for name in value):
            raise ValueError("a column name is empty")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not 1 <= len(key) <= 63 or not all(
                _label_char(ch, first=i == 0) for i, ch in enumerate(key)
            ):
                raise ValueError(
                    f"label key {key!r}: 1 to 63 lowercase letters, digits, `_` or `-`, "
                    "starting with a lowercase letter"
                )
            if len(text) > 63 or not all(_label_char(ch, first=False) for ch in text):
                raise ValueError(
                    f"label {key!r}: the value must be up to 63 lowercase letters, digits, "
                    "`_` or `-`"
                )
        return value

    def table_options_set(self) -> list[str]:
        """Names of the BigQuery table options this destination sets (`partitioning`, ...)."""
        names = ["partitioning", "clustering", "description", "labels"]
        return [name for name in names if getattr(self, name)]

    def ignored_options_warning(self) -> str | None:
        """Return the run warning of a DuckDB destination configured with BigQuery table
        options (DuckDB has no partitioning, clustering, table labels or descriptions), else
        None."""
        names = self.table_options_set()
        if self.type != "duckdb" or not names:
            return None
        return (
            f"destination options {', '.join(names)} apply to BigQuery only; the DuckDB "
            "destination ignores them"
        )

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @field_validator("project")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        # written into backquoted table paths of BigQuery SQL: no quote may reach them
        if value is not None and not _PROJECT.match(value):
            raise ValueError(
                "must be a BigQuery project id: letters, digits, hyphens (and `.`, `:` of "
                "domain-scoped ids)"
            )
        return value

    @model_validator(mode="after")
    def _bigquery_needs_project(self) -> DestinationConfig:
        if self.type == "bigquery" and not self.project:
            raise _FieldError(
                "destination.project", "`project` is required for a bigquery destination"
            )
        return self


class JobConfig(_Model):
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
    destination: DestinationConfig = Field(default_factory=DestinationConfig)
    pipeline_id: str | None = Field(default=None, min_length=1, max_length=512)
    """Identity of the data source that owns the destination table (recorded with every load in
    the load log; a load into a table another pipeline owns is refused with `TableOwnedError`).
    The control plane sets `datasource:<id>`. None: derived from the source identity
    (`owner_id`), so a job file keeps its table while its source stays the same."""

    @field_validator("dest_table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @model_validator(mode="after")
    def _contract(self) -> JobConfig:
        missing = [
            key
            for key in REQUIRED_CONNECTION_KEYS[self.source_type]
            if self.connection_params.get(key) in (None, "")
        ]
        if missing:
            raise _FieldError(
                f"connection_params.{missing[0]}",
                f"connection_params for {self.source_type} need {', '.join(missing)}",
            )
        port = self.connection_params.get("port")
        if port not in (None, "") and not (str(port).isdigit() and 0 < int(port) < 65536):
            raise _FieldError("connection_params.port", "port must be an integer from 1 to 65535")
        if self.source_type in TABLE_SOURCES:
            if bool(self.source_table_name) == bool(self.custom_sql):
                raise _FieldError(
                    "source_table_name", "give exactly one of source_table_name and custom_sql"
                )
            if self.load_type != "catalog" and not self.timestamp_column:
                raise _FieldError(
                    "timestamp_column",
                    f"timestamp_column is required for a {self.load_type} table load",
                )
            if self.source_type == "bigquery":
                self._check_bigquery_names()
        elif self.file_format is None:
            raise _FieldError(
                "file_format",
                "file_format is required for file sources (csv, parquet, json, jsonl)",
            )
        self._check_table_option_columns()
        return self

    @model_validator(mode="after")
    def _merge_needs_key(self) -> JobConfig:
        if self.load_type == "merge" and not self.primary_key:
            raise _FieldError(
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
                raise _FieldError(
                    "destination.partitioning.field",
                    f"partition column {dest.partitioning.field!r} is not among selected_columns",
                )
        for name in dest.clustering:
            if name not in known:
                raise _FieldError(
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
                raise _FieldError(
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
        return {"transactional": "append", "catalog": "replace", "merge": "merge"}[self.load_type]

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


def config_error_from(exc: ValidationError) -> ConfigError:
    """Turn a pydantic error into a `ConfigError` whose message names each field, no input values."""
    problems = []
    first_field = None
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        prefix = ".".join(str(part) for part in error["loc"])
        if isinstance(cause, _FieldError):
            field = (
                f"{prefix}.{cause.field.split('.', 1)[1]}"
                if prefix == "destination"
                else cause.field
            )
        else:
            field = prefix or "config"
        first_field = first_field or field
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"`{field}`: {message}")
    return ConfigError("Invalid job config: " + "; ".join(problems), field=first_field)
