"""JSON lines into Arrow with every field typed from the whole file, never from its first block.

The file is cut into chunks of whole lines (about `BLOCK_SIZE` bytes each). Pass 1 reads each
chunk with Arrow's JSON reader and merges the chunk schemas: NULL gives way to any type, an
integer field with a fraction later becomes DOUBLE, a field first seen late is added, text that
Arrow reads as a timestamp in one chunk and as plain text in another stays text, objects merge
member by member and arrays by element. Pass 2 reads the chunks again with that schema fixed, so
every batch has it. Memory is bounded by the chunk size, whatever the file size.

A line that is not valid JSON, is not an object, or holds a value of another kind (number,
string, boolean, object, array) than the earlier lines gave its field, is bad: by default the
run fails naming the file, the line (physical, from 1) and the field; under
`on_bad_rows: quarantine` the line goes to the rejects and the other lines load. Lines are read
one by one in Python only in a chunk Arrow cannot read as it is (the diagnostic path).
"""

from __future__ import annotations

import bisect
import io
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.json as pa_json

from etl.exceptions import BadInputError
from etl.extract.base import Rejects

_UNITS = ["s", "ms", "us", "ns"]


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
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "number"
    if pa.types.is_struct(data_type):
        return "object"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return "array"
    return "string"  # text, and the timestamps / dates Arrow infers from text


def merge(old: pa.DataType, new: pa.DataType) -> pa.DataType | None:
    """Return the type holding the values of both `old` and `new` exactly, or None when they
    are of different JSON kinds."""
    if old == new:
        return old
    if pa.types.is_null(old):
        return new
    if pa.types.is_null(new):
        return old
    if kind(old) != kind(new):
        return None
    if kind(old) == "number":
        return pa.float64()  # int64 and double: Arrow's own rule within one block
    if kind(old) == "string":
        if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
            return old if _UNITS.index(old.unit) >= _UNITS.index(new.unit) else new
        return pa.string()  # the text itself is kept
    if kind(old) == "array":
        value = merge(old.value_type, new.value_type)
        return None if value is None else pa.list_(value)
    fields = {field.name: field.type for field in old}
    for field in new:
        if field.name in fields:
            merged = merge(fields[field.name], field.type)
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
        merged = merge(old[field.name], field.type)
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
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, list):
        element: pa.DataType | None = pa.null()
        for item in value:
            element = merge(element, _value_type(item)) if element is not None else None
        return pa.list_(element if element is not None else pa.string())
    return pa.struct([(name, _value_type(item)) for name, item in value.items()])


def _conflict(old: pa.DataType, value: Any, path: str) -> tuple[str, str, str] | None:
    """Return (field path, kind of `value`, kind expected) for the first member of `value`
    that is of another kind than `old` says, or None."""
    new = _value_type(value)
    if merge(old, new) is not None:
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


OnBadLine = Callable[[int, str | None, str, str], None]
"""Called with (line, field or None, reason, the line's text) for each bad line."""


def screen(
    chunk: bytes, first_line: int, types: dict[str, pa.DataType], on_bad: OnBadLine
) -> bytes:
    """Return `chunk` without its bad lines, reporting each to `on_bad`; `types` (field ->
    type of the earlier lines) is updated with the good lines (Python types: text as text)."""
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
            on_bad(number, path, f"a {got} where earlier lines have a {expected}", text)
            continue
        for name, value in record.items():
            merged = merge(types[name], _value_type(value)) if name in types else None
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
    """
    types: dict[str, pa.DataType] = {}
    bad_lines: list[int] = []  # ascending: lines are screened in file order

    def on_bad(line: int, field: str | None, reason: str, text: str) -> None:
        if rejects is None:
            raise BadInputError(reason, file=key, line=line, column=field)
        bad_lines.append(line)
        rejects.add(key, line, field, reason, text)

    with opener() as handle:
        for first, chunk in chunks(handle, block_size):
            try:
                table = _read(chunk, None)
                conflict = merge_schema(dict(types), table.schema)
            except pa.ArrowInvalid:
                conflict = ""
            if conflict is None:
                merge_schema(types, table.schema)
                continue
            # a bad line in this chunk: find it (and, under quarantine, read the chunk without)
            chunk = screen(chunk, first, dict(types), on_bad)
            if not chunk:
                continue
            try:
                table = _read(chunk, None)
            except pa.ArrowInvalid as exc:
                raise BadInputError(f"invalid JSON lines ({exc})", file=key, line=first) from exc
            if merge_schema(types, table.schema) is not None:
                raise BadInputError(
                    f"lines from here on cannot be read as one table ({table.schema})",
                    file=key,
                    line=first,
                )
    if not types:
        return
    schema = pa.schema(list(types.items()))
    with opener() as handle:
        for first, chunk in chunks(handle, block_size):
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
                raise BadInputError(f"invalid JSON lines ({exc})", file=key, line=first) from exc
            yield from table.to_batches()
