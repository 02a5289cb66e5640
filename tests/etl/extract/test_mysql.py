"""MySQL/MariaDB extractor against the real MariaDB: DATETIME(6) and TIMESTAMP(6) cursors,
quoted identifiers, custom SQL and selected columns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from etl import JobConfig, Watermark, run
from tests.conftest import mysql_connect
from tests.etl.support import DATASET, duck_query, job_config

pytestmark = pytest.mark.integration


def _execute(database: str, sql: str, params: tuple = (), *, time_zone: str = "+00:00") -> list:
    connection = mysql_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET time_zone = '{time_zone}'")
            cursor.execute(sql, params or None)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _create_events(database: str) -> None:
    _execute(
        database,
        "CREATE TABLE events (id INT PRIMARY KEY, dt DATETIME(6), ts TIMESTAMP(6) NULL, "
        "note VARCHAR(40))",
    )


def _insert_events(database: str, rows: list[tuple[int, str]]) -> None:
    """Insert `(id, wall clock)` rows from a session at +05:30: `dt` keeps the wall clock,
    `ts` stores the instant the wall clock means at +05:30."""
    for id_, text in rows:
        _execute(database, "INSERT INTO events VALUES (%s, %s, %s, %s)", (id_, text, text, text),
                 time_zone="+05:30")


def test_datetime6_cursor_keeps_microseconds_in_the_watermark(
    mysql_nycflights13: str, mysql_database: str, duckdb_path: Path
) -> None:
    """A DATETIME(6) cursor's watermark keeps microseconds, so rows a fraction of a second below
    it are not read again, and a new row tied with it is loaded once."""
    _create_events(mysql_database)
    _insert_events(mysql_database, [
        (1, "2013-06-01 12:34:55.000001"),
        (2, "2013-06-01 12:34:56.500000"),
        (3, "2013-06-01 12:34:56.999999"),
    ])
    job = JobConfig.parse(job_config(
        "mysql", duckdb_path, source_table_name=f"{mysql_database}.events",
        load_type="transactional", timestamp_column="dt", primary_key=["id"],
        dest_table_name="events",
    ))

    first = run(job)

    assert first.rows_loaded == 3
    assert first.state.watermark == Watermark(value="2013-06-01T12:34:56.999999", type="timestamp")
    assert duck_query(duckdb_path, f"SELECT id, dt FROM {DATASET}.events ORDER BY id") == [
        (1, dt.datetime(2013, 6, 1, 12, 34, 55, 1)),
        (2, dt.datetime(2013, 6, 1, 12, 34, 56, 500000)),
        (3, dt.datetime(2013, 6, 1, 12, 34, 56, 999999)),
    ]

    _insert_events(mysql_database, [(4, "2013-06-01 12:34:56.999999"),
                                    (5, "2013-06-01 12:34:57.000000")])
    second = run(job, first.state)

    assert second.rows_loaded == 2
    assert second.rows_skipped == 1
    assert duck_query(duckdb_path, f"SELECT id FROM {DATASET}.events WHERE _etl_run_id = ? "
                      "ORDER BY id", [second.run_id]) == [(4,), (5,)]
    assert second.state.watermark == Watermark(value="2013-06-01T12:34:57.000000", type="timestamp")


def test_timestamp6_cursor_is_a_utc_instant_whatever_the_writer_zone(
    mysql_nycflights13: str, mysql_database: str, duckdb_path: Path
) -> None:
    """TIMESTAMP(6) values written from a +05:30 session load as the same UTC instants (zone-aware
    column) and the watermark is that instant with microseconds."""
    _create_events(mysql_database)
    _insert_events(mysql_database, [(1, "2013-06-01 12:34:56.123456"),
                                    (2, "2014-01-01 05:30:00.000001")])
    job = JobConfig.parse(job_config(
        "mysql", duckdb_path, source_table_name=f"{mysql_database}.events",
        load_type="transactional", timestamp_column="ts", primary_key=["id"],
        dest_table_name="events",
    ))

    result = run(job)

    utc_rows = _execute(mysql_database, "SELECT id, ts FROM events ORDER BY id")
    assert utc_rows[0][1] == dt.datetime(2013, 6, 1, 7, 4, 56, 123456)
    loaded = duck_query(duckdb_path, f"SELECT id, ts FROM {DATASET}.events ORDER BY id")
    assert loaded == [(id_, ts.replace(tzinfo=dt.UTC)) for id_, ts in utc_rows]
    assert duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'events' AND column_name = 'ts'", [DATASET],
    ) == [("TIMESTAMP WITH TIME ZONE",)]
    assert result.state.watermark == Watermark(
        value="2014-01-01T00:00:00.000001+00:00", type="timestamptz")


@pytest.fixture
def quoted_table(mysql_nycflights13: str, mysql_database: str) -> str:
    """A table whose name and columns need backtick quoting (spaces, backticks, mixed case, a
    keyword), holding five nycflights13 flights; returns the `source_table_name`."""
    _execute(
        mysql_database,
        "CREATE TABLE `Flight ``Log`` 2013` (`Flight ID` INT PRIMARY KEY, `CarrierName` "
        "VARCHAR(10), `dep ``delay``` INT, `select` INT, `Time Hour` DATETIME(6))",
    )
    _execute(
        mysql_database,
        "INSERT INTO `Flight ``Log`` 2013` SELECT id, carrier, dep_delay, distance, time_hour "
        "FROM nycflights13.flights WHERE id IN (1, 2, 3, 838, 336776)",
    )
    return f"{mysql_database}.Flight `Log` 2013"


def _expected(database: str, select: str, where: str = "") -> list[tuple]:
    return [tuple(row) for row in _execute(
        database, f"SELECT {select} FROM `Flight ``Log`` 2013` {where} ORDER BY 1")]


def test_quoted_identifiers_table_and_columns(
    quoted_table: str, mysql_database: str, duckdb_path: Path
) -> None:
    """A table and columns with spaces, backticks, mixed case and a keyword are read (cursor and
    primary key included) and land under BigQuery-valid names."""
    job = JobConfig.parse(job_config(
        "mysql", duckdb_path, source_table_name=quoted_table, load_type="transactional",
        timestamp_column="Time Hour", primary_key=["Flight ID"], dest_table_name="log",
    ))

    first = run(job)
    second = run(job, first.state)

    assert (first.rows_loaded, second.rows_loaded) == (5, 0)
    assert first.state.column_map == {
        "Flight ID": "flight_id", "CarrierName": "carriername", "dep `delay`": "dep_delay",
        "select": "select", "Time Hour": "time_hour",
    }
    assert duck_query(
        duckdb_path,
        f'SELECT flight_id, carriername, dep_delay, "select", time_hour FROM {DATASET}.log '
        "ORDER BY 1",
    ) == _expected(mysql_database, "`Flight ID`, `CarrierName`, `dep ``delay```, `select`, "
                   "`Time Hour`")


def test_selected_columns_and_custom_sql(
    quoted_table: str, mysql_database: str, duckdb_path: Path
) -> None:
    """`selected_columns` with quoted names keep only those columns in order; `custom_sql` is
    extracted as a derived table with its aliases as columns."""
    selected = JobConfig.parse(job_config(
        "mysql", duckdb_path, source_table_name=quoted_table, load_type="catalog",
        selected_columns=["dep `delay`", "Flight ID"], dest_table_name="selected",
    ))
    custom = JobConfig.parse(job_config(
        "mysql", duckdb_path, load_type="catalog", dest_table_name="custom",
        custom_sql="SELECT `Flight ID` AS `Id`, UPPER(`CarrierName`) AS `Carrier Upper` "
                   f"FROM `{mysql_database}`.`Flight ``Log`` 2013` WHERE `select` > 1000",
    ))

    selected_result = run(selected)
    custom_result = run(custom)

    assert [c["name"] for c in selected_result.schema_] == [
        "dep_delay", "flight_id", "_etl_run_id", "_etl_loaded_at"]
    assert duck_query(
        duckdb_path, f"SELECT flight_id, dep_delay FROM {DATASET}.selected ORDER BY 1"
    ) == _expected(mysql_database, "`Flight ID`, `dep ``delay```")
    expected_custom = _expected(mysql_database, "`Flight ID`, UPPER(`CarrierName`)",
                                "WHERE `select` > 1000")
    assert custom_result.rows_loaded == len(expected_custom) > 0
    assert duck_query(
        duckdb_path, f"SELECT id, carrier_upper FROM {DATASET}.custom ORDER BY 1"
    ) == expected_custom
