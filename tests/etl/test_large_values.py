"""Large values from databases (issue 17, item 2): a 64 MiB PostgreSQL `text` and `bytea` value
and a 64 MiB MariaDB `longtext` and `longblob` value load into DuckDB exactly (md5 compared on
both sides), and the run's peak memory stays within LARGE_VALUE_RSS_MULTIPLE times the largest
row above the process's baseline (measured in a subprocess: its peak RSS, VmHWM, minus its RSS
after imports).

What the multiple is made of: the driver's receive buffer of the row and its decoded copy
(libpq's COPY buffer and ADBC's builders, which grow by doubling; the MySQL protocol buffer and
connectorx's builders), the Arrow batch handed to DuckDB, and DuckDB's vectors and storage
blocks while it writes the values. Measured here for a 128 MiB row: PostgreSQL 967 MiB (7.6x),
MariaDB 757 MiB (5.9x); the bound is 9x.

MariaDB sends no row larger than its `max_allowed_packet` (default 16 MiB): the test raises
the GLOBAL value to 256 MiB for its own connections and the run's (sessions started after the
change), and restores it afterwards (docs/config.md, "Large values").

The runs keep DuckDB's default, automatic memory limit, which the loader raises before DuckDB
reads the batch holding the large row (etl/load/duckdb/memory.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import mysql_connect, pg_connect
from tests.etl.support import DATASET, REPO_ROOT, duck_query, job_config

pytestmark = pytest.mark.integration

VALUE_BYTES = 64 << 20
"""The size of each large value, bytes (64 MiB)."""
LARGE_VALUE_RSS_MULTIPLE = 9
"""Peak RSS of a run, above its baseline, at most this many times the bytes of its largest row
(here two 64 MiB values: 128 MiB) (docs/config.md, "Large values")."""

MEASURE = """
import json, sys
from etl import JobConfig, run
def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
base = status_kib("VmRSS")
result = run(JobConfig.parse(json.loads(sys.argv[1])))
print(json.dumps({"base_kib": base, "peak_kib": status_kib("VmHWM"), "rows": result.rows_loaded}))
"""
"""The measuring child: RSS after imports, then the peak (VmHWM, this process's own high-water
mark; `ru_maxrss` would carry over the forking parent's, which exec does not reset)."""


def _run_measured(config: dict[str, Any]) -> dict[str, int]:
    """Run the job in a fresh interpreter; return its baseline and peak RSS (KiB) and rows."""
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_postgres_64_mib_text_and_bytea(pg_schema: str, tmp_path: Path) -> None:
    """A row holding a 64 MiB text and a 64 MiB bytea loads exactly (same md5 in PostgreSQL and
    DuckDB, same length); peak RSS stays within LARGE_VALUE_RSS_MULTIPLE x 128 MiB."""
    table = f"{pg_schema}.big"
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, t text, b bytea)")
        # 2 Mi md5 hex digests of 32 characters: 64 MiB of text that does not compress away
        connection.execute(
            f"INSERT INTO {table} SELECT 1, s, convert_to(s, 'UTF8') FROM (SELECT "
            f"string_agg(md5(i::text), '' ORDER BY i) AS s FROM generate_series(1, "
            f"{VALUE_BYTES // 32}) AS i) AS g"
        )
        source = connection.execute(
            f"SELECT md5(t), octet_length(t), md5(b), octet_length(b) FROM {table}"
        ).fetchone()
    assert source[1] == source[3] == VALUE_BYTES
    duckdb_path = tmp_path / "w.duckdb"
    config = job_config(
        "postgresql",
        duckdb_path,
        source_table_name=table,
        load_type="catalog",
        dest_table_name="big",
    )

    measured = _run_measured(config)

    assert measured["rows"] == 1
    assert duck_query(
        duckdb_path, f"SELECT md5(t), strlen(t), md5(b), octet_length(b) FROM {DATASET}.big"
    ) == [source]
    grown = (measured["peak_kib"] - measured["base_kib"]) * 1024
    assert grown <= LARGE_VALUE_RSS_MULTIPLE * 2 * VALUE_BYTES, measured


@pytest.fixture
def large_packets() -> Any:
    """MariaDB's GLOBAL max_allowed_packet raised to 256 MiB for new sessions, then restored."""
    connection = mysql_connect(None)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
            before = cursor.fetchone()[0]
            cursor.execute(f"SET GLOBAL max_allowed_packet = {256 << 20}")
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_allowed_packet = {before}")
        connection.close()


def test_mariadb_64_mib_longtext_and_longblob(
    mysql_database: str, large_packets: None, tmp_path: Path
) -> None:
    """A row holding a 64 MiB longtext and a 64 MiB longblob loads exactly (same md5 in MariaDB
    and DuckDB); peak RSS stays within LARGE_VALUE_RSS_MULTIPLE x 128 MiB."""
    table = f"{mysql_database}.big"
    connection = mysql_connect(mysql_database, max_allowed_packet=256 << 20)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, t longtext, b longblob)")
            cursor.execute(
                f"INSERT INTO {table} VALUES (1, REPEAT('0123456789abcdef', {VALUE_BYTES // 16}),"
                f" UNHEX(REPEAT('00ff', {VALUE_BYTES // 2})))"
            )
            cursor.execute(f"SELECT MD5(t), LENGTH(t), MD5(b), LENGTH(b) FROM {table}")
            source = cursor.fetchone()
    finally:
        connection.close()
    assert source[1] == source[3] == VALUE_BYTES
    duckdb_path = tmp_path / "w.duckdb"
    config = job_config(
        "mysql", duckdb_path, source_table_name=table, load_type="catalog", dest_table_name="big"
    )
    config["connection_params"]["database"] = mysql_database

    measured = _run_measured(config)

    assert measured["rows"] == 1
    assert duck_query(
        duckdb_path, f"SELECT md5(t), strlen(t), md5(b), octet_length(b) FROM {DATASET}.big"
    ) == [source]
    grown = (measured["peak_kib"] - measured["base_kib"]) * 1024
    assert grown <= LARGE_VALUE_RSS_MULTIPLE * 2 * VALUE_BYTES, measured
