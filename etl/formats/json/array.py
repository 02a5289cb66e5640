"""A JSON array file (`file_format: json`) as runs of JSON lines: streamed element by element
(ijson), each element written as one line of compact JSON, so the JSONL reader types, reads and
quarantines it the same way.

ijson's fast backend (yajl, C) reads numbers as doubles and turns a lone UTF-16 surrogate
escape (`"\\ud800"`, valid JSON syntax but no Unicode text) into `?`
(https://github.com/lloyd/yajl/pull/232), so both would change silently. The bytes are watched
before yajl parses them (`_Watch`): a number a double may not give back (`long_numbers`) makes
the file be read again with every number exact, and a lone surrogate escape with ijson's Python
backend, which keeps it; the element holding it is then a bad line for the JSONL reader
(etl/formats/json/screen.py), as in a JSONL file. Each read again starts after the last element
already handed on, so nothing is handed on twice."""

from __future__ import annotations

import importlib
import json
import re
import secrets
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import BadInputError


def spool_chunks(
    numbered: Iterator[tuple[int, bytes]], spool: IO[bytes], spooled: list[tuple[int, int]]
) -> Iterator[tuple[int, bytes]]:
    for first, chunk in numbered:
        spool.write(chunk)
        spooled.append((first, len(chunk)))
        yield first, chunk


FAST, EXACT, PYTHON = 0, 1, 2
"""How elements are read: yajl with doubles; yajl with every number exact (Decimals); ijson's
Python backend, numbers exact and lone surrogates kept."""


class _Again(Exception):
    """Read the file again in `mode`, from the element after `skip`."""

    def __init__(self, skip: int, mode: int) -> None:
        self.skip, self.mode = skip, mode


def array_chunks(
    opener: Callable[[], IO[bytes]], key: str, block_size: int
) -> Iterator[tuple[int, bytes]]:
    """Yield `(number of the first element, from 1, bytes)` of runs of the elements of the JSON
    array in the file, each element written as one line of compact JSON, ~`block_size` bytes
    each. Integers keep every digit; other numbers are written as the double their text denotes
    when that double gives the number back (`1.50` as `1.5`), else as written (`0.1` with 20
    more digits keeps them); an element holding a lone surrogate escape keeps it escaped.

    Raises:
        BadInputError: the content is not one JSON array (names the file and the element after
            which it breaks).
    """
    mode, skip = FAST, 0
    while True:
        try:
            yield from _array_chunks(opener, key, block_size, mode, skip)
            return
        except _Again as again:
            # ijson's C backend with use_float fails on integers beyond int64
            # (ICRAR/ijson#153), and doubles or yajl may change a value: read again, slower
            mode, skip = again.mode, again.skip


def _array_chunks(
    opener: Callable[[], IO[bytes]], key: str, block_size: int, mode: int, skip: int
) -> Iterator[tuple[int, bytes]]:
    import ijson

    backend: Any = importlib.import_module("ijson.backends.python") if mode == PYTHON else ijson
    encode = _Encoder() if mode != FAST else _fast_encoder()
    with opener() as handle:
        stream = _Peeked(handle)
        head = stream.first_byte()
        if head is None:
            return  # an empty file holds no rows
        if head != b"[":
            found = head.decode("utf-8", "replace")
            raise BadInputError(NOT_AN_ARRAY.format(found=found), file=key)
        watch = _Watch(stream, numbers=mode == FAST) if mode != PYTHON else None
        lines: list[bytes] = []
        size, number = 0, 0
        try:
            for item in backend.items(watch or stream, "item", use_float=mode == FAST):
                if watch is not None and watch.needs > mode:
                    raise _Again(max(skip, number - len(lines)), watch.needs)
                number += 1
                if number <= skip:
                    continue
                lines.append(encode(item))
                size += len(lines[-1]) + 1
                if size >= block_size:
                    yield number - len(lines) + 1, b"\n".join(lines) + b"\n"
                    lines, size = [], 0
        except UnicodeDecodeError as exc:
            # yajl writes a lone low surrogate escape as UTF-8 bytes Python refuses
            if mode == PYTHON:
                raise
            raise _Again(max(skip, number - len(lines)), PYTHON) from exc
        except ijson.JSONError as exc:
            if mode == FAST and "integer overflow" in str(exc):
                raise _Again(max(skip, number - len(lines)), EXACT) from exc
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, UnicodeDecodeError):
                raise cause from None  # text not in its encoding (the Python backend's)
            raise BadInputError(
                f"invalid JSON after element {number} ({str(exc).splitlines()[0]}); expected "
                "one array of objects",
                file=key,
            ) from exc
        if lines:
            yield number - len(lines) + 1, b"\n".join(lines) + b"\n"


NOT_AN_ARRAY = "the file starts with `{found}`, not `[`; file_format json is one array of objects"


def _fast_encoder() -> Callable[[Any], bytes]:
    """Write one element (numbers as doubles; yajl yields no lone surrogate) as compact JSON."""
    text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return lambda item: text(item).encode()


class _Encoder:
    """Writes one element whose numbers arrive as Decimals (ijson's exact mode) as compact JSON
    (UTF-8 bytes): each number as the double it denotes when that double gives it back (as the
    fast path writes it), else as written; a key or string holding a lone surrogate is escaped
    (`\\ud800`), as no UTF-8 text holds it."""

    def __init__(self) -> None:
        self.token = f"\x00{secrets.token_hex(8)}:"  # never in a file's own strings
        self.verbatim = False
        options: dict[str, Any] = {"separators": (",", ":"), "default": self._number}
        self.text = json.JSONEncoder(ensure_ascii=False, **options).encode
        self.ascii = json.JSONEncoder(ensure_ascii=True, **options).encode
        self.marked = re.compile(re.escape(json.dumps(self.token)[:-1]) + r'([-+.0-9eE]+)"')

    def _number(self, value: object) -> object:
        if not isinstance(value, Decimal):
            raise TypeError(f"{type(value).__name__} is not JSON")
        double = float(value)
        if repr(double) == str(value) or double_exact(value, double):  # the first: fast
            return double
        self.verbatim = True
        return self.token + str(value)

    def __call__(self, item: Any) -> bytes:
        self.verbatim = False
        text = self.text(item)
        try:
            line = text.encode()
        except UnicodeEncodeError:  # a lone surrogate (the Python backend keeps it)
            line = self.ascii(item).encode()
        if self.verbatim:
            line = self.marked.sub(lambda m: m.group(1), line.decode()).encode()
        return line


def double_exact(number: Decimal, double: float) -> bool:
    """Whether `double` (`float(number)`) holds `number` exactly enough to give it back: finite
    and its shortest text the same number (`0.30000000000000004` yes, `0.1` followed by 20
    more digits, `1e400`, `1e-400` no)."""
    return double - double == 0 and Decimal(repr(double)) == number


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")

LONG_NUMBER = (r"\.\d{8}", r"e[-+]?\d", r"E[-+]?\d")
"""RE2 patterns (Arrow) one of which text holding a number a double may not give back matches:
only numbers of up to 15 significant digits always come back from a double (DBL_DIG), so such
a number has 8 or more digits after its point, or 9 or more before it (`\\.\\d{9}` in the
reversed text), or an exponent. Each starts with a literal, so RE2 skips to it. Text inside
strings may match too: it only costs a closer look."""


def long_numbers(data: bytes) -> bool:
    """Whether `data` may hold a number a double does not give back (LONG_NUMBER; a pass of RE2
    per pattern, no copy but the reversed text)."""
    if not data:
        return False
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(data)))
    array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)]
    )
    for pattern in LONG_NUMBER:
        if pc.match_substring_regex(array, pattern)[0].as_py():
            return True
    # reversed in Arrow: a copy made without the GIL, ~3x faster than slicing the bytes
    return bool(pc.match_substring_regex(pc.binary_reverse(array), r"\.\d{9}")[0].as_py())


class _Watch:
    """The binary stream ijson reads, checked before ijson sees a byte: `needs` becomes PYTHON
    at a lone surrogate escape and (with `numbers`) EXACT at a number a double may not give
    back. The source is read and checked BLOCK bytes at a time; the last HELD bytes of each
    block wait for the next one, so an escape and the one after it are seen together, and
    CONTEXT bytes already handed on precede each check."""

    BLOCK = 1 << 20
    HELD = 11
    CONTEXT = 40

    def __init__(self, source: Any, numbers: bool) -> None:
        self.source, self.numbers = source, numbers
        self.needs = FAST
        self.pending, self.context = b"", b""
        self.ready, self.offset = b"", 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks with read(0) whether the stream gives bytes
        if self.offset >= len(self.ready):
            self._fill()
        end = len(self.ready) if size < 0 else self.offset + size
        out = self.ready[self.offset : end]
        self.offset += len(out)
        return out

    def _fill(self) -> None:
        parts, total, eof = [self.pending], len(self.pending), False
        while total < self.BLOCK:
            data = self.source.read(self.BLOCK)
            if not data:
                eof = True
                break
            parts.append(data)
            total += len(data)
        block = b"".join(parts)
        end = len(block) if eof else len(block) - self.HELD
        self.ready, self.offset, self.pending = block[:end], 0, block[end:]
        self._check(self.context + block, len(self.context), len(self.context) + end)
        self.context = (self.context + self.ready)[-self.CONTEXT :]

    def _check(self, window: bytes, start: int, end: int) -> None:
        if self.numbers and self.needs < EXACT and long_numbers(window[:end]):
            self.needs = EXACT
        if self.needs == PYTHON or b"\\u" not in window:
            return
        # an escape begun in the last 5 bytes handed on ends in this block: seen here
        for found in _SURROGATE.finditer(window, max(start - 5, 0), end):
            at = found.start()
            if _HIGH.match(window, at):
                lone = not _LOW.match(window, at + 6)
            else:
                lone = not _HIGH.match(window, at - 6) if at >= 6 else True
            if lone:
                self.needs = PYTHON
                return


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
