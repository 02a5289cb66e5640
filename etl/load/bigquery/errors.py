"""Readable BigQuery load-job errors: BigQuery's `errors[]` (reason, location, message) turned
into the source file, row, column and value the user knows, with the likely fix.

The loader stages Parquet parts (etl/load/bigquery.py): a failed job's messages name the part,
a column and sometimes a value, never the user's file. When the message names a column and a
value, the staged part (still on disk when its job fails) is scanned for the first row holding
that value, and its `_etl_source_file` and position give the source file and its row (rows from
1 within the file, header excluded); the extraction then maps that row to the physical line it
starts on (`Extraction.source_line`, etl/extract/lines.py: CSV lines count the header, skipped
lines and every line of a quoted multi-line field; JSONL lines count blank lines), so the
message reads `F, line N, column C: value V ...`. For table sources the row is counted within
the run (`row N`).

Message shapes handled (https://cloud.google.com/bigquery/docs/error-messages and
https://cloud.google.com/bigquery/docs/reference/rest/v2/ErrorProto; real payloads quoted in
tests/etl/load/test_bigquery_errors.py):

- `Could not parse 'V' as TYPE for field C (position N) starting at location L ...` (CSV);
- `Parquet column 'C' has type T which does not match the target cpp_type U` (Parquet);
- `Field C has changed type from A to B`, `Field 'C' is specified as NULLABLE in provided
  schema which does not match REQUIRED as specified in the file`;
- `JSON parsing error in row starting at position N ...: ... Field: C; Value: V`;
- the emulator's `Error when converting column "C". Could not convert string "V" to 'T'` and
  `... Input: "V" when casting from source column C`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.exceptions import DestinationError
from etl.schema import SOURCE_FILE_COLUMN

_COLUMN = [
    re.compile(r"for field '?([\w.]+)'?"),
    re.compile(r"Parquet column '([^']+)'"),
    re.compile(r"Field '?([\w.]+)'? (?:is specified|has changed type)"),
    re.compile(r'converting column "([^"]+)"'),
    re.compile(r"Field: ([\w.]+);"),
    re.compile(r"column `?([\w.]+)`?"),
]
_VALUE = [
    re.compile(r"Could not parse '(.*?)' as ", re.DOTALL),
    re.compile(r'Could not convert string "(.*?)" to \'', re.DOTALL),
    re.compile(r"Value: (.*?)(?:;|$)", re.MULTILINE),
    re.compile(r'Input: "(.*)" when casting', re.DOTALL),
]
_TYPE = [
    re.compile(r"Could not parse '.*?' as (\w+)", re.DOTALL),
    re.compile(r"target cpp_type (\w+)"),
    re.compile(r"changed type from \w+ to (\w+)"),
    re.compile(r"to '(\w+)'"),
]
_SUMMARY = ("too many errors", "error stream", "giving up")
"""Phrases of BigQuery's summary errors, which name no column: a specific error is preferred."""


@dataclass(frozen=True)
class Located:
    """Where a value sits in the source: file (None for table sources) and row (from 1)."""

    file: str | None
    row: int


class LoadJobError(DestinationError):
    """A BigQuery load job failed; the message names the table, the source file, row, column
    and value where they are known, and the likely fix; BigQuery's raw errors stay attached.

    Attributes:
        table, job_id: the destination table and the failed job.
        file, row, column, value: where the bad value is (None when not known); `row` from 1
            within `file` (within the run for table sources).
        line: the physical line of `file` the row starts on (None when not known).
        fix: the likely fix (text).
        errors: BigQuery's `errors[]` as returned (dicts of reason, location, message).
    """

    def __init__(
        self,
        *,
        table: str,
        job_id: str,
        errors: Sequence[Mapping[str, Any]],
        file: str | None = None,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
        expected: str | None = None,
        fix: str,
    ) -> None:
        self.table, self.job_id, self.errors = table, job_id, [dict(e) for e in errors]
        self.file, self.row, self.column, self.value, self.fix = file, row, column, value, fix
        self.line = line
        where = ", ".join(
            part
            for part in (
                file or "",
                f"line {line}" if line is not None else f"row {row}" if row is not None else "",
                f"column {column}" if column else "",
            )
            if part
        )
        what = f"value {value!r}" if value is not None else ""
        if what and expected:
            what += f" is not a valid {expected}"
        head = f"{where}: {what}" if where and what else where or what or "the load failed"
        raw = "; ".join(
            " ".join(str(e[k]) for k in ("reason", "location", "message") if e.get(k))
            for e in self.errors
        )
        super().__init__(
            f"BigQuery rejected the load of {table} (job {job_id}): {head}. Likely fix: {fix}. "
            f"BigQuery said: {raw[:2000]}"
        )


def _first(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return found[1]
    return None


def likely_fix(message: str, column: str | None, *, file_source: bool) -> str:
    """Return the fix to try for one BigQuery error message."""
    text = message.lower()
    if "utf-8" in text or "utf8" in text or "encoding" in text or "surrogate" in text:
        if not file_source:
            return (
                "the value is not valid Unicode text (e.g. a lone UTF-16 surrogate escape in "
                "JSON): fix it at the source, or clean the column in custom_sql"
            )
        return (
            "the text is not valid UTF-8 / Unicode: set file_format_options.encoding to the "
            "file's encoding (latin-1, cp1252, utf-8-sig), or on_bad_rows: quarantine"
        )
    if "too many values" in text or "expected" in text and "column" in text:
        return (
            "the row has another number of fields: check file_format_options.delimiter and "
            "quote_char, or on_bad_rows: quarantine"
        )
    name = column or "the column"
    if "changed type" in text or "cpp_type" in text or "does not match" in text:
        return (
            f"{name}'s type differs between files or runs: lock it with "
            f'file_format_options.column_types (e.g. {{"{name}": "string"}}) or set '
            "allow_widen_to_string: true"
        )
    if file_source:
        return (
            f"lock {name}'s type with file_format_options.column_types (e.g. "
            f'{{"{name}": "string"}}), fix the value in the file, or set on_bad_rows: '
            "quarantine to load the other rows"
        )
    return f"fix the value at the source, or cast {name} in custom_sql"


def locate(
    part: Path, column: str, value: str, files_before: Mapping[str, int], rows_before: int
) -> Located | None:
    """Find the first row of the staged Parquet `part` whose `column`, as text, equals
    `value`; return its source file and row, or None. Reads the part batch by batch.

    Args:
        files_before: rows of each source file in the run's earlier parts.
        rows_before: rows of the run in earlier parts (the row of table sources).
    """
    reader = pq.ParquetFile(part)
    names = reader.schema_arrow.names
    if column not in names:
        return None
    has_file = SOURCE_FILE_COLUMN in names
    wanted = [column, SOURCE_FILE_COLUMN] if has_file else [column]
    seen: dict[str, int] = {}
    offset = 0
    for batch in reader.iter_batches(batch_size=65_536, columns=wanted):
        text = pc.cast(batch.column(0), pa.string(), safe=False)
        hit = pc.index(pc.equal(text, value), True).as_py()
        if has_file:
            files = batch.column(1)
            if hit >= 0:
                file = files[hit].as_py()
                before = pc.sum(pc.equal(files.slice(0, hit), file)).as_py() or 0
                return Located(file, files_before.get(file, 0) + seen.get(file, 0) + before + 1)
            for item in pc.value_counts(files).to_pylist():
                seen[item["values"]] = seen.get(item["values"], 0) + item["counts"]
        elif hit >= 0:
            return Located(None, rows_before + offset + hit + 1)
        offset += batch.num_rows
    return None


def load_error(
    *,
    table: str,
    job_id: str,
    errors: Sequence[Mapping[str, Any]],
    part: Path | None = None,
    files_before: Mapping[str, int] | None = None,
    rows_before: int = 0,
    source_line: Callable[[str, int], int | None] | None = None,
) -> LoadJobError:
    """Translate a failed load job's `errors[]` into a `LoadJobError`.

    Args:
        errors: the job's `errors` (each with `reason`, `location`, `message`).
        part: the staged Parquet part the job loaded (None: do not locate the row).
        files_before, rows_before: see `locate`.
        source_line: (file, row within it) -> the physical line the row starts on, or None
            (`Extraction.source_line`); None: the message names the row.
    """
    specific = [
        e for e in errors if not any(p in str(e.get("message", "")).lower() for p in _SUMMARY)
    ]
    chosen = (specific or list(errors) or [{}])[0]
    message = str(chosen.get("message", ""))
    column = _first(_COLUMN, message)
    value = _first(_VALUE, message)
    expected = _first(_TYPE, message)
    found = None
    if part is not None and column and value is not None and part.exists():
        found = locate(part, column, value, files_before or {}, rows_before)
    file_source = bool(found and found.file) or bool(files_before)
    line = None
    if found is not None and found.file and source_line is not None:
        line = source_line(found.file, found.row)
    return LoadJobError(
        table=table,
        job_id=job_id,
        errors=errors,
        file=found.file if found else None,
        row=found.row if found else None,
        line=line,
        column=column,
        value=value,
        expected=expected.upper() if expected else None,
        fix=likely_fix(message, column, file_source=file_source),
    )
