"""Preview a data source: its first rows read through the engine's extractor and transform, so
what is shown is what a run would load. Nothing is written, neither here nor in the source or
the destination."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
from typing import Any

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
    """Read the first `limit` rows of `data_source` through the engine (`etl.preview`: the
    extractor, then the transform with the stored column-name map) without loading or storing
    anything.

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
    job = job_config_build(data_source=data_source)
    # an unsaved source (the wizard's draft) has no state yet
    column_map = sync_state_get_engine(data_source=data_source).column_map if data_source.pk else {}
    with engine_errors(data_source.connection):
        try:
            result = etl.preview(job, limit=limit, column_map=column_map)
        except etl.PreviewSchemasDifferError as exc:
            raise ApplicationError(PREVIEW_SCHEMAS_DIFFER.format(reason=exc.reason)) from exc
    return {
        "columns": [dataclasses.asdict(column) for column in result.columns],
        "rows": [_jsonable(row) for row in result.table.to_pylist()],
    }


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
