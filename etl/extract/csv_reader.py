"""CSV into Arrow with every column typed from the whole file, never from its first block.

Pass 1 streams the file with every column as text and keeps, per column, the types every
non-null value converts to (vectorised Arrow casts; memory bounded by the block size). Pass 2
streams it again with those types fixed. A type that would lose information is never chosen:
integers with leading zeros (`01234`) stay text, integers beyond int64 become DECIMAL(38, 0),
mixed zone-aware and naive timestamps stay text. `file_format_options.column_types` overrides
the inference per column.

Quoted fields may hold newlines only with `allow_quoted_newlines` (as BigQuery's option of the
same name): otherwise an unclosed quote would silently swallow the lines after it.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable, Iterator
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.extract.base import Rejects

Opener = Callable[[], IO[bytes]]

TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]

_LEADING_ZERO = r"^[+-]?0\d"
_INTEGER = r"^[+-]?\d+$"

CANDIDATES: list[tuple[str, pa.DataType]] = [
    ("boolean", pa.bool_()),
    ("integer", pa.int64()),
    ("big_integer", pa.decimal128(38, 0)),
    ("float", pa.float64()),
    ("date", pa.date32()),
    ("timestamp", pa.timestamp("us")),
    ("timestamptz", pa.timestamp("us", tz="UTC")),
]
"""Inferred types, narrowest first; a column is text when none holds every value."""

IMPLIED: dict[str, tuple[str, ...]] = {
    "integer": ("big_integer", "float"),
    "big_integer": ("float",),
    "date": ("timestamp",),
}
"""Candidates that hold whenever the key holds, so they need no test of their own: Arrow's
int64 parse accepts only `-?digits` (which DECIMAL(38, 0) and float64 parse too), and its date
parse is the date part of its ISO 8601 timestamp parse."""

NAMED_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
"""Type names accepted in `file_format_options.column_types` (plus `decimal(P,S)`)."""


def named_type(name: str) -> pa.DataType:
    """Return the Arrow type for a `column_types` name.

    Raises:
        ValueError: unknown name.
    """
    match = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name.strip().lower())
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    try:
        return NAMED_TYPES[name.strip().lower()]
    except KeyError:
        known = ", ".join([*NAMED_TYPES, "decimal(P,S)"])
        raise ValueError(f"unknown column type {name!r}; use one of {known}") from None


def _holds(kind: str, values: pa.Array, decimal_point: str) -> bool:
    """Return True when every (non-null, text) value converts to `kind` without loss.

    Arrow's casts from text are strict (no spaces, no zone on a naive timestamp, no time on a
    date), so the cast itself is the test.
    """
    if kind == "boolean":
        return bool(pc.all(pc.is_in(values, _string_array(TRUE_VALUES + FALSE_VALUES))).as_py())
    if kind in ("integer", "big_integer", "float") and _leading_zero(values):
        return False  # identifiers such as zip codes: keep the zeros
    if kind == "big_integer" and not pc.all(pc.match_substring_regex(values, _INTEGER)).as_py():
        return False  # `1.00` casts to DECIMAL(38, 0) exactly, yet it is written as a float
    if kind == "float" and decimal_point != ".":
        values = pc.replace_substring(values, decimal_point, ".")
    target = dict(CANDIDATES)[kind]
    # a failing cast costs far more than a passing one (Arrow builds its error slowly): try a
    # sample first, so a candidate that does not fit is dropped cheaply
    for sample in (values.slice(0, 64), values):
        try:
            pc.cast(sample, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    return True


def _string_array(values: list[str]) -> pa.StringArray:
    """Return `values` as an Arrow string array built from buffers: converting a Python list
    makes pyarrow import pandas (~0.3 s, ~45 MB) on the first call."""
    data = [value.encode() for value in values]
    ends = list(itertools.accumulate((len(item) for item in data), initial=0))
    offsets = pa.py_buffer(struct.pack(f"<{len(ends)}i", *ends))
    return pa.StringArray.from_buffers(len(data), offsets, pa.py_buffer(b"".join(data)))


def _leading_zero(values: pa.Array) -> bool:
    starts = pc.or_(
        pc.starts_with(values, "0"),
        pc.or_(pc.starts_with(values, "-0"), pc.starts_with(values, "+0")),
    )
    if not pc.any(starts).as_py():
        return False
    return bool(pc.any(pc.match_substring_regex(values.filter(starts), _LEADING_ZERO)).as_py())


def read_csv(
    opener: Opener, key: str, options: FileFormatOptions, rejects: Rejects | None = None
) -> Iterator[pa.RecordBatch]:
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
    names = _column_names(opener, options, parse_options)
    if names is None:
        return
    overrides = {name: named_type(kind) for name, kind in options.column_types.items()}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BadInputError(
            f"file_format_options.column_types names {unknown}, not columns of the file "
            f"(columns: {', '.join(names)})",
            file=key,
        )
    types = _infer(opener, options, parse_options, names, overrides)
    if rejects is None:
        yield from _read(opener, options, parse_options, names, types)
        return
    skipped: list[str] = []
    parse_options.invalid_row_handler = lambda row: skipped.append(row.text) or "skip"
    bad_values: list[tuple[int, str, str]] = []  # (good-row index, column, reason)
    text_types = {name: pa.string() if name in overrides else kind for name, kind in types.items()}
    first = 0
    for batch in _read(opener, options, parse_options, names, text_types):
        keep = None
        for name, target in overrides.items():
            column = batch.column(name)
            try:
                pc.cast(column, target, safe=True)
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            for index, value in enumerate(column.to_pylist()):
                if value is None or (keep is not None and not keep[index]):
                    continue
                try:
                    pa.array([value]).cast(target, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    keep = keep or [True] * batch.num_rows
                    keep[index] = False
                    bad_values.append(
                        (
                            first + index,
                            name,
                            f"value {value!r} is not a valid {options.column_types[name]}",
                        )
                    )
        first += batch.num_rows
        if keep is not None:
            batch = batch.filter(pa.array(keep))
        yield pa.RecordBatch.from_arrays(
            [
                col.cast(types[name]) if name in overrides else col
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            ],
            names=batch.schema.names,
        )
    if skipped or bad_values:
        _locate_rejects(opener, key, options, len(names), bad_values, rejects)


def _locate_rejects(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    width: int,
    bad_values: list[tuple[int, str, str]],
    rejects: Rejects,
) -> None:
    """Re-read the file to add its ragged rows and `bad_values` (by index among the well-formed
    rows) to `rejects` with their line numbers."""
    import io

    from etl.extract.formats import _csv_rows

    by_index = {index: (column, reason) for index, column, reason in bad_values}
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        rows = _csv_rows(text, options)
        if options.has_header:
            next(rows, None)
        index = 0
        for line, row in rows:
            if not isinstance(row, list) or not row:
                continue
            record = options.delimiter.join(row)
            if len(row) != width:
                rejects.add(key, line, None, f"expected {width} fields, got {len(row)}", record)
                continue
            if index in by_index:
                column, reason = by_index[index]
                rejects.add(key, line, column, reason, record)
            index += 1


def _read_options(options: FileFormatOptions, names: list[str] | None) -> pa_csv.ReadOptions:
    from etl.extract.formats import BLOCK_SIZE, arrow_encoding

    skip = options.skip_rows + (1 if names is not None and options.has_header else 0)
    return pa_csv.ReadOptions(
        block_size=BLOCK_SIZE,
        encoding=arrow_encoding(options.encoding),
        skip_rows=skip,
        column_names=names,
        autogenerate_column_names=names is None and not options.has_header,
    )


def _column_names(
    opener: Opener, options: FileFormatOptions, parse_options: pa_csv.ParseOptions
) -> list[str] | None:
    """Return unique, non-empty column names (`column_N` without a header); None: no content."""
    with opener() as handle:
        try:
            reader = pa_csv.open_csv(
                handle,
                read_options=_read_options(options, None),
                parse_options=parse_options,
                convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise
        raw = reader.schema.names
    if not options.has_header:
        return [f"column_{i}" for i in range(1, len(raw) + 1)]
    from etl.extract.formats import unique_names

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
    opener: Opener,
    options: FileFormatOptions,
    parse_options: pa_csv.ParseOptions,
    names: list[str],
    overrides: dict[str, pa.DataType],
) -> dict[str, pa.DataType]:
    viable = {name: [kind for kind, _ in CANDIDATES] for name in names if name not in overrides}
    seen: set[str] = set()
    text = {name: pa.string() for name in names}
    with opener() as handle:
        reader = pa_csv.open_csv(
            handle,
            read_options=_read_options(options, names),
            parse_options=parse_options,
            convert_options=_convert_options(options, text),
        )
        for batch in reader:
            if not options.allow_quoted_newlines:
                for name in names:
                    column = batch.column(name)
                    if column.null_count < len(column) and _has_line_break(column):
                        # Arrow's reader joins lines inside quotes whatever the option says
                        raise pa.ArrowInvalid(f"CSV parse error: a value of `{name}` spans lines")
            for name, kinds in viable.items():
                if not kinds:
                    continue
                values = batch.column(name).drop_null()
                if len(values):
                    seen.add(name)
                    implied: set[str] = set()
                    kept = []
                    for kind in kinds:
                        if kind in implied or _holds(kind, values, options.decimal_point):
                            kept.append(kind)
                            implied.update(IMPLIED.get(kind, ()))
                    kinds[:] = kept
    types = dict(overrides)
    for name, kinds in viable.items():
        # a column with no value at all is text: nothing says it is anything else
        types[name] = dict(CANDIDATES)[kinds[0]] if kinds and name in seen else pa.string()
    return {name: types[name] for name in names}


def _has_line_break(column: pa.Array) -> bool:
    """Return True when a value of the text `column` holds `\n` or `\r`; one scan of the
    column's character data decides the common case of no line break at all."""
    data = column.buffers()[2]
    text = data.to_pybytes() if data is not None and column.offset == 0 else None
    if text is not None and b"\n" not in text and b"\r" not in text:
        return False
    return bool(
        pc.any(pc.match_substring(column, "\n")).as_py()
        or pc.any(pc.match_substring(column, "\r")).as_py()
    )


def _read(
    opener: Opener,
    options: FileFormatOptions,
    parse_options: pa_csv.ParseOptions,
    names: list[str],
    types: dict[str, pa.DataType],
) -> Iterator[pa.RecordBatch]:
    with opener() as handle:
        reader = pa_csv.open_csv(
            handle,
            read_options=_read_options(options, names),
            parse_options=parse_options,
            convert_options=_convert_options(options, types),
        )
        yield from reader
