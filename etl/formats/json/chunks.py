"""Chunks of whole JSON lines and Arrow's read of them (etl/formats/json/lines.py): the file
cut into runs of lines, each read by Arrow's JSON reader, READ_AHEAD chunks at once."""

from __future__ import annotations

import bisect
import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import pyarrow as pa
import pyarrow.json as pa_json


def chunks(source: IO[bytes], block_size: int) -> Iterator[tuple[int, bytes]]:
    """Yield `(number of the first line, bytes)` of runs of whole lines, ~`block_size` bytes
    each; a line longer than `block_size` makes its chunk longer."""
    line, pending = 1, b""
    while True:
        data = source.read(block_size)
        if not data:
            break
        data = pending + data if pending else data
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        chunk, pending = data[: cut + 1], data[cut + 1 :]
        yield line, chunk
        line += chunk.count(b"\n")
    if pending.strip():
        yield line, pending


def contains(ascending: list[int], value: int) -> bool:
    index = bisect.bisect_left(ascending, value)
    return index < len(ascending) and ascending[index] == value


def read_chunk(chunk: bytes, schema: pa.Schema | None) -> pa.Table:
    parse = pa_json.ParseOptions(explicit_schema=schema) if schema is not None else None
    return pa_json.read_json(
        io.BytesIO(chunk),
        read_options=pa_json.ReadOptions(block_size=max(len(chunk), 1) + 1),
        parse_options=parse,
    )


READ_AHEAD = 2
"""Chunks parsed at once by Arrow's JSON reader (each chunk is one block, parsed on one
thread): with two, both cores of a 2-core machine parse while the typing pass runs."""


def try_read(chunk: bytes) -> pa.Table | Exception:
    try:
        return read_chunk(chunk, None)
    except pa.ArrowInvalid as exc:
        return exc


def read_ahead(
    numbered_chunks: Iterator[tuple[int, bytes]],
) -> Iterator[tuple[int, bytes, pa.Table | Exception]]:
    """Yield `(first line, chunk, Arrow's read of it or its error)` in order, READ_AHEAD chunks
    parsed in parallel (Arrow releases the GIL while it parses)."""
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="etl-json") as pool:
        pending: deque[tuple[int, bytes, Future[pa.Table | Exception]]] = deque()
        for first, chunk in numbered_chunks:
            pending.append((first, chunk, pool.submit(try_read, chunk)))
            if len(pending) > READ_AHEAD:
                first, chunk, future = pending.popleft()
                yield first, chunk, future.result()
        while pending:
            first, chunk, future = pending.popleft()
            yield first, chunk, future.result()
