"""Column metadata and values of a MySQL / MariaDB read turned into Arrow: the schema from the
`LIMIT 0` metadata, batches from PyMySQL rows, casts of the server's text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import (
    SchemaMappingError,
    UnrepresentableValueError,
)
from etl.extract.mysql.types import (
    BINARY_CHARSET,
    INTEGER_TYPES,
    T_BIT,
    T_BLOBS,
    T_DATE,
    T_DATETIME,
    T_DECIMAL,
    T_DOUBLE,
    T_ENUM,
    T_FLOAT,
    T_JSON,
    T_NEWDATE,
    T_NEWDECIMAL,
    T_NULL,
    T_SET,
    T_STRINGS,
    T_TIME,
    T_TIMESTAMP,
    UNSIGNED_FLAG,
    text_array,
    time_value,
    valid_date,
)
from etl.schema import JSON_FIELD_METADATA, decimal_from_scaled, decimal_type


class DecodeMixin:
    """Arrow schema and value decoding of `MySqlExtractor` (uses its `invalid_dates`)."""

    def arrow_schema(self, cursor: Any) -> pa.Schema:
        fields = []
        for field in cursor._result.fields:  # PyMySQL keeps flags and charset only here
            name, code = field.name, field.type_code
            unsigned = bool(field.flags & UNSIGNED_FLAG)
            binary = field.charsetnr == BINARY_CHARSET
            metadata = None
            if code in INTEGER_TYPES:
                arrow_type = INTEGER_TYPES[code][unsigned]
            elif code in (T_DECIMAL, T_NEWDECIMAL):
                scale = field.scale
                precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
                arrow_type = decimal_type(precision, scale)
            elif code == T_FLOAT:
                arrow_type = pa.float32()
            elif code == T_DOUBLE:
                arrow_type = pa.float64()
            elif code in (T_DATE, T_NEWDATE):
                arrow_type = pa.date32()
            elif code == T_DATETIME:
                arrow_type = pa.timestamp("us")
            elif code == T_TIMESTAMP:
                arrow_type = pa.timestamp("us", tz="UTC")
            elif code == T_TIME:
                arrow_type = pa.duration("us")
            elif code == T_BIT:  # BIT(M), M <= 64 bits: BIT(64) needs uint64
                arrow_type = pa.uint64() if field.length > 63 else pa.int64()
                metadata = {b"mysql.bit": b"1"}
            elif code == T_JSON:
                arrow_type, metadata = pa.string(), JSON_FIELD_METADATA
            elif code in T_STRINGS | T_BLOBS | {T_ENUM, T_SET}:
                arrow_type = pa.binary() if binary and code not in (T_ENUM, T_SET) else pa.string()
            elif code == T_NULL:
                arrow_type = pa.null()
            else:
                raise SchemaMappingError(name, f"mysql type code {code}")
            fields.append(pa.field(name, arrow_type, metadata=metadata))
        return pa.schema(fields)

    def to_batch(self, rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
        """Convert PyMySQL rows of server text (bytes for binary-collated columns) into typed
        columns (the snapshot's single-row queries; the table itself streams through `stream`).

        Zero or invalid dates (`0000-00-00`, `2020-02-30`) become NULL and are counted in the
        run's warnings; any other value that does not convert raises SchemaMappingError.
        """
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = [
            self._column(field, values) for field, values in zip(schema, columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _column(self, field: pa.Field, values: Sequence[Any]) -> pa.Array:
        target = field.type
        try:
            if pa.types.is_binary(target):
                return pa.array(values, type=pa.binary())
            if pa.types.is_duration(target):  # TIME: may be negative or beyond 24 h
                return pa.array([time_value(v) for v in values], type=target)
            if field.metadata and field.metadata.get(b"mysql.bit"):
                return pa.array(
                    [None if v is None else int.from_bytes(v, "big") for v in values], type=target
                )
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
        ) as exc:
            raise SchemaMappingError(field.name, str(target), str(exc)) from exc
        return self._from_text(field, text_array(values))

    def _temporal(self, field: pa.Field, text: pa.Array) -> pa.Array:
        naive = pa.timestamp("us") if pa.types.is_timestamp(field.type) else pa.date32()
        try:
            values = pc.cast(text, naive, safe=True)
            # Arrow reads year 0 ('0000-12-19'), which MySQL stores but no date of the
            # destinations means (DuckDB reads 1 BC, BigQuery refuses it): such a batch takes
            # the per-value path below, as one holding '0000-00-00' does
            # (min_max, not a comparison with 1: a scalar from a Python int imports pandas)
            first_year = pc.min_max(pc.year(values)).as_py()["min"]
            if first_year is not None and first_year < 1:
                raise pa.ArrowInvalid("year 0")
        except pa.ArrowInvalid:
            valid = [valid_date(v) for v in text.to_pylist()]
            invalid = sum(1 for v, ok in zip(text.to_pylist(), valid, strict=True) if v and not ok)
            if invalid and self.job.on_unrepresentable == "fail":
                value = next(
                    v for v, ok in zip(text.to_pylist(), valid, strict=True) if v and not ok
                )
                raise UnrepresentableValueError(
                    self.job.source_table_name or "custom_sql", field.name, value, "date"
                ) from None
            self.invalid_dates[field.name] = self.invalid_dates.get(field.name, 0) + invalid
            values = pc.cast(pc.if_else(pa.array(valid), text, None), naive, safe=True)
        # TIMESTAMP columns are UTC instants (session time_zone '+00:00'), DATETIME wall clock
        return values.cast(field.type) if field.type != naive else values

    def _cast(self, field: pa.Field, array: pa.Array) -> pa.Array:
        if array.type == field.type:
            return array
        try:
            return pc.cast(array, field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaMappingError(field.name, str(field.type), str(exc)) from exc

    def _unscale(self, field: pa.Field, scaled: pa.Array) -> pa.Array:
        """Convert a DECIMAL(p, s) read as the BIGINT value * 10^s into decimal(p, s)."""
        try:
            return decimal_from_scaled(
                self._cast(pa.field(field.name, pa.int64()), scaled), field.type
            )
        except ValueError as exc:  # the server enforces DECIMAL(p, s): never expected
            raise SchemaMappingError(field.name, str(field.type), str(exc)) from exc

    def _from_text(self, field: pa.Field, text: pa.Array) -> pa.Array:
        """Convert server text (DECIMAL, DATE, DATETIME, TIMESTAMP) into the column's type."""
        target = field.type
        try:
            if target == pa.string():
                return text
            if pa.types.is_timestamp(target) or pa.types.is_date(target):
                return self._temporal(field, text)
            return pc.cast(text, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SchemaMappingError(field.name, str(target), str(exc)) from exc
