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
import pyarrow.parquet as pq

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.extract.base import Rejects

BLOCK_SIZE = 4 << 20
"""Bytes of text parsed per block by the CSV/JSONL readers (both type every column from the
whole file in a first pass). Arrow's streaming readers read up to ~34 blocks ahead of the
consumer, so this also bounds a reader's memory: ~150 MB whatever the file size."""

PARQUET_BATCH_ROWS = 16_384
"""Rows per batch read from a Parquet file. Peak RSS follows the batch size downstream (DuckDB
converts and buffers a batch at a time): TPC-H lineitem SF 0.25 -> DuckDB peaked at ~520 MB
with 65,536-row batches."""

Opener = Callable[[], IO[bytes]]


def read_batches(
    fmt: str,
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    chunk_size: int,
    rejects: Rejects | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one file.

    Args:
        fmt: `csv`, `parquet`, `json` or `jsonl`.
        opener: opens the file for binary reading (called again for a diagnostic pass).
        key: the file's name in messages.
        options: the job's `file_format_options`.
        chunk_size: maximum rows per batch.
        rejects: `on_bad_rows: quarantine`: CSV rows, JSONL lines and `json` array elements
            that do not parse or convert go here instead of failing the run (Parquet files
            still fail: they have no row to set aside).

    Raises:
        BadInputError: malformed content; names the file and, when found, line and column.
    """
    if fmt == "parquet":
        batches = _parquet(opener, key, options)
    else:
        batches = {"csv": _csv, "jsonl": _jsonl, "json": _json}[fmt](opener, key, options, rejects)
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
        invalid_text = re.search(
            r"column #(\d+): CSV conversion error to string: invalid UTF8", str(exc)
        )
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
        header = next(
            csv.reader(text, delimiter=options.delimiter, quotechar=options.quote_char), []
        )
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
                    file=key,
                    line=number,
                    column=column,
                )
    return BadInputError(
        f"text is not valid {options.encoding}; set file_format_options.encoding",
        file=key,
        column=column,
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


_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'"
)
_DECIMAL_CONVERSION = re.compile(
    r"In CSV column #(\d+): The string '(.*)' is not a valid (\S+) number"
)
_PARSE = re.compile(r"Expected (\d+) columns, got (\d+)")


QUOTED_NEWLINE_HINT = (
    "; if a quoted field holds a line break, set file_format_options.allow_quoted_newlines"
)


def _locate_csv_error(
    opener: Opener, key: str, options: FileFormatOptions, message: str
) -> BadInputError:
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
        record = 0  # data records so far; differs from the line when a value spans lines
        for line, row in _csv_rows(text, options):
            if isinstance(row, csv.Error):
                return BadInputError(f"malformed quoting ({row}){hint}", file=key, line=line)
            if header is None:
                header = row
                if options.has_header:
                    continue
            if row:
                record += 1
            where = f" (data record {record}, which starts on this line)" if not hint else ""
            names = (
                header if options.has_header else [f"column_{i + 1}" for i in range(len(header))]
            )
            if conversion:
                index, type_name, value = conversion
                if index < len(row) and row[index] == value:
                    return BadInputError(
                        f"value {value!r} is not a valid {type_name}{where}",
                        file=key,
                        line=line,
                        column=names[index] if index < len(names) else None,
                    )
            elif row and len(row) != len(header):
                return BadInputError(
                    f"expected {len(header)} fields, got {len(row)}{where or hint}",
                    file=key,
                    line=line,
                )
    reason = message.removeprefix("CSV parse error: ")
    parse = _PARSE.search(message)
    if parse:
        reason = f"expected {parse.group(1)} fields, got {parse.group(2)}{hint}"
    return BadInputError(reason, file=key)


def _csv_rows(text: IO[str], options: FileFormatOptions) -> Iterator[tuple[int, Any]]:
    """Yield (physical line number the record starts on, from 1, fields or csv.Error) per
    record; records span lines only when quoted newlines are allowed."""
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
            start = rows.line_num + 1 + options.skip_rows  # a record may span lines: its first
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, exc
                return
            yield start, row
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


def _jsonl(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    rejects: Rejects | None = None,
    array: bool = False,
) -> Iterator[pa.RecordBatch]:
    from etl.extract.jsonl_reader import read_json_array, read_jsonl

    def utf8() -> IO[bytes]:
        handle = opener()
        if codecs.lookup(options.encoding).name != "utf-8":
            return io.BufferedReader(_Recoder(handle, options.encoding))
        return handle

    zoned: set[str] | None = None
    try:
        read = read_json_array if array else read_jsonl
        for batch in read(utf8, key, BLOCK_SIZE, rejects):
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


def _json(
    opener: Opener, key: str, options: FileFormatOptions, rejects: Rejects | None = None
) -> Iterator[pa.RecordBatch]:
    return _jsonl(opener, key, options, rejects, array=True)


def _records_of(raw: IO[bytes], encoding: str, array: bool) -> Iterator[Any]:
    """Yield the records of a JSON lines file (lines that are not JSON skipped) or of a JSON
    array file (until it breaks)."""
    import json

    if array:
        import ijson

        source: Any = raw if codecs.lookup(encoding).name == "utf-8" else _Recoder(raw, encoding)
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


class _Recoder(io.RawIOBase):
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
