"""The typing pass of the CSV reader: which type holds every value of a column, over the whole
file, one block at a time (the tests of each candidate: etl/formats/csv/candidates.py).

The blocks are converted by a few threads ahead of the reader's consumer (`typed_batches`):
Arrow's compute kernels release the GIL, so the conversions run beside the parsing on the
other core; each block is committed in file order, with the result `Typing.add` would give.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from etl.formats.csv.candidates import CANDIDATES, column_typing

Snapshot = dict[str, tuple[str, ...]]
"""Column -> its candidates still standing when a block was handed to a thread."""
Tested = dict[str, tuple[list[str], pa.Array | None]]
"""Column -> the candidates of its snapshot that hold in a block, and the block's values
converted to the first of them (`column_typing`); columns without a value left out."""


class Typing:
    """The candidate types of every column over the batches seen so far (whole-file typing,
    one batch at a time).

    `add` narrows the candidates with a batch's values and returns the batch converted to the
    narrowest candidate of each column still standing: when no later batch narrows a column
    further, that conversion is already the column's final one, so the CSV reader can keep
    it (etl/formats/csv/reader.py) instead of parsing the file a second time. `add` is `test`
    (which only reads its arguments, so it may run in another thread, ahead) then `commit`
    (in file order).

    Args:
        names: the file's columns, in order.
        overrides: `column_types` given by the user (never inferred).
        decimal_point: the file's decimal mark.
    """

    def __init__(
        self, names: list[str], overrides: dict[str, pa.DataType], decimal_point: str
    ) -> None:
        self.names, self.overrides, self.decimal_point = names, overrides, decimal_point
        self.viable = {n: [kind for kind, _ in CANDIDATES] for n in names if n not in overrides}
        self.seen: set[str] = set()
        self.converted: dict[str, set[pa.DataType]] = {name: set() for name in names}
        """Column -> the types its values were converted to by `add` (batches of nulls only
        left out: they convert to any type)."""

    def add(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Narrow the candidates with `batch` (every column text); return `batch` with each
        column converted to its narrowest candidate still standing (text when none; a column
        of `overrides` or without a value in `batch` stays text)."""
        snapshot = self.snapshot()
        return self.commit(batch, snapshot, self.test(batch, snapshot))

    def snapshot(self) -> Snapshot:
        """Return the candidates standing now, of each column that has some."""
        return {name: tuple(kinds) for name, kinds in self.viable.items() if kinds}

    def test(self, batch: pa.RecordBatch, snapshot: Snapshot) -> Tested:
        """Test `batch` against the candidates of `snapshot` (thread-safe: reads no state)."""
        tested = {}
        for name, kinds in snapshot.items():
            column = batch.column(name)
            if column.null_count < len(column):
                tested[name] = column_typing(list(kinds), column, self.decimal_point)
        return tested

    def commit(self, batch: pa.RecordBatch, snapshot: Snapshot, tested: Tested) -> pa.RecordBatch:
        """Narrow the candidates with `batch`, `tested` against `snapshot` (a column whose
        candidates narrowed since is tested again, against those now standing), and return
        it converted, as `add` says."""
        arrays = []
        for name in self.names:
            column = batch.column(name)
            arrays.append(column)
            kinds = self.viable.get(name)
            if not kinds:
                if kinds is not None and column.null_count < len(column):
                    self.converted[name].add(pa.string())
                continue
            if column.null_count == len(column):
                continue
            if snapshot.get(name) == tuple(kinds):
                kept, typed = tested[name]
            else:
                kept, typed = column_typing(list(kinds), column, self.decimal_point)
            self.seen.add(name)
            kinds[:] = kept
            arrays[-1] = column if typed is None else typed
            self.converted[name].add(arrays[-1].type)
        return pa.RecordBatch.from_arrays(arrays, names=self.names)

    def types(self) -> dict[str, pa.DataType]:
        """Return the type of every column (in file order) from the batches added: the
        narrowest candidate that held every value; text for a column with no value at all
        (nothing says it is anything else) or none that held them all."""
        types = dict(self.overrides)
        for name, kinds in self.viable.items():
            held = kinds and name in self.seen
            types[name] = dict(CANDIDATES)[kinds[0]] if held else pa.string()
        return {name: types[name] for name in self.names}

    def kept_conversions(self) -> bool:
        """Return True when every batch `add` returned holds each column in its final type
        (or only nulls in it): the returned batches are then the file's typed batches."""
        types = self.types()
        return all(self.converted[name] <= {types[name]} for name in self.names)


WORKERS = 1
"""Threads converting blocks ahead of the consumer, while Arrow's reader parses on its own
threads and the consumer spools: one keeps both cores of this machine class busy; two were
~5% faster on TPC-H lineitem SF 1 but held ~50 MB more (etl/formats/throttle.py `AHEAD`)."""


def typed_batches(
    batches: Iterable[pa.RecordBatch], typing: Typing, workers: int = WORKERS
) -> Iterator[pa.RecordBatch]:
    """Yield `typing.add(batch)` of every batch of `batches`, in order, each tested by one of
    `workers` threads (up to `workers` blocks ahead) and committed here in file order: the
    same batches and types as `add` in a loop. The first block is typed here, before any
    other is handed out, so that the blocks ahead are tested against the narrowed candidates
    (a column that narrows later costs a second test of the blocks already ahead)."""
    iterator = iter(batches)
    for batch in iterator:
        yield typing.add(batch)
        break
    pending: deque[tuple[pa.RecordBatch, Snapshot, Future[Tested]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="etl-csv-typing") as pool:
        try:
            for batch in iterator:
                snapshot = typing.snapshot()
                pending.append((batch, snapshot, pool.submit(typing.test, batch, snapshot)))
                if len(pending) >= workers:
                    batch, snapshot, tested = pending.popleft()
                    yield typing.commit(batch, snapshot, tested.result())
            while pending:
                batch, snapshot, tested = pending.popleft()
                yield typing.commit(batch, snapshot, tested.result())
        finally:
            pool.shutdown(cancel_futures=True)


def infer(
    batches: Iterable[pa.RecordBatch],
    names: list[str],
    overrides: dict[str, pa.DataType],
    decimal_point: str,
) -> dict[str, pa.DataType]:
    """Return the type of every column of `names` (in that order) from `batches`, the whole
    file read with every column as text; columns in `overrides` keep the type given there.

    A column with no value at all is text: nothing says it is anything else.
    """
    typing = Typing(names, overrides, decimal_point)
    for batch in batches:
        typing.add(batch)
    return typing.types()


def line_breaks(
    batches: Iterable[pa.RecordBatch], names: list[str], spanning: list[str]
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through, adding to `spanning` the first column found with a value that
    spans lines."""
    for batch in batches:
        if not spanning:
            for name in names:
                column = batch.column(name)
                if column.null_count < len(column) and _has_line_break(column):
                    spanning.append(name)
                    break
        yield batch


def single_lines(
    batches: Iterable[pa.RecordBatch], spanning: list[str]
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through, failing on a value that spans lines (`allow_quoted_newlines`
    off): Arrow's reader joins lines inside quotes whatever `newlines_in_values` says."""
    for batch in batches:
        if spanning:
            raise pa.ArrowInvalid(f"CSV parse error: a value of `{spanning[0]}` spans lines")
        yield batch


def _has_line_break(column: pa.Array) -> bool:
    """Return True when a value of the text `column` holds `\n` or `\r`; one scan of the
    column's character data decides the common case of no line break at all (columns of up to
    16 MiB of text: the scan copies it)."""
    data = column.buffers()[2]
    if data is not None and column.offset == 0 and data.size <= 16 << 20:
        text = data.to_pybytes()
        if b"\n" not in text and b"\r" not in text:
            return False
    return bool(
        pc.any(pc.match_substring(column, "\n")).as_py()
        or pc.any(pc.match_substring(column, "\r")).as_py()
    )
