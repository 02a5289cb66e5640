"""Preview a data source: its first rows read through the engine's extractor and transform, so
what is shown is what a run would load. Nothing is written, neither here nor in the source or
the destination."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any

import pyarrow as pa

import etl
from ml_platform.exceptions import ApplicationError
from ml_platform.models import DataSource
from ml_platform.services.job_config import job_config_build
from ml_platform.services.probes import engine_errors
from ml_platform.services.state import sync_state_get_engine

PREVIEW_SCHEMAS_DIFFER = (
    "The previewed files have columns of incompatible types, so they cannot be loaded into one "
    "table: {reason}. Narrow the file pattern or fix the files."
)


def data_source_preview(*, data_source: DataSource, limit: int) -> dict[str, Any]:
    """Read the first `limit` rows of `data_source` through the engine (extractor, then the
    transform with the stored column-name map) without loading or storing anything.

    Transactional sources are read from the beginning, as on a first run. `data_source` may
    be unsaved (a draft): it then has no column-name map yet.

    Returns:
        `{"columns": [{"source_name", "name", "arrow_type", "destination_type",
        "bigquery_type"}], "rows": [{destination name: value}]}`; `destination_type` is the
        DuckDB or BigQuery type the column gets, `bigquery_type` the BigQuery one whatever
        the destination (the wizard's partitioning and clustering choices); decimals, timestamps and bytes are strings (ISO 8601, base64).

    Raises:
        ApplicationError: the source cannot be read (config, connection, query or data error),
            or the files read have incompatible column types; files with different columns
            are shown as their union (NULL where a file has no such column).
    """
    from etl.registry import get_extractor
    from etl.transform import BatchTransformer

    job = job_config_build(data_source=data_source).model_copy(update={"chunk_size": limit})
    # an unsaved source (the wizard's draft) has no state yet
    column_map = sync_state_get_engine(data_source=data_source).column_map if data_source.pk else {}
    transformer = BatchTransformer(job, column_map)
    batches: list[pa.RecordBatch] = []
    rows = 0
    with engine_errors(data_source.connection):
        with get_extractor(job.source_type)(job).extract(etl.SyncState()) as extraction:
            for batch in extraction.batches():
                batch = transformer.transform(batch.slice(0, limit - rows), extraction.current_file)
                batches.append(batch)
                rows += batch.num_rows
                if rows >= limit:
                    break
    if not batches:
        return {"columns": [], "rows": []}
    try:
        # files under one pattern may differ (a column added, another order): the preview shows
        # their union, as the loader's schema evolution would (apache/arrow#35424)
        table = pa.concat_tables(
            [pa.Table.from_batches([batch]) for batch in batches], promote_options="permissive"
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0]
        raise ApplicationError(PREVIEW_SCHEMAS_DIFFER.format(reason=reason)) from exc
    source_names = {dest: source for source, dest in transformer.column_map.items()}
    types = _destination_types(table.schema, job.destination.type)
    bigquery_types = (
        types
        if job.destination.type == "bigquery"
        else _destination_types(table.schema, "bigquery")
    )
    columns = [
        {
            "source_name": source_names.get(field.name, field.name),
            "name": field.name,
            "arrow_type": str(field.type),
            "destination_type": types[field.name],
            "bigquery_type": bigquery_types[field.name],
        }
        for field in table.schema
    ]
    return {"columns": columns, "rows": [_jsonable(row) for row in table.to_pylist()]}


def _destination_types(schema: pa.Schema, destination_type: str) -> dict[str, str]:
    if destination_type == "bigquery":
        from etl.load.bigquery.types import bigquery_type

        result = {}
        for field in schema:
            kind, mode, _ = bigquery_type(field)
            result[field.name] = f"ARRAY<{kind}>" if mode == "REPEATED" else kind
        return result
    import duckdb

    from etl.schema import is_json

    # the DuckDB loader's own projection (JSON-marked strings become JSON), on an empty table
    empty = schema.empty_table()
    select = ", ".join(
        f'CAST("{f.name}" AS JSON) AS "{f.name}"' if is_json(f) else f'"{f.name}"' for f in schema
    )
    with duckdb.connect(":memory:") as connection:
        connection.register("_etl_preview", empty)
        described = connection.execute(f"DESCRIBE SELECT {select} FROM _etl_preview").fetchall()
    return {row[0]: row[1] for row in described}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value
