"""PostgreSQL extractor against the real server: time zones, quoted identifiers, custom SQL and
selected columns."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl import JobConfig, Watermark, run
from tests.conftest import pg_connect
from tests.etl.support import DATASET, duck_query, job_config

pytestmark = pytest.mark.integration

NEW_YORK_WALL_CLOCKS = [
    "2013-03-10 01:59:59.999999",  # the last microsecond before the spring-forward gap
    "2013-06-01 12:34:56.123456",
    "2013-11-03 00:59:59",  # an hour before the ambiguous fall-back hour
    "2013-12-31 23:00:00.000001",
]


@pytest.fixture
def far_zone_role(pg_schema: str) -> Iterator[str]:
    """A login role whose sessions default to TimeZone `Asia/Kathmandu` (+05:45), allowed to
    read `pg_schema`; dropped afterwards."""
    role = f"etl_tz_{uuid.uuid4().hex[:8]}"
    with pg_connect() as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN")
        connection.execute(f"ALTER ROLE {role} SET timezone = 'Asia/Kathmandu'")
        connection.execute(f"GRANT USAGE ON SCHEMA {pg_schema} TO {role}")
        connection.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {pg_schema} GRANT SELECT ON TABLES TO {role}"
        )
    try:
        yield role
    finally:
        with pg_connect() as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"DROP ROLE {role}")


def _insert_new_york_rows(schema: str, first_id: int, wall_clocks: list[str]) -> None:
    """Insert rows from a session whose TimeZone is America/New_York: `ts` (timestamptz) is the
    New York wall clock's instant, `naive` (timestamp) the wall clock itself."""
    with pg_connect() as connection:
        connection.execute("SET TIME ZONE 'America/New_York'")
        for offset, text in enumerate(wall_clocks):
            connection.execute(
                f"INSERT INTO {schema}.events VALUES (%s, %s::timestamptz, %s::timestamp, %s)",
                [first_id + offset, text, text, text],
            )


def test_timestamptz_keeps_the_instant_and_timestamp_the_wall_clock(
    pg_nycflights13: str, pg_schema: str, far_zone_role: str, duckdb_path: Path
) -> None:
    """Rows written in New York time and read by a role whose session zone is Kathmandu land as
    the same instants (timestamptz -> TIMESTAMP WITH TIME ZONE) and the same wall clocks
    (timestamp -> TIMESTAMP), to the microsecond; the watermark is the UTC instant, and a row
    one microsecond after it is loaded by the next run."""
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.events (id integer PRIMARY KEY, ts timestamptz, "
            "naive timestamp, note text)"
        )
    _insert_new_york_rows(pg_schema, 1, NEW_YORK_WALL_CLOCKS)
    config = job_config(
        "postgresql",
        duckdb_path,
        source_table_name=f"{pg_schema}.events",
        load_type="transactional",
        timestamp_column="ts",
        primary_key=["id"],
        dest_table_name="events",
    )
    config["connection_params"]["user"] = far_zone_role
    job = JobConfig.parse(config)

    first = run(job)

    with pg_connect() as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        expected = connection.execute(
            f"SELECT id, ts, naive FROM {pg_schema}.events ORDER BY id"
        ).fetchall()
        max_ts = connection.execute(f"SELECT max(ts) FROM {pg_schema}.events").fetchone()[0]
    assert expected[1][1] == dt.datetime(2013, 6, 1, 16, 34, 56, 123456, tzinfo=dt.UTC)
    assert expected[1][2] == dt.datetime(2013, 6, 1, 12, 34, 56, 123456)
    assert first.rows_loaded == len(NEW_YORK_WALL_CLOCKS)
    loaded = duck_query(duckdb_path, f"SELECT id, ts, naive FROM {DATASET}.events ORDER BY id")
    assert loaded == expected
    assert duck_query(
        duckdb_path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'events' AND column_name IN ('ts', 'naive') ORDER BY column_name",
        [DATASET],
    ) == [("naive", "TIMESTAMP"), ("ts", "TIMESTAMP WITH TIME ZONE")]
    assert first.state.watermark == Watermark(
        value="2014-01-01T04:00:00.000001+00:00", type="timestamptz"
    )
    assert max_ts == dt.datetime(2014, 1, 1, 4, 0, 0, 1, tzinfo=dt.UTC)

    _insert_new_york_rows(pg_schema, 10, ["2013-12-31 23:00:00.000002", "2013-12-31 23:00:00"])
    second = run(job, first.state)

    assert second.rows_loaded == 1
    assert duck_query(
        duckdb_path, f"SELECT id FROM {DATASET}.events WHERE _etl_run_id = ?", [second.run_id]
    ) == [(10,)]
    assert second.state.watermark == Watermark(
        value="2014-01-01T04:00:00.000002+00:00", type="timestamptz"
    )


def test_naive_timestamp_cursor_watermark_is_the_wall_clock(
    pg_nycflights13: str, pg_schema: str, duckdb_path: Path
) -> None:
    """A `timestamp` (no zone) cursor's watermark is its wall clock with microseconds, whatever
    the zone of the session that wrote it."""
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.events (id integer PRIMARY KEY, ts timestamptz, "
            "naive timestamp, note text)"
        )
    _insert_new_york_rows(pg_schema, 1, NEW_YORK_WALL_CLOCKS)
    job = JobConfig.parse(
        job_config(
            "postgresql",
            duckdb_path,
            source_table_name=f"{pg_schema}.events",
            load_type="transactional",
            timestamp_column="naive",
            dest_table_name="events",
        )
    )

    result = run(job)

    assert result.rows_loaded == 4
    assert result.state.watermark == Watermark(value="2013-12-31T23:00:00.000001", type="timestamp")


QUOTED_TABLE = 'Flight "Log" 2013'


@pytest.fixture
def quoted_table(pg_nycflights13: str, pg_schema: str) -> str:
    """A table whose name and columns need quoting (spaces, double quotes, mixed case, a
    keyword), holding five nycflights13 flights; returns the `source_table_name`."""
    with pg_connect() as connection:
        connection.execute(
            f'CREATE TABLE {pg_schema}."Flight ""Log"" 2013" ('
            '"Flight ID" integer PRIMARY KEY, "CarrierName" text, "dep ""delay""" integer, '
            '"select" integer, "Time Hour" timestamptz)'
        )
        connection.execute(
            f'INSERT INTO {pg_schema}."Flight ""Log"" 2013" '
            "SELECT id, carrier, dep_delay, distance, time_hour FROM nycflights13.flights "
            "WHERE id IN (1, 2, 3, 838, 336776)"
        )
    return f"{pg_schema}.{QUOTED_TABLE}"


def _expected(pg_schema: str, select: str, where: str = "") -> list[tuple]:
    with pg_connect() as connection:
        return connection.execute(
            f'SELECT {select} FROM {pg_schema}."Flight ""Log"" 2013" {where} ORDER BY 1'
        ).fetchall()


def test_quoted_identifiers_table_and_columns(
    quoted_table: str, pg_schema: str, duckdb_path: Path
) -> None:
    """A table and columns with spaces, quotes, mixed case and a keyword are read (cursor and
    primary key included) and land under BigQuery-valid, stable names."""
    job = JobConfig.parse(
        job_config(
            "postgresql",
            duckdb_path,
            source_table_name=quoted_table,
            load_type="transactional",
            timestamp_column="Time Hour",
            primary_key=["Flight ID"],
            dest_table_name="log",
        )
    )

    first = run(job)
    second = run(job, first.state)

    assert (first.rows_loaded, second.rows_loaded) == (5, 0)
    assert first.state.column_map == {
        "Flight ID": "flight_id",
        "CarrierName": "carriername",
        'dep "delay"': "dep_delay",
        "select": "select",
        "Time Hour": "time_hour",
    }
    assert [(c["source_name"], c["name"]) for c in first.schema_][:5] == list(
        first.state.column_map.items()
    )
    loaded = duck_query(
        duckdb_path,
        f'SELECT flight_id, carriername, dep_delay, "select", time_hour FROM {DATASET}.log '
        "ORDER BY 1",
    )
    assert loaded == _expected(
        pg_schema, '"Flight ID", "CarrierName", "dep ""delay""", "select", "Time Hour"'
    )


def test_selected_columns_are_quoted_and_kept_in_order(
    quoted_table: str, pg_schema: str, duckdb_path: Path
) -> None:
    """`selected_columns` with quoted names load only those columns, in the given order."""
    job = JobConfig.parse(
        job_config(
            "postgresql",
            duckdb_path,
            source_table_name=quoted_table,
            load_type="catalog",
            selected_columns=['dep "delay"', "Flight ID"],
            dest_table_name="log",
        )
    )

    result = run(job)

    assert result.rows_loaded == 5
    columns = [c["name"] for c in result.schema_]
    assert columns == ["dep_delay", "flight_id", "_etl_run_id", "_etl_loaded_at"]
    expected = [(delay, id_) for id_, delay in _expected(pg_schema, '"Flight ID", "dep ""delay"""')]
    assert (
        duck_query(duckdb_path, f"SELECT dep_delay, flight_id FROM {DATASET}.log ORDER BY 2")
        == expected
    )


def test_custom_sql_with_quoted_identifiers_runs_incrementally(
    quoted_table: str, pg_schema: str, duckdb_path: Path
) -> None:
    """`custom_sql` is extracted as a derived table: its aliases become columns and the cursor
    window applies to it."""
    sql = (
        f'SELECT "Flight ID" AS "Id", upper("CarrierName") AS "Carrier Upper", "Time Hour" '
        f'FROM {pg_schema}."Flight ""Log"" 2013" WHERE "select" > 1000;'
    )
    job = JobConfig.parse(
        job_config(
            "postgresql",
            duckdb_path,
            custom_sql=sql,
            load_type="transactional",
            timestamp_column="Time Hour",
            primary_key=["Id"],
            dest_table_name="custom",
        )
    )

    first = run(job)
    second = run(job, first.state)

    expected = _expected(
        pg_schema, '"Flight ID", upper("CarrierName"), "Time Hour"', 'WHERE "select" > 1000'
    )
    assert len(expected) == first.rows_loaded > 0
    assert second.rows_loaded == 0
    assert (
        duck_query(
            duckdb_path, f"SELECT id, carrier_upper, time_hour FROM {DATASET}.custom ORDER BY 1"
        )
        == expected
    )


def test_custom_sql_catalog_aggregate_over_flights(pg_nycflights13: str, duckdb_path: Path) -> None:
    """A catalog `custom_sql` aggregate over nycflights13 flights loads exactly the rows the
    same query returns in PostgreSQL."""
    sql = (
        "SELECT carrier, count(*) AS flights, sum(distance) AS total_distance, "
        "max(time_hour) AS last_hour FROM nycflights13.flights GROUP BY carrier"
    )
    job = JobConfig.parse(
        job_config(
            "postgresql",
            duckdb_path,
            custom_sql=sql,
            load_type="catalog",
            dest_table_name="carriers",
        )
    )

    result = run(job)

    with pg_connect() as connection:
        expected = connection.execute(sql + " ORDER BY carrier").fetchall()
    assert result.rows_loaded == len(expected) == 16
    loaded = duck_query(
        duckdb_path,
        f"SELECT carrier, flights, total_distance, last_hour FROM {DATASET}.carriers ORDER BY 1",
    )
    assert loaded == expected
