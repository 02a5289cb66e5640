"""DuckDB's `memory_limit` while a run loads (`MemoryBudget`): the limit the user configured,
or (the default) a small buffer raised, before DuckDB reads a batch or a file, to what its
largest values need.

DuckDB fills its buffer up to the limit before it spills to the database file, so the limit
is most of a run's peak above the imports; but DuckDB keeps each value whole in one block, so
the limit also bounds the largest value a run can load. Measured with duckdb 2.0.1 (smallest
limit that loads one row into a new table): a 64 MiB text value read from Arrow needs 136 MB,
a row of two 64 MiB values 204 MB; from a Parquet file (`read_parquet`) 272 MB and 472 MB;
a 16 MiB value 36 MB and 68 MB. Hence ARROW_MULTIPLE and NATIVE_MULTIPLE, with margin.
"""

from __future__ import annotations

import collections
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.formats.native import NativeScan

MIB = 1 << 20

AUTO_LIMIT_MIB = 64
"""The automatic limit before any large value (TPC-H lineitem SF 1 peak RSS: 237-292 MB on
every DuckDB route, against 283-341 MB with 128 MiB; 32 MiB cannot hold DuckDB's parallel
`read_parquet` of the CSV reader's spool: "failed to pin block")."""

WORKING_MIB = 32
"""What DuckDB needs besides the large values when the limit is raised for them."""

ARROW_MULTIPLE = 3
"""DuckDB's buffer needs up to this many times the bytes of the rows it converts from Arrow
(measured ~2.0x for one large value, ~1.5x for a row of two)."""

NATIVE_MULTIPLE = 5
"""The same for the rows of a Parquet file DuckDB reads itself (measured ~4.1x, ~3.7x)."""


class MemoryBudget:
    """The memory limit of one load's DuckDB database: `configured` (DuckDB size text) is a
    hard cap, never changed; None (automatic) starts at AUTO_LIMIT_MIB and only grows, to
    WORKING_MIB + the multiple of the rows DuckDB may hold at once (the largest rows of the
    last `threads` batches, or of a file's `threads` largest row groups)."""

    def __init__(self, connection: Any, configured: str | None) -> None:
        self.configured = configured
        self.limit_mib = AUTO_LIMIT_MIB
        threads = connection.execute("SELECT current_setting('threads')").fetchone()[0]
        self.threads = max(1, int(threads))
        self.recent: collections.deque[int] = collections.deque(maxlen=self.threads)
        # its own connection: `fit_batch` runs on DuckDB's scan thread while the loader's
        # connection is executing the INSERT (the setting is the database's, not a session's)
        self._setter = None if configured else connection.cursor()

    @staticmethod
    def initial(configured: str | None) -> str:
        """Return the `memory_limit` to open the database with."""
        return configured or f"{AUTO_LIMIT_MIB}MiB"

    @property
    def text(self) -> str:
        """The limit in force, for messages: the configured text, or `automatic, N MiB`."""
        return self.configured or f"automatic, {self.limit_mib} MiB"

    def fit_batch(self, batch: pa.RecordBatch) -> None:
        """Raise the automatic limit to hold `batch`'s largest row with the previous batches'
        still in DuckDB's threads, before DuckDB reads it."""
        if self._setter is not None:
            self.recent.append(row_bytes(batch))
            self._fit(ARROW_MULTIPLE * sum(self.recent))

    def fit_scan(self, scan: NativeScan) -> None:
        """Raise the automatic limit to hold the largest rows of the `threads` row groups of
        `scan` (`NativeScan.group_bytes`) DuckDB may read at once."""
        if self._setter is not None:
            largest = sorted(scan.group_bytes, reverse=True)[: self.threads]
            self._fit(NATIVE_MULTIPLE * sum(largest))

    def _fit(self, nbytes: int) -> None:
        need = max(AUTO_LIMIT_MIB, WORKING_MIB + -(-nbytes // MIB))
        if need > self.limit_mib and self._setter is not None:
            self._setter.execute(f"SET memory_limit = '{need}MiB'")
            self.limit_mib = need

    def close(self) -> None:
        if self._setter is not None:
            self._setter.close()
            self._setter = None


def row_bytes(batch: pa.RecordBatch) -> int:
    """Return an upper bound of the bytes of `batch`'s largest row: the sum, over its columns,
    of the column's largest text or binary value (Arrow's `binary_length`), of all its buffers
    for a nested or view column (no value is larger), or of its fixed width."""
    total = 0
    for column in batch.columns:
        data_type = column.type
        if pa.types.is_dictionary(data_type):
            column, data_type = column.dictionary, data_type.value_type
        if (
            pa.types.is_string(data_type)
            or pa.types.is_large_string(data_type)
            or pa.types.is_binary(data_type)
            or pa.types.is_large_binary(data_type)
        ):
            total += pc.max(pc.binary_length(column)).as_py() or 0
            continue
        try:
            total += -(-data_type.bit_width // 8)
        except ValueError:  # not of fixed width (nested, views): all the column's buffers
            total += column.nbytes
    return total
