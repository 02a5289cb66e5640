"""Helpers of the database cases of the real-world corpus (tests/realworld/test_databases_*.py):
run a PostgreSQL or MariaDB table into DuckDB or the BigQuery emulator and read it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from etl import JobConfig, RunResult, SyncState, run
from tests.conftest import mysql_connect, pg_connect
from tests.etl.support import DATASET, bigquery_destination, duck_query, job_config


def pg(*statements: str) -> None:
    """Run `statements` on the test PostgreSQL database (autocommit)."""
    with pg_connect() as connection:
        for statement in statements:
            connection.execute(statement)


def mysql(database: str, *statements: str) -> None:
    """Run `statements` in MariaDB database `database` (autocommit), under a permissive
    sql_mode so zero and invalid dates are stored as written, as old MySQL servers did."""
    connection = mysql_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def job(
    source_type: str,
    table: str,
    duckdb_path: Path,
    *,
    bq_dataset: str | None = None,
    **fields: Any,
) -> JobConfig:
    """A catalog job of `table` into table `t` of `duckdb_path`, or of BigQuery dataset
    `bq_dataset` when given; `fields` override the config (e.g. load_type, on_unrepresentable)."""
    config = job_config(
        source_type, duckdb_path, source_table_name=table, load_type="catalog", dest_table_name="t"
    )
    if bq_dataset is not None:
        config["destination"] = bigquery_destination(bq_dataset)
    config.update(fields)
    return JobConfig.parse(config)


def load(job_: JobConfig, state: SyncState | None = None) -> RunResult:
    return run(job_, state)


def types(result: RunResult) -> dict[str, str]:
    """Destination column -> type after the run, without the `_etl_` columns."""
    return {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")}


def duck_rows(path: Path, columns: str, order: str = "id") -> list[tuple[Any, ...]]:
    """Rows of `SELECT <columns> FROM raw_data.t ORDER BY <order>` in the DuckDB warehouse."""
    return duck_query(path, f"SELECT {columns} FROM {DATASET}.t ORDER BY {order}")
