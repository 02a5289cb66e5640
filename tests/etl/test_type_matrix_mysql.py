"""Type fidelity matrix for MySQL / MariaDB (issue 5, item 3; shared/DESIGN.md §5 "Types are
exact"): values of every MariaDB column type loaded into DuckDB and into the BigQuery emulator,
each value checked exactly, NULL checked wherever a row has no value.

Decisions:
- tinyint(1) / boolean stay integers (TINYINT / INT64): -128, 2 and 127 are kept, never folded
  into a boolean. Unsigned integers get the next wider signed type; bigint unsigned (up to
  2^64-1) is DuckDB UBIGINT and BigQuery NUMERIC (exact: NUMERIC holds 29 integer digits, and
  BigQuery has no unsigned 64-bit type), never FLOAT64 and never wrapped.
- bit(M): BIGINT for M <= 63, UBIGINT / NUMERIC for bit(64) (the same rule as bigint unsigned).
- decimal(10,2): DECIMAL(10,2) / NUMERIC. decimal(65,30): BigQuery BIGNUMERIC, exact to all 65
  digits; DuckDB's DECIMAL stops at 38 digits, so DuckDB gets each value's exact decimal text
  (VARCHAR), never a double or a rounded value.
- datetime(6): wall clock (DuckDB TIMESTAMP, BigQuery DATETIME); timestamp(6): the UTC instant
  (TIMESTAMP WITH TIME ZONE / TIMESTAMP) whatever the writing session's time_zone.
- time(6) (-838:59:59 .. 838:59:59): DuckDB INTERVAL; BigQuery INT64 microseconds, since
  BigQuery TIME holds only 00:00:00 .. 23:59:59.999999.
- year: SMALLINT / INT64; enum and set: their text (a set as `x,y`, the empty set as '').
- binary(N) keeps MariaDB's 0x00 padding; char(N) arrives without trailing spaces (MariaDB
  strips them on read unless PAD_CHAR_TO_FULL_LENGTH).
- json: MariaDB's JSON is LONGTEXT with a json_valid CHECK, and the protocol describes it as
  LONGTEXT, so it loads as text (VARCHAR / STRING) holding the document exactly as stored; SQL
  NULL and JSON `null` stay apart (NULL vs 'null'). MySQL 8's native JSON (protocol type 245)
  loads as JSON.
- zero and invalid dates ('0000-00-00', '2020-02-30', '0000-00-00 00:00:00'), stored under a
  permissive sql_mode, load as NULL and the run's warnings count them per column.

Gaps:
- float: exact to the bit (connectorx reads FLOAT through the binary protocol); FLT_MAX
  and FLT_MIN below need all 9 digits. tests/etl/extract/test_mysql.py adds 1 + 2^-23 and
  the smallest subnormal.
- BigQuery emulator (bqemulator 1.4.0) vs real BigQuery: it maps BIGNUMERIC to DuckDB
  DECIMAL(76, 38), which its DuckDB rejects ("DECIMAL type width must be between 1 and 38"), so
  creating any table with a BIGNUMERIC column answers HTTP 500. The decimal(65,30) test checks
  the BigQuery schema and the exact Parquet column the loader sends, and that the run against
  the emulator fails (transient) without leaving a table; real BigQuery stores the value.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import JobConfig, run
from etl.exceptions import TransientError
from etl.load.bigquery.types import loadable, schema_fields
from etl.registry import get_extractor
from etl.state import SyncState
from etl.transform import BatchTransformer
from tests.conftest import mysql_connect
from tests.etl.support import DATASET, bigquery_destination, bq_rows, duck_query, job_config

pytestmark = pytest.mark.integration

U64 = 2**64 - 1
IDS = range(1, 7)


def _f32(value: float) -> float:
    """The float32 nearest `value`, as a Python float (what a FLOAT column holds)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


# column: (MariaDB type, {id: SQL literal}); ids without a literal are NULL, id 3 is all NULL
COLUMNS: dict[str, tuple[str, dict[int, str]]] = {
    "ti1": ("tinyint(1)", {1: "-128", 2: "127", 4: "0", 5: "1", 6: "2"}),
    "bo": ("boolean", {1: "true", 2: "false"}),
    "ti": ("tinyint", {1: "-128", 2: "127"}),
    "si": ("smallint", {1: "-32768", 2: "32767"}),
    "mi": ("mediumint", {1: "-8388608", 2: "8388607"}),
    "i": ("int", {1: "-2147483648", 2: "2147483647"}),
    "bi": ("bigint", {1: "-9223372036854775808", 2: "9223372036854775807"}),
    "tiu": ("tinyint unsigned", {1: "0", 2: "255"}),
    "siu": ("smallint unsigned", {1: "0", 2: "65535"}),
    "miu": ("mediumint unsigned", {1: "0", 2: "16777215"}),
    "iu": ("int unsigned", {1: "0", 2: "4294967295"}),
    "biu": ("bigint unsigned", {1: "0", 2: str(U64), 4: str(2**63)}),
    "d10": ("decimal(10,2)", {1: "-99999999.99", 2: "99999999.99", 4: "0.01"}),
    "f": ("float", {1: "-3.4028234663852886e38", 2: "1.1754943508222875e-38", 4: "1.5"}),
    "d": (
        "double",
        {
            1: "-1.7976931348623157e308",
            2: "2.2250738585072014e-308",
            4: "1.0000000000000002",
            5: "4.9e-324",
        },
    ),
    "b1": ("bit(1)", {1: "b'0'", 2: "b'1'"}),
    "b64": ("bit(64)", {1: "b'0'", 2: f"b'{'1' * 64}'", 4: f"b'1{'0' * 63}'"}),
    "ch": ("char(5)", {1: "'ab'", 2: "''", 4: "'żółw'"}),
    "vc": ("varchar(20)", {1: "'żółw 🐢 €'", 2: "''"}),
    "tx": ("text", {1: "'a''b\n\"\\\\ 日本'", 2: "''"}),
    "bn": ("binary(4)", {1: "x'00ff'", 2: "''"}),
    "vb": ("varbinary(8)", {1: "x'00ff'", 2: "''"}),
    "bl": ("blob", {1: "x'ff00'", 2: "''"}),
    "dt": ("date", {1: "'1000-01-01'", 2: "'9999-12-31'", 4: "'2024-02-29'"}),
    "dtm": (
        "datetime(6)",
        {
            1: "'1000-01-01 00:00:00'",
            2: "'9999-12-31 23:59:59.999999'",
            4: "'2024-03-31 02:30:00.123456'",
        },
    ),
    # written from a session at +05:30: 1970-01-01 00:00:01 and 2038-01-19 03:14:07.999999 UTC
    "ts": (
        "timestamp(6) NULL",
        {
            1: "'1970-01-01 05:30:01'",
            2: "'2038-01-19 08:44:07.999999'",
            4: "'2024-03-31 07:00:00.000001'",
        },
    ),
    "tm": (
        "time(6)",
        {
            1: "'-838:59:59'",
            2: "'838:59:59'",
            4: "'-00:00:00.000001'",
            5: "'24:00:00.5'",
            6: "'00:00:00'",
        },
    ),
    "y": ("year", {1: "1901", 2: "2155", 4: "0"}),
    "j": ("json", {1: "'{\"a\": null}'", 2: "'null'", 4: "'[1, 2.5, \"é\"]'"}),
    "e": ("enum('a','é','z z')", {1: "'a'", 2: "'z z'", 4: "'é'"}),
    "st": ("set('x','y')", {1: "'x,y'", 2: "''", 4: "'y'"}),
}

EXPECTED: dict[str, dict[int, Any]] = {
    # column: {id: value}; every other id is NULL
    "ti1": {1: -128, 2: 127, 4: 0, 5: 1, 6: 2},
    "bo": {1: 1, 2: 0},
    "ti": {1: -128, 2: 127},
    "si": {1: -32768, 2: 32767},
    "mi": {1: -8388608, 2: 8388607},
    "i": {1: -2147483648, 2: 2147483647},
    "bi": {1: -9223372036854775808, 2: 9223372036854775807},
    "tiu": {1: 0, 2: 255},
    "siu": {1: 0, 2: 65535},
    "miu": {1: 0, 2: 16777215},
    "iu": {1: 0, 2: 4294967295},
    "biu": {1: 0, 2: U64, 4: 2**63},
    "d10": {1: Decimal("-99999999.99"), 2: Decimal("99999999.99"), 4: Decimal("0.01")},
    "f": {1: _f32(-3.4028234663852886e38), 2: _f32(1.1754943508222875e-38), 4: 1.5},
    "d": {1: -1.7976931348623157e308, 2: 2.2250738585072014e-308, 4: 1.0000000000000002, 5: 5e-324},
    "b1": {1: 0, 2: 1},
    "b64": {1: 0, 2: U64, 4: 2**63},
    "ch": {1: "ab", 2: "", 4: "żółw"},
    "vc": {1: "żółw 🐢 €", 2: ""},
    "tx": {1: "a'b\n\"\\ 日本", 2: ""},
    "bn": {1: b"\x00\xff\x00\x00", 2: b"\x00\x00\x00\x00"},
    "vb": {1: b"\x00\xff", 2: b""},
    "bl": {1: b"\xff\x00", 2: b""},
    "dt": {1: dt.date(1000, 1, 1), 2: dt.date(9999, 12, 31), 4: dt.date(2024, 2, 29)},
    "dtm": {
        1: dt.datetime(1000, 1, 1),
        2: dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        4: dt.datetime(2024, 3, 31, 2, 30, 0, 123456),
    },
    "ts": {
        1: dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
        2: dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC),
        4: dt.datetime(2024, 3, 31, 1, 30, 0, 1, tzinfo=dt.UTC),
    },
    "tm": {
        1: -dt.timedelta(hours=838, minutes=59, seconds=59),
        2: dt.timedelta(hours=838, minutes=59, seconds=59),
        4: -dt.timedelta(microseconds=1),
        5: dt.timedelta(hours=24, milliseconds=500),
        6: dt.timedelta(0),
    },
    "y": {1: 1901, 2: 2155, 4: 0},
    "j": {1: '{"a": null}', 2: "null", 4: '[1, 2.5, "é"]'},
    "e": {1: "a", 2: "z z", 4: "é"},
    "st": {1: "x,y", 2: "", 4: "y"},
}
DUCKDB_TYPES = {
    "ti1": "TINYINT",
    "bo": "TINYINT",
    "ti": "TINYINT",
    "si": "SMALLINT",
    "mi": "INTEGER",
    "i": "INTEGER",
    "bi": "BIGINT",
    "tiu": "SMALLINT",
    "siu": "INTEGER",
    "miu": "INTEGER",
    "iu": "BIGINT",
    "biu": "UBIGINT",
    "d10": "DECIMAL(10,2)",
    "f": "FLOAT",
    "d": "DOUBLE",
    "b1": "BIGINT",
    "b64": "UBIGINT",
    "ch": "VARCHAR",
    "vc": "VARCHAR",
    "tx": "VARCHAR",
    "bn": "BLOB",
    "vb": "BLOB",
    "bl": "BLOB",
    "dt": "DATE",
    "dtm": "TIMESTAMP",
    "ts": "TIMESTAMP WITH TIME ZONE",
    "tm": "INTERVAL",
    "y": "SMALLINT",
    "j": "VARCHAR",
    "e": "VARCHAR",
    "st": "VARCHAR",
}
BIGQUERY_TYPES = {
    **{
        name: "INT64"
        for name in (
            "ti1",
            "bo",
            "ti",
            "si",
            "mi",
            "i",
            "bi",
            "tiu",
            "siu",
            "miu",
            "iu",
            "b1",
            "tm",
            "y",
        )
    },
    "biu": "NUMERIC",
    "b64": "NUMERIC",
    "d10": "NUMERIC",
    "f": "FLOAT64",
    "d": "FLOAT64",
    **{name: "STRING" for name in ("ch", "vc", "tx", "j", "e", "st")},
    "bn": "BYTES",
    "vb": "BYTES",
    "bl": "BYTES",
    "dt": "DATE",
    "dtm": "DATETIME",
    "ts": "TIMESTAMP",
}


def _execute(database: str, *statements: str) -> None:
    connection = mysql_connect(database)
    try:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
    finally:
        connection.close()


@pytest.fixture
def mysql_types(mysql_database: str) -> str:
    """`<database>.types`: ids 1 and 2 hold each type's extremes and empties, id 3 is all NULL,
    ids 4-6 hold further values of some columns (NULL elsewhere). Written from a session at
    +05:30, which the timestamp(6) instants must not depend on."""
    columns = ", ".join(f"`{name}` {kind}" for name, (kind, _) in COLUMNS.items())
    inserts = []
    for id_ in IDS:
        names = [name for name, (_, values) in COLUMNS.items() if id_ in values]
        literals = [COLUMNS[name][1][id_] for name in names]
        inserts.append(
            f"INSERT INTO types (id{''.join(f', `{n}`' for n in names)}) "
            f"VALUES ({id_}{''.join(f', {v}' for v in literals)})"
        )
    _execute(
        mysql_database,
        f"CREATE TABLE types (id int PRIMARY KEY, {columns}) DEFAULT CHARSET=utf8mb4",
        "SET time_zone = '+05:30'",
        *inserts,
    )
    return f"{mysql_database}.types"


def _job(table: str, duckdb_path: Path, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        {
            **job_config(
                "mysql",
                duckdb_path,
                source_table_name=table,
                load_type="catalog",
                dest_table_name="types",
            ),
            **fields,
        }
    )


def _types(result: Any) -> dict[str, str]:
    return {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")}


def _assert_values(rows: list[tuple[Any, ...]], names: list[str], expected: dict) -> None:
    by_id = {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}
    assert sorted(by_id) == list(IDS)
    for name in names:
        actual = {id_: by_id[id_][name] for id_ in IDS}
        assert actual == {id_: expected[name].get(id_) for id_ in IDS}, name


def test_mysql_types_into_duckdb(mysql_types: str, tmp_path: Path) -> None:
    """Every value arrives exactly with the DuckDB type of DUCKDB_TYPES; tinyint(1) stays an
    integer, bigint unsigned and bit(64) keep 2^64-1, NULL stays NULL."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(mysql_types, duckdb_path))

    assert result.warnings == []
    assert _types(result) == {"id": "INTEGER", **DUCKDB_TYPES}
    names = list(EXPECTED)
    rows = duck_query(duckdb_path, f"SELECT id, {', '.join(names)} FROM {DATASET}.types")
    _assert_values(rows, names, EXPECTED)


def _big_table(database: str) -> str:
    _execute(
        database,
        "CREATE TABLE big (id int PRIMARY KEY, d65 decimal(65,30))",
        f"INSERT INTO big VALUES (1, {'9' * 35}.{'9' * 30}), (2, -{'1' * 35}.{'0' * 29}1), "
        "(3, NULL), (4, 0)",
    )
    return f"{database}.big"


D65 = {
    1: Decimal(f"{'9' * 35}.{'9' * 30}"),
    2: Decimal(f"-{'1' * 35}.{'0' * 29}1"),
    3: None,
    4: Decimal("0E-30"),
}


def test_decimal_65_digits_loads_as_exact_text_in_duckdb(
    mysql_database: str, tmp_path: Path
) -> None:
    """decimal(65,30) cannot be a DuckDB DECIMAL (38 digits at most): the column loads as each
    value's exact decimal text (shortest form), never a double or a rounded value."""
    duckdb_path = tmp_path / "w.duckdb"

    result = run(_job(_big_table(mysql_database), duckdb_path))

    assert _types(result)["d65"] == "VARCHAR"
    assert duck_query(duckdb_path, f"SELECT id, d65 FROM {DATASET}.types ORDER BY id") == [
        (1, f"{'9' * 35}.{'9' * 30}"),
        (2, f"-{'1' * 35}.{'0' * 29}1"),
        (3, None),
        (4, "0"),
    ]


ZERO_DATES = {
    # column: (type, {id: literal}); id 1 valid, 2 zero, 3 invalid, 4 NULL
    "d": ("date", {1: "'2020-02-29'", 2: "'0000-00-00'", 3: "'2020-02-30'"}),
    "dtm": (
        "datetime(6)",
        {1: "'2020-02-29 12:00:00.5'", 2: "'0000-00-00 00:00:00'", 3: "'2021-04-31 00:00:00'"},
    ),
    "ts": ("timestamp(6) NULL", {1: "'2020-02-29 12:00:00.5'", 2: "'0000-00-00 00:00:00'"}),
}


@pytest.fixture
def mysql_zero_dates(mysql_database: str) -> str:
    """`<database>.dates`, written under sql_mode 'ALLOW_INVALID_DATES' (no NO_ZERO_DATE, not
    strict) so zero dates and day 30 of February are stored as written."""
    columns = ", ".join(f"`{name}` {kind}" for name, (kind, _) in ZERO_DATES.items())
    inserts = []
    for id_ in range(1, 5):
        names = [name for name, (_, values) in ZERO_DATES.items() if id_ in values]
        inserts.append(
            f"INSERT INTO dates (id{''.join(f', `{n}`' for n in names)}) VALUES ({id_}"
            f"{''.join(f', {ZERO_DATES[n][1][id_]}' for n in names)})"
        )
    _execute(
        mysql_database,
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
        f"CREATE TABLE dates (id int PRIMARY KEY, {columns})",
        *inserts,
    )
    return f"{mysql_database}.dates"


ZERO_DATES_EXPECTED = [
    (
        1,
        dt.date(2020, 2, 29),
        dt.datetime(2020, 2, 29, 12, 0, 0, 500000),
        dt.datetime(2020, 2, 29, 12, 0, 0, 500000, tzinfo=dt.UTC),
    ),
    (2, None, None, None),
    (3, None, None, None),
    (4, None, None, None),
]
ZERO_DATES_WARNINGS = [
    "column `d`: 2 values zero/invalid date loaded as NULL (on_unrepresentable: nearest)",
    "column `dtm`: 2 values zero/invalid date loaded as NULL (on_unrepresentable: nearest)",
    "column `ts`: 1 value zero/invalid date loaded as NULL (on_unrepresentable: nearest)",
]


def test_zero_and_invalid_dates_load_as_null_with_warnings_into_duckdb(
    mysql_zero_dates: str, tmp_path: Path
) -> None:
    """'0000-00-00', '2020-02-30' and '0000-00-00 00:00:00' load as NULL; the run's warnings
    count them per column (a NULL in the source is not counted)."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(mysql_zero_dates, duckdb_path, dest_table_name="dates"))

    assert result.warnings == ZERO_DATES_WARNINGS
    assert result.rows_loaded == 4
    assert duck_query(duckdb_path, f"SELECT id, d, dtm, ts FROM {DATASET}.dates ORDER BY id") == (
        ZERO_DATES_EXPECTED
    )


def test_mysql_types_into_bigquery(
    mysql_types: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """Every value arrives exactly with the BigQuery type of BIGQUERY_TYPES: bigint unsigned and
    bit(64) as NUMERIC, time(6) as INT64 microseconds, timestamp(6) as the UTC instant."""
    result = run(
        _job(mysql_types, tmp_path / "unused.duckdb", destination=bigquery_destination(bq_dataset))
    )

    assert result.warnings == []
    assert _types(result) == {"id": "INT64", **BIGQUERY_TYPES}
    names = list(EXPECTED)
    rows = bq_rows(bigquery_client, f"SELECT id, {', '.join(names)} FROM `{bq_dataset}.types`")
    micros = {id_: value // dt.timedelta(microseconds=1) for id_, value in EXPECTED["tm"].items()}
    numeric = {
        name: {id_: Decimal(v) for id_, v in EXPECTED[name].items()} for name in ("biu", "b64")
    }
    _assert_values(rows, names, {**EXPECTED, "tm": micros, **numeric})


def test_decimal_65_digits_into_bigquery_bignumeric(
    mysql_database: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """decimal(65,30) maps to a BIGNUMERIC column, and the Parquet column the loader sends holds
    all 65 digits (decimal256(65, 30)). The emulator cannot create a BIGNUMERIC column (see the
    module docstring), so the run stops at the creation of the staging table with a transient
    error and leaves no table behind."""
    job = _job(
        _big_table(mysql_database),
        tmp_path / "unused.duckdb",
        dest_table_name="big",
        destination=bigquery_destination(bq_dataset),
    )
    with get_extractor("mysql")(job).extract(SyncState()) as extraction:
        batches = [BatchTransformer(job, {}).transform(b) for b in extraction.batches()]
    batch = pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    fields = {f.name: (f.field_type, f.mode) for f in schema_fields(batch.schema)}
    array, field = loadable(batch.column("d65"), batch.schema.field("d65"))

    assert fields == {"id": ("INT64", "NULLABLE"), "d65": ("BIGNUMERIC", "NULLABLE")}
    assert field.type == pa.decimal256(65, 30)
    assert dict(zip(batch.column("id").to_pylist(), array.to_pylist(), strict=True)) == D65

    with pytest.raises(TransientError, match=r"creation of .*\.big__etl_staging_"):
        run(job)
    assert [t.table_id for t in bigquery_client.list_tables(bq_dataset)] == ["_etl_loads"]


def test_zero_and_invalid_dates_load_as_null_with_warnings_into_bigquery(
    mysql_zero_dates: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """As into DuckDB: zero and invalid dates are NULL in BigQuery, counted per column."""
    result = run(
        _job(
            mysql_zero_dates,
            tmp_path / "unused.duckdb",
            dest_table_name="dates",
            destination=bigquery_destination(bq_dataset),
        )
    )

    assert result.warnings == ZERO_DATES_WARNINGS
    assert (
        bq_rows(bigquery_client, f"SELECT id, d, dtm, ts FROM `{bq_dataset}.dates` ORDER BY id")
        == ZERO_DATES_EXPECTED
    )
