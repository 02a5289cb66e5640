"""The diagnostic path of the CSV reader: when Arrow's fast reader fails (or sets rows aside),
re-read the file with Python's csv module to name the line and column, as a person would."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa

from etl.config import FileFormatOptions
from etl.exceptions import BadInputError
from etl.formats.base import Opener
from etl.formats.rejects import Rejects
from etl.formats.types import named_type

# Python's csv module refuses fields over 128 KiB by default; the Arrow reader this re-reads for
# has no such limit (its own is MAX_BLOCK_SIZE), so neither has the diagnosis
csv.field_size_limit(1 << 30)

UNCLOSED = "a quote opened on this line is never closed"


def header_name(opener: Opener, options: FileFormatOptions, index: int) -> str:
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


def locate_encoding_error(
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


_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'"
)
_DECIMAL_CONVERSION = re.compile(
    r"In CSV column #(\d+): The string '(.*)' is not a valid (\S+) number"
)
_PARSE = re.compile(r"Expected (\d+) columns, got (\d+)")
_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): (.*)")
_CHECK_ROWS = 4096
"""Values of a column cast at once while looking for the one that fails (then one by one)."""


def _first_unconverted(
    opener: Opener, options: FileFormatOptions, index: int, reason: str
) -> tuple[str, int, str] | None:
    """Return (message, line, column) of the first value of column `index` that does not
    convert to its `column_types` type, or None when the column has no such type or every
    value converts."""
    name = header_name(opener, options, index)
    if name not in options.column_types:
        return None
    type_name = options.column_types[name]
    target = named_type(type_name)
    nulls = set(options.null_values)
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        rows = csv_rows(text, options)
        if options.has_header:
            next(rows, None)
        group: list[tuple[int, str]] = []
        for line, row in itertools.chain(rows, [(0, None)]):
            if isinstance(row, list) and index < len(row) and row[index] not in nulls:
                group.append((line, row[index]))
            if group and (row is None or len(group) >= _CHECK_ROWS):
                for number, value in _unconverted(group, target):
                    message = f"value {value!r} is not a valid {type_name} ({reason})"
                    return message, number, name
                group = []
    return None


def _unconverted(group: list[tuple[int, str]], target: pa.DataType) -> Iterator[tuple[int, str]]:
    """Yield the (line, value) pairs of `group` whose value does not convert to `target`."""
    try:
        pa.array([value for _, value in group], pa.string()).cast(target, safe=True)
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for line, value in group:
        try:
            pa.array([value], pa.string()).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            yield line, value


QUOTED_NEWLINE_HINT = (
    "; if a quoted field holds a line break, set file_format_options.allow_quoted_newlines"
)


def locate_csv_error(
    opener: Opener, key: str, options: FileFormatOptions, message: str
) -> BadInputError:
    """Re-read the file with Python's csv module to find the line and column `message` is about."""
    conversion: tuple[int, str, str] | None = None  # column index, type, value
    if match := _CONVERSION.search(message):
        conversion = (int(match.group(1)), match.group(2), match.group(3))
    elif match := _DECIMAL_CONVERSION.search(message):
        conversion = (int(match.group(1)), match.group(3), match.group(2))
    elif match := _COLUMN_ERROR.search(message):
        # a message without the value ("Rescaling Decimal value would cause data loss"):
        # find the first value of that column its `column_types` type does not hold
        found = _first_unconverted(opener, options, int(match.group(1)), match.group(2))
        if found is not None:
            return BadInputError(found[0], file=key, line=found[1], column=found[2])
    hint = "" if options.allow_quoted_newlines else QUOTED_NEWLINE_HINT
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        header: list[str] | None = None
        record = 0  # data records so far; differs from the line when a value spans lines
        for line, row in csv_rows(text, options):
            if isinstance(row, csv.Error):
                if options.allow_quoted_newlines and "unexpected end of data" in str(row):
                    return BadInputError(UNCLOSED, file=key, line=line)
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


def csv_rows(text: IO[str], options: FileFormatOptions) -> Iterator[tuple[int, Any]]:
    """Yield (physical line number the record starts on, from 1, fields or csv.Error) per
    record; records span lines only when quoted newlines are allowed."""
    dialect: dict[str, Any] = {
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


def locate_rejects(
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    width: int,
    bad_values: list[tuple[int, str, str]],
    rejects: Rejects,
) -> None:
    """Re-read the file to add its ragged rows and `bad_values` (by index among the well-formed
    rows) to `rejects` with their line numbers."""
    by_index = {index: (column, reason) for index, column, reason in bad_values}
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        rows = csv_rows(text, options)
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


def check_quotes_close(opener: Opener, key: str, options: FileFormatOptions) -> None:
    """Read the file with Python's csv module (strict) to check that every quote closes.

    Raises:
        BadInputError: a quote is never closed (names the file and the line it opens on), or
            a quoted value is followed by more text before the delimiter.
    """
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        for line, row in csv_rows(text, options):
            if isinstance(row, csv.Error):
                if "unexpected end of data" in str(row):
                    raise BadInputError(UNCLOSED, file=key, line=line)
                raise BadInputError(f"malformed quoting ({row})", file=key, line=line)
