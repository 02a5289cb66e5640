"""Arrow -> BigQuery column types, and the casts that make a batch loadable from Parquet.

Rules (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types and
https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#type_conversions):
integers -> INT64 (UINT64 -> NUMERIC, which holds 2^64-1 exactly); decimals -> NUMERIC when
scale <= 9 and integer digits <= 29, else BIGNUMERIC (scale <= 38, integer digits <= 38);
zone-aware timestamps -> TIMESTAMP, naive -> DATETIME; JSON-marked strings -> JSON; lists ->
REPEATED; structs -> RECORD; maps -> REPEATED RECORD of `key`, `value` (what a Parquet load
does with `ParquetOptions.map_target_type = ARRAY_OF_STRUCT`); durations -> INT64 microseconds;
intervals -> STRING (ISO 8601). BigQuery arrays hold no NULL element, and dates/timestamps
stop at years 1..9999: such a value fails the load naming file, row and column; a NULL array is
read as `[]`, counted per column in the run's warnings (etl/load/bigquery/staging.py).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import SchemaMappingError
from etl.schema import is_json

_SIMPLE = [
    (pa.types.is_boolean, "BOOL"),
    (pa.types.is_integer, "INT64"),
    (pa.types.is_floating, "FLOAT64"),
    (pa.types.is_string, "STRING"),
    (pa.types.is_binary, "BYTES"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_time, "TIME"),
    (pa.types.is_duration, "INT64"),
    (lambda t: t == pa.month_day_nano_interval(), "STRING"),
]


def bigquery_type(field: pa.Field) -> tuple[str, str, list[pa.Field]]:
    """Return (BigQuery type, mode, sub-fields) for an Arrow field.

    Raises:
        SchemaMappingError: no BigQuery type holds the values (names the column).
    """
    data_type = field.type
    if pa.types.is_map(data_type):
        return "RECORD", "REPEATED", [data_type.key_field, data_type.item_field]
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        inner = pa.field(field.name, data_type.value_type)
        if pa.types.is_list(inner.type):
            raise SchemaMappingError(field.name, str(data_type), "BigQuery has no array of arrays")
        kind, _, sub = bigquery_type(inner)
        return kind, "REPEATED", sub
    if pa.types.is_struct(data_type):
        return "RECORD", "NULLABLE", list(data_type)
    if data_type == pa.uint64():
        return "NUMERIC", "NULLABLE", []
    if pa.types.is_timestamp(data_type):
        return ("TIMESTAMP" if data_type.tz else "DATETIME"), "NULLABLE", []
    if pa.types.is_decimal(data_type):
        precision, scale = data_type.precision, data_type.scale
        if scale <= 9 and precision - scale <= 29:
            return "NUMERIC", "NULLABLE", []
        if scale <= 38 and precision - scale <= 38:
            return "BIGNUMERIC", "NULLABLE", []
        raise SchemaMappingError(field.name, str(data_type), "beyond BIGNUMERIC's (76, 38)")
    if pa.types.is_string(data_type) and is_json(field):
        return "JSON", "NULLABLE", []
    for test, kind in _SIMPLE:
        if test(data_type):
            return kind, "NULLABLE", []
    raise SchemaMappingError(field.name, str(data_type), "no BigQuery type")


def schema_fields(schema: pa.Schema) -> list:  # list[bigquery.SchemaField]
    """Return the BigQuery schema (all columns NULLABLE or REPEATED) for an Arrow schema."""
    from google.cloud import bigquery

    def convert(field: pa.Field) -> bigquery.SchemaField:
        kind, mode, sub = bigquery_type(field)
        return bigquery.SchemaField(field.name, kind, mode=mode, fields=[convert(f) for f in sub])

    return [convert(field) for field in schema]


def loadable(array: pa.Array, field: pa.Field) -> tuple[pa.Array, pa.Field]:
    """Cast one column to what a Parquet load into its BigQuery type expects (a map becomes a
    list of `key`/`value` structs)."""
    data_type = field.type
    target: pa.DataType | None = None
    if pa.types.is_unsigned_integer(data_type):
        target = pa.decimal128(20, 0) if data_type == pa.uint64() else pa.int64()
    elif pa.types.is_duration(data_type):
        array = pc.cast(pc.cast(array, pa.duration("us")), pa.int64())
        return array, pa.field(field.name, pa.int64())
    elif data_type == pa.month_day_nano_interval():
        values = [None if v is None else _iso_interval(v) for v in array.to_pylist()]
        return pa.array(values, pa.string()), pa.field(field.name, pa.string())
    elif pa.types.is_float16(data_type):
        target = pa.float32()
    elif pa.types.is_map(data_type):
        entry = pa.struct([data_type.key_field, data_type.item_field])
        target = pa.list_(pa.field("element", entry, nullable=False))
    if target is None:
        return array, field
    return pc.cast(array, target, safe=True), pa.field(field.name, target, metadata=field.metadata)


def _iso_interval(value: pa.MonthDayNano) -> str:
    """Return `P<months>M<days>DT<seconds>S` with the seconds exact (`14706.789`, not the
    six significant digits of `%g`)."""
    months, days, nanos = value.months, value.days, value.nanoseconds
    whole, fraction = divmod(abs(nanos), 1_000_000_000)
    seconds = f"{'-' if nanos < 0 else ''}{whole}"
    if fraction:
        seconds += f".{fraction:09d}".rstrip("0")
    return f"P{months}M{days}DT{seconds}S"


LEGACY_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
"""Type names the BigQuery API reports (legacy SQL) -> the GoogleSQL names `bigquery_type`
uses: a table created with INT64 is read back as INTEGER from real BigQuery."""

_WIDER = {"INT64": 1, "NUMERIC": 2, "BIGNUMERIC": 3}
"""Lossless widenings ALTER COLUMN SET DATA TYPE applies in place: INT64 -> NUMERIC ->
BIGNUMERIC (https://cloud.google.com/bigquery/docs/managing-table-schemas#change_a_columns_data_type;
INT64 -> FLOAT64 is allowed there too but loses integers beyond 2^53, so it is not used)."""

_NOT_TO_STRING = {"RECORD", "STRUCT", "JSON", "GEOGRAPHY", "RANGE"}
"""Types whose values CAST(... AS STRING) does not write back exactly, or not at all."""


def normalized(field_type: str) -> str:
    """Return the GoogleSQL name of a schema field type (`INTEGER` -> `INT64`)."""
    return LEGACY_NAMES.get(field_type.upper(), field_type.upper())


def bigquery_widened(existing: str, incoming: str, *, to_string: bool = False) -> str | None:
    """Return the type a NULLABLE column of `existing` type must have to hold `incoming`
    values too: `existing` when it already does (INSERT coerces INT64 into NUMERIC), a wider
    type when a lossless in-place widening exists (INT64 -> NUMERIC -> BIGNUMERIC), STRING when
    `to_string` (`allow_widen_to_string`) and both are scalar types, else None.

    Args:
        existing, incoming: GoogleSQL type names (`normalized`).
    """
    existing, incoming = normalized(existing), normalized(incoming)
    if existing == incoming:
        return existing
    if existing in _WIDER and incoming in _WIDER:
        return existing if _WIDER[existing] >= _WIDER[incoming] else incoming
    if to_string and not {existing, incoming} & _NOT_TO_STRING:
        return "STRING"
    return None
