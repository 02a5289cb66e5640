"""Physical line numbers of extracted rows: where data row N of a CSV or JSON-lines file starts,
for messages about a row found after extraction (a BigQuery load job's error names a staged
row, not a line: etl/load/bigquery/errors.py).

Counting rules, the ones the readers follow (etl/formats/csv/reader.py, etl/formats/json/lines.py):

- CSV: lines are ended by LF, CRLF or CR; `skip_rows` lines, then the header when
  `has_header`, come before the data; a quoted field may span lines (RFC 4180 section 2.6), so
  a record starts on the line after the previous record's last line; empty lines hold no
  record (Arrow's `ignore_empty_lines`);
- JSON lines: lines are ended by LF; blank lines hold no record;
- rows set aside under `on_bad_rows: quarantine` (their lines given as `skip_lines`) are not
  staged rows, so they are not counted.

JSON arrays and Parquet files have no line per row: None.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection
from typing import IO

from etl.config import FileFormatOptions

Opener = Callable[[], IO[bytes]]


def record_line(
    fmt: str,
    opener: Opener,
    options: FileFormatOptions,
    row: int,
    skip_lines: Collection[int] = (),
) -> int | None:
    """Return the physical line (from 1) on which data row `row` (from 1, counted as the
    extractor yields rows) of a file starts, or None (no such row, or a format without lines).

    Reads the file once more, as a stream (bounded memory whatever its size).

    Args:
        fmt: `csv`, `jsonl`, `json` or `parquet`.
        opener: opens the (decompressed) file for binary reading.
        skip_lines: lines of rows the run set aside (quarantine), not counted as rows.
    """
    if row < 1:
        return None
    if fmt == "csv":
        return _csv_line(opener, options, row, set(skip_lines))
    if fmt == "jsonl":
        return _jsonl_line(opener, row, set(skip_lines))
    return None


def _csv_line(opener: Opener, options: FileFormatOptions, row: int, skip: set[int]) -> int | None:
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=options.encoding, errors="replace", newline="")
        lines = iter(text)
        for _ in range(options.skip_rows):
            if next(lines, None) is None:
                return None
        reader = csv.reader(
            lines,
            delimiter=options.delimiter,
            quotechar=options.quote_char,
            escapechar=options.escape_char,
            doublequote=options.escape_char is None,
            strict=False,
        )
        base = options.skip_rows  # lines before the reader's first line
        if options.has_header and next(reader, None) is None:
            return None
        seen = 0
        while True:
            start = base + reader.line_num + 1
            record = next(reader, None)
            if record is None:
                return None
            if not record or start in skip:
                continue
            seen += 1
            if seen == row:
                return start


def _jsonl_line(opener: Opener, row: int, skip: set[int]) -> int | None:
    seen = 0
    with opener() as raw:
        for number, line in enumerate(raw, start=1):
            if not line.strip() or number in skip:
                continue
            seen += 1
            if seen == row:
                return number
    return None
