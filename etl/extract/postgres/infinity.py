"""PostgreSQL `infinity` / `-infinity` dates and timestamps, which no destination type holds.

PostgreSQL stores them as the extreme values of the binary format (INT32 days / INT64
microseconds since 2000-01-01, PostgreSQL manual §8.5.1.4 "Special Values"); the ADBC driver
adds the 2000 -> 1970 epoch offset to them without an overflow check, so they arrive as dates
near 5,877,612 BC and timestamps near 290,279 BC: values no PostgreSQL date can hold (its range
starts in 4713 BC), which would load silently as real dates. They are recognised by those exact
wrapped values and follow `on_unrepresentable`: `nearest` loads NULL (as numeric ±Infinity)
and counts them per column in the run's warnings, `fail` fails the run naming the column.

Field reports: https://github.com/duckdb/duckdb-postgres/issues/102 (infinity dates read as
wrong values), https://github.com/trinodb/trino/issues/15325.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import UnrepresentableValueError
from etl.extract.arrow_values import array as arrow_array
from etl.extract.arrow_values import scalar

_DAYS_2000 = 10_957
"""Days from 1970-01-01 to 2000-01-01 (the driver's offset)."""
_MICROS_2000 = 946_684_800_000_000
"""Microseconds from 1970-01-01 to 2000-01-01."""


def _wrap(value: int, bits: int) -> int:
    """Return `value` wrapped to a signed integer of `bits` bits (two's complement)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


DATE_SENTINELS = {
    _wrap(2**31 - 1 + _DAYS_2000, 32): "infinity",
    _wrap(-(2**31) + _DAYS_2000, 32): "-infinity",
}
"""date32 value as the driver yields it -> the PostgreSQL value it stands for."""
TIMESTAMP_SENTINELS = {
    _wrap(2**63 - 1 + _MICROS_2000, 64): "infinity",
    _wrap(-(2**63) + _MICROS_2000, 64): "-infinity",
}
"""timestamp[us] value (naive or UTC) as the driver yields it -> the PostgreSQL value."""

PG_FIRST_TIMESTAMP_US = -210_866_803_200_000_000
"""4714-11-24 00:00:00 BC (proleptic Gregorian; PostgreSQL's lowest timestamp, manual §8.5) in
microseconds since 1970: a smaller value from the driver is a wrapped one."""
LATE_TIMESTAMP = "a timestamp after 294276-12-31 shifted past the microsecond range"
LATE_WARNING = (
    "column `{column}`: {count} {values} after year 292277 (beyond a microsecond timestamp's "
    "range) loaded as NULL (on_unrepresentable: nearest)"
)
"""The run warning of a timestamp column holding PostgreSQL timestamps the driver cannot shift
into Arrow's microsecond range (292277 to 294276 AD) without wrapping."""
INFINITY_WARNING = (
    "column `{column}`: {count} {values} infinity/-infinity loaded as NULL "
    "(on_unrepresentable: nearest)"
)
"""The run warning of a date/timestamp column whose ±infinity values were loaded as NULL."""


class InfinityReader:
    """Finds ±infinity in the date and timestamp columns of driver batches, applies the
    `on_unrepresentable` policy and counts what it adjusted."""

    def __init__(self, table: str, policy: str) -> None:
        self.table, self.policy = table, policy
        self.adjusted: dict[str, int] = {}
        """Column -> ±infinity values loaded as NULL."""
        self.late: dict[str, int] = {}
        """Column -> timestamps after year 292277 loaded as NULL."""

    def convert(self, array: pa.Array, column: str) -> pa.Array:
        """Return `array` (as the driver read it) with ±infinity replaced by NULL.

        Args:
            array: a date32 or timestamp[us] column of one batch; other types pass unchanged.
            column: the column's name, for the warning and the error.

        Raises:
            UnrepresentableValueError: a ±infinity under `on_unrepresentable: fail`.
        """
        if pa.types.is_date32(array.type):
            sentinels, storage, kind = DATE_SENTINELS, pa.int32(), "date"
        elif pa.types.is_timestamp(array.type) and array.type.unit == "us":
            sentinels, storage, kind = TIMESTAMP_SENTINELS, pa.int64(), "timestamp"
        else:
            return array
        raw = array.view(storage)
        special = pc.is_in(raw, value_set=arrow_array(list(sentinels), storage))
        wrapped = special
        if kind == "timestamp":  # dates never wrap: PostgreSQL's last date fits date32
            wrapped = pc.or_(special, pc.less(raw, scalar(PG_FIRST_TIMESTAMP_US, pa.int64())))
        count = pc.sum(wrapped).as_py() or 0
        if not count:
            return array
        infinite = pc.sum(special).as_py() or 0
        if self.policy == "fail":
            first = pc.filter(raw, wrapped)[0].as_py()
            value = sentinels.get(first, LATE_TIMESTAMP)
            raise UnrepresentableValueError(self.table, column, value, kind)
        if infinite:
            self.adjusted[column] = self.adjusted.get(column, 0) + infinite
        if count - infinite:
            self.late[column] = self.late.get(column, 0) + count - infinite
        return pc.if_else(wrapped, scalar(None, array.type), array)

    def warnings(self) -> list[str]:
        return [
            template.format(column=name, count=count, values="value" if count == 1 else "values")
            for template, counts in ((INFINITY_WARNING, self.adjusted), (LATE_WARNING, self.late))
            for name, count in sorted(counts.items())
        ]


def sentinel_of(column: pa.Array) -> str | None:
    """Return "infinity" / "-infinity" when the first value of a date32 or timestamp[us]
    `column` (a one-row query result) is one, else None."""
    if pa.types.is_date32(column.type):
        sentinels, storage = DATE_SENTINELS, pa.int32()
    elif pa.types.is_timestamp(column.type) and column.type.unit == "us":
        sentinels, storage = TIMESTAMP_SENTINELS, pa.int64()
    else:
        return None
    raw = column.view(storage)[0]
    return sentinels.get(raw.as_py()) if raw.is_valid else None
