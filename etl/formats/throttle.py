"""A binary stream that Arrow's streaming CSV reader may read only a few blocks ahead of its
consumer.

Arrow's reader fetches blocks on an I/O thread into a queue of up to 32 blocks
(`MakeBackgroundGenerator`'s default queue), whatever the consumer takes: with 4 MiB blocks that
is ~130 MB of raw text held for nothing on a local file (seen as RSS growing with the block size,
~40 MB per MiB of block, TPC-H lineitem). Each read here takes a token that the consumer gives
back per batch it takes, so at most AHEAD blocks are read ahead. A read waits at most WAIT_S for
a token and then goes on (a consumer that takes no batch for that long, or a block that makes
several batches, never deadlocks the reader: it only loses the bound for that read).
"""

from __future__ import annotations

import io
import threading
from typing import IO, Any

AHEAD = 3
"""Blocks the reader may hold before the consumer takes a batch (Arrow parses up to one block
per core at once, and a block's last record may end in the next). 3 rather than 6 since the
typing pass converts a block ahead in a thread of its own (etl/formats/csv/infer.py
`typed_batches`): TPC-H lineitem SF 1 CSV peaked at 350-367 MB with 3 blocks, one typing
thread and 30,000-row spool row groups against 410-448 MB with 6, two and 122,880, at 11.1-11.3
against 10.5-10.9 s (bench/PROFILE.md, CSV)."""

WAIT_S = 2.0
"""Longest wait for a token, in seconds."""


class Throttled(io.RawIOBase):
    """Wrap `handle` (binary, readable); call `consumed()` per batch taken from the reader."""

    def __init__(self, handle: IO[bytes], ahead: int = AHEAD) -> None:
        self.handle = handle
        self.tokens = threading.Semaphore(ahead)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.tokens.acquire(timeout=WAIT_S)
        return self.handle.readinto(buffer)  # type: ignore[attr-defined]

    def consumed(self) -> None:
        """Give a token back: the consumer took one batch."""
        self.tokens.release()
