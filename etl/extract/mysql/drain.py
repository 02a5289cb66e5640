"""Drain connectorx's batch channel as fast as it fills, so a slow destination never makes it
hold the table in memory.

connectorx's `arrow_stream` hands batches over an unbounded channel (`std::sync::mpsc::channel`
in connector-x's `src/destinations/arrowstream`): its Rust threads read the server's rows as
fast as they come, whether or not anyone takes the batches. When the destination is slower
than the server (DuckDB's insert on a busy 2-core machine), the batches pile up there: TPC-H
lineitem SF 1 read with a consumer taking 0.1 s per batch peaked at 777 MB (183 MB when the
consumer keeps up), and a benchmark run at 417-535 MB.

`drained` takes the batches off the channel in a thread of its own as soon as they come (a
C-stream import: no decoding, no copy). At most MEMORY_BATCHES wait in memory; when the
consumer falls further behind, the next batches go to Arrow IPC files in a temporary directory
(`TMPDIR`) of at most SEGMENT_BATCHES each, read back in order once the consumer gets there and
removed as soon as read. Memory stays bounded whatever the table size; the disk holds at most
the backlog (the Arrow size of the rows the destination has not taken yet).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import pyarrow as pa

MEMORY_BATCHES = 2
"""Batches waiting in memory at most (each at most NATIVE_BATCH_ROWS rows, ~2 MB of lineitem)."""

SEGMENT_BATCHES = 8
"""Batches per spill file: a file is read back once it is complete (or the stream ended)."""


class _Failed:
    def __init__(self, error: BaseException, from_source: bool) -> None:
        self.error, self.from_source = error, from_source


_DONE = object()


class _Backlog:
    """The batches taken off the channel and not yet consumed, in order: batches in memory,
    then (once the consumer is behind) paths of complete spill files."""

    def __init__(self) -> None:
        self.items: deque[object] = deque()  # RecordBatch | str (a spill file) | _DONE | _Failed
        self.in_memory = 0
        self.spilling = False
        self.changed = threading.Condition()
        self.stopped = False

    def push(self, item: object) -> None:
        with self.changed:
            self.items.append(item)
            if isinstance(item, pa.RecordBatch):
                self.in_memory += 1
            self.changed.notify_all()

    def behind(self) -> bool:
        """Whether the next batch goes to a spill file (the consumer is behind); once behind,
        it stays so until the consumer has caught up."""
        with self.changed:
            self.spilling = self.spilling or self.in_memory >= MEMORY_BATCHES
            return self.spilling

    def pop(self) -> object:
        """The next item, waiting for one."""
        with self.changed:
            while not self.items:
                # caught up: the next batch comes through memory (after the open spill
                # file, which the drain then closes) instead of waiting for a full file
                self.spilling = False
                self.changed.wait()
            item = self.items.popleft()
            if isinstance(item, pa.RecordBatch):
                self.in_memory -= 1
            elif not self.items and isinstance(item, str):
                # the last spill file: from here on the consumer has caught up
                self.spilling = False
            return item


class _Spill:
    """The spill files of one drain: the segment being written (in the draining thread), pushed
    to the backlog once complete, in a temporary directory made on the first one."""

    def __init__(self, backlog: _Backlog) -> None:
        self.backlog = backlog
        self.folder: tempfile.TemporaryDirectory[str] | None = None
        self.files = 0
        self.writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.sink: pa.NativeFile | None = None
        self.schema: pa.Schema | None = None
        self.path, self.written = "", 0

    def _next_path(self) -> str:
        if self.folder is None:
            self.folder = tempfile.TemporaryDirectory(prefix="etl-mysql-")
        self.files += 1
        return os.path.join(self.folder.name, f"{self.files}.arrows")

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None or not batch.schema.equals(self.schema):
            self.close_segment()
            self.path, self.schema = self._next_path(), batch.schema
            self.sink = pa.OSFile(self.path, "wb")
            self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.writer.write_batch(batch)
        self.written += 1
        if self.written >= SEGMENT_BATCHES:
            self.close_segment()

    def close_segment(self) -> None:
        if self.writer is not None and self.sink is not None:
            self.writer.close()
            self.sink.close()
            self.backlog.push(self.path)
        self.writer, self.sink, self.written = None, None, 0

    def cleanup(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def _drain(reader: Any, backlog: _Backlog, spill: _Spill) -> None:
    """The draining thread: take the batches of `reader` off as they come, into memory while
    the consumer keeps up, into spill files when it is behind; end with _DONE or _Failed."""
    iterator = iter(reader)
    try:
        while not backlog.stopped:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except BaseException as exc:  # noqa: BLE001  a Rust panic is one (pyo3)
                spill.close_segment()
                backlog.push(_Failed(exc, from_source=True))
                return
            if backlog.behind():
                spill.write(batch)
            else:  # caught up: the open spill file (if any) goes first
                spill.close_segment()
                backlog.push(batch)
        spill.close_segment()
        backlog.push(_DONE)
    except BaseException as exc:  # noqa: BLE001  re-raised in the consumer's thread
        backlog.push(_Failed(exc, from_source=False))


def drained(
    reader: Any, translate: Callable[[BaseException], BaseException | None]
) -> Generator[pa.RecordBatch, None, None]:
    """Yield the record batches of `reader` (an iterable of batches, advanced only in the
    draining thread) in order. An exception `reader` raises is raised here after the batches
    before it, as `translate(exc)` (itself when that is None); one of the spill files (the
    disk is full, say) as it is. Closing this generator stops the draining thread (after the
    batch it waits for) and removes the spill files."""
    backlog = _Backlog()
    spill = _Spill(backlog)
    thread = threading.Thread(
        target=_drain, args=(reader, backlog, spill), name="etl-mysql-drain", daemon=True
    )
    thread.start()
    try:
        while True:
            item = backlog.pop()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                translated = translate(item.error) if item.from_source else None
                if translated is None:
                    raise item.error
                raise translated from None
            if isinstance(item, str):
                with pa.OSFile(item, "rb") as source:
                    yield from pa.ipc.open_stream(source)
                os.remove(item)
                continue
            yield item
    finally:
        backlog.stopped = True
        thread.join()
        spill.cleanup()
