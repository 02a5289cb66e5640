"""Read ahead: decode the next batches of a source in a thread while the destination loads.

A database read is a pipeline of three CPU-bound stages: the server producing rows, the driver
decoding them into Arrow (ADBC's binary COPY reader, connectorx's Rust decoder plus our Arrow
casts) and the destination consuming the batches (DuckDB's Arrow scan, compression and writes).
Pulled from one thread, the last two take turns on one core; `prefetch` runs the decoding in a
thread of its own, so on a 2-core machine both cores work (the drivers and pyarrow release the
GIL while they decode). Memory stays bounded: at most `depth` decoded batches wait in the queue,
plus the one being decoded and the one being loaded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

PREFETCH_DEPTH = 1
"""Decoded batches waiting for the destination at most: one keeps both stages busy while the
batches are of similar cost (each at most ~1 MB from PostgreSQL, `BATCH_HINT_MAX_BYTES`, and
10,000 rows from MySQL, `NATIVE_BATCH_ROWS`); every batch in flight adds to the peak RSS."""

_POLL_S = 0.1
"""Seconds between checks of the stop flag while a queue is full or empty."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(source: Iterator[T], depth: int = PREFETCH_DEPTH) -> Iterator[T]:
    """Yield the items of `source`, read ahead by a thread holding at most `depth` of them.

    `source` is advanced (and closed, when it is a generator) only in the reading thread, so a
    driver's objects are used by one thread at a time. An exception raised by `source` is
    re-raised here, in the caller's thread, after the items read before it. Closing this
    generator early (the destination failed) stops the reader after the item it is decoding
    and waits for it, so the caller may close the connection right after.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001  re-raised in the caller's thread
            put(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001  the read's own outcome is what matters
                    pass

    reader = threading.Thread(target=read, name="etl-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = items.get(timeout=_POLL_S)
            except queue.Empty:
                if not reader.is_alive() and items.empty():
                    return  # the reader was stopped without a last item: nothing more
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while reader.is_alive():
            try:  # unblock a reader waiting on a full queue
                items.get_nowait()
            except queue.Empty:
                pass
            reader.join(_POLL_S)
