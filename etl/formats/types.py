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


def named_type(name: str) -> pa.DataType:
    """Return the Arrow type for a `column_types` name.

    Raises:
        ValueError: unknown name.
    """
    match = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name.strip().lower())
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    try:
        return NAMED_TYPES[name.strip().lower()]
    except KeyError:
        known = ", ".join([*NAMED_TYPES, "decimal(P,S)"])
        raise ValueError(f"unknown column type {name!r}; use one of {known}") from None
