"""The numbers of JSON and JSONL files that Arrow's reader would not keep exactly: integers beyond
int64 (read as DOUBLE, digits dropped) and numbers with a fraction or an exponent that no double
gives back (`12345678901234567890.123`, `0.1000000000000000000001`). The typing pass makes
their field an exact DECIMAL (`exact_schema`, per chunk), sized over the whole file
(`exact_numbers`); a field no DECIMAL(38) holds fails with SchemaMappingError naming it.

Peers that round such numbers: https://github.com/trinodb/trino/issues/28867,
https://github.com/apache/arrow-rs/issues/4856.
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
from etl.formats.json.types import (
    _INT64,
    INEXACT,
    _beyond_int64,
    _has_double,
    _path_text,
    _replace,
    big_integer_type,
)

TOO_PRECISE = (
    "a double does not give back its numbers and DECIMAL(38) cannot hold them (more than 38 "
    "digits around the point); quote such values in the source to load them as text"
)


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
