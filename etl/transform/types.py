"""Normalise Arrow types to the set the loaders map (shared/DESIGN.md §5).

Timestamps become microseconds (the precision of BigQuery TIMESTAMP/DATETIME), keeping their
zone-awareness; a timestamp with sub-microsecond digits fails instead of being truncated.
Dictionary columns are decoded, large strings/binaries narrowed, `null`-typed columns (no value
seen yet) become strings.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import BadInputError
from etl.schema import is_json


def normalize_type(data_type: pa.DataType) -> pa.DataType:
    """Return the loader-facing Arrow type for `data_type` (recursing into lists and structs)."""
    if pa.types.is_dictionary(data_type):
        return normalize_type(data_type.value_type)
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us", tz="UTC" if data_type.tz else None)
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return pa.binary()
    if pa.types.is_date64(data_type):
        return pa.date32()
    if pa.types.is_time(data_type):
        return pa.time64("us")
    if pa.types.is_float16(data_type):
        return pa.float32()
    if pa.types.is_null(data_type):
        return pa.string()
    if (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_list_view(data_type)
    ):
        return pa.list_(normalize_type(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct(
            [pa.field(f.name, normalize_type(f.type), f.nullable, f.metadata) for f in data_type]
        )
    return data_type


def normalize_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast each column to `normalize_type` of its type.

    Raises:
        BadInputError: a cast would lose data (e.g. nanoseconds), naming the column.
    """
    fields, arrays, changed = [], [], False
    for field, array in zip(batch.schema, batch.columns, strict=True):
        target = normalize_type(field.type)
        if target != field.type:
            changed = True
            try:
                array = pc.cast(array, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise BadInputError(
                    f"{field.type} values cannot be stored as {target} without loss ({exc})",
                    column=field.name,
                ) from exc
        metadata = field.metadata if is_json(field) else None
        fields.append(pa.field(field.name, target, nullable=True, metadata=metadata))
        arrays.append(array)
    schema = pa.schema(fields)
    if not changed and schema.equals(batch.schema, check_metadata=True):
        return batch
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
