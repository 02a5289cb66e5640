"""The typing pass of the JSON and JSONL readers: which Arrow type holds every value of a field.

Chunk schemas merge (`merge`, `merge_schema`): NULL gives way to any type, an integer field with
a fraction later becomes DOUBLE, a field first seen late is added, text that Arrow reads as a
timestamp in one chunk and as plain text in another stays text, objects merge member by member
and arrays by element. Integers beyond int64 (Arrow would read them as DOUBLE and drop digits)
make their field an exact DECIMAL(29, 0) or DECIMAL(38, 0) (`exact_schema`). `screen` finds the
lines of a chunk Arrow cannot read as one table.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import SchemaMappingError
from etl.formats.json.array import double_exact, long_numbers

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
TOO_PRECISE = (
    "a double does not give back its numbers and DECIMAL(38) cannot hold them (more than 38 "
    "digits around the point); quote such values in the source to load them as text"
)


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


class _Found:
    """The numbers of one field path: the longest integer beyond int64 in digits (0: none),
    whether a number with a fraction (or an exponent) was seen and whether one a double does
    not give back, and the most integer digits and decimals of any of its numbers."""

    __slots__ = ("big", "digits", "fraction", "inexact", "scale")

    def __init__(self) -> None:
        self.big = self.digits = self.scale = 0
        self.fraction = self.inexact = False

    def add(self, value: int | Decimal) -> None:
        if isinstance(value, int):
            digits = len(str(abs(value)))
            if not _INT64[0] <= value <= _INT64[1]:
                self.big = max(self.big, digits)
            self.digits = max(self.digits, digits)
            return
        self.fraction = True
        sign, figures, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # JSON has no NaN or Infinity
        self.digits = max(self.digits, len(figures) + exponent)
        self.scale = max(self.scale, -exponent)
        if not self.inexact and not double_exact(value, float(value)):
            self.inexact = True

    def exact_type(self, path: str) -> pa.DataType | None:
        """Return the DECIMAL(P, S) holding every number seen (None: a double or an integer
        type holds them).

        Raises:
            SchemaMappingError: integers beyond int64 and fractions, or a number no double
                gives back that needs more than 38 digits.
        """
        if not self.inexact:
            return None
        if self.big:
            raise SchemaMappingError(path, "number", INEXACT)
        precision = max(self.digits, 0) + self.scale
        if precision > 38:
            raise SchemaMappingError(path, f"number of {precision} digits", TOO_PRECISE)
        return pa.decimal128(max(precision, 1), self.scale)


def _numbers(value: Any, path: tuple[str, ...], found: dict[tuple[str, ...], _Found]) -> None:
    """Collect, per field path, what `_Found` keeps of the numbers in `value` (parsed with
    fractions as Decimals)."""
    if isinstance(value, dict):
        for name, item in value.items():
            _numbers(item, (*path, name), found)
    elif isinstance(value, list):
        for item in value:
            _numbers(item, (*path, "[]"), found)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        entry = found.get(path)
        if entry is None:
            entry = found[path] = _Found()
        entry.add(value)


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


def exact_schema(chunk: bytes, table: pa.Table) -> pa.Schema:
    """Return the schema of `table` (Arrow's reading of `chunk`) with each DOUBLE field that
    holds integers beyond int64 made the DECIMAL(P, 0) holding them exactly, and each holding
    a number no double gives back (`12345678901234567890.123`) a DECIMAL(38, S) (S: the most
    decimals; `exact_numbers` sizes it over the whole file). The chunk's lines are parsed in
    Python only when the table has a double: once when a double of the table reaches 2^63 in
    magnitude, else once when its text may hold a number a double does not give back
    (`long_numbers`), and again to name the fields when it does.

    Raises:
        SchemaMappingError: a field has an integer of more than 38 digits, or such integers and
            numbers with a fraction, or a number no double gives back that needs more than 38
            digits (names the field path, e.g. `o.k`).
    """
    schema = table.schema
    if not any(_has_double(field.type) for field in schema):
        return schema
    if not any(_beyond_int64(column) for column in table.columns) and not (
        long_numbers(chunk) and _inexact_number(chunk)
    ):
        return schema
    found: dict[tuple[str, ...], _Found] = {}
    for raw in chunk.split(b"\n"):
        try:
            record = json.loads(raw, parse_float=Decimal) if raw.strip() else None
        except ValueError:
            continue  # Arrow read the chunk: only a line it accepts and Python does not
        _numbers(record, (), found)
    types = {field.name: field.type for field in schema}
    for path, entry in found.items():
        exact = entry.exact_type(_path_text(path))
        if exact is not None:
            new = pa.decimal128(38, max(exact.scale, 1))  # a scale: not a big integer's
        elif entry.big:
            if entry.fraction:
                raise SchemaMappingError(_path_text(path), "number", INEXACT)
            new = big_integer_type(entry.big, _path_text(path))
        else:
            continue
        types[path[0]] = _replace(types[path[0]], path[1:], new)
    return pa.schema(list(types.items()))


def _inexact_number(chunk: bytes) -> bool:
    """Whether a number of `chunk` (JSON lines Arrow read) is one no double gives back: the
    lines are parsed at once by Python's JSON scanner, which hands the text of every number
    with a fraction or an exponent to a list (C calls only); those of 16 characters or more
    whose double's shortest text differs (Arrow's casts, vectorised) are compared exactly."""
    lines = [raw for raw in chunk.split(b"\n") if raw.strip()]
    texts: list[str] = []
    try:
        json.loads(b"[" + b",".join(lines) + b"]", parse_float=texts.append)
    except ValueError:  # a line Arrow accepts and Python does not: one by one
        texts.clear()
        for raw in lines:
            try:
                json.loads(raw, parse_float=texts.append)
            except ValueError:
                continue
    if not texts:
        return False
    joined = "\n".join(texts).encode()  # one buffer split by Arrow: far faster than pa.array
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(joined)))
    whole = pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(joined))
    numbers = pc.list_flatten(pc.split_pattern(whole, "\n"))
    # up to 15 significant digits always come back; a shorter text with an exponent may not
    numbers = numbers.filter(
        pc.or_(pc.greater(pc.utf8_length(numbers), 16), pc.match_substring_regex(numbers, "[eE]"))
    )
    if not len(numbers):
        return False
    doubles = pc.cast(numbers, pa.float64())
    differ = numbers.filter(pc.not_equal(pc.cast(doubles, pa.large_string()), numbers))
    return any(not double_exact(Decimal(text), float(text)) for text in differ.to_pylist())


def _fraction_paths(data_type: pa.DataType, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    if pa.types.is_decimal(data_type):
        return [path] if data_type.scale else []
    if pa.types.is_list(data_type):
        return _fraction_paths(data_type.value_type, (*path, "[]"))
    if pa.types.is_struct(data_type):
        return [p for f in data_type for p in _fraction_paths(f.type, (*path, f.name))]
    return []


def _values_at(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield value
    elif path[0] == "[]":
        if isinstance(value, list):
            for item in value:
                yield from _values_at(item, path[1:])
    elif isinstance(value, dict) and path[0] in value:
        yield from _values_at(value[path[0]], path[1:])


def inexact_fields(schema: pa.Schema) -> list[tuple[str, ...]]:
    """Return the paths of `schema` typed for numbers no double gives back (`exact_schema`)."""
    return [p for field in schema for p in _fraction_paths(field.type, (field.name,))]


def exact_numbers(chunks: Iterator[tuple[int, bytes]], schema: pa.Schema) -> pa.Schema:
    """Return `schema` (the file's, from its chunks) with each field typed DECIMAL for numbers
    no double gives back (`exact_schema`) sized to hold every number of the field in the
    file: DECIMAL(D + S, S), D the most integer digits and S the most decimals. `chunks` (the
    file's runs of JSON lines) are read only when there is such a field, and only their lines
    naming one of those fields are parsed.

    Raises:
        SchemaMappingError: the field needs more than 38 digits, or holds integers beyond
            int64 too (names the field path).
    """
    paths = inexact_fields(schema)
    if not paths:
        return schema
    found = {path: _Found() for path in paths}
    # a line naming the field with \u escapes is parsed too (its name is not found as is)
    names = [json.dumps(name, ensure_ascii=False).encode() for name in {p[0] for p in paths}]
    names.append(b"\\u")
    for _, chunk in chunks:
        for raw in chunk.split(b"\n"):
            if not any(name in raw for name in names):
                continue
            try:
                record = json.loads(raw, parse_float=Decimal)
            except ValueError:
                continue  # a bad line: the reader reports it
            for path, entry in found.items():
                for value in _values_at(record, path):
                    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                        entry.add(value)
    types = {field.name: field.type for field in schema}
    for path, entry in found.items():
        entry.inexact = True  # a field typed so holds such a number
        exact = entry.exact_type(_path_text(path))
        assert exact is not None
        types[path[0]] = _replace(types[path[0]], path[1:], exact)
    return pa.schema([field.with_type(types[field.name]) for field in schema])
