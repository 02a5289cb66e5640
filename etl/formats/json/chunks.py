"""Chunks of whole JSON lines and Arrow's read of them (etl/formats/json/lines.py): the file
cut into runs of lines, each read by Arrow's JSON reader, READ_AHEAD chunks at once."""

from __future__ import annotations

import bisect
import contextlib
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TypeAlias, TypeVar

import pyarrow as pa
import pyarrow.json as pa_json

from etl.formats.json.numbers import exact_schema

T = TypeVar("T")

OpenChunks = Callable[[], contextlib.AbstractContextManager[Iterator[tuple[int, bytes]]]]
"""Opens the file's chunks: runs of JSON lines, each with the number of its first line."""

Native = Callable[[pa.Schema], bool]
"""Whether the destination may read the rows of a file of this schema itself (the JSON
reader's post-processing leaves its columns as they are)."""


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


def without_lines(chunk: bytes, first: int, ascending: list[int]) -> bytes:
    """Return `chunk` (lines `first`...) without the lines numbered in `ascending`; the very
    `chunk` when it holds none of them."""
    last = first + chunk.count(b"\n")
    if bisect.bisect_left(ascending, first) == bisect.bisect_right(ascending, last):
        return chunk
    return b"\n".join(
        raw
        for number, raw in enumerate(chunk.split(b"\n"), start=first)
        if not contains(ascending, number)
    )


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


Exact: TypeAlias = "pa.Schema | Exception | None"
"""A chunk's `exact_schema`, or the error computing it raised; None: not computed."""


def parse_chunk(chunk: bytes) -> tuple[pa.Table | Exception, Exact]:
    """Return Arrow's read of `chunk` and its `exact_schema`, or their errors (run in
    `read_ahead`'s threads; `type_chunk` raises them in file order)."""
    read = try_read(chunk)
    if isinstance(read, Exception):
        return read, None
    try:
        return read, exact_schema(chunk, read)
    except Exception as exc:  # noqa: BLE001  a worker boundary: re-raised by type_chunk
        return read, exc


def read_ahead(
    numbered_chunks: Iterator[tuple[int, bytes]], parse: Callable[[bytes], T]
) -> Iterator[tuple[int, bytes, T]]:
    """Yield `(first line, chunk, parse(chunk))` in order, READ_AHEAD chunks parsed in parallel
    (Arrow releases the GIL while it parses and matches); `parse` returns its errors."""
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="etl-json") as pool:
        pending: deque[tuple[int, bytes, Future[T]]] = deque()
        for first, chunk in numbered_chunks:
            pending.append((first, chunk, pool.submit(parse, chunk)))
            if len(pending) > READ_AHEAD:
                first, chunk, future = pending.popleft()
                yield first, chunk, future.result()
        while pending:
            first, chunk, future = pending.popleft()
            yield first, chunk, future.result()
