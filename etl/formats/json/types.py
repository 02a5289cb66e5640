"""The typing pass of the JSON and JSONL readers: which Arrow type holds every value of a field.

Chunk schemas merge (`merge`, `merge_schema`): NULL gives way to any type, an integer field with
a fraction later becomes DOUBLE, a field first seen late is added, text that Arrow reads as a
timestamp in one chunk and as plain text in another stays text, objects merge member by member
and arrays by element. Integers beyond int64 (Arrow would read them as DOUBLE and drop digits)
make their field an exact DECIMAL(29, 0) or DECIMAL(38, 0) (etl/formats/json/numbers.py). `screen` finds the
lines of a chunk Arrow cannot read as one table.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import SchemaMappingError

_UNITS = ["s", "ms", "us", "ns"]
_INT64 = (-(2**63), 2**63 - 1)
BIG_INTEGER_PRECISIONS = (29, 38)
"""DECIMAL(P, 0) precisions an integer field beyond int64 takes: the narrowest that holds its
longest value (29 digits: BigQuery NUMERIC, 38: BIGNUMERIC and DuckDB's widest DECIMAL)."""


def kind(data_type: pa.DataType) -> str:
    """Return the JSON kind an Arrow type is read from: number, string, boolean, object,
    array or null."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    ):
        return "number"
    if pa.types.is_struct(data_type):
        return "object"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return "array"
    return "string"  # text, and the timestamps / dates Arrow infers from text


def merge(old: pa.DataType, new: pa.DataType, path: str = "") -> pa.DataType | None:
    """Return the type holding the values of both `old` and `new` exactly, or None when they
    are of different JSON kinds.

    Raises:
        SchemaMappingError: integers beyond int64 meet numbers with a fraction at field `path`.
    """
    if old == new:
        return old
    if pa.types.is_null(old):
        return new
    if pa.types.is_null(new):
        return old
    if kind(old) != kind(new):
        return None
    if kind(old) == "number":
        decimals = [t for t in (old, new) if pa.types.is_decimal(t)]
        if any(t.scale for t in decimals):  # numbers no double holds (`exact_schema`)
            if any(not t.scale for t in decimals):
                raise SchemaMappingError(path, "number", INEXACT)
            return pa.decimal128(38, max(t.scale for t in decimals))  # sized by `exact_numbers`
        if decimals:
            if pa.types.is_floating(old) or pa.types.is_floating(new):
                raise SchemaMappingError(path, "number", INEXACT)
            return pa.decimal128(max(t.precision for t in decimals), 0)
        return pa.float64()  # int64 and double: Arrow's own rule within one block
    if kind(old) == "string":
        if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
            return old if _UNITS.index(old.unit) >= _UNITS.index(new.unit) else new
        return pa.string()  # the text itself is kept
    if kind(old) == "array":
        value = merge(old.value_type, new.value_type, f"{path}[]")
        return None if value is None else pa.list_(value)
    fields = {field.name: field.type for field in old}
    for field in new:
        if field.name in fields:
            merged = merge(fields[field.name], field.type, f"{path}.{field.name}")
            if merged is None:
                return None
            fields[field.name] = merged
        else:
            fields[field.name] = field.type
    return pa.struct(list(fields.items()))


def merge_schema(old: dict[str, pa.DataType], schema: pa.Schema) -> str | None:
    """Merge `schema` into `old` (field -> type) in place; return the first field that
    conflicts (left as it was), or None."""
    conflict = None
    for field in schema:
        if field.name not in old:
            old[field.name] = field.type
            continue
        merged = merge(old[field.name], field.type, field.name)
        if merged is None:
            conflict = conflict or field.name
        else:
            old[field.name] = merged
    return conflict


def value_type(value: Any) -> pa.DataType:
    """Return the Arrow type Arrow's JSON reader gives `value` (text as plain text)."""
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return pa.int64()
        return big_integer_type(len(str(abs(value))), None)
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, list):
        element: pa.DataType | None = pa.null()
        for item in value:
            element = merge(element, value_type(item), "[]") if element is not None else None
        return pa.list_(element if element is not None else pa.string())
    return pa.struct([(name, value_type(item)) for name, item in value.items()])


def first_conflict(old: pa.DataType, value: Any, path: str) -> tuple[str, str, str] | None:
    """Return (field path, kind of `value`, kind expected) for the first member of `value`
    that is of another kind than `old` says, or None."""
    new = value_type(value)
    if merge(old, new, path) is not None:
        return None
    if kind(old) == kind(new) == "object":
        members = {field.name: field.type for field in old}
        for name, item in value.items():
            if name in members:
                found = first_conflict(members[name], item, f"{path}.{name}")
                if found:
                    return found
    if kind(old) == kind(new) == "array":
        for item in value:
            found = first_conflict(old.value_type, item, f"{path}[]")
            if found:
                return found
    return path, kind(new), kind(old)


INEXACT = (
    "it holds integers beyond 64 bits and numbers with a fraction; DOUBLE would round the "
    "integers (shared/DESIGN.md section 5, types are exact)"
)
TOO_LONG = "more than 38 digits, beyond DECIMAL(38, 0); no exact type holds it"


def big_integer_type(digits: int, path: str | None) -> pa.DataType:
    """Return the DECIMAL(P, 0) of an integer field whose longest value beyond int64 has
    `digits` digits (P from BIG_INTEGER_PRECISIONS).

    Raises:
        SchemaMappingError: more than 38 digits, naming field `path` (None: DECIMAL(38, 0) is
            returned, the caller reports the field later).
    """
    for precision in BIG_INTEGER_PRECISIONS:
        if digits <= precision:
            return pa.decimal128(precision, 0)
    if path is None:
        return pa.decimal128(BIG_INTEGER_PRECISIONS[-1], 0)
    raise SchemaMappingError(path, f"integer of {digits} digits", TOO_LONG)


def _has_double(data_type: pa.DataType) -> bool:
    if pa.types.is_floating(data_type):
        return True
    if pa.types.is_list(data_type):
        return _has_double(data_type.value_type)
    if pa.types.is_struct(data_type):
        return any(_has_double(field.type) for field in data_type)
    return False


def _replace(data_type: pa.DataType, path: tuple[str, ...], new: pa.DataType) -> pa.DataType:
    if not path:
        return new
    if path[0] == "[]":
        return pa.list_(_replace(data_type.value_type, path[1:], new))
    return pa.struct(
        [
            (f.name, _replace(f.type, path[1:], new) if f.name == path[0] else f.type)
            for f in data_type
        ]
    )


def _path_text(path: tuple[str, ...]) -> str:
    return "".join(part if part == "[]" or i == 0 else f".{part}" for i, part in enumerate(path))


def _beyond_int64(data: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a floating value of `data` (nested lists and structs included) has a magnitude
    of 2^63 or more: Arrow reads an integer literal beyond int64 as such a double, so without
    one no field can hold such an integer."""
    chunks = data.chunks if isinstance(data, pa.ChunkedArray) else [data]
    for array in chunks:
        kind = array.type
        if pa.types.is_floating(kind):
            largest = pc.max(pc.abs(array)).as_py()
            if largest is not None and not largest < 2.0**63:  # NaN and inf count too
                return True
        elif pa.types.is_list(kind) and _beyond_int64(array.flatten()):
            return True
        elif pa.types.is_struct(kind) and any(
            _beyond_int64(array.field(i)) for i in range(kind.num_fields)
        ):
            return True
    return False
