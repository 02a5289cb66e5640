"""JSON and JSONL files as the extractor opens them: text in any encoding recoded to UTF-8 for
the reader (etl/formats/json/lines.py), and ISO 8601 text ending in `Z` typed as UTC."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.formats.base import BLOCK_SIZE, Opener, Recoder, is_utf8
from etl.formats.json.lines import read_json_array, read_jsonl
from etl.formats.native import NativeScan
from etl.formats.rejects import Rejects


def read_json_file(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    array: bool = False,
    native: bool = False,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Yield the rows of one JSONL file (`array`: one JSON array file) in `options.encoding`;
    fields holding ISO 8601 text ending in `Z` become UTC timestamps. With `native` (the
    destination reads Parquet itself), the rows may come as one `NativeScan` of the reader's
    Parquet spool: only for a file with no such field (the spool holds them zone-less).

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

    def utc(schema: pa.Schema) -> set[str]:
        """The fields of `schema` to make UTC timestamps (found once per file)."""
        nonlocal zoned
        naive = [f.name for f in schema if pa.types.is_timestamp(f.type) and not f.type.tz]
        if naive and zoned is None:
            zoned = _utc_text_fields(opener, options.encoding, naive, array)
        return zoned if naive and zoned else set()

    try:
        read = read_json_array if array else read_jsonl
        as_is = (lambda schema: not utc(schema)) if native else None
        for batch in read(utf8, key, BLOCK_SIZE, rejects, warnings, as_is):
            if isinstance(batch, NativeScan):
                yield batch
                continue
            zoned_here = utc(batch.schema)
            yield _as_utc(batch, zoned_here) if zoned_here else batch
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
        except (ijson.JSONError, UnicodeDecodeError):  # a lone low surrogate escape included
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
