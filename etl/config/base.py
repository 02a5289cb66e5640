"""The config contract's vocabulary: source, load and format types, which connection keys each
source needs, which keys are secrets, and the pydantic base every config model shares."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

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


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}$")
"""BigQuery project ids (`my-project-123`, domain-scoped `example.com:my-project`)."""


class FieldError(ValueError):
    """A cross-field rule broken; `field` is the dotted field the user must change."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
