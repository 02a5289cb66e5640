"""Nanosecond timestamps and times (Parquet `TIMESTAMP(NANOS)` / `TIME(NANOS)`, pandas' default)
into microseconds, the unit of BigQuery's and DuckDB's TIMESTAMP / DATETIME / TIME, never
rounded silently (`JobConfig.on_unrepresentable`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import BadInputError

SUB_MICROSECOND = (
    "row {row} holds {value}, whose nanoseconds a TIMESTAMP / DATETIME / TIME (microseconds in "
    "BigQuery and DuckDB) cannot hold; it is not truncated (on_unrepresentable: fail)"
)
TRUNCATED_WARNING = (
    "file {file}, column {column}: {count} values with sub-microsecond digits truncated to "
    "microseconds (on_unrepresentable: nearest)"
)
"""The warning of a file's nanosecond column with values that are not whole microseconds."""


def check_microseconds(
    batch: pa.RecordBatch,
    key: str,
    before: int,
    policy: str = "fail",
    truncated: dict[str, int] | None = None,
) -> pa.RecordBatch:
    """Return `batch` with its nanosecond timestamps and times (Parquet `TIMESTAMP(NANOS)` /
    `TIME(NANOS)`, pandas' default) in microseconds, the unit of BigQuery's and DuckDB's
    TIMESTAMP / DATETIME / TIME.

    Whole-microsecond values convert exactly. A value with sub-microsecond digits follows
    `policy` (`JobConfig.on_unrepresentable`): `nearest` truncates it toward the past
    (`...59.999999999` -> `...59.999999`, never rounded up across a second, before 1970
    included) and counts it per column in `truncated`; `fail` raises (pyarrow's own Parquet
    writer refuses the same cast unless `allow_truncated_timestamps=True`).

    Args:
        batch: rows `before + 1`... of the file `key`.
        key: the file's name in the message.
        before: rows of the file in earlier batches.
        policy: `nearest` or `fail`.
        truncated: column -> values truncated so far, updated in place (`nearest`).

    Raises:
        BadInputError: (`fail`) names the file, the row (from 1, over the whole file), the
            column and the value with its nine fraction digits.
    """
    arrays, changed = list(batch.columns), False
    for index, (field, column) in enumerate(zip(batch.schema, batch.columns, strict=True)):
        kind = field.type
        if not (pa.types.is_timestamp(kind) or pa.types.is_time64(kind)) or kind.unit != "ns":
            continue
        micro = pa.timestamp("us", kind.tz) if pa.types.is_timestamp(kind) else pa.time64("us")
        floored = pc.floor_temporal(column, unit="microsecond")
        exact = pc.equal(floored, column)
        first = pc.index(exact, False).as_py()
        if first >= 0:
            if policy == "fail":
                raise BadInputError(
                    SUB_MICROSECOND.format(row=before + first + 1, value=_ns_text(column[first])),
                    file=key,
                    column=field.name,
                )
            if truncated is not None:
                count = len(exact) - exact.null_count - pc.sum(exact).as_py()
                truncated[field.name] = truncated.get(field.name, 0) + count
        arrays[index], changed = pc.cast(floored, micro), True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, schema=_micro_schema(batch.schema))


def _micro_schema(schema: pa.Schema) -> pa.Schema:
    fields = []
    for field in schema:
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            field = field.with_type(pa.timestamp("us", kind.tz))
        elif pa.types.is_time64(kind) and kind.unit == "ns":
            field = field.with_type(pa.time64("us"))
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


def _ns_text(value: pa.Scalar) -> str:
    """Return a nanosecond timestamp or time scalar as text with all nine fraction digits
    (`str()` of a time64 scalar goes through `datetime.time` and drops the last three)."""
    if pa.types.is_timestamp(value.type):
        return str(value)  # 2023-11-14 22:13:20.123456789[+00:00]
    seconds, nanos = divmod(value.value, 1_000_000_000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{nanos:09d}"
