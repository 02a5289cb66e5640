"""BigQuery table options of `destination` (partitioning, clustering, description, labels,
column descriptions): set at creation, checked against the table's columns, kept in step after
each load.

Which option can change after creation (https://cloud.google.com/bigquery/docs/managing-tables,
https://cloud.google.com/bigquery/docs/managing-partitioned-tables,
https://cloud.google.com/bigquery/docs/creating-clustered-tables#modifying-cluster-spec):

- partitioning (type, column, integer range): fixed at creation. A configured partitioning
  that differs from the table's fails the run before anything is loaded (`ConfigError` naming
  `destination.partitioning` and both specs);
- partition expiration, require partition filter, clustering columns, description, labels and
  column descriptions: updated in place with one `tables.patch` after the commit, only when
  they differ (BigQuery allows 5 metadata updates per table per 10 s:
  https://cloud.google.com/bigquery/quotas#standard_tables). A new clustering applies to data
  written afterwards; earlier data is re-clustered by BigQuery in the background.

An option the config does not set (no `partitioning`, empty `clustering`, no `description`)
leaves the table's own as it is (a table laid out by hand keeps its layout). Labels the config
does not name are left as they are (a label added in the console stays);
a column description is set when the column has none or has one this module wrote
(`source: ...`), so a description written by hand is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from etl.bigquery_client import bigquery
from etl.config import DestinationConfig, Partitioning
from etl.exceptions import ConfigError

DESCRIPTION_PREFIX = "source: "
"""Column descriptions this module writes: `source: <source column> (<source Arrow type>)`."""
_TIME_TYPES = {"DATE", "TIMESTAMP", "DATETIME"}
CLUSTER_TYPES = {
    "BIGNUMERIC",
    "BOOL",
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "GEOGRAPHY",
    "INT64",
    "INTEGER",
    "NUMERIC",
    "STRING",
    "TIMESTAMP",
}
"""Column types a table can be clustered on
(https://cloud.google.com/bigquery/docs/clustered-tables#cluster_column_types)."""
_DAY_MS = 86_400_000


def column_description(source_name: str, source_type: str) -> str:
    """Return the description of a column: its source name and source (Arrow) type."""
    return f"{DESCRIPTION_PREFIX}{source_name} ({source_type})"[:1024]


def check_columns(destination: DestinationConfig, fields: Iterable[Any]) -> None:
    """Check that the partition column and the clustering columns exist with a type BigQuery
    accepts for them.

    Args:
        fields: the table's top-level `bigquery.SchemaField`s.

    Raises:
        ConfigError: names `destination.partitioning.field` or `destination.clustering`, the
            column and why.
    """
    types = {f.name: (f.field_type.upper(), f.mode) for f in fields}
    part = destination.partitioning
    if part is not None and part.field:
        found = types.get(part.field)
        if found is None:
            raise ConfigError(
                f"partition column {part.field!r} is not a column of the table "
                f"(columns: {', '.join(types)})",
                field="destination.partitioning.field",
            )
        kind, mode = found
        allowed = {"INT64", "INTEGER"} if part.is_range else set(_TIME_TYPES)
        if part.type == "HOUR":
            allowed.discard("DATE")
        if kind not in allowed or mode == "REPEATED":
            raise ConfigError(
                f"partition column {part.field!r} is {kind}; "
                + (
                    "integer-range partitioning needs INT64"
                    if part.is_range
                    else f"{part.type or 'DAY'} partitioning needs {' or '.join(sorted(allowed))}"
                ),
                field="destination.partitioning.field",
            )
    for name in destination.clustering:
        found = types.get(name)
        if found is None:
            raise ConfigError(
                f"clustering column {name!r} is not a column of the table",
                field="destination.clustering",
            )
        if found[0] not in CLUSTER_TYPES or found[1] == "REPEATED":
            raise ConfigError(
                f"clustering column {name!r} is {found[0]}"
                f"{' REPEATED' if found[1] == 'REPEATED' else ''}; BigQuery clusters on "
                "top-level STRING, INT64, NUMERIC, BIGNUMERIC, BOOL, DATE, DATETIME, TIMESTAMP "
                "or GEOGRAPHY columns",
                field="destination.clustering",
            )


def _time_partitioning(part: Partitioning) -> Any:
    expiration = None
    if part.expiration_days is not None:
        expiration = int(part.expiration_days * _DAY_MS)
    return bigquery.TimePartitioning(
        type_=part.type or "DAY", field=part.field, expiration_ms=expiration
    )


def _range_partitioning(part: Partitioning) -> Any:
    return bigquery.RangePartitioning(
        field=part.field,
        range_=bigquery.PartitionRange(start=part.start, end=part.end, interval=part.interval),
    )


def apply_layout(table: Any, destination: DestinationConfig, *, metadata: bool) -> Any:
    """Set the configured options on a `bigquery.Table` about to be created; return it.

    Args:
        metadata: also set require-partition-filter, description and labels (the destination
            table); False: partitioning and clustering only (a snapshot's staging table, which
            the copy job swaps in, must be laid out like the table it replaces, and is read
            without a partition filter by the commit).
    """
    part = destination.partitioning
    if part is not None:
        if part.is_range:
            table.range_partitioning = _range_partitioning(part)
        else:
            table.time_partitioning = _time_partitioning(part)
        if metadata and part.require_filter:
            table.require_partition_filter = True
    if destination.clustering:
        table.clustering_fields = list(destination.clustering)
    if metadata:
        if destination.description:
            table.description = destination.description
        if destination.labels:
            table.labels = dict(destination.labels)
    return table


def _spec(table: Any) -> str:
    """Return a table's partitioning as text (`DAY on ts`, `RANGE on k [0, 100) by 10`,
    `none`)."""
    if table.range_partitioning is not None:
        rng = table.range_partitioning.range_
        return (
            f"RANGE on {table.range_partitioning.field} [{rng.start}, {rng.end}) by {rng.interval}"
        )
    if table.time_partitioning is not None:
        tp = table.time_partitioning
        return f"{tp.type_} on {tp.field or '_PARTITIONTIME (ingestion time)'}"
    return "none"


def refuse_fixed_changes(table: Any, destination: DestinationConfig) -> None:
    """Fail when the configured partitioning is not the existing table's (BigQuery cannot
    change a table's partitioning: https://cloud.google.com/bigquery/docs/managing-partitioned-
    tables). Without a configured partitioning nothing is checked.

    Args:
        table: the existing destination `bigquery.Table`, or None (nothing to compare).

    Raises:
        ConfigError: names `destination.partitioning`, the table's and the configured spec.
    """
    if table is None or destination.partitioning is None:
        return  # no partitioning configured: the table's own (made by hand) is left alone
    wanted = apply_layout(bigquery.Table(table.reference), destination, metadata=False)
    if _spec(wanted) != _spec(table):
        raise ConfigError(
            f"table {table.table_id} is partitioned {_spec(table)}, the config asks for "
            f"{_spec(wanted)}: BigQuery cannot change a table's partitioning. Keep the table's "
            "partitioning in the config, or load into a new table (a new dest_table_name, or "
            "drop the table and run with a full refresh)",
            field="destination.partitioning",
        )


def sync_options(
    table: Any,
    destination: DestinationConfig,
    descriptions: Mapping[str, str],
    update: Callable[[Any, list[str]], Any],
) -> Any:
    """Bring the changeable options of an existing table in line with the config, in one
    update; return the (updated) table.

    Args:
        table: the destination `bigquery.Table` after the commit.
        descriptions: column name -> description (`column_description`) of the run's columns.
        update: `client.update_table`-like callable (table, field names) -> table.
    """
    fields: list[str] = []
    part = destination.partitioning
    if part is not None and not part.is_range and table.time_partitioning is not None:
        wanted = _time_partitioning(part).expiration_ms
        if table.time_partitioning.expiration_ms != wanted:
            tp = table.time_partitioning
            tp.expiration_ms = wanted
            table.time_partitioning = tp
            fields.append("time_partitioning")
    require = bool(part is not None and part.require_filter)
    if part is not None and bool(table.require_partition_filter) != require:
        table.require_partition_filter = require
        fields.append("require_partition_filter")
    clustering = list(destination.clustering)
    if clustering and (table.clustering_fields or []) != clustering:
        table.clustering_fields = clustering
        fields.append("clustering_fields")
    if destination.description is not None and table.description != destination.description:
        table.description = destination.description
        fields.append("description")
    labels = dict(table.labels or {})
    if any(labels.get(key) != value for key, value in destination.labels.items()):
        table.labels = {**labels, **destination.labels}
        fields.append("labels")
    schema, changed = [], False
    for field in table.schema:
        text = descriptions.get(field.name)
        current = field.description or ""
        if text and current != text and (not current or current.startswith(DESCRIPTION_PREFIX)):
            api = field.to_api_repr()
            api["description"] = text
            field = bigquery.SchemaField.from_api_repr(api)
            changed = True
        schema.append(field)
    if changed:
        table.schema = schema
        fields.append("schema")
    if not fields:
        return table
    return update(table, fields)
