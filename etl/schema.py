"""Arrow-level type rules shared by extractors and loaders (shared/DESIGN.md §5)."""

from __future__ import annotations

import pyarrow as pa

SOURCE_FILE_COLUMN = "_etl_source_file"
"""Column the file extractor adds to every row: the object's key (path in the bucket)."""

JSON_FIELD_METADATA = {b"etl.logical_type": b"json"}
"""Field metadata marking a string column that holds JSON text (loaded as JSON, not STRING)."""

UNCONSTRAINED_DECIMAL = pa.decimal128(38, 9)
"""Arrow type of a decimal column declared without precision (BigQuery NUMERIC's range); a value
with more digits fails the run with the column named instead of being rounded."""


def decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    """Return decimal128(p, s) up to 38 digits, decimal256 above, per the column's declaration.

    Source: BigQuery NUMERIC is (38, 9), BIGNUMERIC (76.76, 38)
    (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#decimal_types).
    """
    if not precision:
        return UNCONSTRAINED_DECIMAL
    scale = scale or 0
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(min(precision, 76), scale)


def is_json(field: pa.Field) -> bool:
    """Return True for a string field marked as JSON text."""
    return bool(field.metadata) and field.metadata.get(b"etl.logical_type") == b"json"
