"""Streaming readers for CSV, Parquet, JSON and JSONL into `pyarrow.RecordBatch`es.

Each reader takes an open binary file and yields batches of at most `chunk_size` rows with
unique, non-empty column names. Bad input raises `BadInputError` naming the file, line and
column, found by a second, diagnostic read of the file only when the fast reader fails.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.extract.base import Rejects

BLOCK_SIZE = 4 << 20
"""Bytes of text parsed per block by the CSV/JSONL readers (types are inferred from the first;
a JSONL line must fit in one). Arrow's streaming readers read up to ~34 blocks ahead of the
consumer, so this also bounds a reader's memory: ~150 MB whatever the file size."""

PARQUET_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet file. Peak RSS follows the batch size downstream (DuckDB
converts and buffers a batch at a time): TPC-H lineitem SF 0.25 -> DuckDB peaked at ~520 MB
with 65,536-row batches."""

Opener = Callable[[], IO[bytes]]


def read_batches(
    fmt: str, opener: Opener, key: str, options: FileFormatOptions, chunk_size: int,
    rejects: Rejects | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one file.

    Args:
        fmt: `csv`, `parquet`, `json` or `jsonl`.
        opener: opens the file for binary reading (called again for a diagnostic pass).
        key: the file's name in messages.
        options: the job's `file_format_options`.
        chunk_size: maximum rows per batch.
        rejects: `on_bad_rows: quarantine`: CSV rows that do not parse or convert go here
            instead of failing the run (other formats still fail).

    Raises:
        BadInputError: malformed content; names the file and, when found, line and column.
    """
    reader = {"csv": _csv, "parquet": _parquet, "json": _json_array, "jsonl": _jsonl}[fmt]
    batches = _csv(opener, key, options, rejects) if fmt == "csv" else reader(opener, key, options)
    for batch in batches:
        batch = _unique_names(batch)
        for offset in range(0, batch.num_rows, chunk_size):
            yield batch.slice(offset, chunk_size)


def _unique_names(batch: pa.RecordBatch) -> pa.RecordBatch:
    names = unique_names(batch.schema.names)
    return batch if names == batch.schema.names else batch.rename_columns(names)


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


def _csv(
    opener: Opener, key: str, options: FileFormatOptions, rejects: Rejects | None = None
) -> Iterator[pa.RecordBatch]:
    from etl.extract.csv_reader import read_csv

    try:
        for batch in read_csv(opener, key, options, rejects):
            binary = [f.name for f in batch.schema if pa.types.is_binary(f.type)]
            if binary:  # Arrow reads text that is not valid UTF-8 as binary
                raise _locate_encoding_error(opener, key, options, binary[0])
            yield batch
    except pa.ArrowInvalid as exc:
        invalid_text = re.search(r"column #(\d+): CSV conversion error to string: invalid UTF8", str(exc))
        if invalid_text:
            column = _header_name(opener, options, int(invalid_text.group(1)))
            raise _locate_encoding_error(opener, key, options, column) from exc
        raise _locate_csv_error(opener, key, options, str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"text is not valid {options.encoding} ({exc.reason} at byte {exc.start}); "
            "set file_format_options.encoding",
            file=key,
        ) from exc


def _header_name(opener: Opener, options: FileFormatOptions, index: int) -> str:
    """Return the name of column `index` (from 0) as the reader names it."""
    if not options.has_header:
        return f"column_{index + 1}"
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        for _ in range(options.skip_rows):
            text.readline()
        header = next(csv.reader(text, delimiter=options.delimiter, quotechar=options.quote_char), [])
    return header[index].strip() if index < len(header) else f"column_{index + 1}"


def _locate_encoding_error(
    opener: Opener, key: str, options: FileFormatOptions, column: str
) -> BadInputError:
    """Find the first line of the file that is not valid `options.encoding`."""
    with opener() as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode(options.encoding)
            except UnicodeDecodeError as exc:
                return BadInputError(
                    f"text is not valid {options.encoding} ({exc.reason} at byte {exc.start} of "
                    "the line); set file_format_options.encoding",
                    file=key, line=number, column=column,
                )
    return BadInputError(
        f"text is not valid {options.encoding}; set file_format_options.encoding",
        file=key, column=column,
    )


def arrow_encoding(encoding: str) -> str:
    """Return the encoding name Arrow's CSV reader takes (UTF-8 with or without BOM: `utf8`)."""
    name = codecs.lookup(encoding).name
    return "utf8" if name in ("utf-8", "utf-8-sig") else encoding


def _is_empty(handle: IO[bytes]) -> bool:
    if hasattr(handle, "peek"):
        return not handle.peek(1)
    position = handle.tell()
    empty = not handle.read(1)
    handle.seek(position)
    return empty


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'")
_DECIMAL_CONVERSION = re.compile(r"In CSV column #(\d+): The string '(.*)' is not a valid (\S+) number")
_PARSE = re.compile(r"Expected (\d+) columns, got (\d+)")


QUOTED_NEWLINE_HINT = (
    "; if a quoted field holds a line break, set file_format_options.allow_quoted_newlines"
)


def _locate_csv_error(opener: Opener, key: str, options: FileFormatOptions, message: str) -> BadInputError:
    """Re-read the file with Python's csv module to find the line and column `message` is about."""
    conversion: tuple[int, str, str] | None = None  # column index, type, value
    if match := _CONVERSION.search(message):
        conversion = (int(match.group(1)), match.group(2), match.group(3))
    elif match := _DECIMAL_CONVERSION.search(message):
        conversion = (int(match.group(1)), match.group(3), match.group(2))
    hint = "" if options.allow_quoted_newlines else QUOTED_NEWLINE_HINT
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        header: list[str] | None = None
        for line, row in _csv_rows(text, options):
            if isinstance(row, csv.Error):
                return BadInputError(f"malformed quoting ({row}){hint}", file=key, line=line)
            if header is None:
                header = row
                if options.has_header:
                    continue
            names = header if options.has_header else [f"column_{i + 1}" for i in range(len(header))]
            if conversion:
                index, type_name, value = conversion
                if index < len(row) and row[index] == value:
                    return BadInputError(
                        f"value {value!r} is not a valid {type_name}",
                        file=key, line=line, column=names[index] if index < len(names) else None,
                    )
            elif row and len(row) != len(header):
                return BadInputError(
                    f"expected {len(header)} fields, got {len(row)}{hint}", file=key, line=line
                )
    reason = message.removeprefix("CSV parse error: ")
    parse = _PARSE.search(message)
    if parse:
        reason = f"expected {parse.group(1)} fields, got {parse.group(2)}{hint}"
    return BadInputError(reason, file=key)


def _csv_rows(text: IO[str], options: FileFormatOptions) -> Iterator[tuple[int, Any]]:
    """Yield (line number, fields or csv.Error) per record; records span lines only when
    quoted newlines are allowed."""
    dialect = {
        "delimiter": options.delimiter,
        "quotechar": options.quote_char,
        "doublequote": options.escape_char is None,
        "escapechar": options.escape_char,
        "strict": True,
    }
    for _ in range(options.skip_rows):
        text.readline()
    if options.allow_quoted_newlines:
        rows = csv.reader(text, **dialect)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield rows.line_num + options.skip_rows, exc
                return
            yield rows.line_num + options.skip_rows, row
    for number, physical in enumerate(text, start=options.skip_rows + 1):
        try:
            yield number, next(csv.reader([physical.rstrip("\r\n")], **dialect), [])
        except csv.Error as exc:
            yield number, exc
            return


def _parquet(opener: Opener, key: str, options: FileFormatOptions) -> Iterator[pa.RecordBatch]:
    with opener() as handle:
        if _is_empty(handle):
            return
        try:
            parquet = pq.ParquetFile(handle)
            yield from parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"not a readable Parquet file ({exc})", file=key) from exc


def _jsonl(opener: Opener, key: str, options: FileFormatOptions) -> Iterator[pa.RecordBatch]:
    with opener() as handle:
        if _is_empty(handle):
            return
        source: IO[bytes] = handle
        if codecs.lookup(options.encoding).name not in ("utf-8",):
            source = _Recoder(handle, options.encoding)
        try:
            reader = pa_json.open_json(source, read_options=pa_json.ReadOptions(block_size=BLOCK_SIZE))
            zoned: set[str] | None = None
            for batch in reader:
                naive = [f.name for f in batch.schema if pa.types.is_timestamp(f.type) and not f.type.tz]
                if naive and zoned is None:
                    zoned = _utc_text_fields(opener, options.encoding, naive)
                yield _as_utc(batch, zoned) if naive and zoned else batch
        except pa.ArrowInvalid as exc:
            if "changed from" in str(exc):
                located = _locate_jsonl_type_change(opener, key, options.encoding)
                if located is not None:
                    raise located from exc
            raise BadInputError(f"invalid JSON lines ({exc})", file=key) from exc


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _locate_jsonl_type_change(opener: Opener, key: str, encoding: str) -> BadInputError | None:
    """Find the first line whose top-level field holds another kind of value (number, string,
    boolean, object, array) than the lines before it."""
    import json

    kinds: dict[str, str] = {}
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace")
        for number, line in enumerate(text, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            for name, value in record.items():
                if value is None:
                    continue
                kind = _json_kind(value)
                earlier = kinds.setdefault(name, kind)
                if kind != earlier:
                    return BadInputError(
                        f"a {kind} where earlier lines have a {earlier}", file=key, line=number,
                        column=name,
                    )
    return None


_UTC_TEXT = re.compile(r"\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?Z$")


def _utc_text_fields(opener: Opener, encoding: str, names: list[str]) -> set[str]:
    """Return the `names` whose first non-null value in the file is ISO 8601 text ending in `Z`:
    Arrow infers those as zone-less timestamps holding the UTC wall clock."""
    import json

    found: dict[str, bool] = {}
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace")
        for line in text:
            try:
                record = json.loads(line)
            except ValueError:
                continue
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


def _json_array(opener: Opener, key: str, options: FileFormatOptions) -> Iterator[pa.RecordBatch]:
    import ijson

    with opener() as handle:
        if _is_empty(handle):
            return
        source: IO[bytes] = handle
        if codecs.lookup(options.encoding).name != "utf-8":
            source = _Recoder(handle, options.encoding)
        rows: list[dict[str, Any]] = []
        count = 1  # number of the next array element
        try:
            for item in ijson.items(source, "item", use_float=True):
                if not isinstance(item, dict):
                    raise BadInputError(
                        f"array element {len(rows) + 1} is a {type(item).__name__}, not an object",
                        file=key,
                    )
                rows.append(item)
                if len(rows) == 65_536:
                    yield _records(rows, key, count - len(rows) + 1)
                    rows = []
                count += 1
        except ijson.JSONError as exc:
            raise BadInputError(f"invalid JSON ({exc}); expected an array of objects", file=key) from exc
        if rows:
            yield _records(rows, key, count - len(rows))


def _records(rows: list[dict[str, Any]], key: str, first: int) -> pa.RecordBatch:
    """Return `rows` (array elements `first`, ...) as a batch, or name the element whose field
    has a value of another type than the elements before it."""
    try:
        return pa.RecordBatch.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for name in {name for row in rows for name in row}:
            kinds: set[type] = set()
            for offset, row in enumerate(rows):
                value = row.get(name)
                if value is None:
                    continue
                kind = float if isinstance(value, int) and not isinstance(value, bool) else type(value)
                if kinds and kind not in kinds:
                    raise BadInputError(
                        f"element {first + offset} has a {type(value).__name__} where earlier "
                        f"elements have {', '.join(sorted(k.__name__ for k in kinds))}",
                        file=key, column=name,
                    ) from exc
                kinds.add(kind)
        raise BadInputError(f"array elements cannot be read as one table ({exc})", file=key) from exc


class _Recoder(io.RawIOBase):
    """Wrap a binary stream in `encoding` as a UTF-8 binary stream."""

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self.text = io.TextIOWrapper(handle, encoding=encoding, newline="")
        self.pending = b""

    def readable(self) -> bool:
        return True

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
