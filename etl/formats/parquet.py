"""Parquet files into Arrow, through the opener (any fsspec file system), or handed to a
destination that reads Parquet itself (`parquet_scan`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from etl.exceptions import BadInputError
from etl.formats.base import NO_COLUMNS, Opener, empty_batch, unique_names
from etl.formats.native import NativeScan
from etl.schema import SOURCE_FILE_COLUMN
from etl.transform.types import normalize_type

PARQUET_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet file. Peak RSS follows the batch size downstream (DuckDB
converts and buffers a batch at a time): TPC-H lineitem SF 0.25 -> DuckDB peaked at ~520 MB
with 65,536-row batches."""


def _row_group_runs(parquet: pq.ParquetFile) -> Iterator[list[int]]:
    """Yield the file's row groups in consecutive runs of at least PARQUET_BATCH_ROWS rows
    (the last may hold fewer), each run read by one `iter_batches`. pyarrow's reader
    pre-buffers the column chunks of the row groups it is given and keeps them until it is
    closed, so one reader over every row group held the whole file: TPC-H lineitem SF 1
    (221 MB, 31 row groups) peaked ~185 MB higher than read one run at a time, in the same time
    (bench/PROFILE.md, "BigQuery destination")."""
    run: list[int] = []
    rows = 0
    for group in range(parquet.num_row_groups):
        run.append(group)
        rows += parquet.metadata.row_group(group).num_rows
        if rows >= PARQUET_BATCH_ROWS:
            yield run
            run, rows = [], 0
    if run:
        yield run


def _is_empty(handle: IO[bytes]) -> bool:
    if hasattr(handle, "peek"):
        return not handle.peek(1)
    position = handle.tell()
    empty = not handle.read(1)
    handle.seek(position)
    return empty


def read_parquet(opener: Opener, key: str) -> Iterator[pa.RecordBatch]:
    """Yield a batch of no rows with the file's columns, then its rows in batches of at most
    PARQUET_BATCH_ROWS (read a run of row groups at a time, `_row_group_runs`); INT96 timestamps are read in microseconds (their nanoseconds, when
    any, are checked by etl/formats/microseconds.py like every nanosecond column).

    Raises:
        BadInputError: not a Parquet file (names the file and Arrow's reason).
    """
    with opener() as handle:
        if _is_empty(handle):
            yield NO_COLUMNS
            return
        try:
            parquet = pq.ParquetFile(handle, coerce_int96_timestamp_unit="us")
            yield empty_batch(parquet.schema_arrow)
            for run in _row_group_runs(parquet):
                yield from parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=run)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"not a readable Parquet file ({exc})", file=key) from exc


def plain_type(data_type: pa.DataType) -> bool:
    """Return True for the types DuckDB's `read_parquet` reads to the very values the Arrow
    path loads: integers, floats, booleans, text, binary, dates, decimals up to 38 digits,
    timestamps and times in microseconds or coarser. Left to the Arrow path: nanoseconds (each
    value is checked for sub-microsecond digits, etl/formats/microseconds.py), decimals beyond
    38 digits (loaded as exact text), half floats, nested and null types."""
    if pa.types.is_dictionary(data_type):
        return plain_type(data_type.value_type)
    if pa.types.is_timestamp(data_type) or pa.types.is_time(data_type):
        return data_type.unit != "ns"
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_float32(data_type)
        or pa.types.is_float64(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_date32(data_type)
        or pa.types.is_decimal128(data_type)
    )


def parquet_scan(path: str, key: str) -> NativeScan | None:
    """Return the scan of the local Parquet file `path` for a destination that reads Parquet
    itself, or None when the file must go through the Arrow path (`read_parquet`) to keep
    today's exact values and messages: a file that pyarrow cannot open or that has no rows, an
    INT96 or nanosecond column, a type `plain_type` leaves out, column names that are not unique
    (ignoring case) or start with `_etl_`, or a column DuckDB would read to another type than
    the Arrow path loads (compared in an in-memory DuckDB).
    """
    try:
        parquet = pq.ParquetFile(path, coerce_int96_timestamp_unit="us")
    except (pa.ArrowInvalid, OSError):
        return None  # the Arrow path names the file and the reason
    metadata, schema = parquet.metadata, parquet.schema_arrow
    names = schema.names
    if (
        metadata.num_rows == 0
        or any(parquet.schema.column(i).physical_type == "INT96" for i in range(len(names)))
        or not all(plain_type(field.type) for field in schema)
        or unique_names(names) != names
        or any(name.startswith("_etl_") for name in names)
        or not _same_in_duckdb(path, schema)
    ):
        return None
    columns = empty_batch(schema.append(pa.field(SOURCE_FILE_COLUMN, pa.string())))
    nbytes = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return NativeScan(
        group_bytes=_group_bytes(parquet),
        reader="parquet",
        key=key,
        path=path,
        columns=columns,
        sources={name: name for name in names},
        constants={SOURCE_FILE_COLUMN: key},
        num_rows=metadata.num_rows,
        nbytes=nbytes,
    )


def _group_bytes(parquet: pq.ParquetFile) -> tuple[int, ...]:
    """Return, per row group, an upper bound of its rows' bytes read from the footer alone:
    the uncompressed size of its variable-width (BYTE_ARRAY) column chunks, since a value is
    never larger than its column chunk (dictionary page included), plus the width of the other
    columns' values."""
    metadata, columns = parquet.metadata, parquet.schema
    fixed = sum(
        columns.column(i).length or 16
        for i in range(metadata.num_columns)
        if columns.column(i).physical_type != "BYTE_ARRAY"
    )
    groups = []
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        groups.append(
            fixed
            + sum(
                group.column(i).total_uncompressed_size
                for i in range(metadata.num_columns)
                if columns.column(i).physical_type == "BYTE_ARRAY"
            )
        )
    return tuple(groups)


def _same_in_duckdb(path: str, schema: pa.Schema) -> bool:
    """Return True when DuckDB reads every column of the file to the type it creates for the
    column's Arrow type as the Arrow path loads it (`normalize_type`)."""
    import duckdb

    loaded = pa.schema([(field.name, normalize_type(field.type)) for field in schema])
    connection = duckdb.connect(config={"threads": 1})
    try:
        arrow = empty_batch(loaded)
        connection.register("arrow_columns", arrow)
        expected = connection.execute("DESCRIBE SELECT * FROM arrow_columns").fetchall()
        found = connection.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    except duckdb.Error:
        return False
    finally:
        connection.close()
    return [row[:2] for row in expected] == [row[:2] for row in found]
