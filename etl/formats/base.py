"""What every text reader (CSV, JSON, JSONL) shares: the opener type, the block size, header
names, encodings. Imports nothing from the readers, so none of them imports another."""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import IO, Any

import pyarrow as pa

Opener = Callable[[], IO[bytes]]
"""Opens a file for binary reading, decompressed; called once per pass over the file."""

BLOCK_SIZE = 4 << 20
"""Bytes of text parsed per block by the CSV/JSONL readers (both type every column from the
whole file in a first pass). Arrow's streaming readers read up to ~34 blocks ahead of the
consumer, so this also bounds a reader's memory: ~150 MB whatever the file size."""

NO_COLUMNS = pa.RecordBatch.from_arrays([], names=[])
"""The batch of a file that declares no column (zero bytes, `[]`): a snapshot of it still
replaces the table's rows."""


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """Return a batch of no rows with `schema`, built without a Python list (pyarrow's
    `from_pylist` imports pandas on its first call: ~0.2 s and ~45 MB of every run)."""
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def unique_names(raw: list[str]) -> list[str]:
    """Return header names made unique ignoring case (`id`, `ID_2`) and non-empty (`column_N`),
    without a byte-order mark."""
    names, seen = [], set()
    for index, name in enumerate(raw, start=1):
        name = name.strip().lstrip("\ufeff") or f"column_{index}"
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        names.append(candidate)
    return names


def arrow_encoding(encoding: str) -> str:
    """Return the encoding name Arrow's CSV reader takes (UTF-8 with or without BOM: `utf8`)."""
    name = codecs.lookup(encoding).name
    return "utf8" if name in ("utf-8", "utf-8-sig") else encoding


def is_utf8(encoding: str) -> bool:
    """Return True for UTF-8 (any spelling, without BOM handling)."""
    return codecs.lookup(encoding).name == "utf-8"


class Recoder(io.RawIOBase):
    """Wrap a binary stream in `encoding` as a UTF-8 binary stream."""

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self.text = io.TextIOWrapper(handle, encoding=encoding, newline="")
        self.pending = b""

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.text.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while len(self.pending) < len(buffer):
            chunk = self.text.read(1 << 16)
            if not chunk:
                break
            self.pending += chunk.encode("utf-8")
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size
