"""Fixtures of the control-plane tests: a DuckDB warehouse per test (never var/), a folder of
small CSV files behind a `local` connection, and a PostgreSQL table in its own schema of the real
server at 127.0.0.1:5432 (database `test`), dropped afterwards. An unreachable server fails the
test; nothing skips."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ml_platform.models import Connection, DataSource
from ml_platform.services import connection_create, data_source_create

ORDERS_CSV = (
    "id,customer,amount,ordered_at\n"
    "1,alice,10.50,2024-01-01T10:00:00Z\n"
    "2,bob,20.00,2024-01-01T11:00:00Z\n"
    "3,carol,7.25,2024-01-02T09:30:00Z\n"
    "4,dave,100.00,2024-01-03T12:00:00Z\n"
)
"""4 data rows; amounts sum to 137.75."""

MALFORMED_CSV = "id,customer,amount,ordered_at\n5,erin,1.00,2024-01-04T00:00:00Z\n6,frank,2.00\n"
"""Line 3 has 3 fields where the header has 4."""

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture(autouse=True)
def warehouse(settings: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Point the default DuckDB destination at a file of this test."""
    path = tmp_path / "warehouse.duckdb"
    settings.ETL_DEFAULT_DUCKDB_PATH = str(path)
    return path


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    """A folder holding `orders_1.csv` (ORDERS_CSV)."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "orders_1.csv").write_text(ORDERS_CSV)
    return folder


@pytest.fixture
def local_connection(csv_dir: Path) -> Connection:
    return connection_create(name="local files", type="local", base_path=str(csv_dir))


@pytest.fixture
def csv_source(local_connection: Connection) -> DataSource:
    """Transactional (file ledger) source of every `*.csv` in `csv_dir` into table `orders`."""
    return data_source_create(
        name="orders",
        connection=local_connection,
        dest_table_name="orders",
        load_type=DataSource.LoadType.TRANSACTIONAL,
        file_pattern="*.csv",
        file_format="csv",
    )


@pytest.fixture
def pg_events_table() -> Iterator[str]:
    """Create schema `mlp_<random>` with table `events` (5 rows, timestamptz cursor
    `updated_at`, one row exactly at the latest value's hour), yield `schema.events`, drop the
    schema."""
    schema = f"mlp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            conn.execute(
                f'CREATE TABLE "{schema}".events (id integer PRIMARY KEY, kind text NOT NULL, '
                "value numeric(10,2), updated_at timestamptz NOT NULL)"
            )
            conn.execute(
                f'INSERT INTO "{schema}".events VALUES '
                "(1, 'signup', 1.10, '2024-03-01 08:00:00+00'), "
                "(2, 'login', 2.20, '2024-03-01 09:00:00+00'), "
                "(3, 'login', 3.30, '2024-03-02 10:00:00+00'), "
                "(4, 'logout', 4.40, '2024-03-03 11:00:00+00'), "
                "(5, 'login', 5.50, '2024-03-03 11:00:00+00')"
            )
            yield f"{schema}.events"
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
