"""A temporary spool of Arrow record batches: written once while a file is typed, read back
once with the final types, so a text file is parsed once (etl/formats/csv/reader.py,
etl/formats/json/lines.py).

Arrow IPC streams (or, with `parquet=True`, uncompressed Parquet files a destination can read
itself, etl/formats/native.py), in a temporary directory (`TMPDIR`), removed on `close()`:
disk takes about the Arrow size of the file's rows (TPC-H lineitem SF 1: ~1 GB), memory one
batch at a time (the files are read, not memory-mapped, so read pages do not count in the
process's RSS). A batch whose schema differs from the previous one starts a new stream.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.formats.native import row_bytes


class Spool:
    """Batches written in order, read back in order with `replay`. A context manager."""

    def __init__(self, *, parquet: bool = False) -> None:
        self.parquet = parquet
        self.rows = 0
        self.group_bytes: list[int] = []
        """Parquet spools: the bytes of the largest row of each batch written (`row_bytes`)."""
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._segments: list[str] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None
        self._schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Append `batch` (any schema)."""
        if self._writer is None or not batch.schema.equals(self._schema, check_metadata=True):
            self._finish()
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="etl-spool-")
            suffix = "parquet" if self.parquet else "arrows"
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
                if self.parquet
                else pa.ipc.new_stream(self._sink, batch.schema)
            )
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        if self.parquet:
            self.group_bytes.append(row_bytes(batch))

    @property
    def segments(self) -> list[str]:
        """The spool's files, in order (one per run of batches of one schema)."""
        self._finish()
        return list(self._segments)

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
                    if self.parquet
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
        self.group_bytes = []

    def close(self) -> None:
        self._finish()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._segments = []

    def _finish(self) -> None:
        if self._writer is not None:
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
