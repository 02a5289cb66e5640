"""Type fidelity matrix (issue 5, item 3; shared/DESIGN.md §5 "Types are exact"): PostgreSQL
values of every common type loaded into DuckDB and into the BigQuery emulator, each value
checked exactly (extremes and NULL on their own rows).

Decisions and gaps:
- numeric with more than 38 digits: BigQuery gets BIGNUMERIC; DuckDB's DECIMAL stops at 38
  digits, so DuckDB gets the exact decimal text (never a double or a rounded value).
  Unconstrained numeric loads as the type its values need in the run's snapshot
  (here DECIMAL(10, 9) / NUMERIC; test_pg_types.py); NaN/±Infinity load as NULL,
  counted in the warnings, or fail the run under `on_unrepresentable: fail`.
- interval: DuckDB INTERVAL (months, days and time kept apart); BigQuery STRING in ISO 8601
  (`P14M3DT14706.789S`), exact to the microsecond.
- arrays: BigQuery has no NULL arrays (a NULL array reads back as `[]`) and no NULL elements, so
  the BigQuery rows hold no NULL element: the loader fails such a row naming it, as real
  BigQuery would (the emulator alone would accept it; see test_type_matrix_parquet.py).
- json: SQL NULL and JSON `null` stay apart; DuckDB keeps a `json` value's text as written
  (`{"a": null}`) and `jsonb` in PostgreSQL's normal form (`{"k": [1, 2.5]}`); the BigQuery
  client returns JSON `null` and SQL NULL both as None, so there TO_JSON_STRING is compared.
- MySQL / MariaDB types (tinyint(1), unsigned bigint, decimal(65,30), zero dates, bit,
  enum/set, ...) are in test_type_matrix_mysql.py.
- Parquet encodings (decimals as INT32/INT64/FIXED_LEN_BYTE_ARRAY, decimal256, nanosecond
  timestamps, dictionary/large/view strings, float16, unsigned, maps, files differing in
  nullability or int width) are in test_type_matrix_parquet.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.exceptions import UnrepresentableValueError
from tests.conftest import pg_connect
from tests.etl.support import (
    DATASET,
    bigquery_destination,
    bq_rows,
    duck_query,
    duck_table_exists,
    job_config,
)

pytestmark = pytest.mark.integration

COLUMNS = """id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, n12 numeric(12,2), nu numeric,
    r real, d double precision, b boolean, tx text, vc varchar(10), ch char(5), bt bytea,
    dt date, tm time, ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb,
    ua uuid[], ia int[], ta text[]"""
U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
ROWS = f"""
 (1, -32768, -2147483648, -9223372036854775808, -9999999999.99, 1.123456789, 1.5,
  1.0000000000000002, true, 'a''b', 'xy', 'ab', '\\x00ff', '0001-01-01', '23:59:59.999999',
  '9999-12-31 23:59:59.999999', '2024-03-31 01:30:00.123456+02',
  '1 year 2 mons 3 days 04:05:06.789', '{U}', '{{"a": null}}', 'null', '{{{U}}}', '{{1,2,3}}',
  '{{"x","y z"}}'),
 (2, 32767, 2147483647, 9223372036854775807, 0, 2, 'Infinity', '-Infinity', false, '', '', '',
  '', '9999-12-31', '00:00:00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '-1 day', NULL,
  'null', '{{"k": [1, 2.5]}}', '{{}}', '{{}}', '{{}}'),
 (3, {", ".join(["NULL"] * 23)})"""

TZ = dt.datetime(2024, 3, 30, 23, 30, 0, 123456, tzinfo=dt.UTC)
EXPECTED = {
    # column: (row 1, row 2); row 3 is NULL everywhere
    "i2": (-32768, 32767),
    "i4": (-2147483648, 2147483647),
    "i8": (-9223372036854775808, 9223372036854775807),
    "n12": (Decimal("-9999999999.99"), Decimal("0")),
    "nu": (Decimal("1.123456789"), Decimal("2")),
    "r": (1.5, float("inf")),
    "d": (1.0000000000000002, float("-inf")),
    "b": (True, False),
    "tx": ("a'b", ""),
    "vc": ("xy", ""),
    "ch": ("ab   ", "     "),
    "bt": (b"\x00\xff", b""),
    "dt": (dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    "tm": (dt.time(23, 59, 59, 999999), dt.time(0, 0)),
    "ts": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)),
    "tz": (TZ, dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
    "u": (U, None),
    "ua": ([U], []),
    "ia": ([1, 2, 3], []),
    "ta": (["x", "y z"], []),
}
DUCKDB_TYPES = {
    "i2": "SMALLINT",
    "i4": "INTEGER",
    "i8": "BIGINT",
    "n12": "DECIMAL(12,2)",
    "nu": "DECIMAL(10,9)",
    "r": "FLOAT",
    "d": "DOUBLE",
    "b": "BOOLEAN",
    "tx": "VARCHAR",
    "vc": "VARCHAR",
    "ch": "VARCHAR",
    "bt": "BLOB",
    "dt": "DATE",
    "tm": "TIME",
    "ts": "TIMESTAMP",
    "tz": "TIMESTAMP WITH TIME ZONE",
    "iv": "INTERVAL",
    "u": "VARCHAR",
    "j": "JSON",
    "jb": "JSON",
    "ua": "VARCHAR[]",
    "ia": "INTEGER[]",
    "ta": "VARCHAR[]",
}
BIGQUERY_TYPES = {
    "i2": "INT64",
    "i4": "INT64",
    "i8": "INT64",
    "n12": "NUMERIC",
    "nu": "NUMERIC",
    "r": "FLOAT64",
    "d": "FLOAT64",
    "b": "BOOL",
    "tx": "STRING",
    "vc": "STRING",
    "ch": "STRING",
    "bt": "BYTES",
    "dt": "DATE",
    "tm": "TIME",
    "ts": "DATETIME",
    "tz": "TIMESTAMP",
    "iv": "STRING",
    "u": "STRING",
    "j": "JSON",
    "jb": "JSON",
    "ua": "ARRAY<STRING>",
    "ia": "ARRAY<INT64>",
    "ta": "ARRAY<STRING>",
}


@pytest.fixture
def pg_types(pg_schema: str) -> str:
    """`<schema>.types`: three rows (extremes, other extremes and empties, all NULL)."""
    with pg_connect() as connection:
        connection.execute("SET TIME ZONE 'Asia/Kolkata'")  # timestamptz must not depend on it
        connection.execute(f"CREATE TABLE {pg_schema}.types ({COLUMNS})")
        connection.execute(f"INSERT INTO {pg_schema}.types VALUES {ROWS}")
    return f"{pg_schema}.types"


def _job(table: str, duckdb_path: Path, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        {
            **job_config(
                "postgresql",
                duckdb_path,
                source_table_name=table,
                load_type="catalog",
                dest_table_name="types",
            ),
            **fields,
        }
    )


def _assert_values(rows: list[tuple[Any, ...]], names: list[str]) -> None:
    by_id = {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}
    for name, (first, second) in EXPECTED.items():
        assert (by_id[1][name], by_id[2][name]) == (first, second), name
        if name not in ("ua", "ia", "ta"):
            assert by_id[3][name] is None, name


def test_postgresql_types_into_duckdb(pg_types: str, tmp_path: Path) -> None:
    """Every value arrives exactly with the DuckDB type of DUCKDB_TYPES; NULL stays NULL, JSON
    `null` stays a JSON value, an interval keeps months and days apart."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(pg_types, duckdb_path))

    assert {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")} == (
        {"id": "INTEGER", **DUCKDB_TYPES}
    )
    names = list(EXPECTED)
    rows = duck_query(duckdb_path, f"SELECT id, {', '.join(names)} FROM {DATASET}.types")
    _assert_values(rows, names)
    assert duck_query(
        duckdb_path,
        f"SELECT id, iv::VARCHAR, j::VARCHAR, jb::VARCHAR, jb IS NULL, ia IS NULL "
        f"FROM {DATASET}.types ORDER BY id",
    ) == [
        (1, "1 year 2 months 3 days 04:05:06.789", '{"a": null}', "null", False, False),
        (2, "-1 day", "null", '{"k": [1, 2.5]}', False, False),
        (3, None, None, None, True, True),
    ]


def test_numeric_beyond_38_digits_loads_as_exact_text_in_duckdb(
    pg_schema: str, tmp_path: Path
) -> None:
    """numeric(40,10) cannot be a DuckDB DECIMAL (38 digits at most): the column loads as the
    values' exact decimal text, never a double or a rounded value; no warning (nothing was
    adjusted)."""
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {pg_schema}.big (id int, n40 numeric(40,10))")
        connection.execute(
            f"INSERT INTO {pg_schema}.big VALUES (1, 123456789012345678901234567890.0123456789),"
            " (2, -1.5), (3, NULL)"
        )

    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(f"{pg_schema}.big", duckdb_path))

    assert result.warnings == []
    assert {c["name"]: c["type"] for c in result.schema_}["n40"] == "VARCHAR"
    assert duck_query(duckdb_path, f"SELECT id, n40 FROM {DATASET}.types ORDER BY id") == [
        (1, "123456789012345678901234567890.0123456789"),
        (2, "-1.5"),
        (3, None),
    ]


def test_numeric_nan_loads_as_null_and_is_counted(pg_schema: str, tmp_path: Path) -> None:
    """NaN has no DECIMAL / NUMERIC value: under the default `on_unrepresentable: nearest` it
    loads as NULL and the run's warnings count it per column; `fail` fails the run naming the
    table, the column and the value, with nothing written. A declared numeric(p, s) may hold
    NaN too (PostgreSQL manual §8.1.2): counted per column the same way, told apart from NULL,
    and its extremes keep every digit."""
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.nan (id int, nu numeric, n12 numeric(12,2), "
            "n18 numeric(18,18), i18 numeric(18,0))"
        )
        connection.execute(
            f"INSERT INTO {pg_schema}.nan VALUES (1, 1.5, 9999999999.99, 0.999999999999999999, "
            "-999999999999999999), (2, 'NaN', 'NaN', -0.000000000000000001, 'NaN'), "
            "(3, NULL, -0.01, NULL, NULL)"
        )

    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(f"{pg_schema}.nan", duckdb_path))

    assert result.warnings == [
        "column `i18`: 1 value NaN/Infinity loaded as NULL (on_unrepresentable: nearest)",
        "column `n12`: 1 value NaN/Infinity loaded as NULL (on_unrepresentable: nearest)",
        "column `nu`: 1 value NaN/Infinity loaded as NULL (on_unrepresentable: nearest)",
    ]
    assert duck_query(
        duckdb_path, f"SELECT id, nu, n12, n18, i18 FROM {DATASET}.types ORDER BY id"
    ) == [
        (
            1,
            Decimal("1.5"),
            Decimal("9999999999.99"),
            Decimal("0.999999999999999999"),
            Decimal("-999999999999999999"),
        ),
        (2, None, None, Decimal("-0.000000000000000001"), None),
        (3, None, Decimal("-0.01"), None, None),
    ]
    assert duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'types' "
        "AND column_name IN ('n12', 'n18', 'i18') ORDER BY column_name",
    ) == [("DECIMAL(18,0)",), ("DECIMAL(12,2)",), ("DECIMAL(18,18)",)]
    strict = tmp_path / "strict.duckdb"
    with pytest.raises(
        UnrepresentableValueError, match=rf"Column `\w+` of {pg_schema}\.nan holds 'NaN'"
    ):
        run(_job(f"{pg_schema}.nan", strict, on_unrepresentable="fail"))
    assert not duck_table_exists(strict, "types")
    with pg_connect() as connection:  # NaN only in a scaled column
        connection.execute(f"UPDATE {pg_schema}.nan SET nu = 2, i18 = 2 WHERE id = 2")
    with pytest.raises(
        UnrepresentableValueError, match=rf"Column `n12` of {pg_schema}\.nan holds 'NaN'"
    ):
        run(_job(f"{pg_schema}.nan", strict, on_unrepresentable="fail"))
    assert not duck_table_exists(strict, "types")


def test_postgresql_types_into_bigquery(
    pg_types: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """Every value arrives exactly with the BigQuery type of BIGQUERY_TYPES (TIMESTAMP in UTC for
    timestamptz, DATETIME wall clock for timestamp, the interval as exact ISO 8601 text)."""
    result = run(
        _job(pg_types, tmp_path / "unused.duckdb", destination=bigquery_destination(bq_dataset))
    )

    assert {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")} == (
        {"id": "INT64", **BIGQUERY_TYPES}
    )
    names = list(EXPECTED)
    rows = bq_rows(bigquery_client, f"SELECT id, {', '.join(names)} FROM `{bq_dataset}.types`")
    _assert_values(rows, names)
    assert bq_rows(
        bigquery_client,
        f"SELECT id, iv, TO_JSON_STRING(j), TO_JSON_STRING(jb), jb IS NULL "
        f"FROM `{bq_dataset}.types` ORDER BY id",
    ) == [
        (1, "P14M3DT14706.789S", '{"a":null}', "null", False),
        (2, "P0M-1DT0S", "null", '{"k":[1,2.5]}', False),
        (3, None, None, None, True),
    ]
