"""`python -m etl run --config job.json --state state.json` on nycflights13 `flights` held by the
real PostgreSQL and MariaDB (issue 2, "Done when")."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from etl.state import Watermark
from tests.conftest import COLUMNS, ROW_COUNTS
from tests.etl.support import (
    DATASET,
    SqlSource,
    copy_table,
    duck_count,
    duck_query,
    job_config,
    numeric_profile,
    run_cli,
    value_counts,
)

pytestmark = pytest.mark.integration

FLIGHTS = ROW_COUNTS["flights"]
NUMBER_COLUMNS = ["id"] + [name for name, kind in COLUMNS["flights"] if kind == "int"]
TEXT_COLUMNS = [name for name, kind in COLUMNS["flights"] if kind == "text"]
ALL_COLUMNS = ["id"] + [name for name, _ in COLUMNS["flights"]]


def _insert_1000_rows(source: SqlSource, table: str, watermark: dt.datetime) -> None:
    """Insert copies of ids 1..1000 as ids 1,000,001..1,001,000: the first 250 at exactly
    `watermark`, the other 750 one to 24 hours after it."""
    names = [name for name, _ in COLUMNS["flights"] if name != "time_hour"]
    columns = ", ".join(source.quote(n) for n in names)
    if source.source_type == "postgresql":
        later = "%s + ((id % 24) + 1) * interval '1 hour'"
    else:
        later = "DATE_ADD(%s, INTERVAL (id % 24) + 1 HOUR)"
    later = later.replace("%", "%%").replace("%%s", "%s")
    source.rows(
        f"INSERT INTO {table} (id, {columns}, time_hour) "
        f"SELECT id + 1000000, {columns}, CASE WHEN id <= 250 THEN %s ELSE {later} END "
        f"FROM {table} WHERE id <= 1000",
        [watermark, watermark],
    )


def assert_flights_equal(source: SqlSource, table: str, duckdb_path: Path) -> None:
    """The DuckDB copy of `table` holds the source's values: per-column count/sum/min/max of the
    numbers, the value distribution of every text column and of `time_hour` (as instants), and
    whole rows spot-checked by id."""
    dest = f'{DATASET}."flights"'

    def duck(sql: str) -> list[tuple]:
        return duck_query(duckdb_path, sql)

    def quote_duck(name: str) -> str:
        return f'"{name}"'

    assert numeric_profile(duck, dest, NUMBER_COLUMNS, quote_duck) == numeric_profile(
        source.rows, table, NUMBER_COLUMNS, source.quote
    )
    for column in [*TEXT_COLUMNS, "time_hour"]:
        expected = value_counts(source.rows, table, column, source.quote)
        assert value_counts(duck, dest, column, quote_duck) == expected, column
    spot_ids = [1, 2, 100_000, 250_001, FLIGHTS]
    spot_ids += [row[0] for row in source.rows(
        f"SELECT min(id) FROM {table} WHERE dep_time IS NULL UNION ALL "
        f"SELECT min(id) FROM {table} WHERE tailnum IS NULL UNION ALL "
        f"SELECT max(id) FROM {table} WHERE arr_delay IS NULL"
    )]
    select = ", ".join(source.quote(n) for n in ALL_COLUMNS)
    id_list = ", ".join(map(str, spot_ids))
    expected_rows = source.rows(f"SELECT {select} FROM {table} WHERE id IN ({id_list}) ORDER BY id")
    actual_rows = duck(
        f"SELECT {', '.join(ALL_COLUMNS)} FROM {dest} WHERE id IN ({id_list}) ORDER BY id"
    )
    assert len(expected_rows) == len(set(spot_ids))
    assert actual_rows == expected_rows


def test_flights_transactional_runs_via_cli(
    sql_source: SqlSource, duckdb_path: Path, tmp_path: Path
) -> None:
    """The first run loads all 336,776 flights with the source's values; after 1,000 rows are
    inserted (250 at exactly the watermark, 750 later) the second run loads exactly those 1,000;
    a third run with no changes loads 0."""
    table = copy_table(sql_source, "flights")
    config = job_config(
        sql_source.source_type, duckdb_path,
        source_table_name=table, load_type="transactional", timestamp_column="time_hour",
        primary_key=["id"], dest_table_name="flights",
    )
    state_path = tmp_path / "state.json"

    code, first = run_cli(config, state_path)

    assert code == 0, first
    assert (first["status"], first["rows_extracted"], first["rows_loaded"]) == (
        "succeeded", FLIGHTS, FLIGHTS)
    watermark = sql_source.scalar(f"SELECT max(time_hour) FROM {table}")
    assert Watermark.model_validate(first["state"]["watermark"]) == Watermark.from_python(watermark)
    assert json.loads(state_path.read_text()) == first["state"]
    assert duck_count(duckdb_path, "flights") == FLIGHTS
    time_type = duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'flights' AND column_name = 'time_hour'", [DATASET],
    )[0][0]
    assert time_type == (
        "TIMESTAMP WITH TIME ZONE" if sql_source.source_type == "postgresql" else "TIMESTAMP")
    assert_flights_equal(sql_source, table, duckdb_path)

    _insert_1000_rows(sql_source, table, watermark)
    assert sql_source.scalar(
        f"SELECT count(*) FROM {table} WHERE id > 1000000 AND time_hour = %s", [watermark]
    ) == 250
    code, second = run_cli(config, state_path)

    assert code == 0, second
    assert second["rows_loaded"] == 1_000
    assert duck_count(duckdb_path, "flights") == FLIGHTS + 1_000
    assert duck_query(
        duckdb_path, f"SELECT count(DISTINCT id) FROM {DATASET}.flights")[0][0] == FLIGHTS + 1_000
    loaded_ids = duck_query(
        duckdb_path,
        f"SELECT id FROM {DATASET}.flights WHERE _etl_run_id = ? ORDER BY id", [second["run_id"]],
    )
    assert [row[0] for row in loaded_ids] == list(range(1_000_001, 1_001_001))
    new_max = sql_source.scalar(f"SELECT max(time_hour) FROM {table}")
    assert new_max > watermark
    assert Watermark.model_validate(second["state"]["watermark"]) == Watermark.from_python(new_max)
    assert_flights_equal(sql_source, table, duckdb_path)

    code, third = run_cli(config, state_path)

    assert code == 0, third
    assert third["rows_loaded"] == 0
    assert duck_count(duckdb_path, "flights") == FLIGHTS + 1_000
    assert third["state"]["watermark"] == second["state"]["watermark"]


def test_failed_run_prints_error_json_and_keeps_state(duckdb_path: Path, tmp_path: Path) -> None:
    """A config error exits 1 with `status: failed`, the error class and the field named, and
    the state file is left as it was."""
    state_path = tmp_path / "state.json"
    state_path.write_text('{"watermark": null}')
    config = job_config("postgresql", duckdb_path, dest_table_name="flights",
                        source_table_name="nycflights13.flights", load_type="transactional")

    code, output = run_cli(config, state_path)

    assert code == 1
    assert output["status"] == "failed"
    assert output["error_class"] == "ConfigError"
    assert "timestamp_column" in output["error"]
    assert output["transient"] is False
    assert state_path.read_text() == '{"watermark": null}'
    assert not duckdb_path.exists()
