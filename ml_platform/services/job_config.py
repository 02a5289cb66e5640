"""Build the engine's `etl.JobConfig` from a `DataSource` and its `Connection`."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

import etl
from ml_platform import contract
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
    data: dict[str, Any] = {
        "source_type": connection.type,
        "connection_params": connection_params_build(connection=connection),
    }
    for name in contract.job_fields():
        data[name] = _job_value(name, getattr(data_source, name))
    data["destination"] = destination
    # the owner of the destination table in its load log (etl.JobConfig.pipeline_id)
    data["pipeline_id"] = f"datasource:{data_source.pk}"
    return data


def _job_value(name: str, value: Any) -> Any:
    """The engine's value of job field `name` stored as `value`: a blank text of a field the
    engine does not require is the engine's default (None: no custom SQL, no cursor; `*`: every
    file); JSON values are copied."""
    field = etl.JobConfig.model_fields[name]
    if value in ("", None) and not field.is_required():
        return field.get_default(call_default_factory=True)
    if isinstance(value, list | dict):
        return type(value)(value)
    return value


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
