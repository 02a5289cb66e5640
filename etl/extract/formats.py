"""Streaming readers for CSV, Parquet, JSON and JSONL into `pyarrow.RecordBatch`es.

`read_batches` takes an opener of one file and yields batches of at most `chunk_size` rows with
unique, non-empty column names. CSV: etl/extract/csv_reader.py; JSON and JSONL:
etl/extract/jsonl_reader.py; Parquet: here. Bad input raises `BadInputError` naming the file,
line and column, found by a second, diagnostic read of the file only when the fast reader fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.extract.base import Rejects
from etl.extract.csv_reader import read_csv_file
from etl.extract.json_file import read_json_file
from etl.extract.text import BLOCK_SIZE, NO_COLUMNS, Opener, unique_names

__all__ = ["BLOCK_SIZE", "PARQUET_BATCH_ROWS", "read_batches", "unique_names"]

PARQUET_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet file. Peak RSS follows the batch size downstream (DuckDB
converts and buffers a batch at a time): TPC-H lineitem SF 0.25 -> DuckDB peaked at ~520 MB
with 65,536-row batches."""


def read_batches(
    fmt: str,
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    chunk_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one file.

    Args:
        fmt: `csv`, `parquet`, `json` or `jsonl`.
        opener: opens the file for binary reading (called again for a diagnostic pass).
        key: the file's name in messages.
        options: the job's `file_format_options`.
        chunk_size: maximum rows per batch.
        rejects: `on_bad_rows: quarantine`: CSV rows, JSONL lines and `json` array elements
            that do not parse or convert go here instead of failing the run (Parquet files
            still fail: they have no row to set aside).
        warnings: the run's warnings, added to when a value or a type is adjusted (a JSON
            field whose values change kind).

    Raises:
        BadInputError: malformed content; names the file and, when found, line and column.
    """
    if fmt == "parquet":
        batches = _parquet(opener, key, options)
    else:
        readers: dict[str, Callable[..., Iterator[pa.RecordBatch]]] = {
            "csv": read_csv_file,
            "jsonl": read_json_file,
            "json": partial(read_json_file, array=True),
        }
        batches = readers[fmt](opener, key, options, rejects, warnings)
    empty: pa.RecordBatch | None = None
    yielded = False
    for batch in batches:
        batch = _unique_names(batch)
        if batch.num_rows == 0:
            empty = batch if empty is None else empty
            continue
        for offset in range(0, batch.num_rows, chunk_size):
            yield batch.slice(offset, chunk_size)
        yielded = True
    if empty is not None and not yielded:
        # a file without rows still declares its columns: a snapshot of it creates (or
        # empties) the table with them
        yield empty


def _unique_names(batch: pa.RecordBatch) -> pa.RecordBatch:
    names = unique_names(batch.schema.names)
    return batch if names == batch.schema.names else batch.rename_columns(names)


def _is_empty(handle: IO[bytes]) -> bool:
    if hasattr(handle, "peek"):
        return not handle.peek(1)
    position = handle.tell()
    empty = not handle.read(1)
    handle.seek(position)
    return empty


def _parquet(opener: Opener, key: str, options: FileFormatOptions) -> Iterator[pa.RecordBatch]:
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
