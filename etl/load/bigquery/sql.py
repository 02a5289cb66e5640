"""GoogleSQL text for the BigQuery loader: literals, column DDL types, layout checks."""

from __future__ import annotations

from typing import Any


def laid_out(table: Any) -> bool:
    """Return True when `table` has a partitioning or clustering a rewrite would drop."""
    return bool(table.time_partitioning or table.range_partitioning or table.clustering_fields)


def literal(value: str) -> str:
    """Return `value` as a GoogleSQL string literal (https://cloud.google.com/bigquery/docs/
    reference/standard-sql/lexical#string_and_bytes_literals)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def ddl_type(field: Any) -> str:
    if field.field_type == "RECORD":
        inner = ", ".join(f"`{f.name}` {ddl_type(f)}" for f in field.fields)
        kind = f"STRUCT<{inner}>"
    else:
        kind = {"BOOLEAN": "BOOL", "INTEGER": "INT64", "FLOAT": "FLOAT64"}.get(
            field.field_type, field.field_type
        )
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind
