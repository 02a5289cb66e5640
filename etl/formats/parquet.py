"""Parquet files into Arrow, through the opener (any fsspec file system)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from etl.exceptions import BadInputError
from etl.formats.base import NO_COLUMNS, Opener

PARQUET_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet file. Peak RSS follows the batch size downstream (DuckDB
converts and buffers a batch at a time): TPC-H lineitem SF 0.25 -> DuckDB peaked at ~520 MB
with 65,536-row batches."""


def _is_empty(handle: IO[bytes]) -> bool:
    if hasattr(handle, "peek"):
        return not handle.peek(1)
    position = handle.tell()
    empty = not handle.read(1)
    handle.seek(position)
    return empty


def read_parquet(opener: Opener, key: str) -> Iterator[pa.RecordBatch]:
    """Yield a batch of no rows with the file's columns, then its rows in batches of
    PARQUET_BATCH_ROWS; INT96 timestamps are read in microseconds (their nanoseconds, when
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
            yield pa.RecordBatch.from_pylist([], schema=parquet.schema_arrow)
            yield from parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"not a readable Parquet file ({exc})", file=key) from exc
