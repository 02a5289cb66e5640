"""What a control plane asks the engine without running a job: the first rows of a job as a run
would load them (`preview`), the destination type each column gets (`destination_types`), and
the files a file source would read (`list_files`). Nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from etl.config import FILE_SOURCES, REQUIRED_CONNECTION_KEYS, DestinationConfig, JobConfig
from etl.exceptions import ConfigError, PreviewSchemasDifferError
from etl.extract.listing import ListingBudget
from etl.registry import DESTINATION_TYPES, get_extractor
from etl.state import SyncState
from etl.transform import BatchTransformer


@dataclass(frozen=True)
class PreviewColumn:
    """One column of a preview."""

    source_name: str
    """Its name in the source (`_etl_source_file` for the engine's own column)."""
    name: str
    """Its name in the destination (`JobConfig` naming rules, the stored column map)."""
    arrow_type: str
    """Its Arrow type after the transform (`int64`, `timestamp[us, tz=UTC]`, ...)."""
    destination_type: str
    """The type the destination gives it (DuckDB `BIGINT`, BigQuery `INT64`, ...)."""
    bigquery_type: str
    """The type BigQuery gives it, whatever the destination (e.g. to choose a partitioning
    column before the destination is chosen)."""


@dataclass(frozen=True)
class Preview:
    """The first rows of a job as they would be loaded."""

    columns: list[PreviewColumn]
    table: pa.Table
    """At most the `limit` rows asked for, columns named as in the destination."""


def preview(job: JobConfig, *, limit: int, column_map: Mapping[str, str] | None = None) -> Preview:
    """Read the first `limit` rows of `job` through its extractor and the transform, as a first
    run would (state empty: a transactional job reads from the beginning), loading nothing.

    Files under one pattern whose columns differ (one added, another order) are shown as their
    union, NULL where a file has no such column, as the loader's schema evolution would load
    them (apache/arrow#35424).

    Args:
        job: the job to read.
        limit: rows at most (also the batch size asked of the extractor).
        column_map: the source -> destination name map stored for the job (empty: none yet).

    Raises:
        PreviewSchemasDifferError: the files read hold incompatible types for one column.
        EtlError: whatever the extractor or transform raises (config, connection, data).
    """
    job = job.model_copy(update={"chunk_size": limit})
    transformer = BatchTransformer(job, column_map or {})
    batches: list[pa.RecordBatch] = []
    rows = 0
    with get_extractor(job.source_type)(job).extract(SyncState()) as extraction:
        for batch in extraction.batches():
            batch = transformer.transform(batch.slice(0, limit - rows), extraction.current_file)
            batches.append(batch)
            rows += batch.num_rows
            if rows >= limit:
                break
    if not batches:
        return Preview(columns=[], table=pa.table({}))
    try:
        table = pa.concat_tables(
            [pa.Table.from_batches([batch]) for batch in batches], promote_options="permissive"
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PreviewSchemasDifferError(str(exc).splitlines()[0]) from exc
    source_names = {dest: source for source, dest in transformer.column_map.items()}
    types = destination_types(table.schema, job.destination.type)
    bigquery_types = (
        types if job.destination.type == "bigquery" else destination_types(table.schema, "bigquery")
    )
    columns = [
        PreviewColumn(
            source_name=source_names.get(field.name, field.name),
            name=field.name,
            arrow_type=str(field.type),
            destination_type=types[field.name],
            bigquery_type=bigquery_types[field.name],
        )
        for field in table.schema
    ]
    return Preview(columns=columns, table=table)


def destination_types(schema: pa.Schema, destination_type: str) -> dict[str, str]:
    """Return the type each column of `schema` gets in a `destination_type` table, by the
    loader's own rules: BigQuery's type mapping (`ARRAY<...>` for repeated fields), or the
    DuckDB loader's projection (exact decimal text, JSON-marked text as JSON) described on an
    empty table.

    Raises:
        ConfigError: `destination_type` is not one of `DESTINATION_TYPES`.
    """
    if destination_type == "bigquery":
        from etl.load.bigquery.types import bigquery_type

        result = {}
        for field in schema:
            kind, mode, _ = bigquery_type(field)
            result[field.name] = f"ARRAY<{kind}>" if mode == "REPEATED" else kind
        return result
    if destination_type != "duckdb":
        raise ConfigError(
            f"destination.type {destination_type!r} is not one of {', '.join(DESTINATION_TYPES)}",
            field="destination.type",
        )
    import duckdb

    from etl.load.base import LOADED_AT_COLUMN, RUN_ID_COLUMN
    from etl.load.duckdb.insert import exact_text, select_list

    empty = pa.Table.from_batches([exact_text(pa.RecordBatch.from_pylist([], schema=schema))])
    with duckdb.connect(":memory:") as connection:
        connection.register("_etl_preview", empty)
        described = connection.execute(
            f"DESCRIBE SELECT {select_list(empty.schema)} FROM _etl_preview", ["", None]
        ).fetchall()
    added = {RUN_ID_COLUMN, LOADED_AT_COLUMN}
    return {row[0]: row[1] for row in described if row[0] not in added}


@dataclass(frozen=True)
class FileQuery:
    """Which objects of a file store to list (what `list_objects` reads of a job)."""

    source_type: str
    connection_params: dict[str, Any]
    file_prefix: str = ""
    file_pattern: str = "**"


def list_files(
    source_type: str,
    connection_params: Mapping[str, Any],
    *,
    prefix: str = "",
    pattern: str = "**",
    budget: ListingBudget | None = None,
) -> list[Any]:
    """List the objects under `prefix` whose path relative to it matches the glob `pattern`
    (`*` stays in one folder, `**` crosses folders), as a file source with that prefix and
    pattern would read them. With a `budget` (an interactive listing) the walk stops after
    `budget.max_entries` files and folders or `budget.max_seconds`, and `budget.truncated`
    then says the list is partial.

    Returns:
        `etl.extract.storage.StoredObject`s (`key`, `size` in bytes, `last_modified` ISO 8601
        UTC, `version`), sorted by key; every match (the caller truncates).

    Raises:
        ConfigError: not a file source type, a required connection key is missing (named as
            `connection_params.<key>`), or the prefix leaves a local base path.
        SourceUnavailableError: the store cannot be listed.
    """
    from etl.extract.storage import list_objects

    if source_type not in FILE_SOURCES:
        raise ConfigError(
            f"source_type {source_type!r} is not a file source ({', '.join(sorted(FILE_SOURCES))})",
            field="source_type",
        )
    missing = [k for k in REQUIRED_CONNECTION_KEYS[source_type] if not connection_params.get(k)]
    if missing:
        raise ConfigError(
            f"connection_params for {source_type} need {', '.join(missing)}",
            field=f"connection_params.{missing[0]}",
        )
    query = FileQuery(source_type, dict(connection_params), prefix, pattern or "**")
    _, objects = list_objects(query, budget)
    return objects


def bigquery_cluster_types() -> frozenset[str]:
    """The BigQuery column types a table may be clustered on
    (https://cloud.google.com/bigquery/docs/clustered-tables#cluster_column_types)."""
    from etl.load.bigquery.tables import CLUSTER_TYPES

    return frozenset(CLUSTER_TYPES)


def check_bigquery_columns(
    destination: DestinationConfig, columns: Sequence[tuple[str, str]]
) -> None:
    """Check `destination`'s partition and clustering columns against a table's columns, as
    the BigQuery loader does before it creates the table.

    Args:
        destination: a bigquery destination block.
        columns: `(name, BigQuery type)` of the table's top-level columns.

    Raises:
        ConfigError: names `destination.partitioning.field` or `destination.clustering`, the
            column and why.
    """
    from etl.bigquery_client import bigquery
    from etl.load.bigquery.tables import check_columns

    check_columns(destination, [bigquery.SchemaField(name, kind) for name, kind in columns])
