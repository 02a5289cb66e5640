"""`full_refresh`: reset a source's state and reload everything, replacing the table atomically
(what the control plane's "reset" and `etl run --full-refresh` do).

A transactional run never sees rows deleted at the source, nor rows whose cursor moved below the
watermark; a full refresh is how a user gets the destination equal to the source again without
dropping the table by hand (Airbyte's "Reset your data" and dlt's `refresh="drop_data"` do the
same)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import pg_connect
from tests.etl.support import DATASET, duck_query, job_config, run_cli

pytestmark = pytest.mark.integration


def test_full_refresh_makes_the_table_equal_to_the_source(
    pg_schema: str, duckdb_path: Path, tmp_path: Path
) -> None:
    """After a transactional run, the source loses row 2 and row 3's cursor moves back: a normal
    run loads nothing (rows 1-3 stay), a full refresh leaves exactly the source's rows, and the
    next normal run loads only the row inserted after it."""
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.orders (id int PRIMARY KEY, status text, "
            "updated_at timestamptz NOT NULL)"
        )
        connection.execute(
            f"INSERT INTO {pg_schema}.orders VALUES (1, 'new', '2026-01-01 10:00+00'), "
            "(2, 'new', '2026-01-01 11:00+00'), (3, 'new', '2026-01-01 12:00+00')"
        )
    config = job_config(
        "postgresql",
        duckdb_path,
        source_table_name=f"{pg_schema}.orders",
        timestamp_column="updated_at",
        primary_key=["id"],
        dest_table_name="orders",
    )
    state = tmp_path / "state.json"
    code, first = run_cli(config, state)
    assert (code, first["rows_loaded"]) == (0, 3), first
    with pg_connect() as connection:
        connection.execute(f"DELETE FROM {pg_schema}.orders WHERE id = 2")
        connection.execute(
            f"UPDATE {pg_schema}.orders SET status = 'paid', updated_at = '2026-01-01 09:00+00' "
            "WHERE id = 3"
        )

    code, normal = run_cli(config, state)
    assert (code, normal["rows_loaded"]) == (0, 0), normal
    rows = 'SELECT id, status FROM raw_data."orders" ORDER BY id'
    assert duck_query(duckdb_path, rows) == [(1, "new"), (2, "new"), (3, "new")]

    code, refreshed = run_cli(config, state, "--full-refresh")

    assert code == 0, refreshed
    assert (refreshed["rows_extracted"], refreshed["rows_loaded"]) == (2, 2)
    assert duck_query(duckdb_path, rows) == [(1, "new"), (3, "paid")]
    assert refreshed["state"]["watermark"]["value"] == "2026-01-01T10:00:00.000000+00:00"
    with pg_connect() as connection:
        connection.execute(
            f"INSERT INTO {pg_schema}.orders VALUES (4, 'new', '2026-01-02 08:00+00')"
        )
    code, after = run_cli(config, state)
    assert (code, after["rows_loaded"]) == (0, 1), after
    assert duck_query(duckdb_path, rows) == [(1, "new"), (3, "paid"), (4, "new")]
    assert duck_query(duckdb_path, f"SELECT count(*) FROM {DATASET}._etl_loads") == [(4,)]
