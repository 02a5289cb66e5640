"""JSON lines and JSON arrays into Arrow with every field typed from the whole file, never from
its first block.

The file is cut into chunks of whole lines (about `BLOCK_SIZE` bytes each). Pass 1 reads each
chunk with Arrow's JSON reader and merges the chunk schemas: NULL gives way to any type, an
integer field with a fraction later becomes DOUBLE, a field first seen late is added, text that
Arrow reads as a timestamp in one chunk and as plain text in another stays text, objects merge
member by member and arrays by element. Pass 2 reads the chunks again with that schema fixed, so
every batch has it. Memory is bounded by the chunk size, whatever the file size.

Integers beyond int64 (Arrow would read them as DOUBLE and drop digits) make their field an
exact DECIMAL(29, 0) (BigQuery NUMERIC; every unsigned 64-bit value fits) or DECIMAL(38, 0)
(BigQuery BIGNUMERIC); a field with an integer of more than 38 digits, or with such integers and
numbers with a fraction, has no exact type and fails with SchemaMappingError naming it.

A JSON array file (`file_format: json`) is streamed element by element (ijson) into the same
chunks, one element per line, so it is typed, read and quarantined the same way; its elements
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
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from etl.exceptions import BadInputError, SchemaMappingError
from etl.extract.base import Rejects

_UNITS = ["s", "ms", "us", "ns"]
_INT64 = (-(2**63), 2**63 - 1)
BIG_INTEGER_PRECISIONS = (29, 38)
"""DECIMAL(P, 0) precisions an integer field beyond int64 takes: the narrowest that holds its
longest value (29 digits: BigQuery NUMERIC, 38: BIGNUMERIC and DuckDB's widest DECIMAL)."""


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


def kind(data_type: pa.DataType) -> str:
    """Return the JSON kind an Arrow type is read from: number, string, boolean, object,
    array or null."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    ):
        return "number"
    if pa.types.is_struct(data_type):
        return "object"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return "array"
    return "string"  # text, and the timestamps / dates Arrow infers from text


def merge(old: pa.DataType, new: pa.DataType, path: str = "") -> pa.DataType | None:
    """Return the type holding the values of both `old` and `new` exactly, or None when they
    are of different JSON kinds.

    Raises:
        SchemaMappingError: integers beyond int64 meet numbers with a fraction at field `path`.
    """
    if old == new:
        return old
    if pa.types.is_null(old):
        return new
    if pa.types.is_null(new):
        return old
    if kind(old) != kind(new):
        return None
    if kind(old) == "number":
        if pa.types.is_decimal(old) or pa.types.is_decimal(new):
            if pa.types.is_floating(old) or pa.types.is_floating(new):
                raise SchemaMappingError(path, "number", INEXACT)
            precision = max(t.precision for t in (old, new) if pa.types.is_decimal(t))
            return pa.decimal128(precision, 0)
        return pa.float64()  # int64 and double: Arrow's own rule within one block
    if kind(old) == "string":
        if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
            return old if _UNITS.index(old.unit) >= _UNITS.index(new.unit) else new
        return pa.string()  # the text itself is kept
    if kind(old) == "array":
        value = merge(old.value_type, new.value_type, f"{path}[]")
        return None if value is None else pa.list_(value)
    fields = {field.name: field.type for field in old}
    for field in new:
        if field.name in fields:
            merged = merge(fields[field.name], field.type, f"{path}.{field.name}")
            if merged is None:
                return None
            fields[field.name] = merged
        else:
            fields[field.name] = field.type
    return pa.struct(list(fields.items()))


def merge_schema(old: dict[str, pa.DataType], schema: pa.Schema) -> str | None:
    """Merge `schema` into `old` (field -> type) in place; return the first field that
    conflicts (left as it was), or None."""
    conflict = None
    for field in schema:
        if field.name not in old:
            old[field.name] = field.type
            continue
        merged = merge(old[field.name], field.type, field.name)
        if merged is None:
            conflict = conflict or field.name
        else:
            old[field.name] = merged
    return conflict


def _value_type(value: Any) -> pa.DataType:
    """Return the Arrow type Arrow's JSON reader gives `value` (text as plain text)."""
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return pa.int64()
        return big_integer_type(len(str(abs(value))), None)
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, list):
        element: pa.DataType | None = pa.null()
        for item in value:
            element = merge(element, _value_type(item), "[]") if element is not None else None
        return pa.list_(element if element is not None else pa.string())
    return pa.struct([(name, _value_type(item)) for name, item in value.items()])


def _conflict(old: pa.DataType, value: Any, path: str) -> tuple[str, str, str] | None:
    """Return (field path, kind of `value`, kind expected) for the first member of `value`
    that is of another kind than `old` says, or None."""
    new = _value_type(value)
    if merge(old, new, path) is not None:
        return None
    if kind(old) == kind(new) == "object":
        members = {field.name: field.type for field in old}
        for name, item in value.items():
            if name in members:
                found = _conflict(members[name], item, f"{path}.{name}")
                if found:
                    return found
    if kind(old) == kind(new) == "array":
        for item in value:
            found = _conflict(old.value_type, item, f"{path}[]")
            if found:
                return found
    return path, kind(new), kind(old)


INEXACT = (
    "it holds integers beyond 64 bits and numbers with a fraction; DOUBLE would round the "
    "integers (shared/DESIGN.md section 5, types are exact)"
)
TOO_LONG = "more than 38 digits, beyond DECIMAL(38, 0); no exact type holds it"


def big_integer_type(digits: int, path: str | None) -> pa.DataType:
    """Return the DECIMAL(P, 0) of an integer field whose longest value beyond int64 has
    `digits` digits (P from BIG_INTEGER_PRECISIONS).

    Raises:
        SchemaMappingError: more than 38 digits, naming field `path` (None: DECIMAL(38, 0) is
            returned, the caller reports the field later).
    """
    for precision in BIG_INTEGER_PRECISIONS:
        if digits <= precision:
            return pa.decimal128(precision, 0)
    if path is None:
        return pa.decimal128(BIG_INTEGER_PRECISIONS[-1], 0)
    raise SchemaMappingError(path, f"integer of {digits} digits", TOO_LONG)


def _has_double(data_type: pa.DataType) -> bool:
    if pa.types.is_floating(data_type):
        return True
    if pa.types.is_list(data_type):
        return _has_double(data_type.value_type)
    if pa.types.is_struct(data_type):
        return any(_has_double(field.type) for field in data_type)
    return False


def _numbers(value: Any, path: tuple[str, ...], found: dict[tuple[str, ...], list[int]]) -> None:
    """Collect, per field path, [longest integer beyond int64 in digits (0: none), whether a
    number with a fraction was seen] for the numbers in `value`."""
    if isinstance(value, dict):
        for name, item in value.items():
            _numbers(item, (*path, name), found)
    elif isinstance(value, list):
        for item in value:
            _numbers(item, (*path, "[]"), found)
    elif isinstance(value, float):
        found.setdefault(path, [0, 0])[1] = 1
    elif isinstance(value, int) and not isinstance(value, bool):
        if not _INT64[0] <= value <= _INT64[1]:
            entry = found.setdefault(path, [0, 0])
            entry[0] = max(entry[0], len(str(abs(value))))


def _replace(data_type: pa.DataType, path: tuple[str, ...], new: pa.DataType) -> pa.DataType:
    if not path:
        return new
    if path[0] == "[]":
        return pa.list_(_replace(data_type.value_type, path[1:], new))
    return pa.struct(
        [
            (f.name, _replace(f.type, path[1:], new) if f.name == path[0] else f.type)
            for f in data_type
        ]
    )


def _path_text(path: tuple[str, ...]) -> str:
    return "".join(part if part == "[]" or i == 0 else f".{part}" for i, part in enumerate(path))


def _beyond_int64(data: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a floating value of `data` (nested lists and structs included) has a magnitude
    of 2^63 or more: Arrow reads an integer literal beyond int64 as such a double, so without
    one no field can hold such an integer."""
    chunks = data.chunks if isinstance(data, pa.ChunkedArray) else [data]
    for array in chunks:
        kind = array.type
        if pa.types.is_floating(kind):
            largest = pc.max(pc.abs(array)).as_py()
            if largest is not None and not largest < 2.0**63:  # NaN and inf count too
                return True
        elif pa.types.is_list(kind) and _beyond_int64(array.flatten()):
            return True
        elif pa.types.is_struct(kind) and any(
            _beyond_int64(array.field(i)) for i in range(kind.num_fields)
        ):
            return True
    return False


def exact_schema(chunk: bytes, table: pa.Table) -> pa.Schema:
    """Return the schema of `table` (Arrow's reading of `chunk`) with each DOUBLE field that
    holds integers beyond int64 made the DECIMAL(P, 0) holding them exactly; the chunk's lines
    are parsed in Python only when a double of the table reaches 2^63 in magnitude.

    Raises:
        SchemaMappingError: a field has an integer of more than 38 digits, or such integers and
            numbers with a fraction (names the field path, e.g. `o.k`).
    """
    schema = table.schema
    if not any(_has_double(field.type) for field in schema) or not any(
        _beyond_int64(column) for column in table.columns
    ):
        return schema
    found: dict[tuple[str, ...], list[int]] = {}
    for raw in chunk.split(b"\n"):
        try:
            record = json.loads(raw) if raw.strip() else None
        except ValueError:
            continue  # Arrow read the chunk: only a line it accepts and Python does not
        _numbers(record, (), found)
    types = {field.name: field.type for field in schema}
    for path, (digits, fraction) in found.items():
        if not digits:
            continue
        if fraction:
            raise SchemaMappingError(_path_text(path), "number", INEXACT)
        new = big_integer_type(digits, _path_text(path))
        types[path[0]] = _replace(types[path[0]], path[1:], new)
    return pa.schema(list(types.items()))


OnBadLine = Callable[[int, str | None, str, str], None]
"""Called with (line, field or None, reason, the line's text) for each bad line."""


def screen(
    chunk: bytes,
    first_line: int,
    types: dict[str, pa.DataType],
    on_bad: OnBadLine,
    noun: str = "lines",
) -> bytes:
    """Return `chunk` without its bad lines, reporting each to `on_bad`; `types` (field ->
    type of the earlier lines) is updated with the good lines (Python types: text as text).
    `noun` names the lines in reasons (`elements` for a JSON array)."""
    good = []
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        try:
            record = json.loads(raw)
        except ValueError as exc:
            on_bad(number, None, f"invalid JSON ({exc})", text)
            continue
        if not isinstance(record, dict):
            on_bad(number, None, f"a JSON {kind(_value_type(record))}, not an object", text)
            continue
        found = None
        for name, value in record.items():
            if name in types:
                found = _conflict(types[name], value, name)
                if found:
                    break
        if found:
            path, got, expected = found
            on_bad(number, path, f"a {got} where earlier {noun} have a {expected}", text)
            continue
        for name, value in record.items():
            merged = merge(types[name], _value_type(value), name) if name in types else None
            types[name] = merged if merged is not None else _value_type(value)
        good.append(raw)
    return b"\n".join(good) + b"\n" if good else b""


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
    opener: Callable[[], IO[bytes]], key: str, block_size: int, rejects: Rejects | None = None
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

    return _read_records(lines, key, rejects, "lines")


def read_json_array(
    opener: Callable[[], IO[bytes]], key: str, block_size: int, rejects: Rejects | None = None
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
            yield _spool(array_chunks(opener, key, block_size), spool, spooled)

        yield from _read_records(elements, key, rejects, "elements")


def _spool(
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


def _read_records(
    open_chunks: Callable[[], contextlib.AbstractContextManager[Iterator[tuple[int, bytes]]]],
    key: str,
    rejects: Rejects | None,
    noun: str,
) -> Iterator[pa.RecordBatch]:
    """Type the records of `open_chunks()` (runs of JSON lines numbered from their first) from
    all of them, then yield them with that schema; `noun` is `lines` (numbers are lines) or
    `elements` (numbers are a JSON array's elements, named in the reason)."""
    types: dict[str, pa.DataType] = {}
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

    with open_chunks() as numbered_chunks:
        for first, chunk in numbered_chunks:
            try:
                table = _read(chunk, None)
                schema = exact_schema(chunk, table)
                conflict = merge_schema(dict(types), schema)
            except pa.ArrowInvalid:
                conflict = ""
            if conflict is None:
                merge_schema(types, schema)
                continue
            # a bad line in this chunk: find it (and, under quarantine, read the chunk without)
            chunk = screen(chunk, first, dict(types), on_bad, noun)
            if not chunk:
                continue
            try:
                table = _read(chunk, None)
            except pa.ArrowInvalid as exc:
                raise located(f"invalid JSON {noun} ({exc})", first) from exc
            schema = exact_schema(chunk, table)
            if merge_schema(types, schema) is not None:
                raise located(f"{noun} from here on cannot be read as one table ({schema})", first)
    if not types:
        return
    schema = pa.schema(list(types.items()))
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
            try:
                table = _read(chunk, schema)
            except pa.ArrowInvalid as exc:
                raise located(f"invalid JSON {noun} ({exc})", first) from exc
            yield from table.to_batches()
