"""Which candidate type holds every value of a CSV column, one block of values at a time.

Each candidate is tested with Arrow's own strict casts (vectorised, memory bounded by the block
size); a type that would lose information is never chosen: integers with leading zeros
(`01234`) stay text, integers beyond int64 become DECIMAL(38, 0), decimals a double would round
stay text, mixed zone-aware and naive timestamps stay text. The typing pass over the whole file
is etl/formats/csv/infer.py.
"""

from __future__ import annotations

import itertools
import struct
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
to 2^53: `implied_by`), and its date parse is the date part of its ISO 8601 timestamp parse."""

FLOAT_EXACT_INTEGERS = 2**53
"""Integers of at most this magnitude are exact in a double (IEEE 754 binary64: 53-bit
significand)."""
DOUBLE_DIGITS = 15
"""Decimal texts of at most this many significant digits are recovered from their double
(DBL_DIG, C11 §5.2.4.2.2); longer ones are checked one by one (`_float_exact`)."""
_SMALLEST_NORMAL = 2.2250738585072014e-308
_NON_FINITE = r"^[+-]?(?i:inf|infinity|nan)$"


def holds(kind: str, values: pa.Array, decimal_point: str) -> pa.Array | None:
    """Return `values` (non-null text) converted to `kind`, or None when one of them does not
    convert without loss.

    Arrow's casts from text are strict (no spaces, no zone on a naive timestamp, no time on a
    date), so the cast itself is the test.
    """
    target = dict(CANDIDATES)[kind]
    if kind == "boolean":
        if not pc.all(pc.is_in(values, string_array(TRUE_VALUES + FALSE_VALUES))).as_py():
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
    all of these, rounding silently. `inf` / `nan` written as such are kept.

    Counting digits takes regular expressions over every value, the costliest test of the
    typing pass (TPC-H lineitem: ~90% of it), so it runs only on the values it can decide: a
    text of at most DOUBLE_DIGITS bytes has at most that many digits, and a finite double of at
    least the smallest normal magnitude neither overflowed nor underflowed."""
    short = pc.less_equal(pc.binary_length(text), DOUBLE_DIGITS)
    normal = pc.and_(pc.is_finite(floats), pc.greater_equal(pc.abs(floats), _SMALLEST_NORMAL))
    suspect = pc.invert(pc.and_(short, normal))
    if not pc.any(suspect).as_py():
        return True
    text, floats, short = text.filter(suspect), floats.filter(suspect), short.filter(suspect)
    # a short text read as zero (`0.00`, common) lost a value only when its mantissa has a
    # digit other than zero (`1e-400`): one match instead of counting its digits
    zero = pc.and_(short, pc.equal(floats, 0.0))
    if pc.any(zero).as_py():
        if pc.any(pc.match_substring_regex(text.filter(zero), r"^[^eE]*[1-9]")).as_py():
            return False
        rest = pc.invert(zero)
        text, floats = text.filter(rest), floats.filter(rest)
    return _digits_exact(text, floats) if len(text) else True


def _digits_exact(text: pa.Array, floats: pa.Array) -> bool:
    """`_float_exact` counting the significant digits of every value of `text`."""
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


def implied_by(kind: str, converted: pa.Array) -> tuple[str, ...]:
    """Return the candidates `converted` (the values as `kind`) proves without a test of
    their own: float64 only for integers a double holds exactly."""
    implied = IMPLIED.get(kind, ())
    if kind == "integer":
        low, high = pc.min_max(converted).values()
        if max(abs(low.as_py()), abs(high.as_py())) > FLOAT_EXACT_INTEGERS:
            implied = tuple(k for k in implied if k != "float")
    return implied


def string_array(values: list[str]) -> pa.StringArray:
    """Return `values` as an Arrow string array built from buffers: converting a Python list
    makes pyarrow import pandas (~0.3 s, ~45 MB) on the first call."""
    data = [value.encode() for value in values]
    ends = list(itertools.accumulate((len(item) for item in data), initial=0))
    offsets = pa.py_buffer(struct.pack(f"<{len(ends)}i", *ends))
    return pa.StringArray.from_buffers(len(data), offsets, pa.py_buffer(b"".join(data)))


def _leading_zero(values: pa.Array) -> bool:
    """Return True when a value is an integer part with a leading zero (`_LEADING_ZERO`). Values
    such as `0.04` (TPC-H discounts: every value) start with a zero that is not one, so those
    starting `0.` are left out before the regular expression (the costliest test here)."""
    starts = pc.or_(
        pc.starts_with(values, "0"),
        pc.or_(pc.starts_with(values, "-0"), pc.starts_with(values, "+0")),
    )
    if not pc.any(starts).as_py():
        return False
    values = values.filter(starts)
    fraction = pc.or_(
        pc.starts_with(values, "0."),
        pc.or_(pc.starts_with(values, "-0."), pc.starts_with(values, "+0.")),
    )
    if pc.all(fraction).as_py():
        return False
    values = values.filter(pc.invert(fraction))
    return bool(pc.any(pc.match_substring_regex(values, _LEADING_ZERO)).as_py())


def column_typing(
    kinds: list[str], column: pa.Array, decimal_point: str
) -> tuple[list[str], pa.Array | None]:
    """Return the candidates of `kinds` (narrowest first) that hold every value of the text
    `column` (which holds at least one), and `column` converted to the first of them (None:
    none holds, the column stays text), nulls where `column` has them."""
    values = column.drop_null()
    implied: set[str] = set()
    kept, typed = [], None
    for kind in kinds:
        if kind in implied:
            kept.append(kind)
            continue
        result = holds(kind, values, decimal_point)
        if result is not None:
            kept.append(kind)
            implied.update(implied_by(kind, result))
            typed = result if typed is None else typed
    if typed is not None and column.null_count:
        typed = _with_nulls(column, typed)
    return kept, typed


def _with_nulls(column: pa.Array, converted: pa.Array) -> pa.Array:
    """Return `converted` (the non-null values of `column`, converted) at their rows of
    `column`, nulls elsewhere."""
    valid = pc.is_valid(column)
    positions = pc.subtract(pc.cumulative_sum(valid.cast(pa.int64())), 1)
    return pc.take(converted, pc.if_else(valid, positions, pa.scalar(None, pa.int64())))
