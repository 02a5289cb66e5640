"""Compressed text files (gzip, zstd, bz2, xz), detected by their magic bytes and by name, read
as a stream of their decompressed bytes.

Nothing is decompressed into memory as a whole: the readers pull decompressed bytes block by
block (Python's `gzip`, `bz2` and `lzma` modules; Arrow's `CompressedInputStream` for zstd,
which the standard library of Python 3.11 lacks). A file whose content starts with a
compression format's magic bytes is decompressed whatever its name, so compressed bytes are
never read as text (shared/DESIGN.md section 5); a file whose name says it is compressed but
whose content is not fails, as does a file that cannot be decoded: both name the file and the
decoder's own reason.

Magic bytes: gzip `1f 8b` (RFC 1952 section 2.3.1), zstd `28 b5 2f fd` (RFC 8878 section
3.1.1), bz2 `BZh` + block size digit + the block or end-of-stream magic (bzip2 format), xz
`fd 37 7a 58 5a 00` (xz file format 1.2.1, section 2.1.1.1).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
from collections.abc import Callable
from typing import IO, Any, cast

import pyarrow as pa

from etl.exceptions import BadInputError
from etl.formats.base import Opener

SUFFIXES = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bz2",
    ".xz": "xz",
}
"""File name endings and the compression each names."""

_BZ2 = re.compile(rb"BZh[1-9](\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)")
MAGIC_BYTES = 10
"""Bytes read from the start of a file to find its compression."""


def sniff(head: bytes) -> str | None:
    """Return the compression whose magic bytes `head` (the file's first bytes) starts with:
    `gzip`, `zstd`, `bz2`, `xz`, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if _BZ2.match(head):
        return "bz2"
    return None


def by_name(key: str) -> str | None:
    """Return the compression the name `key` ends with (`data.csv.gz`: gzip), or None."""
    lowered = key.lower()
    for suffix, codec in SUFFIXES.items():
        if lowered.endswith(suffix):
            return codec
    return None


def decompressing(opener: Opener, key: str) -> Opener:
    """Return an opener of the decompressed bytes of the file `opener` opens (the same opener
    when the file is not compressed).

    The file's first bytes are read once here to find its compression.

    Raises:
        BadInputError: the name says a compression the content does not start with (names the
            file, both and the first bytes). Decoding errors are raised later, by `read()` of
            the opened stream, naming the file and the decoder's reason.
    """
    with opener() as handle:
        head = handle.read(MAGIC_BYTES)
    found, named = sniff(head), by_name(key)
    if named is not None and found != named:
        content = f"{found} data" if found else f"data starting with {head[:6]!r}"
        raise BadInputError(
            f"the name says {named} but the file holds {content}; the file cannot be decoded",
            file=key,
        )
    if found is None:
        return opener
    return lambda: _open(opener, key, found)


def _open(opener: Opener, key: str, codec: str) -> IO[bytes]:
    raw = _Source(opener())
    decoder: Any
    if codec == "gzip":
        decoder = gzip.GzipFile(fileobj=raw, mode="rb")
    elif codec == "bz2":
        decoder = bz2.BZ2File(raw, mode="rb")
    elif codec == "xz":
        decoder = lzma.LZMAFile(cast(IO[bytes], raw), mode="rb")
    else:
        decoder = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")
    return io.BufferedReader(_Decoded(decoder, raw, key, codec), buffer_size=1 << 20)


class _Source(io.RawIOBase):
    """The compressed stream; remembers an error of the store itself, so a network failure is
    not reported as undecodable content."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self.handle.read(size)
        except BaseException as exc:
            self.error = exc
            raise

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


class _Decoded(io.RawIOBase):
    """Decompressed bytes of `decoder`; a decoding error becomes a BadInputError naming `key`."""

    def __init__(self, decoder: Any, source: _Source, key: str, codec: str) -> None:
        self.decoder, self.source, self.key, self.codec = decoder, source, key, codec
        self.read_one: Callable[[int], bytes] = decoder.read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.read_one(len(buffer))
        except BadInputError:
            raise
        except Exception as exc:
            if self.source.error is not None:
                raise self.source.error from None
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(
                f"cannot decode the {self.codec} data ({reason})", file=self.key
            ) from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.decoder.close()
        finally:
            self.source.close()
            super().close()
