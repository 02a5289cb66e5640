"""Arrow values built from Python values without importing pandas (issue 18, "no-op run ≤ 1 s").

pyarrow imports pandas (~0.3 s of CPU and ~50 MB) the first time a scalar or an array is built
from Python values (`pa.scalar`, `pa.array` of a list: its `_is_array_like` asks its pandas
shim) and when a time-zone-aware timestamp becomes a Python datetime (`as_py()`). An
incremental run needs a few: the window's bounds in the cursor column's type, per-row booleans.
Here they are built from buffers (the bytes Arrow itself would hold) for the cursor types
(integers, timestamps, dates, decimals, strings, float64, booleans), exactly: a value that
does not fit its type exactly goes to `pa.scalar`, which converts it (or refuses it) as before.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_INTEGERS = {
    pa.int8(): "<b",
    pa.int16(): "<h",
    pa.int32(): "<i",
    pa.int64(): "<q",
    pa.uint8(): "<B",
    pa.uint16(): "<H",
    pa.uint32(): "<I",
    pa.uint64(): "<Q",
}


def _one(type_: pa.DataType, *buffers: bytes) -> pa.Scalar:
    return pa.Array.from_buffers(type_, 1, [None, *(pa.py_buffer(b) for b in buffers)])[0]


def _timestamp_units(value: dt.datetime, unit: str) -> int | None:
    """`value` (naive: as is; aware: in UTC, as pyarrow stores it) in `unit`s since the epoch,
    None when it is not a whole number of them."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
    if unit == "ns":
        return micros * 1_000
    whole, rest = divmod(micros * _PER_SECOND[unit], 1_000_000)
    return whole if rest == 0 else None


def _buffers(value: Any, type_: pa.DataType) -> tuple[bytes, ...] | None:
    """The value buffer(s) of a one-element array of `type_` holding `value`; None when it is
    not one of the exact cases here."""
    if isinstance(value, bool):
        return (b"\x01" if value else b"\x00",) if pa.types.is_boolean(type_) else None
    if isinstance(value, int) and type_ in _INTEGERS:
        try:
            return (struct.pack(_INTEGERS[type_], value),)
        except struct.error:
            return None
    if isinstance(value, dt.datetime) and pa.types.is_timestamp(type_):
        units = _timestamp_units(value, type_.unit)
        return None if units is None else (struct.pack("<q", units),)
    if type(value) is dt.date and pa.types.is_date32(type_):
        return (struct.pack("<i", (value - _EPOCH_DATE).days),)
    if isinstance(value, int | Decimal) and pa.types.is_decimal(type_):
        return _decimal_buffer(Decimal(value), type_)
    if isinstance(value, str) and type_ in (pa.string(), pa.large_string()):
        data = value.encode()
        offsets = "<ii" if type_ == pa.string() else "<qq"
        return struct.pack(offsets, 0, len(data)), data
    if isinstance(value, float) and type_ == pa.float64():
        return (struct.pack("<d", value),)
    return None


def _decimal_buffer(value: Decimal, type_: pa.DataType) -> tuple[bytes, ...] | None:
    """The unscaled integer of `value` at the type's scale, in integers (no decimal context:
    its 28-digit precision would round)."""
    if not value.is_finite() or type_.byte_width not in (16, 32):
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent + type_.scale
    if shift >= 0:
        unscaled = coefficient * 10**shift
    else:
        unscaled, rest = divmod(coefficient, 10**-shift)
        if rest:
            return None
    if len(str(unscaled)) > type_.precision:
        return None
    unscaled = -unscaled if sign else unscaled
    return (unscaled.to_bytes(type_.byte_width, "little", signed=True),)


def scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """`pa.scalar(value, type=type_)`, without importing pandas for the cursor types."""
    if value is None:
        return pa.nulls(1, type_)[0]
    if (buffers := _buffers(value, type_)) is not None:
        return _one(type_, *buffers)
    return pa.scalar(value, type=type_)


def array(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """`pa.array(values, type_)` of non-null values, without importing pandas for the
    fixed-width cursor types (integers, timestamps, dates, decimals, float64)."""
    parts = [_buffers(value, type_) for value in values]
    if pa.types.is_boolean(type_) or any(part is None or len(part) != 1 for part in parts):
        return pa.array(values, type_)
    data = b"".join(part[0] for part in parts if part is not None)
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(data)])


def _zone(tz: str) -> dt.tzinfo | None:
    """The tzinfo pyarrow gives a timestamp of time zone `tz`: a fixed offset (`+02:00`,
    `timezone.utc` for `+00:00`) or a `ZoneInfo`; None for what it would need pytz for."""
    if match := _OFFSET.fullmatch(tz):
        sign, hours, minutes = match.groups()
        offset = dt.timedelta(hours=int(hours), minutes=int(minutes))
        return dt.timezone(-offset if sign == "-" else offset) if offset else dt.UTC
    try:
        return ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def _aware(type_: pa.DataType) -> dt.tzinfo | None:
    if pa.types.is_timestamp(type_) and type_.tz is not None and type_.unit != "ns":
        return _zone(type_.tz)
    return None


def python_value(value: pa.Scalar) -> Any:
    """`value.as_py()`, without importing pandas for a time-zone-aware timestamp (the same
    datetime: same instant, same zone, same text)."""
    if (zone := _aware(value.type)) is None:
        return value.as_py()
    if not value.is_valid:
        return None
    naive = value.cast(pa.timestamp(value.type.unit)).as_py()
    return naive.replace(tzinfo=dt.UTC).astimezone(zone)


def python_values(values: pa.Array | pa.ChunkedArray) -> list[Any]:
    """`values.to_pylist()`, without importing pandas for time-zone-aware timestamps."""
    if (zone := _aware(values.type)) is None:
        return values.to_pylist()
    naive = values.cast(pa.timestamp(values.type.unit)).to_pylist()
    return [None if v is None else v.replace(tzinfo=dt.UTC).astimezone(zone) for v in naive]


def booleans(values: Sequence[bool]) -> pa.BooleanArray:
    """`pa.array(values, pa.bool_())` (no nulls), without importing pandas."""
    bits = bytearray((len(values) + 7) // 8)
    for index, flag in enumerate(values):
        if flag:
            bits[index >> 3] |= 1 << (index & 7)
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bytes(bits))])


FALSE = scalar(False, pa.bool_())
"""The boolean False (for `pc.fill_null`, which builds it with `pa.scalar` from Python)."""


def all_false(length: int) -> pa.BooleanArray:
    """A boolean array of `length` False values (no nulls)."""
    return pa.Array.from_buffers(pa.bool_(), length, [None, pa.py_buffer(bytes((length + 7) // 8))])
