"""Streaming readers for CSV, Parquet, JSON and JSONL into `pyarrow.RecordBatch`es.

`read_batches` takes an opener of one file and yields batches of at most `chunk_size` rows with
unique, non-empty column names. CSV: etl/formats/csv/reader.py; JSON and JSONL:
etl/formats/json/; Parquet: etl/formats/parquet.py. Bad input raises `BadInputError` naming the file,
line and column, found by a second, diagnostic read of the file only when the fast reader fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pyarrow as pa

from etl.config import FileFormatOptions
from etl.formats.base import BLOCK_SIZE, Opener, unique_names
from etl.formats.csv.reader import read_csv_file
from etl.formats.json.reader import read_json_file
from etl.formats.memory import use_returning_pool
from etl.formats.native import NativeScan
from etl.formats.parquet import PARQUET_BATCH_ROWS, read_parquet
from etl.formats.rejects import Rejects

__all__ = ["BLOCK_SIZE", "PARQUET_BATCH_ROWS", "read_batches", "unique_names"]


def read_batches(
    fmt: str,
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    chunk_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    native: bool = False,
) -> Iterator[pa.RecordBatch | NativeScan]:
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
        native: the destination reads Parquet itself: a CSV, JSON or JSONL file's typed rows
            may come as one `NativeScan` of the reader's Parquet spool
            (etl/formats/csv/reader.py, etl/formats/json/lines.py).

    Raises:
        BadInputError: malformed content; names the file and, when found, line and column.
    """
    use_returning_pool()  # memory the readers free goes back to the system (etl/formats/memory.py)
    if fmt == "parquet":
        batches = read_parquet(opener, key)
    else:
        readers: dict[str, Callable[..., Iterator[pa.RecordBatch | NativeScan]]] = {
            "csv": partial(read_csv_file, native=native),
            "jsonl": partial(read_json_file, native=native),
            "json": partial(read_json_file, array=True, native=native),
        }
        batches = readers[fmt](opener, key, options, rejects, warnings)
    empty: pa.RecordBatch | None = None
    yielded = False
    for batch in batches:
        if isinstance(batch, NativeScan):  # whole, with unique names (`parquet_scan`)
            yield batch
            yielded = True
            continue
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
