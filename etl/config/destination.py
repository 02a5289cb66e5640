"""`DestinationConfig`: where rows are loaded (DuckDB or BigQuery) and the BigQuery table options
(partitioning, clustering, expiration, labels, descriptions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from etl.config.base import (
    IDENTIFIER,
    PROJECT_ID,
    ConfigModel,
    FieldError,
)

PARTITION_UNITS = ("DAY", "HOUR", "MONTH", "YEAR")


MAX_CLUSTERING_COLUMNS = 4
"""https://cloud.google.com/bigquery/docs/clustered-tables#limitations: up to four columns."""


MAX_RANGE_PARTITIONS = 10_000
"""https://cloud.google.com/bigquery/quotas#partitioned_tables: partitions per table."""


class Partitioning(ConfigModel):
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


class DestinationConfig(ConfigModel):
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
    memory_limit: str | None = None
    """DuckDB only: the database's memory limit while loading (DuckDB size text, e.g. `1GB`), a
    hard cap: large loads spill to the database file instead of growing the process, and a
    value too large for it fails the run naming this setting. None (the default): automatic,
    64 MiB, raised during the run before DuckDB reads a batch or a file to about 3x (Arrow
    batches) or 5x (Parquet files DuckDB reads itself) its largest rows
    (etl/load/duckdb/memory.py). DuckDB fills its buffer up to the limit, so the limit is most
    of a run's peak memory, and it holds each value whole, so it bounds the largest value
    (docs/config.md, "Large values"). TPC-H lineitem SF 1 into DuckDB peaks at 237-292 MB with
    the automatic limit, 283-341 MB with a fixed 128MB (bench/PROFILE.md, "memory")."""
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
        if not IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @field_validator("project")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        # written into backquoted table paths of BigQuery SQL: no quote may reach them
        if value is not None and not PROJECT_ID.match(value):
            raise ValueError(
                "must be a BigQuery project id: letters, digits, hyphens (and `.`, `:` of "
                "domain-scoped ids)"
            )
        return value

    @model_validator(mode="after")
    def _bigquery_needs_project(self) -> DestinationConfig:
        if self.type == "bigquery" and not self.project:
            raise FieldError(
                "destination.project", "`project` is required for a bigquery destination"
            )
        return self
