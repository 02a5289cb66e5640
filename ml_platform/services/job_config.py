"""Build the engine's `etl.JobConfig` from a `DataSource` and its `Connection`."""

from __future__ import annotations

import os
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

    The destination block defaults to DuckDB at `settings.ETL_DEFAULT_DUCKDB_PATH`; a DuckDB
    `path` must lie in `settings.ETL_DATA_DIR` (see `duckdb_path_resolve`). BigQuery
    destination credentials come from `destination_credentials`, else from a BigQuery
    connection's `credentials`.

    Raises:
        etl.ConfigError: a JSON field holds the wrong JSON type (e.g. a string where a list
            belongs), or `destination.path` lies outside `settings.ETL_DATA_DIR`.
    """
    _json_shapes_check(data_source)
    connection = data_source.connection
    destination = {"type": "duckdb", **(data_source.destination or {})}
    if destination["type"] == "duckdb":
        given = destination.get("path")
        destination["path"] = (
            duckdb_path_resolve(given) if given else str(settings.ETL_DEFAULT_DUCKDB_PATH)
        )
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
        "on_unrepresentable": data_source.on_unrepresentable,
        "allow_widen_to_string": data_source.allow_widen_to_string,
        "file_pattern": data_source.file_pattern or "*",
        "file_prefix": data_source.file_prefix,
        "file_format": data_source.file_format or None,
        "file_format_options": dict(data_source.file_format_options or {}),
        "chunk_size": data_source.chunk_size,
        "destination": destination,
        # the owner of the destination table in its load log (etl.JobConfig.pipeline_id)
        "pipeline_id": f"datasource:{data_source.pk}",
        "parallelism": data_source.parallelism,
    }


DESTINATION_PATH_OUTSIDE = (
    "destination.path {path!r} is outside the data directory {root} (ETL_DATA_DIR); give a "
    "path relative to it, without `..`."
)


def duckdb_path_resolve(path: str) -> str:
    """Return the absolute, symlink-free form of a DuckDB destination `path`, which must lie
    inside `settings.ETL_DATA_DIR` (as a local source never reads outside its `base_path`).

    A relative path is taken from the data directory, so web, workers and commands agree
    whatever their working directory.

    Raises:
        etl.ConfigError: `field="destination.path"`, the path (after `..` and symlinks are
            resolved) leaves the data directory.
    """
    root = os.path.realpath(os.path.expanduser(str(settings.ETL_DATA_DIR)))
    resolved = os.path.realpath(os.path.join(root, os.path.expanduser(str(path))))
    if os.path.commonpath([root, resolved]) != root or resolved == root:
        raise etl.ConfigError(
            DESTINATION_PATH_OUTSIDE.format(path=str(path), root=root), field="destination.path"
        )
    return resolved


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


JSON_FIELD_SHAPES: dict[str, type] = {
    "selected_columns": list,
    "primary_key": list,
    "file_format_options": dict,
    "destination": dict,
}
"""The JSON type each `DataSource` JSON field must hold (what the model's default is)."""
JSON_FIELD_WRONG_TYPE = "{field} must be a JSON {expected}, not {actual}."
_JSON_NAMES = {list: "array", dict: "object", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}  # fmt: skip


def _json_shapes_check(data_source: DataSource) -> None:
    for field, expected in JSON_FIELD_SHAPES.items():
        value = getattr(data_source, field)
        if value is not None and not isinstance(value, expected):
            raise etl.ConfigError(
                JSON_FIELD_WRONG_TYPE.format(
                    field=field,
                    expected=_JSON_NAMES[expected],
                    actual=_JSON_NAMES.get(type(value), type(value).__name__),
                ),
                field=field,
            )
    for field in ("selected_columns", "primary_key"):
        items = getattr(data_source, field) or []
        if not all(isinstance(item, str) for item in items):
            raise etl.ConfigError(f"{field} must be an array of strings.", field=field)


def job_config_errors(*, data_source: DataSource) -> dict[str, list[str]]:
    """Return why the stored `data_source` does not build a JobConfig, keyed by `DataSource`
    field (`__all__` when no one field is at fault); `{}` when it builds.

    For listing and showing a source whose stored config went bad (a wrongly typed JSON value,
    unreadable credentials, a changed contract) instead of failing the whole page or answer.
    """
    try:
        job_config_build(data_source=data_source)
    except etl.ConfigError as exc:
        return validation_error_from(exc).message_dict
    except etl.EtlError as exc:  # e.g. credentials that no longer decrypt
        return {"connection": [str(exc)]}
    except (TypeError, ValueError) as exc:
        return {NON_FIELD_ERRORS: [f"Stored config is unusable: {type(exc).__name__}: {exc}"]}
    return {}
