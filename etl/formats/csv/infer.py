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
from decimal import Decimal

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
    "date": ("timestamp",),
}
"""Candidates that hold whenever the key holds, so they need no test of their own: Arrow's
int64 parse accepts only `-?digits` (which DECIMAL(38, 0) parses too, and float64 exactly up
to 2^53: `_implied`), and its date parse is the date part of its ISO 8601 timestamp parse."""

FLOAT_EXACT_INTEGERS = 2**53
"""Integers of at most this magnitude are exact in a double (IEEE 754 binary64: 53-bit
significand)."""
DOUBLE_DIGITS = 15
"""Decimal texts of at most this many significant digits are recovered from their double
(DBL_DIG, C11 §5.2.4.2.2); longer ones are checked one by one (`_float_exact`)."""
_SMALLEST_NORMAL = 2.2250738585072014e-308
_NON_FINITE = r"^[+-]?(?i:inf|infinity|nan)$"


def _holds(kind: str, values: pa.Array, decimal_point: str) -> pa.Array | None:
    """Return `values` (non-null text) converted to `kind`, or None when one of them does not
    convert without loss.

    Arrow's casts from text are strict (no spaces, no zone on a naive timestamp, no time on a
    date), so the cast itself is the test.
    """
    target = dict(CANDIDATES)[kind]
    if kind == "boolean":
        if not pc.all(pc.is_in(values, _string_array(TRUE_VALUES + FALSE_VALUES))).as_py():
            return None
        return pc.cast(values, target)
    if kind in ("integer", "big_integer", "float") and _leading_zero(values):
        return None  # identifiers such as zip codes: keep the zeros
    if kind == "big_integer" and not pc.all(pc.match_substring_regex(values, _INTEGER)).as_py():
        return None  # `1.00` casts to DECIMAL(38, 0) exactly, yet it is written as a float
    if kind == "float" and decimal_point != ".":
        values = pc.replace_substring(values, decimal_point, ".")
    # a failing cast costs far more than a passing one (Arrow builds its error slowly): try a
    # sample first, so a candidate that does not fit is dropped cheaply
    try:
        pc.cast(values.slice(0, 64), target, safe=True)
        converted = pc.cast(values, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if kind == "float" and not _float_exact(values, converted):
        return None  # a double would change the value: the column stays exact text
    return converted


def _float_exact(text: pa.Array, floats: pa.Array) -> bool:
    """Return True when every decimal `text` is recovered from its double in `floats`: its
    significant digits fit (at most DOUBLE_DIGITS always do; 16 or 17 only when the double's
    shortest text is the same number, e.g. `0.30000000000000004`), and it neither overflows to
    infinity (`1e400`) nor underflows to zero or a subnormal (`1e-400`). Arrow's cast accepts
    all of these, rounding silently. `inf` / `nan` written as such are kept."""
    mantissa = pc.replace_substring_regex(text, r"[eE].*$", "")
    digits = pc.replace_substring_regex(
        pc.replace_substring_regex(mantissa, r"[^0-9]", ""), r"^0+|0+$", ""
    )
    counts = pc.utf8_length(digits)
    written_special = pc.match_substring_regex(text, _NON_FINITE)
    magnitude = pc.abs(floats)
    lost = pc.and_(
        pc.and_(pc.greater(counts, 0), pc.invert(written_special)),
        pc.or_(pc.invert(pc.is_finite(floats)), pc.less(magnitude, _SMALLEST_NORMAL)),
    )
    if pc.any(lost).as_py():
        return False
    long = pc.greater(counts, DOUBLE_DIGITS)
    if not pc.any(long).as_py():
        return True
    return all(
        Decimal(repr(float(value))) == Decimal(value) for value in text.filter(long).to_pylist()
    )


def _implied(kind: str, converted: pa.Array) -> tuple[str, ...]:
    """Return the candidates `converted` (the values as `kind`) proves without a test of
    their own: float64 only for integers a double holds exactly."""
    implied = IMPLIED.get(kind, ())
    if kind == "integer":
        low, high = pc.min_max(converted).values()
        if max(abs(low.as_py()), abs(high.as_py())) > FLOAT_EXACT_INTEGERS:
            implied = tuple(k for k in implied if k != "float")
    return implied


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


class Typing:
    """The candidate types of every column over the batches seen so far (whole-file typing,
    one batch at a time).

    `add` narrows the candidates with a batch's values and returns the batch converted to the
    narrowest candidate of each column still standing: when no later batch narrows a column
    further, that conversion is already the column's final one, so the CSV reader can keep
    it (etl/formats/csv/reader.py) instead of parsing the file a second time.

    Args:
        names: the file's columns, in order.
        overrides: `column_types` given by the user (never inferred).
        decimal_point: the file's decimal mark.
    """

    def __init__(
        self, names: list[str], overrides: dict[str, pa.DataType], decimal_point: str
    ) -> None:
        self.names, self.overrides, self.decimal_point = names, overrides, decimal_point
        self.viable = {n: [kind for kind, _ in CANDIDATES] for n in names if n not in overrides}
        self.seen: set[str] = set()
        self.converted: dict[str, set[pa.DataType]] = {name: set() for name in names}
        """Column -> the types its values were converted to by `add` (batches of nulls only
        left out: they convert to any type)."""

    def add(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Narrow the candidates with `batch` (every column text); return `batch` with each
        column converted to its narrowest candidate still standing (text when none; a column
        of `overrides` or without a value in `batch` stays text)."""
        arrays = []
        for name in self.names:
            column = batch.column(name)
            arrays.append(column)
            kinds = self.viable.get(name)
            if not kinds:
                if kinds is not None and column.null_count < len(column):
                    self.converted[name].add(pa.string())
                continue
            values = column.drop_null()
            if not len(values):
                continue
            self.seen.add(name)
            implied: set[str] = set()
            kept, typed = [], None
            for kind in kinds:
                if kind in implied:
                    kept.append(kind)
                    continue
                result = _holds(kind, values, self.decimal_point)
                if result is not None:
                    kept.append(kind)
                    implied.update(_implied(kind, result))
                    typed = result if typed is None else typed
            kinds[:] = kept
            if typed is not None and column.null_count:
                typed = _with_nulls(column, typed)
            arrays[-1] = column if typed is None else typed
            self.converted[name].add(arrays[-1].type)
        return pa.RecordBatch.from_arrays(arrays, names=self.names)

    def types(self) -> dict[str, pa.DataType]:
        """Return the type of every column (in file order) from the batches added: the
        narrowest candidate that held every value; text for a column with no value at all
        (nothing says it is anything else) or none that held them all."""
        types = dict(self.overrides)
        for name, kinds in self.viable.items():
            held = kinds and name in self.seen
            types[name] = dict(CANDIDATES)[kinds[0]] if held else pa.string()
        return {name: types[name] for name in self.names}

    def kept_conversions(self) -> bool:
        """Return True when every batch `add` returned holds each column in its final type
        (or only nulls in it): the returned batches are then the file's typed batches."""
        types = self.types()
        return all(self.converted[name] <= {types[name]} for name in self.names)


def _with_nulls(column: pa.Array, converted: pa.Array) -> pa.Array:
    """Return `converted` (the non-null values of `column`, converted) at their rows of
    `column`, nulls elsewhere."""
    valid = pc.is_valid(column)
    positions = pc.subtract(pc.cumulative_sum(valid.cast(pa.int64())), 1)
    return pc.take(converted, pc.if_else(valid, positions, pa.scalar(None, pa.int64())))


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
    typing = Typing(names, overrides, decimal_point)
    for batch in batches:
        typing.add(batch)
    return typing.types()


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
