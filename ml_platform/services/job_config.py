"""Build the engine's `etl.JobConfig` from a `DataSource` and its `Connection`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

import etl
from ml_platform.models import DataSource
from ml_platform.services.connections import connection_params_build, credentials_read
from ml_platform.services.secrets import secret_read

_FIELD_ALIASES = {"connection_params": "connection", "source_type": "connection"}


def job_config_data(*, data_source: DataSource) -> dict[str, Any]:
    """Return the config contract (DESIGN.md §4) as a mapping, secrets resolved (plain text).

    The destination block defaults to DuckDB at `settings.ETL_DEFAULT_DUCKDB_PATH`; a relative
    DuckDB `path` is taken relative to `settings.VAR_DIR`. BigQuery
    destination credentials come from `destination_credentials`, else from a BigQuery
    connection's `credentials`.
    """
    connection = data_source.connection
    destination = {"type": "duckdb", **(data_source.destination or {})}
    if destination["type"] == "duckdb":
        path = Path(destination.get("path") or settings.ETL_DEFAULT_DUCKDB_PATH)
        # relative to var/, so web, workers and commands agree whatever their working directory
        destination["path"] = str(path if path.is_absolute() else Path(settings.VAR_DIR) / path)
    credentials = secret_read(
        data_source.destination_credentials, owner=f"data source {data_source.pk} destination"
    )
    if credentials is None and destination["type"] == "bigquery" and connection.type == "bigquery":
        credentials = credentials_read(connection=connection).get("credentials")
    if credentials is not None:
        destination["credentials"] = credentials
    return {
        "source_type": connection.type,
        "connection_params": connection_params_build(connection=connection),
        "load_type": data_source.load_type,
        "dest_table_name": data_source.dest_table_name,
        "selected_columns": list(data_source.selected_columns or []),
        "source_table_name": data_source.source_table_name or None,
        "custom_sql": data_source.custom_sql or None,
        "timestamp_column": data_source.timestamp_column or None,
        "primary_key": list(data_source.primary_key or []),
        "cursor_lag_seconds": data_source.cursor_lag_seconds,
        "initial_value": data_source.initial_value or None,
        "null_cursor": data_source.null_cursor,
        "on_bad_rows": data_source.on_bad_rows,
        "file_pattern": data_source.file_pattern or "*",
        "file_prefix": data_source.file_prefix,
        "file_format": data_source.file_format or None,
        "file_format_options": dict(data_source.file_format_options or {}),
        "chunk_size": data_source.chunk_size,
        "destination": destination,
        # the owner of the destination table in its load log (etl.JobConfig.pipeline_id)
        "pipeline_id": f"datasource:{data_source.pk}",
    }


def job_config_build(*, data_source: DataSource) -> etl.JobConfig:
    """Return the validated engine config of `data_source`, secrets resolved.

    Raises:
        etl.ConfigError: the stored fields break the contract; `.field` names the contract field.
        CredentialsUnreadableError: stored credentials do not decrypt with the configured keys.
    """
    return etl.JobConfig.parse(job_config_data(data_source=data_source))


def validation_error_from(exc: etl.ConfigError) -> ValidationError:
    """Turn an engine `ConfigError` into a `ValidationError` keyed by the `DataSource` field.

    `connection_params.*` and `source_type` map to `connection`, `destination.*` to
    `destination`; an error the engine does not tie to one field is a non-field error.
    """
    field = (exc.field or "").split(".")[0]
    field = _FIELD_ALIASES.get(field, field)
    if field not in {f.name for f in DataSource._meta.concrete_fields}:
        field = NON_FIELD_ERRORS
    return ValidationError({field: str(exc)})
