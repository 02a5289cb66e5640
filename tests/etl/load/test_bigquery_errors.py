"""Readable BigQuery load errors (etl/load/bigquery/errors.py).

These are unit tests of pure functions, fed the exact `errors[]` payloads real BigQuery returns
(shapes: https://cloud.google.com/bigquery/docs/error-messages; messages quoted from the public
reports cited per test), because the emulator reports load errors in its own (DuckDB) words;
the loader's path through a failed job on the emulator is covered in test_bigquery.py
(`test_rejected_load_names_table_and_column`). The row lookup reads a real Parquet part written
like the loader's staged parts. Emulator gap: a file's staged Parquet holds exactly typed values
the emulator accepts, so no file row makes its load job fail there; the file-row-to-line tests
below stage the rows with the real file extractor and map them back with its `source_line`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


# --- rows of source files mapped to their lines --------------------------------------------------

SCORES_A = "exported 2024-02-01\nid,note,amount\n1,plain,1.5\n2,x,2\n"
SCORES_B = (
    "exported 2024-03-01\r\n"  # line 1: skip_rows
    "id,note,amount\r\n"  # 2: header
    '1,"two\r\nlines",1.5\r\n'  # 3-4: a quoted field spanning two lines
    "\r\n"  # 5: empty, no record
    '2,"a, b",2\r\n'  # 6
    "{bad}"  # 7 (quarantine case only): a malformed record
    '3,"x""y",PrivacySuppressed\r\n'  # 8: the value BigQuery refuses
)
CSV_PARSE_ERRORS = [
    {
        "reason": "invalid",
        "message": "Error while reading data, error message: Could not parse "
        "'PrivacySuppressed' as DOUBLE for field amount (position 1) starting at location "
        "504392  with message 'Unable to parse'",
    }
]


def _staged(tmp_path: Path, files: dict[str, str], **job: object) -> tuple[Path, object]:
    """Extract `files` from a local folder with the real file extractor and write its rows as
    one staged Parquet part (as the loader does, `_etl_source_file` included); return the part
    and the (still open) extraction, whose `source_line` maps rows to lines."""
    from etl import JobConfig, SyncState
    from etl.registry import get_extractor

    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_bytes(text.encode())
    config = JobConfig.parse(
        {
            "source_type": "local",
            "connection_params": {"base_path": str(folder)},
            "file_pattern": "*",
            "dest_table_name": "scores",
            "destination": {"type": "duckdb", "path": str(tmp_path / "w.duckdb")},
            **job,
        }
    )
    extraction = get_extractor("local")(config).extract(SyncState())
    table = pa.concat_tables(
        [pa.Table.from_batches([b]) for b in extraction.batches()], promote_options="permissive"
    )
    part = tmp_path / "part00001.parquet"
    pq.write_table(table, part)
    return part, extraction


@pytest.mark.parametrize(
    ("malformed", "on_bad_rows", "line"),
    [("", "fail", 7), ("9,too,many,fields\r\n", "quarantine", 8)],
    ids=["plain", "quarantined-line-before"],
)
def test_wrong_type_in_row_n_of_file_f_names_the_line(
    tmp_path: Path, malformed: str, on_bad_rows: str, line: int
) -> None:
    """A value BigQuery refuses in the third data row of b.csv is reported as `b.csv, line L,
    column amount: value ...`: the line counts the skipped preamble, the header, both lines
    of a quoted field (CRLF), an empty line and, under quarantine, the set-aside record,
    which is no staged row. Quoted newlines shifting reported line numbers in peers:
    https://github.com/pandas-dev/pandas/issues/24658 (skiprows counting lines inside quoted
    fields); BigQuery itself reports only byte positions
    (https://github.com/onlybooks/bigquery/issues/1)."""
    files = {"a.csv": SCORES_A, "b.csv": SCORES_B.replace("{bad}", malformed)}
    part, extraction = _staged(
        tmp_path,
        files,
        file_format="csv",
        file_format_options={"skip_rows": 1, "column_types": {"amount": "string"}},
        on_bad_rows=on_bad_rows,
    )
    error = load_error(
        table="scores",
        job_id="j",
        errors=CSV_PARSE_ERRORS,
        part=part,
        source_line=extraction.source_line,
    )
    assert (error.file, error.row, error.line, error.column, error.value) == (
        "b.csv", 3, line, "amount", "PrivacySuppressed",
    )  # fmt: skip
    assert str(error).startswith(
        f"BigQuery rejected the load of scores (job j): b.csv, line {line}, column amount: "
        "value 'PrivacySuppressed' is not a valid DOUBLE. Likely fix: lock amount's type with "
        "file_format_options.column_types"
    )
    assert str(error).endswith("BigQuery said: invalid " + CSV_PARSE_ERRORS[0]["message"])


def test_jsonl_rows_map_to_lines_counting_blank_lines(tmp_path: Path) -> None:
    """In JSON lines the row's line counts blank lines; the emulator's own message shape
    (`Error when converting column "C". Could not convert string "V" to 'T'`)."""
    text = '{"id": 1, "code": "a1"}\n\n\n{"id": 2, "code": "x9"}\n{"id": 3, "code": "b"}\n'
    part, extraction = _staged(tmp_path, {"codes.jsonl": text}, file_format="jsonl")
    error = load_error(
        table="codes",
        job_id="j",
        errors=[
            {
                "reason": "invalid",
                "message": 'Error when converting column "code". Could not convert string '
                "\"x9\" to 'INT64'",
            }
        ],
        part=part,
        source_line=extraction.source_line,
    )
    assert (error.file, error.row, error.line, error.column, error.value) == (
        "codes.jsonl", 2, 4, "code", "x9",
    )  # fmt: skip
    assert str(error).startswith(
        "BigQuery rejected the load of codes (job j): codes.jsonl, line 4, column code: value "
        "'x9' is not a valid INT64."
    )


@pytest.mark.integration
def test_failed_load_job_of_a_run_names_file_line_column_value(tmp_path: Path) -> None:
    """The whole path of a run: CSV files -> staged Parquet part -> load job -> `LoadJobError`
    naming `b.csv, line 7, column amount: value 'PrivacySuppressed'`. Emulator gap: it accepts
    every value a file's part holds, so a recording proxy in front of it answers the load job
    as BigQuery answers a load it refuses (job DONE, `errorResult` and `errors[]` with the
    `Could not parse` message); the staging, the lookup of the value in the part still on
    disk, and the re-read of b.csv for its line run as in production. Nothing is committed."""
    import json

    from etl import JobConfig, run
    from tests.conftest import BIGQUERY_PROJECT, emulator_env
    from tests.etl.load.test_bigquery_labels import RecordingProxy
    from tests.etl.support import bigquery_destination

    proxy = RecordingProxy(emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
    failed: dict[str, dict] = {}

    pending: list[dict] = []

    def refuse_loads(method: str, path: str, body: bytes, forward: Any) -> Any:
        # a load job is a resumable upload: POST (the job resource) opens the session, PUT
        # sends the file and is answered with the job; that answer says the job failed
        route = path.split("?")[0]
        if method == "POST" and route.endswith(f"/projects/{BIGQUERY_PROJECT}/jobs"):
            text = body.decode("utf-8", "replace")
            line = next((p for p in text.splitlines() if p.startswith("{")), None)
            job = json.loads(line) if line else {}
            if "load" in job.get("configuration", {}):
                pending.append(job)
        elif method == "PUT" and "/upload/" in route and pending:
            forward()
            job = pending.pop()
            job_id = job["jobReference"]["jobId"]
            errors = [{"reason": "invalid", "location": "file-00000000",
                       "message": CSV_PARSE_ERRORS[0]["message"]}]  # fmt: skip
            job.update(id=f"{BIGQUERY_PROJECT}:{job_id}",
                       status={"state": "DONE", "errorResult": errors[0], "errors": errors})  # fmt: skip
            failed[job_id] = job
            return 200, {"Content-Type": "application/json"}, json.dumps(job).encode()
        for job_id, job in failed.items():
            if method == "GET" and route.endswith(f"/jobs/{job_id}"):
                return 200, {"Content-Type": "application/json"}, json.dumps(job).encode()
        return forward()

    proxy.intercept = refuse_loads
    dataset = f"etl_test_{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(SCORES_A.encode())
    (folder / "b.csv").write_bytes(SCORES_B.replace("{bad}", "").encode())
    config = {
        "source_type": "local",
        "connection_params": {"base_path": str(folder)},
        "file_pattern": "*.csv",
        "file_format": "csv",
        "file_format_options": {"skip_rows": 1, "column_types": {"amount": "string"}},
        "dest_table_name": "scores",
        "destination": {**bigquery_destination(dataset), "api_endpoint": proxy.url},
    }
    try:
        with pytest.raises(LoadJobError) as caught:
            run(JobConfig.parse(config))
    finally:
        proxy.close()
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project=BIGQUERY_PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=emulator_env("ETL_BIGQUERY_API_ENDPOINT")),
        )
        tables = [t.table_id for t in client.list_tables(dataset)]
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
    error = caught.value
    assert len(failed) == 1  # one load job for both files; not retried
    assert (error.file, error.row, error.line, error.column, error.value) == (
        "b.csv", 3, 7, "amount", "PrivacySuppressed",
    )  # fmt: skip
    assert str(error).startswith(
        f"BigQuery rejected the load of scores (job {next(iter(failed))}): b.csv, line 7, "
        "column amount: value 'PrivacySuppressed' is not a valid DOUBLE. Likely fix: lock "
        "amount's type with file_format_options.column_types"
    )
    assert "scores" not in tables and not any(t.startswith("scores__") for t in tables)
