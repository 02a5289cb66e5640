"""Column type names a user may give in `file_format_options.column_types`.

A leaf module (imports nothing from `etl`), so `etl.config` can validate the names without
importing a reader.
"""

from __future__ import annotations

import re

import pyarrow as pa

NAMED_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
"""Type names accepted in `file_format_options.column_types` (plus `decimal(P,S)`)."""

MAX_DECIMAL_PRECISION = 38
"""Widest `decimal(P,S)` in `column_types`: Arrow's CSV reader converts to decimal128 only."""


def named_type(name: str) -> pa.DataType:
    """Return the Arrow type for a `column_types` name.

    `decimal(P,S)` takes 1 <= P <= 38 and 0 <= S <= P: Arrow's CSV reader converts text to
    at most `decimal128` (`decimal256` is not implemented: ArrowNotImplementedError), and DuckDB
    refuses a scale above the width (a `DECIMAL(10,20)` column written into a DuckDB file made
    the whole file unreadable: "Failed to deserialize type"). Wider values load as `string`.

    Raises:
        ValueError: unknown name, or a `decimal(P,S)` outside those bounds.
    """
    match = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name.strip().lower())
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= MAX_DECIMAL_PRECISION:
            raise ValueError(
                f"{name!r}: the precision P of decimal(P,S) must be 1 to "
                f"{MAX_DECIMAL_PRECISION}; load wider numbers as `string`"
            )
        if scale > precision:
            raise ValueError(
                f"{name!r}: the scale S of decimal(P,S) must not exceed the precision P"
            )
        return pa.decimal128(precision, scale)
    try:
        return NAMED_TYPES[name.strip().lower()]
    except KeyError:
        known = ", ".join([*NAMED_TYPES, "decimal(P,S)"])
        raise ValueError(f"unknown column type {name!r}; use one of {known}") from None
