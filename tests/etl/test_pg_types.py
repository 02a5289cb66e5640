"""PostgreSQL types beyond the matrix (issue 17, item 7; etl/extract/postgres/types.py): each loads as a
faithful typed value or its exact text, decided once per type, into DuckDB and the BigQuery
emulator; unconstrained numeric takes the type its values need in the run's snapshot;
multi-dimensional arrays load as JSON, never flattened.

hstore and citext are extensions: `CREATE EXTENSION IF NOT EXISTS` in the test database (they
ship with PostgreSQL's contrib package, present on the test server); they stay installed.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from etl import JobConfig, run
from etl.load.bigquery.types import loadable, schema_fields
from etl.registry import get_extractor
from etl.state import SyncState
from tests.conftest import pg_connect
from tests.etl.support import DATASET, bigquery_destination, bq_rows, duck_query, job_config

pytestmark = pytest.mark.integration

U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
EXPECTED = {
    # column: (DuckDB type, BigQuery type, value read back from DuckDB for row 1)
    "ir": ("VARCHAR", "STRING", "[1,5)"),
    "tr": ("VARCHAR", "STRING", '["2024-01-01 00:00:00+00","2024-02-01 00:00:00+00")'),
    "dr": ("VARCHAR", "STRING", "[2024-01-01,2024-02-01)"),
    "nr": ("VARCHAR", "STRING", "(1.5,2.25]"),
    "en": ("VARCHAR", "STRING", "ok"),
    "dp": ("INTEGER", "INT64", 5),
    "da": ("DECIMAL(10,2)", "NUMERIC", Decimal("12.30")),
    "dl": ("VARCHAR", "STRING", "x y"),
    "ci": ("VARCHAR", "STRING", "MiXeD"),
    "ip": ("VARCHAR", "STRING", "192.168.0.1/24"),
    "cd": ("VARCHAR", "STRING", "10.0.0.0/8"),
    "mac": ("VARCHAR", "STRING", "08:00:2b:01:02:03"),
    "pt": ("VARCHAR", "STRING", "(1.5,-2)"),
    "pg": ("VARCHAR", "STRING", "((0,0),(1,0),(1,1))"),
    "x": ("VARCHAR", "STRING", '<a b="1">t</a>'),
    "m": ("DECIMAL(6,2)", "NUMERIC", Decimal("-1234.56")),
    "iv": ("INTERVAL", "STRING", None),  # compared as text below
    "bt": ("VARCHAR", "STRING", "1010"),
    "vb": ("VARCHAR", "STRING", "101"),
    "tv": ("VARCHAR", "STRING", "'a' 'cat' 'fat'"),
    "o": ("BIGINT", "INT64", 4000000000),
    "tt": ("VARCHAR", "STRING", "12:30:00+02"),
    "u": ("VARCHAR", "STRING", U),
    "a1": ("INTEGER[]", "ARRAY<INT64>", [1, 2, 3]),
    "hs": ("JSON", "JSON", None),  # compared as JSON text below
    "a2": ("JSON", "JSON", None),
    "a3": ("JSON", "JSON", None),
}
JSON_TEXT = {
    "hs": '{"a": "1", "b": null}',
    "a2": "[[1,2],[3,4]]",
    "a3": '[[["a","b"]],[["c","d"]]]',
}


def create_extensions(*names: str) -> None:
    """Install contrib extensions in the test database once (concurrent tests may race)."""
    for name in names:
        with pg_connect() as connection:
            try:
                connection.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                pass  # another test created it at the same moment


@pytest.fixture
def pg_extended(pg_schema: str) -> str:
    """`<schema>.ext`: row 1 holds a value of every type, row 2 NULL everywhere."""
    create_extensions("hstore", "citext")
    s = pg_schema
    with pg_connect() as connection:
        connection.execute(f"CREATE TYPE {s}.mood AS ENUM ('sad', 'ok')")
        connection.execute(f"CREATE DOMAIN {s}.posint AS int CHECK (VALUE > 0)")
        connection.execute(f"CREATE DOMAIN {s}.amount AS numeric(10,2)")
        connection.execute(f"CREATE DOMAIN {s}.label AS text")
        connection.execute(
            f"""CREATE TABLE {s}.ext (id int PRIMARY KEY, ir int4range, tr tstzrange,
            dr daterange, nr numrange, en {s}.mood, dp {s}.posint, da {s}.amount,
            dl {s}.label, ci citext, ip inet, cd cidr, mac macaddr, pt point, pg polygon,
            x xml, m money, iv interval, bt bit(4), vb varbit, tv tsvector, o oid, tt timetz,
            u uuid, a1 int[], hs hstore, a2 int[][], a3 text[][][])"""
        )
        connection.execute("SET TIME ZONE 'Asia/Kolkata'")  # ranges of timestamptz: read in UTC
        connection.execute(
            f"""INSERT INTO {s}.ext VALUES (1, '[1,5)',
            '[2024-01-01 05:30+05:30,2024-02-01 05:30+05:30)', '[2024-01-01,2024-01-31]',
            '(1.5,2.25]', 'ok', 5, 12.3, 'x y', 'MiXeD', '192.168.0.1/24', '10.0.0.0/8',
            '08:00:2b:01:02:03', '(1.5,-2)', '((0,0),(1,0),(1,1))', '<a b="1">t</a>',
            '-1234.56', '1 year 2 mons 3 days 04:05:06.789', B'1010', B'101', 'a fat cat',
            4000000000, '12:30:00+02', '{U}', '{{1,2,3}}', 'a=>1, b=>NULL',
            '{{{{1,2}},{{3,4}}}}', '{{{{{{a,b}}}},{{{{c,d}}}}}}'),
            (2, {", ".join(["NULL"] * 27)})"""
        )
    return f"{s}.ext"


def _job(table: str, duckdb_path: Path, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        {
            **job_config(
                "postgresql",
                duckdb_path,
                source_table_name=table,
                load_type="catalog",
                dest_table_name="ext",
            ),
            **fields,
        }
    )


def test_extended_types_into_duckdb(pg_extended: str, tmp_path: Path) -> None:
    """Each type loads with the DuckDB type of EXPECTED: ranges, network, geometric, bit, xml,
    tsvector, timetz, uuid and enums as the server's exact text; domains as their base type;
    money as a decimal; oid as BIGINT (4000000000, past int32); hstore and multi-dimensional
    arrays as JSON (never flattened); NULL stays NULL; no warning."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(pg_extended, duckdb_path))

    assert result.warnings == []
    types = {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")}
    assert types == {"id": "INTEGER", **{name: kinds[0] for name, kinds in EXPECTED.items()}}
    names = [name for name, kinds in EXPECTED.items() if kinds[2] is not None]
    rows = duck_query(duckdb_path, f"SELECT {', '.join(names)} FROM {DATASET}.ext ORDER BY id")
    assert dict(zip(names, rows[0], strict=True)) == {n: EXPECTED[n][2] for n in names}
    assert rows[1] == (None,) * len(names)
    assert duck_query(
        duckdb_path, f"SELECT iv::VARCHAR, hs::VARCHAR, a2::VARCHAR, a3::VARCHAR, "
        f"json_array_length(a2) FROM {DATASET}.ext ORDER BY id"
    ) == [
        ("1 year 2 months 3 days 04:05:06.789", JSON_TEXT["hs"], JSON_TEXT["a2"],
         JSON_TEXT["a3"], 2),
        (None, None, None, None, None),
    ]  # fmt: skip


def test_extended_types_into_bigquery(
    pg_extended: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same table into the BigQuery emulator: the BigQuery types of EXPECTED, the same
    values (hstore and nested arrays as JSON, compared with TO_JSON_STRING)."""
    result = run(
        _job(pg_extended, tmp_path / "unused.duckdb", destination=bigquery_destination(bq_dataset))
    )

    types = {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")}
    assert types == {"id": "INT64", **{name: kinds[1] for name, kinds in EXPECTED.items()}}
    names = [name for name, kinds in EXPECTED.items() if kinds[2] is not None]
    rows = bq_rows(
        bigquery_client, f"SELECT {', '.join(names)} FROM `{bq_dataset}.ext` ORDER BY id"
    )
    assert dict(zip(names, rows[0], strict=True)) == {n: EXPECTED[n][2] for n in names}
    assert bq_rows(
        bigquery_client,
        f"SELECT iv, TO_JSON_STRING(hs), TO_JSON_STRING(a2), TO_JSON_STRING(a3) "
        f"FROM `{bq_dataset}.ext` ORDER BY id",
    ) == [
        ("P14M3DT14706.789S", '{"a":"1","b":null}', "[[1,2],[3,4]]", '[[["a","b"]],[["c","d"]]]'),
        (None, None, None, None),
    ]


NUMERIC_CASES = [
    # values, DuckDB type, BigQuery type, values read back from DuckDB
    (
        ["1.5", "12345678901234567890.123456789", "-7"],
        "DECIMAL(29,9)",
        "NUMERIC",
        [Decimal("1.5"), Decimal("12345678901234567890.123456789"), Decimal("-7")],
    ),
    (
        ["1.12345678901234", "100"],
        "DECIMAL(17,14)",
        "BIGNUMERIC",
        [Decimal("1.12345678901234"), Decimal("100")],
    ),
    (
        ["1234567890123456789012345678901.5", "0.25"],
        "DECIMAL(33,2)",
        "BIGNUMERIC",
        [Decimal("1234567890123456789012345678901.5"), Decimal("0.25")],
    ),
    (
        ["123456789012345678901234567890.12345678901234567890", "-0.5"],
        "VARCHAR",
        "BIGNUMERIC",
        ["123456789012345678901234567890.1234567890123456789", "-0.5"],
    ),
    (
        ["1" + "0" * 40, "0." + "0" * 39 + "1"],
        "VARCHAR",
        "STRING",
        ["1" + "0" * 40, "0." + "0" * 39 + "1"],
    ),
]


@pytest.fixture
def pg_numerics(pg_schema: str) -> str:
    """`<schema>.n`: one unconstrained numeric column per NUMERIC_CASES entry (`c0`..`c4`)."""
    width = max(len(values) for values, *_ in NUMERIC_CASES)
    with pg_connect() as connection:
        columns = ", ".join(f"c{i} numeric" for i in range(len(NUMERIC_CASES)))
        connection.execute(f"CREATE TABLE {pg_schema}.n (id int, {columns})")
        for row in range(width):
            values = [
                f"'{case[0][row]}'" if row < len(case[0]) else "NULL" for case in NUMERIC_CASES
            ]
            connection.execute(f"INSERT INTO {pg_schema}.n VALUES ({row}, {', '.join(values)})")
    return f"{pg_schema}.n"


def _loaded(case: int, width: int) -> list[Any]:
    values = NUMERIC_CASES[case][3]
    return [*values, *[None] * (width - len(values))]


def test_unconstrained_numeric_takes_the_type_its_values_need(
    pg_numerics: str, tmp_path: Path
) -> None:
    """Each unconstrained numeric column loads as the exact type of its values in the run's
    snapshot, DECIMAL(integer digits + scale, scale), the exact text past DuckDB's 38 digits:
    each value exact, never rounded to a fixed scale; no warning."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(pg_numerics, duckdb_path))

    types = {c["name"]: c["type"] for c in result.schema_}
    assert [types[f"c{i}"] for i in range(len(NUMERIC_CASES))] == [c[1] for c in NUMERIC_CASES]
    assert result.warnings == []
    for i in range(len(NUMERIC_CASES)):
        rows = duck_query(duckdb_path, f"SELECT c{i} FROM {DATASET}.ext ORDER BY id")
        assert [row[0] for row in rows] == _loaded(i, len(rows)), f"c{i}"


def test_unconstrained_numeric_into_bigquery(
    pg_numerics: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same columns get the BigQuery types NUMERIC, BIGNUMERIC or STRING (the exact text
    beyond BIGNUMERIC's 38 integer digits and 38 decimals), and the batches the loader sends
    hold every value exactly. The emulator cannot create a BIGNUMERIC column (HTTP 500, see
    test_type_matrix_mysql.py), so the NUMERIC and STRING columns are loaded into it and read
    back; the BIGNUMERIC ones are checked in the loader's Parquet columns."""
    job = _job(
        pg_numerics, tmp_path / "unused.duckdb", destination=bigquery_destination(bq_dataset)
    )
    with get_extractor("postgresql")(job).extract(SyncState()) as extraction:
        batch = pa.Table.from_batches(list(extraction.batches())).combine_chunks().to_batches()[0]
    types = {f.name: f.field_type for f in schema_fields(batch.schema)}
    assert [types[f"c{i}"] for i in range(len(NUMERIC_CASES))] == [c[2] for c in NUMERIC_CASES]
    for i in range(len(NUMERIC_CASES)):
        array, _ = loadable(batch.column(f"c{i}"), batch.schema.field(f"c{i}"))
        expected = [Decimal(v) if isinstance(v, str) and i < 4 else v for v in _loaded(i, 3)]
        assert array.to_pylist() == expected, f"c{i}"

    table = pg_numerics.split(".")[0]
    result = run(
        job.model_copy(
            update={"source_table_name": None, "custom_sql": f"SELECT id, c0, c4 FROM {table}.n"}
        )
    )

    assert {c["name"]: c["type"] for c in result.schema_}["c4"] == "STRING"
    assert bq_rows(bigquery_client, f"SELECT c0, c4 FROM `{bq_dataset}.ext` ORDER BY id") == list(
        zip(_loaded(0, 3), _loaded(4, 3), strict=True)
    )


def test_numeric_nan_and_infinities_are_counted_per_column(pg_schema: str, tmp_path: Path) -> None:
    """NaN, Infinity and -Infinity in two numeric columns load as NULL; the warnings count them
    per column; the finite values keep their exact value and the column its measured type."""
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {pg_schema}.n (id int, a numeric, b numeric(6,2))")
        connection.execute(
            f"INSERT INTO {pg_schema}.n VALUES (1, 'NaN', 'NaN'), (2, 'Infinity', 1.25), "
            "(3, '-Infinity', NULL), (4, 0.000000000001, 9999.99)"
        )
    duckdb_path = tmp_path / "w.duckdb"

    result = run(_job(f"{pg_schema}.n", duckdb_path))

    assert result.warnings == [
        "column `a`: 3 values NaN/Infinity loaded as NULL (on_unrepresentable: nearest)",
        "column `b`: 1 value NaN/Infinity loaded as NULL (on_unrepresentable: nearest)",
    ]
    assert {c["name"]: c["type"] for c in result.schema_}["a"] == "DECIMAL(13,12)"
    assert duck_query(duckdb_path, f"SELECT id, a, b FROM {DATASET}.ext ORDER BY id") == [
        (1, None, None),
        (2, None, Decimal("1.25")),
        (3, None, None),
        (4, Decimal("0.000000000001"), Decimal("9999.99")),
    ]


def test_array_dimensions_are_decided_per_run_window(pg_schema: str, tmp_path: Path) -> None:
    """An int[] column whose rows are all one-dimensional stays a list (INTEGER[]); once a
    two-dimensional value is in the run's window the column is JSON for every row of the run,
    one-dimensional values as JSON arrays: nothing is flattened."""
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {pg_schema}.a (id int, v int[], t timestamptz)")
        connection.execute(
            f"INSERT INTO {pg_schema}.a VALUES (1, '{{1,2}}', '2024-01-01'), (2, NULL, '2024-01-01')"
        )
    flat = run(_job(f"{pg_schema}.a", tmp_path / "flat.duckdb"))
    assert {c["name"]: c["type"] for c in flat.schema_}["v"] == "INTEGER[]"

    with pg_connect() as connection:
        connection.execute(f"INSERT INTO {pg_schema}.a VALUES (3, '{{{{5,6}},{{7,8}}}}', now())")
    nested = tmp_path / "nested.duckdb"
    result = run(_job(f"{pg_schema}.a", nested))

    assert {c["name"]: c["type"] for c in result.schema_}["v"] == "JSON"
    assert duck_query(nested, f"SELECT id, v::VARCHAR FROM {DATASET}.ext ORDER BY id") == [
        (1, "[1,2]"),
        (2, None),
        (3, "[[5,6],[7,8]]"),
    ]


def test_unconstrained_numeric_types_of_successive_runs_widen(
    pg_schema: str, tmp_path: Path
) -> None:
    """Incremental runs measure each window's values: DECIMAL(15,14) for 1.12345678901234, then
    DECIMAL(10,1) for 123456789.5, and the destination column widens in place to DECIMAL(23,14),
    which holds both; a window with only small values later loads into it unchanged."""
    table = f"{pg_schema}.n"
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v numeric)")
        connection.execute(f"INSERT INTO {table} VALUES (1, 1.12345678901234)")
    path = tmp_path / "w.duckdb"
    job = _job(table, path, load_type="transactional", timestamp_column="id", primary_key=["id"])

    first = run(job)
    with pg_connect() as connection:
        connection.execute(f"INSERT INTO {table} VALUES (2, 123456789.5)")
    second = run(job, first.state)
    with pg_connect() as connection:
        connection.execute(f"INSERT INTO {table} VALUES (3, 0.5)")
    third = run(job, second.state)

    assert [{c["name"]: c["type"] for c in r.schema_}["v"] for r in (first, second, third)] == [
        "DECIMAL(15,14)",
        "DECIMAL(23,14)",
        "DECIMAL(23,14)",
    ]
    assert duck_query(path, f"SELECT id, v FROM {DATASET}.ext ORDER BY id") == [
        (1, Decimal("1.12345678901234")),
        (2, Decimal("123456789.5")),
        (3, Decimal("0.5")),
    ]
