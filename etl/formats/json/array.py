"""A JSON array file (`file_format: json`) as runs of JSON lines: streamed element by element
(ijson), each element written as one line of compact JSON, so the JSONL reader types, reads and
quarantines it the same way."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO

from etl.exceptions import BadInputError


def spool_chunks(
    numbered: Iterator[tuple[int, bytes]], spool: IO[bytes], spooled: list[tuple[int, int]]
) -> Iterator[tuple[int, bytes]]:
    for first, chunk in numbered:
        spool.write(chunk)
        spooled.append((first, len(chunk)))
        yield first, chunk


class _IntegerOverflow(Exception):
    def __init__(self, skip: int) -> None:
        self.skip = skip


def array_chunks(
    opener: Callable[[], IO[bytes]], key: str, block_size: int
) -> Iterator[tuple[int, bytes]]:
    """Yield `(number of the first element, from 1, bytes)` of runs of the elements of the JSON
    array in the file, each element written as one line of compact JSON (integers keep every
    digit, other numbers are written as the double their text denotes), ~`block_size` bytes
    each.

    Raises:
        BadInputError: the content is not one JSON array (names the file and the element after
            which it breaks).
    """
    try:
        yield from _array_chunks(opener, key, block_size, exact=False, skip=0)
    except _IntegerOverflow as overflow:
        # ijson's C backend with use_float fails on integers beyond int64 (ICRAR/ijson#153):
        # read again with Decimals, which is slower, from the first element not yielded
        yield from _array_chunks(opener, key, block_size, exact=True, skip=overflow.skip)


def _array_chunks(
    opener: Callable[[], IO[bytes]], key: str, block_size: int, exact: bool, skip: int
) -> Iterator[tuple[int, bytes]]:
    import ijson

    encode = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), default=float if exact else None
    ).encode
    with opener() as handle:
        stream = _Peeked(handle)
        head = stream.first_byte()
        if head is None:
            return  # an empty file holds no rows
        if head != b"[":
            found = head.decode("utf-8", "replace")
            raise BadInputError(NOT_AN_ARRAY.format(found=found), file=key)
        lines: list[bytes] = []
        size, number = 0, 0
        try:
            for item in ijson.items(stream, "item", use_float=not exact):
                number += 1
                if number <= skip:
                    continue
                lines.append(encode(item).encode())
                size += len(lines[-1]) + 1
                if size >= block_size:
                    yield number - len(lines) + 1, b"\n".join(lines) + b"\n"
                    lines, size = [], 0
        except ijson.JSONError as exc:
            if not exact and "integer overflow" in str(exc):
                raise _IntegerOverflow(number - len(lines)) from exc
            raise BadInputError(
                f"invalid JSON after element {number} ({str(exc).splitlines()[0]}); expected "
                "one array of objects",
                file=key,
            ) from exc
        if lines:
            yield number - len(lines) + 1, b"\n".join(lines) + b"\n"


NOT_AN_ARRAY = "the file starts with `{found}`, not `[`; file_format json is one array of objects"


class _Peeked:
    """A binary stream whose first bytes were read to find its first non-blank byte."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.pending = source, b""

    def first_byte(self) -> bytes | None:
        while True:
            data = self.source.read(1 << 16)
            if not data:
                return None
            self.pending += data
            stripped = self.pending.lstrip()
            if stripped:
                return stripped[:1]

    def read(self, size: int = -1) -> bytes:
        if self.pending:
            data = self.pending if size < 0 else self.pending[:size]
            self.pending = self.pending[len(data) :]
            return data
        return self.source.read(size)
