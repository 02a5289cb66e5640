"""The typing pass of the CSV reader: which type holds every value of a column.

Each candidate is tested with Arrow's own strict casts over every block of the file (vectorised,
memory bounded by the block size); a type that would lose information is never chosen:
integers with leading zeros (`01234`) stay text, integers beyond int64 become DECIMAL(38, 0),
mixed zone-aware and naive timestamps stay text.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]

_LEADING_ZERO = r"^[+-]?0\d"
_INTEGER = r"^[+-]?\d+$"

CANDIDATES: list[tuple[str, pa.DataType]] = [
    ("boolean", pa.bool_()),
    ("integer", pa.int64()),
    ("big_integer", pa.decimal128(38, 0)),
    ("float", pa.float64()),
    ("date", pa.date32()),
    ("timestamp", pa.timestamp("us")),
    ("timestamptz", pa.timestamp("us", tz="UTC")),
]
"""Inferred types, narrowest first; a column is text when none holds every value."""

IMPLIED: dict[str, tuple[str, ...]] = {
    "integer": ("big_integer", "float"),
    "big_integer": ("float",),
    "date": ("timestamp",),
}
"""Candidates that hold whenever the key holds, so they need no test of their own: Arrow's
int64 parse accepts only `-?digits` (which DECIMAL(38, 0) and float64 parse too), and its date
parse is the date part of its ISO 8601 timestamp parse."""


def _holds(kind: str, values: pa.Array, decimal_point: str) -> bool:
    """Return True when every (non-null, text) value converts to `kind` without loss.

    Arrow's casts from text are strict (no spaces, no zone on a naive timestamp, no time on a
    date), so the cast itself is the test.
    """
    if kind == "boolean":
        return bool(pc.all(pc.is_in(values, _string_array(TRUE_VALUES + FALSE_VALUES))).as_py())
    if kind in ("integer", "big_integer", "float") and _leading_zero(values):
        return False  # identifiers such as zip codes: keep the zeros
    if kind == "big_integer" and not pc.all(pc.match_substring_regex(values, _INTEGER)).as_py():
        return False  # `1.00` casts to DECIMAL(38, 0) exactly, yet it is written as a float
    if kind == "float" and decimal_point != ".":
        values = pc.replace_substring(values, decimal_point, ".")
    target = dict(CANDIDATES)[kind]
    # a failing cast costs far more than a passing one (Arrow builds its error slowly): try a
    # sample first, so a candidate that does not fit is dropped cheaply
    for sample in (values.slice(0, 64), values):
        try:
            pc.cast(sample, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    return True


def _string_array(values: list[str]) -> pa.StringArray:
    """Return `values` as an Arrow string array built from buffers: converting a Python list
    makes pyarrow import pandas (~0.3 s, ~45 MB) on the first call."""
    data = [value.encode() for value in values]
    ends = list(itertools.accumulate((len(item) for item in data), initial=0))
    offsets = pa.py_buffer(struct.pack(f"<{len(ends)}i", *ends))
    return pa.StringArray.from_buffers(len(data), offsets, pa.py_buffer(b"".join(data)))


def _leading_zero(values: pa.Array) -> bool:
    starts = pc.or_(
        pc.starts_with(values, "0"),
        pc.or_(pc.starts_with(values, "-0"), pc.starts_with(values, "+0")),
    )
    if not pc.any(starts).as_py():
        return False
    return bool(pc.any(pc.match_substring_regex(values.filter(starts), _LEADING_ZERO)).as_py())


def infer(
    batches: Iterable[pa.RecordBatch],
    names: list[str],
    overrides: dict[str, pa.DataType],
    decimal_point: str,
) -> dict[str, pa.DataType]:
    """Return the type of every column of `names` (in that order) from `batches`, the whole
    file read with every column as text; columns in `overrides` keep the type given there.

    A column with no value at all is text: nothing says it is anything else.
    """
    viable = {name: [kind for kind, _ in CANDIDATES] for name in names if name not in overrides}
    seen: set[str] = set()
    for batch in batches:
        for name, kinds in viable.items():
            if not kinds:
                continue
            values = batch.column(name).drop_null()
            if len(values):
                seen.add(name)
                implied: set[str] = set()
                kept = []
                for kind in kinds:
                    if kind in implied or _holds(kind, values, decimal_point):
                        kept.append(kind)
                        implied.update(IMPLIED.get(kind, ()))
                kinds[:] = kept
    types = dict(overrides)
    for name, kinds in viable.items():
        types[name] = dict(CANDIDATES)[kinds[0]] if kinds and name in seen else pa.string()
    return {name: types[name] for name in names}


def line_breaks(
    batches: Iterable[pa.RecordBatch], names: list[str], spanning: list[str]
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through, adding to `spanning` the first column found with a value that
    spans lines."""
    for batch in batches:
        if not spanning:
            for name in names:
                column = batch.column(name)
                if column.null_count < len(column) and _has_line_break(column):
                    spanning.append(name)
                    break
        yield batch


def single_lines(
    batches: Iterable[pa.RecordBatch], spanning: list[str]
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through, failing on a value that spans lines (`allow_quoted_newlines`
    off): Arrow's reader joins lines inside quotes whatever `newlines_in_values` says."""
    for batch in batches:
        if spanning:
            raise pa.ArrowInvalid(f"CSV parse error: a value of `{spanning[0]}` spans lines")
        yield batch


def _has_line_break(column: pa.Array) -> bool:
    """Return True when a value of the text `column` holds `\n` or `\r`; one scan of the
    column's character data decides the common case of no line break at all (columns of up to
    16 MiB of text: the scan copies it)."""
    data = column.buffers()[2]
    if data is not None and column.offset == 0 and data.size <= 16 << 20:
        text = data.to_pybytes()
        if b"\n" not in text and b"\r" not in text:
            return False
    return bool(
        pc.any(pc.match_substring(column, "\n")).as_py()
        or pc.any(pc.match_substring(column, "\r")).as_py()
    )
