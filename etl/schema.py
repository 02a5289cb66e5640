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


SCALED_MAX_PRECISION = 18
"""Decimals of up to this many digits are read from the databases as the integer
`value * 10^scale` (int64: |value * 10^s| < 10^18 < 2^63), the drivers' cheapest decode,
instead of as text to parse (`decimal_from_scaled`)."""


def decimal_from_scaled(scaled: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """Return the int64 values `value * 10^s` as `target` = decimal128(p, s), p <= 18: the
    same integers read with scale s (a decimal128's storage is its unscaled integer).

    Raises:
        ValueError: a value has more than p digits (the sources enforce their declared
            precision, so never expected).
    """
    import pyarrow.compute as pc

    bound = 10**target.precision
    extremes = pc.min_max(scaled).as_py()
    if extremes["min"] is not None and not (-bound < extremes["min"] and extremes["max"] < bound):
        raise ValueError(f"a value has more than {target.precision} digits")
    whole = pc.cast(scaled, pa.decimal128(19, 0))  # every int64 fits 19 digits
    return pa.Array.from_buffers(
        target, len(whole), whole.buffers(), whole.null_count, whole.offset
    )


def is_json(field: pa.Field) -> bool:
    """Return True for a string field marked as JSON text."""
    return bool(field.metadata) and field.metadata.get(b"etl.logical_type") == b"json"


def first_source_file(batch: pa.RecordBatch) -> str | None:
    """Return the source file of `batch`'s first row (its SOURCE_FILE_COLUMN), or None for a
    batch without one (table sources): where a type a loader refuses came from."""
    if SOURCE_FILE_COLUMN not in batch.schema.names or not batch.num_rows:
        return None
    value = batch.column(SOURCE_FILE_COLUMN)[0]
    return value.as_py() if value.is_valid else None
