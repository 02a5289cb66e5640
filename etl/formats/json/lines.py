"""JSON lines and JSON arrays into Arrow with every field typed from the whole file, never from
its first block.

The file is cut into chunks of whole lines (about `BLOCK_SIZE` bytes each). Pass 1 reads each
chunk with Arrow's JSON reader and merges the chunk schemas (etl/formats/json/types.py). Pass 2
reads the chunks again with that schema fixed, so every batch has it. Memory is bounded by the
chunk size (or the longest line), whatever the file size.

Integers beyond int64 (Arrow would read them as DOUBLE and drop digits) make their field an
exact DECIMAL(29, 0) (BigQuery NUMERIC; every unsigned 64-bit value fits) or DECIMAL(38, 0)
(BigQuery BIGNUMERIC); a field with an integer of more than 38 digits, or with such integers and
numbers with a fraction, has no exact type and fails with SchemaMappingError naming it. A number
no double gives back (`12345678901234567890.123`) makes its field an exact DECIMAL(P, S) sized
over the file (etl/formats/json/numbers.py); beyond 38 digits it fails the same way.

A field whose values change kind (number, string, boolean, object, array) is widened, never
refused: to text keeping each value's JSON text, or to JSON when objects or arrays are involved
(etl/formats/json/drift.py); the run's warnings name it with the count of values so stored.

A JSON array file (`file_format: json`) is streamed element by element
(etl/formats/json/array.py) into the same chunks, one element per line, so it is typed, read and
quarantined the same way; its elements are numbered from 1 where a JSONL file has line numbers.

A line that is not valid JSON or is not an object is bad: by default the run fails naming the
file and the line (physical, from 1); under `on_bad_rows: quarantine` the line goes to the
rejects and the other lines load. Lines are read one by one in Python only in a chunk Arrow
cannot read as it is (the diagnostic path) and, once a field drifts, to rewrite its values.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

import pyarrow as pa

from etl.exceptions import BadInputError
from etl.formats.base import NO_COLUMNS, empty_batch
from etl.formats.json.array import array_chunks, spool_chunks
from etl.formats.json.chunks import (
    Exact,
    Native,
    OpenChunks,
    chunks,
    parse_chunk,
    read_ahead,
    read_chunk,
    try_read,
    without_lines,
)
from etl.formats.json.drift import WARNING, Drift, file_schema, rewrite
from etl.formats.json.numbers import exact_numbers, exact_schema, inexact_fields
from etl.formats.json.screen import screen
from etl.formats.json.types import merge_schema
from etl.formats.memory import release_unused
from etl.formats.native import NativeScan
from etl.formats.rejects import Rejects
from etl.formats.spool import Spool


def read_jsonl(
    opener: Callable[[], IO[bytes]],
    key: str,
    block_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    native: Native | None = None,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Yield the rows of one JSON lines file (UTF-8), every batch with the schema of the whole
    file (fields in order of first appearance), or, with `native`, possibly one `NativeScan`
    of them (`_read_records`).

    Args:
        opener: opens the file for binary reading (called once per pass).
        key: the file's name in messages and rejects.
        block_size: bytes per chunk (whole lines).
        rejects: `on_bad_rows: quarantine`: bad lines go here (file, line, field, reason, text)
            instead of failing the run.

    Raises:
        BadInputError: a bad line without `rejects` (names the file, line and field), or a
            chunk Arrow cannot read even without its bad lines (names the file and the chunk's
            first line).
        SchemaMappingError: a field no exact type holds (integers beyond 38 digits, or beyond
            int64 mixed with fractions); names the field.
    """

    @contextlib.contextmanager
    def lines() -> Iterator[Iterator[tuple[int, bytes]]]:
        with opener() as handle:
            yield chunks(handle, block_size)

    return _read_records(lines, key, rejects, "lines", warnings, native)


def read_json_array(
    opener: Callable[[], IO[bytes]],
    key: str,
    block_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    native: Native | None = None,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Yield the rows of one file holding a JSON array of objects (UTF-8), every batch with the
    schema of the whole file, as `read_jsonl` does with elements for lines. The file is parsed
    once; its elements, as JSON lines, are kept in a temporary file (about the file's size on
    local disk) for the second pass.

    Args:
        opener: opens the file for binary reading.
        key: the file's name in messages and rejects.
        block_size: bytes of elements (written as JSON lines) per chunk.
        rejects: `on_bad_rows: quarantine`: elements that are not objects or hold a value of
            another kind than the earlier elements gave the field go here (file, line NULL,
            field, `element N: reason`, the element as compact JSON) instead of failing.

    Raises:
        BadInputError: a bad element without `rejects` (names the file, the element from 1 and
            the field), or a file that is not one JSON array (names the file and the element
            after which it breaks), whether or not `rejects` is given.
        SchemaMappingError: as for `read_jsonl`.
    """
    with tempfile.TemporaryFile(prefix="etl-json-") as spool:
        spooled: list[tuple[int, int]] = []  # (first element, bytes) of each chunk in `spool`

        @contextlib.contextmanager
        def elements() -> Iterator[Iterator[tuple[int, bytes]]]:
            if spooled:
                spool.seek(0)
                yield ((first, spool.read(size)) for first, size in spooled)
                return
            yield spool_chunks(array_chunks(opener, key, block_size), spool, spooled)

        yield from _read_records(elements, key, rejects, "elements", warnings, native)


def _read_records(
    open_chunks: OpenChunks,
    key: str,
    rejects: Rejects | None,
    noun: str,
    warnings: list[str] | None = None,
    native: Native | None = None,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Type the records of `open_chunks()` (runs of JSON lines numbered from their first) from
    all of them, then yield them with that schema; `noun` is `lines` (numbers are lines) or
    `elements` (numbers are a JSON array's elements, named in the reason). A field whose values
    change kind is widened (etl/formats/json/drift.py) and named in `warnings` with the count
    of values so stored.

    Pass 1 spools each chunk's table as Arrow read it (etl/formats/spool.py); when every chunk
    was read with the file's final schema (the common case: the same fields, in the same order,
    of the same types, no bad line, no drift), pass 2 reads the spool back instead of parsing
    the file again. With `native`, the spool is Parquet and, when `native(schema)` and
    `Spool.scan` let it through, it is yielded as one `NativeScan` instead."""
    with Spool(parquet=native is not None) as spool:
        records = _Records(key, rejects, noun, spool)
        with open_chunks() as numbered_chunks:
            for first, chunk, (table, exact) in read_ahead(numbered_chunks, parse_chunk):
                records.type_chunk(first, chunk, table, exact)
        schema = file_schema(records.types, records.drift)
        release_unused()  # the typing pass's chunks, before the spool is read back
        if schema is None:
            yield NO_COLUMNS
            return
        if inexact_fields(schema):  # numbers no double gives back: sized over the file
            with open_chunks() as numbered_chunks:
                schema = exact_numbers(numbered_chunks, schema)
        if native is not None and records.spool_holds(schema) and native(schema):
            scan = spool.scan(key)
            if scan is not None:  # no drift: no warning to add
                yield scan
                return
        if records.spool_holds(schema):
            batches: Iterator[pa.RecordBatch] = spool.replay()
        else:
            spool.clear()
            batches = records.read_again(open_chunks, schema)
        empty = True
        for batch in batches:
            empty = False
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    if empty:
        yield empty_batch(schema)
    if warnings is not None:
        for name, mode in records.drift.items():
            warnings.append(
                WARNING[mode].format(file=key, field=name, count=records.counts.get(name, 0))
            )


class _Records:
    """The typing pass over one file's chunks, and the second read when the spool cannot
    serve (see `_read_records`)."""

    def __init__(self, key: str, rejects: Rejects | None, noun: str, spool: Spool) -> None:
        self.key, self.rejects, self.noun, self.spool = key, rejects, noun, spool
        self.types: dict[str, pa.DataType] = {}
        self.drift: Drift = {}
        self.counts: dict[str, int] = {}
        self.bad_lines: list[int] = []  # ascending: lines are screened in file order
        self.spooled: list[pa.Schema] | None = []
        """The schema of each chunk's table as spooled; None once a chunk was not."""

    def located(self, reason: str, number: int, field: str | None = None) -> BadInputError:
        if self.noun == "lines":
            return BadInputError(reason, file=self.key, line=number, column=field)
        return BadInputError(f"element {number}: {reason}", file=self.key, column=field)

    def on_bad(self, line: int, field: str | None, reason: str, text: str) -> None:
        if self.rejects is None:
            raise self.located(reason, line, field)
        self.bad_lines.append(line)
        if self.noun == "lines":
            self.rejects.add(self.key, line, field, reason, text)
        else:
            self.rejects.add(self.key, None, field, f"element {line}: {reason}", text)

    def typed(self, schema: pa.Schema) -> pa.Schema:
        return pa.schema(
            [(f.name, pa.string() if f.name in self.drift else f.type) for f in schema]
        )

    def type_chunk(
        self, first: int, chunk: bytes, read: pa.Table | Exception, exact: Exact = None
    ) -> None:
        """Merge the types of `chunk` (lines `first`...; `read`: Arrow's read of it, or its
        error; `exact`: its `exact_schema`, or that error, when computed) into `types`; spool
        its table when it was read as it is."""
        if self.drift:
            chunk = rewrite(chunk, self.drift)
            read, exact = try_read(chunk), None
        try:
            if isinstance(read, Exception):
                raise read
            table = read
            found = exact_schema(chunk, table) if exact is None else exact
            if isinstance(found, Exception):
                raise found
            schema = self.typed(found)
            conflict = merge_schema(dict(self.types), schema)
        except pa.ArrowInvalid:
            conflict = ""
        if conflict is None:
            merge_schema(self.types, schema)
            self._spool(table)
            return
        self.spooled = None
        # a bad line or a drifting field in this chunk: find it (and, under quarantine, read
        # the chunk without the bad lines)
        known = len(self.drift)
        chunk = screen(chunk, first, dict(self.types), self.on_bad, self.noun, self.drift)
        if not chunk:
            return
        if len(self.drift) != known:
            chunk = rewrite(chunk, self.drift)
            self.types.update({name: pa.string() for name in self.drift if name in self.types})
        try:
            table = read_chunk(chunk, None)
        except pa.ArrowInvalid as exc:
            raise self.located(f"invalid JSON {self.noun} ({exc})", first) from exc
        schema = self.typed(exact_schema(chunk, table))
        if merge_schema(self.types, schema) is not None:
            raise self.located(
                f"{self.noun} from here on cannot be read as one table ({schema})", first
            )

    def _spool(self, table: pa.Table) -> None:
        if self.spooled is None or self.drift:
            self.spooled = None
            return
        self.spooled.append(table.schema)
        for batch in table.to_batches():
            self.spool.write(batch)

    def spool_holds(self, schema: pa.Schema) -> bool:
        """Return True when every chunk was spooled as read with `schema`'s fields and types."""
        if self.spooled is None or self.drift or self.bad_lines:
            return False
        wanted = [(field.name, field.type) for field in schema]
        return all([(f.name, f.type) for f in read] == wanted for read in self.spooled)

    def read_again(self, open_chunks: OpenChunks, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Pass 2 from the file: each chunk read with `schema` fixed, bad lines left out,
        drifting fields rewritten (counted in `counts`)."""
        with open_chunks() as numbered_chunks:
            for first, chunk in numbered_chunks:
                kept = without_lines(chunk, first, self.bad_lines)
                if kept is not chunk and not kept.strip():
                    continue  # every line of the chunk was bad
                chunk = kept
                if self.drift:
                    chunk = rewrite(chunk, self.drift, self.counts)
                try:
                    table = read_chunk(chunk, schema)
                except pa.ArrowInvalid as exc:
                    raise self.located(f"invalid JSON {self.noun} ({exc})", first) from exc
                yield from table.to_batches()
