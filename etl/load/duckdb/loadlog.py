"""The DuckDB loader's load log (etl/load/loadlog.py): the table, its newest entries, the fence
check at the start of a run's transaction and the entry written at its end."""

from __future__ import annotations

from typing import Any

from etl.load.duckdb.insert import Write, quote
from etl.load.loadlog import (
    LOAD_LOG_TABLE,
    Fence,
    LogEntry,
    check_fence_newest,
    check_owner,
    owned_with,
)
from etl.state import SyncState


def create_log(connection: Any, dataset: str) -> None:
    """Create the schema `dataset` and its load log when missing (a log made before pipeline
    ids gets the column; its entries stay NULL, owned by no one)."""
    schema = quote(dataset)
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{LOAD_LOG_TABLE} (table_name VARCHAR NOT NULL, "
        "run_id VARCHAR NOT NULL, committed_at TIMESTAMPTZ NOT NULL, rows_loaded BIGINT, "
        "state JSON NOT NULL, pipeline_id VARCHAR)"
    )
    connection.execute(
        f"ALTER TABLE {schema}.{LOAD_LOG_TABLE} ADD COLUMN IF NOT EXISTS pipeline_id VARCHAR"
    )


def newest_entries(connection: Any, dataset: str, table: str) -> dict[str, LogEntry]:
    """Return table name -> the newest load-log entry of each table `owned_with(table)`
    that has one."""
    rows = connection.execute(
        f"SELECT table_name, run_id, state, pipeline_id "
        f"FROM {quote(dataset)}.{LOAD_LOG_TABLE} "
        "WHERE table_name IN (SELECT unnest(?::VARCHAR[])) "
        "QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY committed_at DESC) = 1",
        [owned_with(table)],
    ).fetchall()
    return {row[0]: LogEntry(row[1], row[2], row[3]) for row in rows}


def check_log(connection: Any, dataset: str, table: str, fence: Fence) -> None:
    """Raise `TableOwnedError` / `SupersededError` (the caller rolls back) when the load log,
    as this transaction sees it, is not where the run planned from."""
    newest = newest_entries(connection, dataset, table)
    check_owner(table, fence.pipeline_id, {name: e.pipeline_id for name, e in newest.items()})
    check_fence_newest(table, fence, newest)


def write_log(write: Write, state: SyncState) -> None:
    """Record the load and the state it leads to in the load log."""
    request = write.request
    write.connection.execute(
        f"INSERT INTO {quote(write.dataset)}.{LOAD_LOG_TABLE} (table_name, run_id, "
        "committed_at, rows_loaded, state, pipeline_id) VALUES (?, ?, ?, ?, ?, ?)",
        [
            request.table,
            request.run_id,
            write.loaded_at,
            write.stream.rows,
            state.model_dump_json(),
            request.fence.pipeline_id if request.fence else None,
        ],
    )
