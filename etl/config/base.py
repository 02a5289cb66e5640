"""The config contract's vocabulary: source, load and format types, which connection keys each
source needs, which keys are secrets, and the pydantic base every config model shares."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from etl.exceptions import ConfigError, UnknownConnectionKeyError

SOURCE_TYPES: tuple[str, ...] = (
    "postgresql",
    "mysql",
    "bigquery",
    "gcs",
    "s3",
    "azure_blob",
    "local",
)
"""Every `source_type` the engine reads, in the order forms and docs list them: the one list
(`SourceType`, the registry's extractor modules and the control plane's connection types and
choices derive from it)."""

if TYPE_CHECKING:
    SourceType = str
else:  # the one list, so a new extractor is a new allowed value
    SourceType = Literal[SOURCE_TYPES]


LoadType = Literal["transactional", "catalog", "merge"]


FileFormat = Literal["csv", "parquet", "json", "jsonl"]


WriteDisposition = Literal["append", "replace", "merge"]


FILE_SOURCES = frozenset({"gcs", "s3", "azure_blob", "local"})
"""Source types read as files from a store (no cursor column, a ledger of processed files)."""


TABLE_SOURCES = frozenset(SOURCE_TYPES) - FILE_SOURCES


REQUIRED_CONNECTION_KEYS: dict[str, tuple[str, ...]] = {
    "postgresql": ("host", "database", "user"),
    "mysql": ("host", "database", "user"),
    "bigquery": ("project",),
    "local": ("base_path",),
    "s3": ("bucket",),
    "gcs": ("bucket",),
    "azure_blob": ("container",),
}
"""Keys each source type needs in `connection_params` (DESIGN.md §4); the control plane's
connection forms and services require the same keys from this mapping."""


_DATABASE_KEYS = ("host", "port", "database", "user", "password", "connect_timeout")

CONNECTION_KEYS: dict[str, frozenset[str]] = {
    "postgresql": frozenset({*_DATABASE_KEYS, "sslmode", "application_name"}),
    "mysql": frozenset(_DATABASE_KEYS),
    "bigquery": frozenset(
        {
            "project",
            "credentials",
            "api_endpoint",
            "endpoint_url",
            "storage_api_endpoint",
            "location",
        }  # fmt: skip
    ),
    "local": frozenset({"base_path"}),
    "s3": frozenset(
        {
            "bucket",
            "region",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "endpoint_url",
        }  # fmt: skip
    ),
    "gcs": frozenset({"bucket", "project", "credentials", "endpoint_url"}),
    "azure_blob": frozenset(
        {
            "container",
            "connection_string",
            "account_name",
            "account_key",
            "sas_token",
            "endpoint_url",
        }  # fmt: skip
    ),
}
"""Every key the extractor of each source type reads from `connection_params` (DESIGN.md §4):
any other key is refused (`UNKNOWN_CONNECTION_KEY`), since a misspelt one (`sslmod`) would
otherwise be ignored and the connection made without it."""

UNKNOWN_CONNECTION_KEY = (
    "connection_params for {source_type} has an unknown key `{key}`{closest}; allowed: {allowed}"
)


def unknown_connection_keys(source_type: str, keys: Iterable[str]) -> list[str]:
    """Return the keys of `keys` that `source_type`'s `connection_params` do not take, sorted
    (an unknown `source_type` takes none)."""
    allowed = CONNECTION_KEYS.get(source_type, frozenset())
    return sorted(key for key in keys if key not in allowed)


def unknown_connection_key_message(source_type: str, key: str) -> str:
    """Return the message naming `key`, unknown to `source_type`, its closest allowed key and
    every allowed key."""
    allowed = sorted(CONNECTION_KEYS.get(source_type, ()))
    closest = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return UNKNOWN_CONNECTION_KEY.format(
        source_type=source_type,
        key=key,
        closest=f" (did you mean `{closest[0]}`?)" if closest else "",
        allowed=", ".join(allowed),
    )


CURSOR_REQUIRED = "timestamp_column is required for a {load_type} table load"


def needs_cursor(source_type: str, load_type: str) -> bool:
    """Whether a job of `source_type` loaded by `load_type` needs `timestamp_column`: table
    sources read incrementally (transactional, merge) do; catalog loads and file sources (a
    ledger of processed files instead) do not. The one rule, also asked by the wizard."""
    return source_type not in FILE_SOURCES and load_type != "catalog"


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


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}$")
"""BigQuery project ids (`my-project-123`, domain-scoped `example.com:my-project`)."""


class FieldError(ValueError):
    """A cross-field rule broken; `field` is the dotted field the user must change."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class UnknownKeyError(FieldError):
    """A `connection_params` key `source_type` does not take (`field`:
    `connection_params.<key>`); becomes `etl.exceptions.UnknownConnectionKeyError`."""

    def __init__(self, field: str, message: str, source_type: str) -> None:
        self.source_type = source_type
        super().__init__(field, message)


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def config_error_from(exc: ValidationError) -> ConfigError:
    """Turn a pydantic error into a `ConfigError` whose message names each field, no input values."""
    problems = []
    first_field = None
    unknown: UnknownKeyError | None = None
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, UnknownKeyError) and first_field is None:
            unknown = cause
        prefix = ".".join(str(part) for part in error["loc"])
        if isinstance(cause, FieldError):
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
    message = "Invalid job config: " + "; ".join(problems)
    if unknown is not None:
        source_type, key = unknown.source_type, unknown.field.split(".", 1)[1]
        return UnknownConnectionKeyError(message, source_type, key, CONNECTION_KEYS[source_type])
    return ConfigError(message, field=first_field)
