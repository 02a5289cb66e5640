"""TPC-H `lineitem` (tpchgen-cli, SF 0.01: 60,175 rows) in PostgreSQL and MariaDB for the
scale-out tests, plus the statistics a load is compared on: count, per-column sums of the
numeric columns, min/max of every column (strings compared byte-wise in both databases).

Each table lives in its own uniquely named schema/database, dropped by the caller's fixture; a
cursor column `l_updated_at` (2024-01-01 + l_orderkey seconds) makes transactional runs
possible, and the primary key is (l_orderkey, l_linenumber) as in the TPC-H schema."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest

SCALE = "0.01"
ROWS = 60_175
PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"

COLUMNS = (
    "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity", "l_extendedprice",
    "l_discount", "l_tax", "l_returnflag", "l_linestatus", "l_shipdate", "l_commitdate",
    "l_receiptdate", "l_shipinstruct", "l_shipmode", "l_comment", "l_updated_at",
)  # fmt: skip
SUMMED = ("l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity",
          "l_extendedprice", "l_discount", "l_tax")  # fmt: skip
STRINGS = ("l_returnflag", "l_linestatus", "l_shipinstruct", "l_shipmode", "l_comment")
DDL = """
    l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
    l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL, l_returnflag varchar(1) NOT NULL,
    l_linestatus varchar(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
    l_receiptdate date NOT NULL, l_shipinstruct varchar(25) NOT NULL,
    l_shipmode varchar(10) NOT NULL, l_comment varchar(44) NOT NULL,
    l_updated_at {ts} NULL, PRIMARY KEY (l_orderkey, l_linenumber)"""


def lineitem_csv_write(folder: Path) -> Path:
    """Write lineitem at SF 0.01 as CSV (with header) into `folder` with tpchgen-cli."""
    cli = Path(sys.executable).parent / "tpchgen-cli"
    subprocess.run(
        [str(cli), "csv", "-s", SCALE, "--tables", "lineitem", "--output-dir", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder / "lineitem.csv"


def pg_load(csv: Path, schema: str) -> None:
    """Create `schema.lineitem` in PostgreSQL from `csv` (COPY), with the cursor, ANALYZEd."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".lineitem ({DDL.format(ts="timestamp")})')
        columns = ", ".join(COLUMNS[:-1])
        with conn.cursor() as cursor:
            with (
                cursor.copy(
                    f'COPY "{schema}".lineitem ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)'
                ) as copy,
                csv.open("rb") as handle,
            ):
                while block := handle.read(1 << 20):
                    copy.write(block)
        conn.execute(
            f'UPDATE "{schema}".lineitem SET '
            "l_updated_at = TIMESTAMP '2024-01-01' + l_orderkey * INTERVAL '1 second'"
        )
        conn.execute(f'ALTER TABLE "{schema}".lineitem ALTER COLUMN l_updated_at SET NOT NULL')
        conn.execute(f'ANALYZE "{schema}".lineitem')


def pg_drop(schema: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def mysql_connect(database: str | None = None) -> Any:
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", database=database,
        local_infile=True, autocommit=True,
    )  # fmt: skip


def mysql_load(csv: Path, database: str) -> None:
    """Create database `database` with `lineitem` in MariaDB from `csv` (LOAD DATA LOCAL)."""
    with mysql_connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
        cursor.execute(f"USE `{database}`")
        cursor.execute(f"CREATE TABLE lineitem ({DDL.format(ts='datetime(6)')}) ENGINE=InnoDB")
        cursor.execute(
            f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE lineitem FIELDS TERMINATED BY ',' "
            "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES "
            f"({', '.join(COLUMNS[:-1])})"
        )
        cursor.execute(
            "UPDATE lineitem SET l_updated_at = TIMESTAMPADD(SECOND, l_orderkey, '2024-01-01')"
        )
        cursor.execute("ANALYZE TABLE lineitem")
        cursor.fetchall()


def mysql_drop(database: str) -> None:
    with mysql_connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")


def _stats_sql(table: str, *, string: str) -> str:
    parts = ["count(*)"]
    parts += [f"sum({c})" for c in SUMMED]
    for column in COLUMNS:
        wrapped = string.format(c=column) if column in STRINGS else column
        parts += [f"min({wrapped})", f"max({wrapped})"]
    return f"SELECT {', '.join(parts)} FROM {table}"


def _normalized(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in row)


def pg_stats(schema: str) -> tuple[Any, ...]:
    """Count, sums and min/max of `schema.lineitem` (strings in byte order, `COLLATE "C"`)."""
    with psycopg.connect(PG_DSN) as conn:
        sql = _stats_sql(f'"{schema}".lineitem', string='{c} COLLATE "C"')
        return _normalized(conn.execute(sql).fetchone())


def mysql_stats(database: str) -> tuple[Any, ...]:
    """Count, sums and min/max of `database.lineitem` (strings in byte order, `BINARY`)."""
    with mysql_connect(database) as conn, conn.cursor() as cursor:
        cursor.execute(_stats_sql("lineitem", string="BINARY {c}"))
        return _normalized(cursor.fetchone())


def duckdb_stats(path: str, table: str) -> tuple[Any, ...]:
    """The same statistics of a DuckDB destination table (DuckDB compares strings byte-wise)."""
    with duckdb.connect(path, read_only=True) as conn:
        return _normalized(conn.execute(_stats_sql(table, string="{c}")).fetchone())


@pytest.fixture(scope="session")
def lineitem_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lineitem_csv_write(tmp_path_factory.mktemp("tpch"))


@pytest.fixture(scope="session")
def pg_lineitem(lineitem_csv: Path) -> Iterator[str]:
    """`<schema>.lineitem` in PostgreSQL (60,175 rows); the schema is dropped after."""
    schema = f"par_{uuid.uuid4().hex[:10]}"
    try:
        pg_load(lineitem_csv, schema)
        yield schema
    finally:
        pg_drop(schema)


@pytest.fixture(scope="session")
def mysql_lineitem(lineitem_csv: Path) -> Iterator[str]:
    """Database `<name>` with `lineitem` in MariaDB (60,175 rows); dropped after."""
    database = f"par_{uuid.uuid4().hex[:10]}"
    try:
        mysql_load(lineitem_csv, database)
        yield database
    finally:
        mysql_drop(database)
