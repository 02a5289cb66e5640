"""CSV into Arrow with every column typed from the whole file, never from its first block.

One pass (etl/formats/csv/infer.py `Typing`) streams the file with every column as text (Arrow's
multithreaded reader), keeps per column the types every non-null value converts to, and spools
each block converted to the narrowest type still standing (Arrow IPC in a temporary file,
etl/formats/spool.py). When no later block narrowed a column further, those conversions are
the final ones and the spool is the typed file: it is read back instead of parsing the file a
second time. Otherwise (a column typed from its first blocks that a later block turns into
text, say) the file is read again with the final types fixed, as before.

`file_format_options.column_types` and `on_bad_rows: quarantine` read the file twice (pass 1:
text, pass 2: typed), so that a value not of its given type, or a bad row, is located and
reported as Arrow's typed reader finds it. When Arrow's reader fails,
etl/formats/csv/diagnose.py re-reads the file to name the line and column.

Quoted fields may hold line breaks (`allow_quoted_newlines`, on by default): a file where one
does is read once more by Python's csv module to check that every quote closes, because Arrow's
reader takes everything after an unclosed quote, to the end of the file, as one value.

A record larger than a block (a 64 MiB cell) makes the reader start again with blocks twice as
large, up to MAX_BLOCK_SIZE, read serially: memory then follows the largest record (about 3x
it: the block, the parsed value, the converted column), not the file.

One module past 300 lines on purpose: it is the one place where the CSV read's passes (typing,
spool read-back, the typed re-read, the larger-block retry) are chosen and chained; parsing
rules live in infer.py, diagnose.py and quarantine.py.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.csv as pa_csv

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.formats.base import (
    BLOCK_SIZE,
    NO_COLUMNS,
    Opener,
    arrow_encoding,
    empty_batch,
    unique_names,
)
from etl.formats.csv.diagnose import (
    check_quotes_close,
    header_name,
    locate_csv_error,
    locate_encoding_error,
)
from etl.formats.csv.infer import FALSE_VALUES, TRUE_VALUES, Typing, line_breaks, single_lines
from etl.formats.csv.quarantine import quarantined
from etl.formats.memory import release_unused
from etl.formats.native import NativeScan
from etl.formats.parquet import parquet_scan
from etl.formats.rejects import Rejects
from etl.formats.spool import Spool
from etl.formats.throttle import Throttled
from etl.formats.types import named_type

T = TypeVar("T")


def read_csv_file(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    rejects: Rejects | None = None,
    warnings: list[str] | None = None,
    native: bool = False,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Yield the typed batches of one CSV file; Arrow's errors become `BadInputError`s naming
    the file, line and column (found by a diagnostic re-read). With `native` (the destination
    reads Parquet itself), the typed rows may come as one `NativeScan` of the spool instead.

    Raises:
        BadInputError: malformed CSV, text not in `options.encoding`, a value that does not
            convert to its `column_types` type, unknown `column_types` names.
    """
    try:
        for batch in read_csv(opener, key, options, rejects, native):
            binary = [f.name for f in batch.schema if pa.types.is_binary(f.type)]
            if binary:  # Arrow reads text that is not valid UTF-8 as binary
                raise locate_encoding_error(opener, key, options, binary[0])
            yield batch
    except pa.ArrowInvalid as exc:
        invalid_text = re.search(
            r"column #(\d+): CSV conversion error to string: invalid UTF8", str(exc)
        )
        if invalid_text:
            column = header_name(opener, options, int(invalid_text.group(1)))
            raise locate_encoding_error(opener, key, options, column) from exc
        raise locate_csv_error(opener, key, options, str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"text is not valid {options.encoding} ({exc.reason} at byte {exc.start}); "
            "set file_format_options.encoding",
            file=key,
        ) from exc


def read_csv(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    rejects: Rejects | None = None,
    native: bool = False,
) -> Iterator[pa.RecordBatch | NativeScan]:
    """Yield the typed batches of one CSV file (see the module docstring).

    With `rejects` (`on_bad_rows: quarantine`), rows with the wrong number of fields and rows
    with a value that does not convert to its `column_types` type are left out of the batches
    and added to `rejects` (line numbers found by a diagnostic re-read once the file is done).

    Raises:
        pa.ArrowInvalid: malformed CSV (the caller locates the line and column).
        BadInputError: a `column_types` entry names no column of the file.
    """
    parse_options = pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char,
        double_quote=options.escape_char is None,
        escape_char=options.escape_char or False,
        newlines_in_values=options.allow_quoted_newlines,
    )
    if rejects is not None:
        # ragged rows are skipped here and located by the diagnostic pass
        parse_options.invalid_row_handler = lambda row: "skip"
    overrides = {name: named_type(kind) for name, kind in options.column_types.items()}
    reading = _Reading(opener, options, parse_options)
    if not overrides and rejects is None:
        yield from _one_pass(reading, key, native)
        return

    def typed(names: list[str]) -> dict[str, pa.DataType]:
        _check_overrides(key, names, overrides)
        return _infer(reading, key, names, overrides, None).types()

    found = _in_growing_blocks(reading, key, typed)
    if found is None:
        yield NO_COLUMNS
        return
    names, types = found
    if rejects is None:
        yield from _with_schema(_read(reading, names, types), names, types)
        return
    skipped: list[str] = []

    def skip(row: Any) -> str:
        skipped.append(row.text)
        return "skip"

    parse_options.invalid_row_handler = skip
    text = {name: pa.string() if name in overrides else kind for name, kind in types.items()}
    batches = _with_schema(_read(reading, names, text), names, {**text, **overrides})
    yield from quarantined(batches, skipped, opener, key, options, types, overrides, rejects)


def _one_pass(reading: _Reading, key: str, native: bool) -> Iterator[pa.RecordBatch | NativeScan]:
    """Type and spool the file in one read; yield the spooled batches when they hold the final
    types (with `native`, the spool as one Parquet file the destination reads itself, when it
    qualifies: `parquet_scan`), else read the file again with them (see the module docstring)."""
    with Spool(parquet=native) as spool:
        found = _in_growing_blocks(
            reading, key, lambda names: _infer(reading, key, names, {}, spool), spool.clear
        )
        if found is None:
            yield NO_COLUMNS
            return
        names, typing = found
        types = typing.types()
        release_unused()  # the typing read's blocks, before the destination reads the spool
        if typing.kept_conversions():
            segments = spool.segments
            scan = parquet_scan(segments[0], key) if native and len(segments) == 1 else None
            if scan is not None and scan.num_rows == spool.rows:
                # the exact largest rows, where the footer only bounds them by column chunk
                yield dataclasses.replace(scan, group_bytes=tuple(spool.group_bytes))
                return
            yield from _with_schema(spool.replay(types), names, types)
            return
    yield from _with_schema(_read(reading, names, types), names, types)


def _in_growing_blocks(
    reading: _Reading,
    key: str,
    step: Callable[[list[str]], T],
    restart: Callable[[], None] = lambda: None,
) -> tuple[list[str], T] | None:
    """Return the file's column names and `step(names)`, or None for a file without columns;
    a record straddling two blocks (a cell larger than a block) starts again with larger blocks
    (`_Reading.grow`, after `restart`), as the module docstring says."""
    while True:
        try:
            names = _column_names(reading)
            if names is None:
                return None
            return names, step(names)
        except pa.ArrowInvalid as exc:
            if "straddling object" not in str(exc):
                raise
            restart()
            reading.grow(key)


def _check_overrides(key: str, names: list[str], overrides: dict[str, pa.DataType]) -> None:
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BadInputError(
            f"file_format_options.column_types names {unknown}, not columns of the "
            f"file (columns: {', '.join(names)})",
            file=key,
        )


MAX_BLOCK_SIZE = 1 << 30
"""Largest block the reader grows to: a record (with all its values) must fit in one block,
and Arrow's text arrays hold at most 2 GiB per batch."""


class _Reading:
    """How one CSV file is read by Arrow: the dialect and the block size, which grows (doubling
    from BLOCK_SIZE) when a record does not fit in a block."""

    def __init__(
        self, opener: Opener, options: FileFormatOptions, parse_options: pa_csv.ParseOptions
    ) -> None:
        self.opener, self.options, self.parse_options = opener, options, parse_options
        self.block_size = BLOCK_SIZE

    def grow(self, key: str) -> None:
        """Double the block size, after Arrow found a record larger than a block.

        Raises:
            BadInputError: a record is larger than MAX_BLOCK_SIZE.
        """
        if self.block_size >= MAX_BLOCK_SIZE:
            raise BadInputError(
                f"a record is larger than {MAX_BLOCK_SIZE >> 20} MiB, the most one row may hold",
                file=key,
            )
        self.block_size *= 2

    def read_options(self, names: list[str] | None) -> pa_csv.ReadOptions:
        options = self.options
        skip = options.skip_rows + (1 if names is not None and options.has_header else 0)
        return pa_csv.ReadOptions(
            block_size=self.block_size,
            # Arrow's threaded reader reads ~34 blocks ahead: with grown blocks, memory would
            # follow that multiple of the largest record; the serial reader holds one block
            use_threads=self.block_size == BLOCK_SIZE,
            encoding=arrow_encoding(options.encoding),
            skip_rows=skip,
            column_names=names,
            autogenerate_column_names=names is None and not options.has_header,
        )


def _column_names(reading: _Reading) -> list[str] | None:
    """Return unique, non-empty column names (`column_N` without a header); None: no content."""
    with reading.opener() as handle:
        try:
            reader = pa_csv.open_csv(
                handle,
                read_options=reading.read_options(None),
                parse_options=reading.parse_options,
                convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise
        raw = reader.schema.names
    if not reading.options.has_header:
        return [f"column_{i}" for i in range(1, len(raw) + 1)]
    return unique_names(raw)


def _convert_options(
    options: FileFormatOptions, types: dict[str, pa.DataType]
) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(
        column_types=types,
        null_values=options.null_values,
        strings_can_be_null=True,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        decimal_point=options.decimal_point,
        timestamp_parsers=[pa_csv.ISO8601],
    )


def _infer(
    reading: _Reading,
    key: str,
    names: list[str],
    overrides: dict[str, pa.DataType],
    spool: Spool | None,
) -> Typing:
    """Type every column from the whole file, writing each block as `Typing.add` converts it
    to `spool` (when given); with quoted line breaks allowed, a file holding one is checked once more for a
    quote that is never closed (Arrow's reader takes everything after such a quote, to the end
    of the file, as one value)."""
    spanning: list[str] = []
    text = {name: pa.string() for name in names}
    batches = line_breaks(_read(reading, names, text), names, spanning)
    if not reading.options.allow_quoted_newlines:
        batches = single_lines(batches, spanning)
    typing = Typing(names, overrides, reading.options.decimal_point)
    for batch in batches:
        converted = typing.add(batch)
        if spool is not None:
            spool.write(converted)
    if spanning:
        check_quotes_close(reading.opener, key, reading.options)
    return typing


def _read(
    reading: _Reading, names: list[str], types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    with reading.opener() as handle:
        throttled = Throttled(handle)
        reader = pa_csv.open_csv(
            throttled,
            read_options=reading.read_options(names),
            parse_options=reading.parse_options,
            convert_options=_convert_options(reading.options, types),
        )
        for batch in reader:
            throttled.consumed()
            yield batch


def _with_schema(
    batches: Iterable[pa.RecordBatch], names: list[str], types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through; yield one batch of no rows with the file's columns when there is
    none (a header-only file), so an empty snapshot still has its columns."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        schema = pa.schema([(name, types[name]) for name in names])
        yield empty_batch(schema)
