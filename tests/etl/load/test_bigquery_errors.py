"""Readable BigQuery load errors (etl/load/bigquery/errors.py).

These are unit tests of pure functions, fed the exact `errors[]` payloads real BigQuery returns
(shapes: https://cloud.google.com/bigquery/docs/error-messages; messages quoted from the public
reports cited per test), because the emulator reports load errors in its own (DuckDB) words;
the loader's path through a failed job on the emulator is covered in test_bigquery.py
(`test_rejected_load_names_table_and_column`). The row lookup reads a real Parquet part written
like the loader's staged parts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.exceptions import DestinationError
from etl.load.bigquery.errors import LoadJobError, load_error


def _part(tmp_path: Path) -> Path:
    """A staged part holding rows of two files: b.csv's rows 4-5 follow a.csv's rows 1-3 of
    earlier parts; `amount` was read as text (a CSV column whose type the destination fixed)."""
    path = tmp_path / "part00002.parquet"
    table = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "amount": pa.array(["1.5", "2", "PrivacySuppressed", "7"]),
            "_etl_source_file": pa.array(["a.csv", "a.csv", "b.csv", "b.csv"]),
        }
    )
    pq.write_table(table, path, row_group_size=2)
    return path


def test_csv_parse_error_names_file_row_column_value(tmp_path: Path) -> None:
    """`Could not parse 'V' as DOUBLE for field C (position N) starting at location L` — the
    payload of https://github.com/onlybooks/bigquery/issues/1 — becomes file b.csv, row 5 (2
    rows of b.csv in earlier parts, the value is its third row), column and value; the summary
    error (https://github.com/fullstorydev/hauser/issues/47) is kept raw but not chosen."""
    errors = [
        {
            "reason": "invalid",
            "location": "gs://bucket/part00002.parquet",
            "message": "Error while reading data, error message: CSV table encountered too "
            "many errors, giving up. Rows: 25; errors: 1. Please look into the errors[] "
            "collection for more details.",
        },
        {
            "reason": "invalid",
            "message": "Error while reading data, error message: Could not parse "
            "'PrivacySuppressed' as DOUBLE for field amount (position 1) starting at location "
            "504392  with message 'Unable to parse'",
        },
    ]
    error = load_error(
        table="scores",
        job_id="etl_x_part00002",
        errors=errors,
        part=_part(tmp_path),
        files_before={"a.csv": 10, "b.csv": 2},
        rows_before=12,
    )
    assert isinstance(error, DestinationError)
    assert (error.file, error.row, error.column, error.value) == (
        "b.csv",
        3,
        "amount",
        "PrivacySuppressed",
    )
    assert str(error) == (
        "BigQuery rejected the load of scores (job etl_x_part00002): b.csv, row 3, column "
        "amount: value 'PrivacySuppressed' is not a valid DOUBLE. Likely fix: lock amount's "
        'type with file_format_options.column_types (e.g. {"amount": "string"}), fix the value '
        "in the file, or set on_bad_rows: quarantine to load the other rows. BigQuery said: "
        "invalid gs://bucket/part00002.parquet "
        + errors[0]["message"]
        + "; invalid "
        + errors[1]["message"]
    )
    assert error.errors == errors


def test_row_of_a_table_source_counts_within_the_run(tmp_path: Path) -> None:
    """Without `_etl_source_file` the row is the run's: earlier parts' rows plus the position."""
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"doc": ['{"ok": true}', '{"a": "\\ud800"}']}), path)
    error = load_error(
        table="docs",
        job_id="j",
        errors=[
            {
                "reason": "invalid",
                "message": 'Error when converting column "doc". Could not convert string '
                '"{"a": "\\ud800"}" to \'JSON\'',
            }
        ],
        part=path,
        rows_before=1_000_000,
    )
    assert (error.file, error.row, error.column, error.value) == (
        None,
        1_000_002,
        "doc",
        '{"a": "\\ud800"}',
    )


def test_parquet_type_mismatch_suggests_a_type_lock() -> None:
    """`Parquet column 'C' has type BYTE_ARRAY which does not match the target cpp_type
    INT64` (https://github.com/broadinstitute/depmap_omics/pull/152): no value to look up; the
    column and the type-lock fix are named."""
    message = (
        "Error while reading table: depmap-omics.maf_staging.cds_01bi6z, error message: "
        "Parquet column 'clndisdbincl' has type BYTE_ARRAY which does not match the target "
        "cpp_type INT64."
    )
    error = load_error(table="maf", job_id="j", errors=[{"reason": "invalid", "message": message}])
    assert (error.file, error.row, error.column, error.value) == (
        None,
        None,
        "clndisdbincl",
        None,
    )
    assert error.fix == (
        "clndisdbincl's type differs between files or runs: lock it with "
        'file_format_options.column_types (e.g. {"clndisdbincl": "string"}) or set '
        "allow_widen_to_string: true"
    )


def test_changed_type_and_encoding_messages() -> None:
    """`Field bar has changed type from FLOAT to RECORD`
    (https://github.com/googleapis/google-cloud-python/issues/9207) names the column; an
    invalid UTF-8 message points at `encoding`."""
    changed = load_error(
        table="t",
        job_id="j",
        errors=[
            {
                "reason": "invalid",
                "message": "Provided Schema does not match Table p:d.t. Field bar has changed "
                "type from FLOAT to RECORD",
            }
        ],
    )
    assert (changed.column, changed.value) == ("bar", None)
    assert str(changed).startswith(
        "BigQuery rejected the load of t (job j): column bar. Likely fix: bar's type differs"
    )
    utf8 = load_error(
        table="t",
        job_id="j",
        errors=[
            {
                "reason": "invalid",
                "message": "Error while reading data, error message: CSV table references "
                "column position 3, but line starting at position:0 contains only 3 columns. "
                "Error detected while parsing row starting at position: 0. Error: Bad "
                "character (ASCII 0) encountered. The file is not valid UTF-8.",
            }
        ],
        files_before={"a.csv": 0},
    )
    assert utf8.fix == (
        "the text is not valid UTF-8 / Unicode: set file_format_options.encoding to the "
        "file's encoding (latin-1, cp1252, utf-8-sig), or on_bad_rows: quarantine"
    )
    assert isinstance(utf8, LoadJobError)
