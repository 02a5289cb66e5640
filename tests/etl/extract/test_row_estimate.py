"""The row estimate behind the progress display's % and ETA (issue 16): taken from the source's
catalog statistics without scanning, given once, and only when the run reads a whole table."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import JobConfig, run
from tests.conftest import mysql_connect, pg_connect
from tests.etl.support import job_config

pytestmark = pytest.mark.integration


def _catalog_estimate(source_type: str) -> int:
    if source_type == "postgresql":
        with pg_connect() as connection:
            return connection.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = 'nycflights13.flights'::regclass"
            ).fetchone()[0]
    with mysql_connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'nycflights13' AND TABLE_NAME = 'flights'"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("source_type", ["postgresql", "mysql"])
def test_whole_table_reads_report_the_catalog_estimate(
    request: pytest.FixtureRequest, source_type: str, tmp_path: Path
) -> None:
    """A catalog run and a first transactional run of nycflights13 `flights` report the
    catalog's estimate (PostgreSQL `reltuples`, MySQL `TABLE_ROWS`) once; the next
    transactional run (a window, not the table) and custom SQL report none."""
    request.getfixturevalue(
        "pg_nycflights13" if source_type == "postgresql" else "mysql_nycflights13"
    )
    base = job_config(source_type, tmp_path / "w.duckdb", source_table_name="nycflights13.flights")
    estimates: dict[str, list[int]] = {}

    for name, fields in [
        ("catalog", {"load_type": "catalog", "dest_table_name": "snapshot"}),
        ("first", {"timestamp_column": "time_hour", "primary_key": ["id"], "dest_table_name": "f"}),
        ("custom_sql", {"load_type": "catalog", "source_table_name": None, "dest_table_name": "q",
                        "custom_sql": "SELECT id FROM nycflights13.flights WHERE id < 10"}),
    ]:  # fmt: skip
        seen: list[int] = []
        run(JobConfig.parse({**base, **fields}), on_estimate=seen.append)
        estimates[name] = seen
    state = run(JobConfig.parse({**base, "timestamp_column": "time_hour", "primary_key": ["id"],
                                 "dest_table_name": "f"})).state  # fmt: skip
    again: list[int] = []
    run(
        JobConfig.parse({**base, "timestamp_column": "time_hour", "primary_key": ["id"],
                         "dest_table_name": "f"}),
        state,
        on_estimate=again.append,
    )  # fmt: skip

    expected = _catalog_estimate(source_type)
    assert expected > 0
    assert estimates == {"catalog": [expected], "first": [expected], "custom_sql": []}
    assert again == []
