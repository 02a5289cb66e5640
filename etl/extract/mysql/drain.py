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


def drained(
    reader: Any, translate: Callable[[BaseException], BaseException | None]
) -> Generator[pa.RecordBatch, None, None]:
    """Yield the record batches of `reader` (an iterable of batches, advanced only in the
    draining thread) in order. An exception `reader` raises is raised here after the batches
    before it, as `translate(exc)` (itself when that is None); one of the spill files (the
    disk is full, say) as it is. Closing this generator stops the draining thread (after the
    batch it waits for) and removes the spill files."""
    backlog = _Backlog()
    folder: list[tempfile.TemporaryDirectory[str]] = []
    files = [0]

    def spill_path() -> str:
        if not folder:
            folder.append(tempfile.TemporaryDirectory(prefix="etl-mysql-"))
        files[0] += 1
        return os.path.join(folder[0].name, f"{files[0]}.arrows")

    def push(item: object) -> None:
        with backlog.changed:
            backlog.items.append(item)
            if isinstance(item, pa.RecordBatch):
                backlog.in_memory += 1
            backlog.changed.notify_all()

    def drain() -> None:
        writer: pa.ipc.RecordBatchStreamWriter | None = None
        sink: pa.NativeFile | None = None
        schema: pa.Schema | None = None
        path, written = "", 0

        def close_segment() -> None:
            nonlocal writer, sink, written
            if writer is not None and sink is not None:
                writer.close()
                sink.close()
                push(path)
            writer, sink, written = None, None, 0

        iterator = iter(reader)
        try:
            while not backlog.stopped:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except BaseException as exc:  # noqa: BLE001  a Rust panic is one (pyo3)
                    close_segment()
                    push(_Failed(exc, from_source=True))
                    return
                with backlog.changed:
                    behind = backlog.spilling or backlog.in_memory >= MEMORY_BATCHES
                    backlog.spilling = behind
                if not behind:  # caught up: the open spill file (if any) goes first
                    close_segment()
                    push(batch)
                    continue
                if writer is None or not batch.schema.equals(schema):
                    close_segment()
                    path, schema = spill_path(), batch.schema
                    sink = pa.OSFile(path, "wb")
                    writer = pa.ipc.new_stream(sink, schema)
                writer.write_batch(batch)
                written += 1
                if written >= SEGMENT_BATCHES:
                    close_segment()
            close_segment()
            push(_DONE)
        except BaseException as exc:  # noqa: BLE001  re-raised in the consumer's thread
            push(_Failed(exc, from_source=False))

    thread = threading.Thread(target=drain, name="etl-mysql-drain", daemon=True)
    thread.start()
    try:
        while True:
            with backlog.changed:
                while not backlog.items:
                    # caught up: the next batch comes through memory (after the open spill
                    # file, which the drain then closes) instead of waiting for a full file
                    backlog.spilling = False
                    backlog.changed.wait()
                item = backlog.items.popleft()
                if isinstance(item, pa.RecordBatch):
                    backlog.in_memory -= 1
                elif not backlog.items and isinstance(item, str):
                    # the last spill file: from here on the consumer has caught up
                    backlog.spilling = False
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
        for directory in folder:
            directory.cleanup()
