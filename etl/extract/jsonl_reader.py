"""JSON lines and JSON arrays into Arrow with every field typed from the whole file, never from
its first block.

The file is cut into chunks of whole lines (about `BLOCK_SIZE` bytes each). Pass 1 reads each
chunk with Arrow's JSON reader and merges the chunk schemas (etl/extract/json_types.py). Pass 2 reads the chunks again with that schema fixed, so
every batch has it. Memory is bounded by the chunk size, whatever the file size.

Integers beyond int64 (Arrow would read them as DOUBLE and drop digits) make their field an
exact DECIMAL(29, 0) (BigQuery NUMERIC; every unsigned 64-bit value fits) or DECIMAL(38, 0)
(BigQuery BIGNUMERIC); a field with an integer of more than 38 digits, or with such integers and
numbers with a fraction, has no exact type and fails with SchemaMappingError naming it.

A JSON array file (`file_format: json`) is streamed element by element
(etl/extract/json_array.py) into the same chunks, one element per line, so it is typed, read and quarantined the same way; its elements
are numbered from 1 where a JSONL file has line numbers.

A line that is not valid JSON, is not an object, or holds a value of another kind (number,
string, boolean, object, array) than the earlier lines gave its field, is bad: by default the
run fails naming the file, the line (physical, from 1) and the field; under
`on_bad_rows: quarantine` the line goes to the rejects and the other lines load. Lines are read
one by one in Python only in a chunk Arrow cannot read as it is (the diagnostic path).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.json as pa_json

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.extract.base import Rejects
from etl.extract.json_array import array_chunks, spool_chunks
from etl.extract.json_drift import JSON, STRING, Drift, rewrite
from etl.extract.json_types import exact_schema, merge_schema, screen
from etl.extract.text import BLOCK_SIZE, NO_COLUMNS, Opener, Recoder, is_utf8
from etl.schema import JSON_FIELD_METADATA


def read_json_file(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    array: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one JSONL file (`array`: one JSON array file) in `options.encoding`;
    fields holding ISO 8601 text ending in `Z` become UTC timestamps.

    Raises:
        BadInputError: as `read_jsonl` / `read_json_array`, and text not in `options.encoding`.
        SchemaMappingError: as `read_jsonl`.
    """

    def utf8() -> IO[bytes]:
        handle = opener()
        if not is_utf8(options.encoding):
            return io.BufferedReader(Recoder(handle, options.encoding))
        return handle

    zoned: set[str] | None = None
    try:
        read = read_json_array if array else read_jsonl
        for batch in read(utf8, key, BLOCK_SIZE, rejects, warnings):
            naive = [
                f.name for f in batch.schema if pa.types.is_timestamp(f.type) and not f.type.tz
            ]
            if naive and zoned is None:
                zoned = _utc_text_fields(opener, options.encoding, naive, array)
            yield _as_utc(batch, zoned) if naive and zoned else batch
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"text is not valid {options.encoding} ({exc.reason} at byte {exc.start}); "
            "set file_format_options.encoding",
            file=key,
        ) from exc


_UTC_TEXT = re.compile(r"\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?Z$")


def _records_of(raw: IO[bytes], encoding: str, array: bool) -> Iterator[Any]:
    """Yield the records of a JSON lines file (lines that are not JSON skipped) or of a JSON
    array file (until it breaks)."""
    if array:
        import ijson

        source: Any = raw if is_utf8(encoding) else Recoder(raw, encoding)
        try:
            yield from ijson.items(source, "item")
        except ijson.JSONError:
            return
        return
    for line in io.TextIOWrapper(raw, encoding=encoding, errors="replace"):
        try:
            yield json.loads(line)
        except ValueError:
            continue


def _utc_text_fields(
    opener: Opener, encoding: str, names: list[str], array: bool = False
) -> set[str]:
    """Return the `names` whose first non-null value in the file is ISO 8601 text ending in `Z`:
    Arrow infers those as zone-less timestamps holding the UTC wall clock."""
    found: dict[str, bool] = {}
    with opener() as raw:
        for record in _records_of(raw, encoding, array):
            for name in names:
                value = record.get(name) if isinstance(record, dict) else None
                if name not in found and isinstance(value, str):
                    found[name] = bool(_UTC_TEXT.search(value))
            if len(found) == len(names):
                break
    return {name for name, utc in found.items() if utc}


def _as_utc(batch: pa.RecordBatch, names: set[str]) -> pa.RecordBatch:
    arrays = [
        column.cast(pa.timestamp(field.type.unit, tz="UTC"))
        if field.name in names and pa.types.is_timestamp(field.type) and not field.type.tz
        else column
        for field, column in zip(batch.schema, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


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


def _contains(ascending: list[int], value: int) -> bool:
    index = bisect.bisect_left(ascending, value)
    return index < len(ascending) and ascending[index] == value


def _read(chunk: bytes, schema: pa.Schema | None) -> pa.Table:
    parse = pa_json.ParseOptions(explicit_schema=schema) if schema is not None else None
    return pa_json.read_json(
        io.BytesIO(chunk),
        read_options=pa_json.ReadOptions(block_size=max(len(chunk), 1) + 1),
        parse_options=parse,
    )


def read_jsonl(
    opener: Callable[[], IO[bytes]],
    key: str,
    block_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one JSON lines file (UTF-8), every batch with the schema of the whole
    file (fields in order of first appearance).

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

    return _read_records(lines, key, rejects, "lines", warnings)


def read_json_array(
    opener: Callable[[], IO[bytes]],
    key: str,
    block_size: int,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
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

        yield from _read_records(elements, key, rejects, "elements", warnings)


def _read_records(
    open_chunks: Callable[[], contextlib.AbstractContextManager[Iterator[tuple[int, bytes]]]],
    key: str,
    rejects: Rejects | None,
    noun: str,
    warnings: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Type the records of `open_chunks()` (runs of JSON lines numbered from their first) from
    all of them, then yield them with that schema; `noun` is `lines` (numbers are lines) or
    `elements` (numbers are a JSON array's elements, named in the reason). A field whose values
    change kind is widened (etl/extract/json_drift.py) and named in `warnings` with the count
    of values stored as their JSON text."""
    types: dict[str, pa.DataType] = {}
    drift: Drift = {}
    bad_lines: list[int] = []  # ascending: lines are screened in file order

    def located(reason: str, number: int, field: str | None = None) -> BadInputError:
        if noun == "lines":
            return BadInputError(reason, file=key, line=number, column=field)
        return BadInputError(f"element {number}: {reason}", file=key, column=field)

    def on_bad(line: int, field: str | None, reason: str, text: str) -> None:
        if rejects is None:
            raise located(reason, line, field)
        bad_lines.append(line)
        if noun == "lines":
            rejects.add(key, line, field, reason, text)
        else:
            rejects.add(key, None, field, f"element {line}: {reason}", text)

    def typed(schema: pa.Schema) -> pa.Schema:
        return pa.schema([(f.name, pa.string() if f.name in drift else f.type) for f in schema])

    with open_chunks() as numbered_chunks:
        for first, chunk in numbered_chunks:
            if drift:
                chunk = rewrite(chunk, drift)
            try:
                table = _read(chunk, None)
                schema = typed(exact_schema(chunk, table))
                conflict = merge_schema(dict(types), schema)
            except pa.ArrowInvalid:
                conflict = ""
            if conflict is None:
                merge_schema(types, schema)
                continue
            # a bad line or a drifting field in this chunk: find it (and, under quarantine,
            # read the chunk without the bad lines)
            known = len(drift)
            chunk = screen(chunk, first, dict(types), on_bad, noun, drift)
            if not chunk:
                continue
            if len(drift) != known:
                chunk = rewrite(chunk, drift)
                types.update({name: pa.string() for name in drift if name in types})
            try:
                table = _read(chunk, None)
            except pa.ArrowInvalid as exc:
                raise located(f"invalid JSON {noun} ({exc})", first) from exc
            schema = typed(exact_schema(chunk, table))
            if merge_schema(types, schema) is not None:
                raise located(f"{noun} from here on cannot be read as one table ({schema})", first)
    if not types:
        yield NO_COLUMNS
        return
    schema = pa.schema(
        [
            pa.field(name, kind, metadata=JSON_FIELD_METADATA if drift.get(name) == JSON else None)
            for name, kind in types.items()
        ]
    )
    counts: dict[str, int] = {}
    empty = True
    with open_chunks() as numbered_chunks:
        for first, chunk in numbered_chunks:
            last = first + chunk.count(b"\n")
            if bisect.bisect_left(bad_lines, first) != bisect.bisect_right(bad_lines, last):
                chunk = b"\n".join(
                    raw
                    for number, raw in enumerate(chunk.split(b"\n"), start=first)
                    if not _contains(bad_lines, number)
                )
                if not chunk.strip():
                    continue
            if drift:
                chunk = rewrite(chunk, drift, counts)
            try:
                table = _read(chunk, schema)
            except pa.ArrowInvalid as exc:
                raise located(f"invalid JSON {noun} ({exc})", first) from exc
            for batch in table.to_batches():
                empty = False
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    if empty:
        yield pa.RecordBatch.from_pylist([], schema=schema)
    if warnings is not None:
        for name, mode in drift.items():
            warnings.append(
                DRIFT_WARNING[mode].format(file=key, field=name, count=counts.get(name, 0))
            )


DRIFT_WARNING = {
    STRING: (
        "file {file}, field {field}: values of different kinds; loaded as STRING, "
        "{count} non-string values stored as their JSON text"
    ),
    JSON: (
        "file {file}, field {field}: objects or arrays mixed with values of another shape; "
        "loaded as JSON, {count} values stored as their JSON text"
    ),
}
"""The warning naming a field whose values change kind (etl/extract/json_drift.py)."""
