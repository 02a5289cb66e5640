"""Real-world corpus, PostgreSQL inputs (issue 17): each case rebuilds a table from a public bug
report against a peer tool and checks the exact values, destination types, row counts and the
run's warnings (what was adjusted). Types and rules: etl/extract/postgres/types.py and
docs/config.md, "Database types"."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl.exceptions import InfiniteCursorError, UnrepresentableValueError
from tests.etl.support import bq_rows, duck_table_exists
from tests.etl.test_pg_types import create_extensions
from tests.realworld.db_support import duck_rows, job, load, pg, types

pytestmark = pytest.mark.integration

NAN_WARNING = "column `{}`: {} NaN/Infinity loaded as NULL (on_unrepresentable: nearest)"


def test_two_dimensional_float_arrays_stay_nested(pg_schema: str, tmp_path: Path) -> None:
    """A `double precision[][]` covariance matrix loads as the nested JSON array
    `[[0.98,0.67,0],[0.67,0.41,0.59]]`, not flattened and not NULLs; the one-dimensional
    `double precision[]` next to it stays a DOUBLE[] list.
    https://github.com/airbytehq/airbyte/issues/37399"""
    pg(
        f"CREATE TABLE {pg_schema}.matrix (id int, state double precision[], "
        "covariance double precision[][])",
        f"INSERT INTO {pg_schema}.matrix VALUES (1, ARRAY[0.23,0.45,0.29], "
        "ARRAY[ARRAY[0.98,0.67,0],ARRAY[0.67,0.41,0.59]])",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.matrix", path))

    assert (result.rows_loaded, result.warnings) == (1, [])
    assert types(result) == {"id": "INTEGER", "state": "DOUBLE[]", "covariance": "JSON"}
    assert duck_rows(path, "state, covariance::VARCHAR, covariance->1->>2") == [
        ([0.23, 0.45, 0.29], "[[0.98,0.67,0],[0.67,0.41,0.59]]", "0.59")
    ]


def test_two_dimensional_arrays_into_bigquery(
    pg_schema: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same matrix into BigQuery (which has no array of arrays): JSON holding the nested
    array; the one-dimensional column is ARRAY<FLOAT64>.
    https://github.com/airbytehq/airbyte/issues/37399"""
    pg(
        f"CREATE TABLE {pg_schema}.matrix (id int, state double precision[], "
        "covariance double precision[][])",
        f"INSERT INTO {pg_schema}.matrix VALUES (1, ARRAY[0.23,0.45,0.29], "
        "ARRAY[ARRAY[0.98,0.67,0],ARRAY[0.67,0.41,0.59]])",
    )

    result = load(job("postgresql", f"{pg_schema}.matrix", tmp_path / "x", bq_dataset=bq_dataset))

    assert types(result) == {"id": "INT64", "state": "ARRAY<FLOAT64>", "covariance": "JSON"}
    assert bq_rows(
        bigquery_client, f"SELECT state, TO_JSON_STRING(covariance) FROM `{bq_dataset}.t`"
    ) == [([0.23, 0.45, 0.29], "[[0.98,0.67,0],[0.67,0.41,0.59]]")]


def test_arrays_of_every_element_type(pg_schema: str, tmp_path: Path) -> None:
    """One-dimensional arrays of text (with NULL elements and spaces), boolean, date, bigint,
    uuid and numeric load as lists of their element type; numeric elements (which may be NaN)
    as their exact text. https://github.com/airbytehq/airbyte/pull/16990"""
    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    pg(
        f"CREATE TABLE {pg_schema}.arrays (id int, t text[], b boolean[], d date[], i int8[], "
        "u uuid[], n numeric[])",
        f"INSERT INTO {pg_schema}.arrays VALUES (1, '{{a,\"b c\",NULL}}', '{{t,f}}', "
        f"'{{2024-02-29}}', '{{9223372036854775807,-1}}', '{{{u}}}', '{{1.50,NaN}}'), "
        "(2, '{}', NULL, NULL, NULL, NULL, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.arrays", path))

    assert (result.rows_loaded, result.warnings) == (2, [])
    assert types(result) == {
        "id": "INTEGER",
        "t": "VARCHAR[]",
        "b": "BOOLEAN[]",
        "d": "DATE[]",
        "i": "BIGINT[]",
        "u": "VARCHAR[]",
        "n": "VARCHAR[]",
    }
    assert duck_rows(path, "t, b, d, i, u, n") == [
        (
            ["a", "b c", None],
            [True, False],
            [dt.date(2024, 2, 29)],
            [9223372036854775807, -1],
            [u],
            ["1.50", "NaN"],
        ),
        ([], None, None, None, None, None),
    ]


def test_numeric_with_many_decimals_keeps_its_decimal_point(pg_schema: str, tmp_path: Path) -> None:
    """Unconstrained numeric values with 18 decimals load exactly as DECIMAL(20,18): the
    decimal point does not move (0.123456789012345678 is not 12345.6...).
    https://github.com/slingdata-io/sling-cli/issues/405"""
    pg(
        f"CREATE TABLE {pg_schema}.n (id int, v numeric)",
        f"INSERT INTO {pg_schema}.n VALUES (1, 0.123456789012345678), (2, 12.5), (3, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.n", path))

    assert (result.rows_loaded, result.warnings, types(result)["v"]) == (3, [], "DECIMAL(20,18)")
    assert duck_rows(path, "id, v") == [
        (1, Decimal("0.123456789012345678")),
        (2, Decimal("12.5")),
        (3, None),
    ]


def test_numeric_beyond_nine_decimals_is_not_cut_to_38_9(pg_schema: str, tmp_path: Path) -> None:
    """A NUMBER mapped to DECIMAL(38, 9) loses everything past the 9th decimal; here pi to 20
    decimals loads as DECIMAL(21,20) with every digit.
    https://github.com/airbytehq/airbyte/pull/53686"""
    pg(
        f"CREATE TABLE {pg_schema}.n (id int, v numeric)",
        f"INSERT INTO {pg_schema}.n VALUES (1, 3.14159265358979323846), (2, 0)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.n", path))

    assert (result.rows_loaded, result.warnings, types(result)["v"]) == (2, [], "DECIMAL(21,20)")
    assert duck_rows(path, "v") == [(Decimal("3.14159265358979323846"),), (Decimal("0"),)]


@pytest.fixture
def pg_tricky(pg_schema: str) -> str:
    """The types a peer connector returned wrong values for: bit, money over 1,000, numeric
    NaN, time, timetz."""
    pg(
        f"CREATE TABLE {pg_schema}.tricky (id int, bt bit(3), m money, n numeric, tm time, "
        "ttz timetz)",
        f"INSERT INTO {pg_schema}.tricky VALUES (1, B'101', '1000.01', 'NaN', '04:05:06', "
        "'04:05:06+03'), (2, B'010', '-0.5', 2.5, '23:59:59.999999', '00:00:00-11:30')",
    )
    return f"{pg_schema}.tricky"


def test_bit_money_nan_and_times_keep_their_values(pg_tricky: str, tmp_path: Path) -> None:
    """bit(3) loads as its bits ('101', not true), money over 1,000 as its exact decimal, a
    time without a date as TIME (not 1970-01-01T04:05:06Z), timetz as its text with the
    offset, and numeric NaN as NULL counted in the warnings.
    https://github.com/airbytehq/airbyte/issues/4071"""
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", pg_tricky, path))

    assert result.rows_loaded == 2
    assert result.warnings == [NAN_WARNING.format("n", "1 value")]
    assert types(result) == {
        "id": "INTEGER",
        "bt": "VARCHAR",
        "m": "DECIMAL(6,2)",
        "n": "DECIMAL(2,1)",
        "tm": "TIME",
        "ttz": "VARCHAR",
    }
    assert duck_rows(path, "bt, m, n, tm, ttz") == [
        ("101", Decimal("1000.01"), None, dt.time(4, 5, 6), "04:05:06+03"),
        ("010", Decimal("-0.5"), Decimal("2.5"), dt.time(23, 59, 59, 999999), "00:00:00-11:30"),
    ]


def test_numeric_nan_fails_the_run_when_asked(pg_tricky: str, tmp_path: Path) -> None:
    """With `on_unrepresentable: fail` the same NaN fails the run naming the table, the column
    and the value; nothing is written.
    https://github.com/airbytehq/airbyte/issues/4071"""
    path = tmp_path / "w.duckdb"

    with pytest.raises(
        UnrepresentableValueError,
        match=rf"Column `n` of {pg_tricky.replace('.', '[.]')} holds 'NaN'",
    ):
        load(job("postgresql", pg_tricky, path, on_unrepresentable="fail"))

    assert not duck_table_exists(path, "t")


def test_money_extremes_load_exactly(pg_schema: str, tmp_path: Path) -> None:
    """money's whole range, -92233720368547758.08 to 92233720368547758.07, loads exactly as a
    decimal (read as numeric on the server, never as a double).
    https://github.com/airbytehq/airbyte/issues/7870"""
    pg(
        f"CREATE TABLE {pg_schema}.m (id int, m money)",
        f"INSERT INTO {pg_schema}.m VALUES (1, '-92233720368547758.08'), "
        "(2, '92233720368547758.07'), (3, '1000.01')",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.m", path))

    assert (result.rows_loaded, result.warnings, types(result)["m"]) == (3, [], "DECIMAL(19,2)")
    assert duck_rows(path, "m") == [
        (Decimal("-92233720368547758.08"),),
        (Decimal("92233720368547758.07"),),
        (Decimal("1000.01"),),
    ]


def test_hstore_loads_as_a_json_object(
    pg_schema: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """An hstore column loads as a JSON object of its keys and values (NULL values as JSON
    null, quotes escaped), in DuckDB and in BigQuery.
    https://github.com/MeltanoLabs/tap-postgres/pull/636"""
    create_extensions("hstore")
    pg(
        f"CREATE TABLE {pg_schema}.h (id int, attrs hstore)",
        f'INSERT INTO {pg_schema}.h VALUES (1, \'"a b"=>"1", c=>NULL, "q\\""=>"x"\'), '
        "(2, ''), (3, NULL)",
    )
    path = tmp_path / "w.duckdb"
    expected = [{"a b": "1", "c": None, 'q"': "x"}, {}, None]

    result = load(job("postgresql", f"{pg_schema}.h", path))
    on_bigquery = load(job("postgresql", f"{pg_schema}.h", path, bq_dataset=bq_dataset))

    assert (result.rows_loaded, result.warnings, types(result)["attrs"]) == (3, [], "JSON")
    assert [None if v is None else json.loads(v) for (v,) in duck_rows(path, "attrs")] == expected
    assert types(on_bigquery)["attrs"] == "JSON"
    rows = bq_rows(
        bigquery_client, f"SELECT TO_JSON_STRING(attrs) FROM `{bq_dataset}.t` ORDER BY id"
    )
    assert [None if v is None else json.loads(v) for (v,) in rows] == expected


def test_network_and_geometric_types_load_as_their_exact_text(
    pg_schema: str, tmp_path: Path
) -> None:
    """inet, cidr, macaddr, macaddr8 and the geometric types (point, line, lseg, box, path,
    polygon, circle) load as PostgreSQL's own text of each value.
    https://github.com/airbytehq/airbyte/issues/7727"""
    columns = {
        "ip": ("inet", "2001:db8::1/64"),
        "net": ("cidr", "192.168.100.128/25"),
        "mac": ("macaddr", "08:00:2b:01:02:03"),
        "mac8": ("macaddr8", "08:00:2b:01:02:03:04:05"),
        "pt": ("point", "(1.5,-2)"),
        "ln": ("line", "{1,-1,0}"),
        "seg": ("lseg", "[(0,0),(1,1)]"),
        "bx": ("box", "(1,1),(0,0)"),
        "pth": ("path", "[(0,0),(1,1),(2,0)]"),
        "pg": ("polygon", "((0,0),(1,0),(1,1))"),
        "cir": ("circle", "<(0,0),2>"),
    }
    pg(
        f"CREATE TABLE {pg_schema}.g (id int, "
        + ", ".join(f"{name} {kind}" for name, (kind, _) in columns.items())
        + ")",
        f"INSERT INTO {pg_schema}.g VALUES (1, "
        + ", ".join(f"'{value}'" for _, value in columns.values())
        + f"), (2, {', '.join(['NULL'] * len(columns))})",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.g", path))

    assert (result.rows_loaded, result.warnings) == (2, [])
    assert types(result) == {"id": "INTEGER", **{name: "VARCHAR" for name in columns}}
    assert duck_rows(path, ", ".join(columns), "id") == [
        tuple(value for _, value in columns.values()),
        (None,) * len(columns),
    ]


def test_enum_columns_and_enum_arrays_load_as_text(pg_schema: str, tmp_path: Path) -> None:
    """A user-defined enum column loads as its label, an array of enums as a list of labels.
    https://github.com/dlt-hub/verified-sources/issues/656"""
    pg(
        f"CREATE TYPE {pg_schema}.enum_status AS ENUM ('created', 'in_progress', 'done')",
        f"CREATE TABLE {pg_schema}.e (id int, status {pg_schema}.enum_status, "
        f"history {pg_schema}.enum_status[])",
        f"INSERT INTO {pg_schema}.e VALUES (1, 'in_progress', '{{created,in_progress}}'), "
        "(2, NULL, '{}')",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.e", path))

    assert (result.rows_loaded, result.warnings) == (2, [])
    assert types(result) == {"id": "INTEGER", "status": "VARCHAR", "history": "VARCHAR[]"}
    assert duck_rows(path, "status, history", "id") == [
        ("in_progress", ["created", "in_progress"]),
        (None, []),
    ]


def test_newer_types_load_as_their_exact_text(pg_schema: str, tmp_path: Path) -> None:
    """Types added in recent PostgreSQL versions or rarely mapped (multiranges, tsquery,
    tsvector, pg_lsn, xml, varbit, ranges of timestamps) load as the server's text of each
    value. https://github.com/airbytehq/airbyte/pull/8308"""
    columns = {
        "mr": ("int4multirange", "{[1,3),[5,7)}"),
        "tq": ("tsquery", "'fat' & 'rat'"),
        "tv": ("tsvector", "'a' 'cat' 'fat'"),
        "lsn": ("pg_lsn", "16/B374D848"),
        "x": ("xml", "<a>1</a>"),
        "vb": ("varbit", "10110"),
        "tr": ("tsrange", '["2024-01-01 00:00:00","2024-01-02 00:00:00")'),
    }
    pg(
        f"CREATE TABLE {pg_schema}.n (id int, "
        + ", ".join(f"{name} {kind}" for name, (kind, _) in columns.items())
        + ")",
        f"INSERT INTO {pg_schema}.n VALUES (1, "
        + ", ".join(f"$${value}$$" for _, value in columns.values())
        + ")",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", f"{pg_schema}.n", path))

    assert (result.rows_loaded, result.warnings) == (1, [])
    assert types(result) == {"id": "INTEGER", **{name: "VARCHAR" for name in columns}}
    assert duck_rows(path, ", ".join(columns)) == [tuple(value for _, value in columns.values())]


INFINITY_WARNING = "column `{}`: {} infinity/-infinity loaded as NULL (on_unrepresentable: nearest)"
"""The warning with `{}` for the column and `{}` for "N values" / "1 value"."""
_VALID_TO = "2024-06-30 12:00:00.123456"


def _validity_table(pg_schema: str) -> str:
    """An SCD2-style history table whose open-ended rows end at `infinity` (and one starts at
    `-infinity`), next to finite rows."""
    pg(
        f"CREATE TABLE {pg_schema}.history (id int, valid_from date, valid_to timestamp, "
        "seen timestamptz)",
        f"INSERT INTO {pg_schema}.history VALUES "
        f"(1, '2024-01-01', '{_VALID_TO}', '{_VALID_TO}+00'), "
        "(2, '2024-07-01', 'infinity', 'infinity'), "
        "(3, '-infinity', 'infinity', '-infinity'), "
        "(4, '4713-11-24 BC', '294276-12-31 23:59:59.999999', NULL)",
    )
    return f"{pg_schema}.history"


def test_infinity_dates_and_timestamps_load_as_counted_nulls(
    pg_schema: str, tmp_path: Path
) -> None:
    """PostgreSQL `infinity` / `-infinity` in date, timestamp and timestamptz columns load as
    NULL, counted per column (on_unrepresentable: nearest), instead of dates near 5,877,612 BC
    (what the driver's unchecked epoch shift makes of them); so does PostgreSQL's last timestamp
    (294276 AD, past a microsecond timestamp's 292277 AD), which the same shift wrapped to
    290279 BC; finite values, PostgreSQL's first date included, load exactly.
    https://github.com/duckdb/duckdb-postgres/issues/102"""
    path = tmp_path / "w.duckdb"

    result = load(job("postgresql", _validity_table(pg_schema), path))

    assert result.rows_loaded == 4
    assert sorted(result.warnings) == [
        INFINITY_WARNING.format("seen", "2 values"),
        INFINITY_WARNING.format("valid_from", "1 value"),
        "column `valid_to`: 1 value after year 292277 (beyond a microsecond timestamp's range) "
        "loaded as NULL (on_unrepresentable: nearest)",
        INFINITY_WARNING.format("valid_to", "2 values"),
    ]
    assert duck_rows(path, "id, valid_from::VARCHAR, valid_to::VARCHAR, seen") == [
        (1, "2024-01-01", _VALID_TO, dt.datetime(2024, 6, 30, 12, 0, 0, 123456, dt.UTC)),
        (2, "2024-07-01", None, None),
        (3, None, None, None),
        (4, "4713-11-24 (BC)", None, None),
    ]


def test_infinity_under_fail_names_the_column_and_writes_nothing(
    pg_schema: str, tmp_path: Path
) -> None:
    """With `on_unrepresentable: fail` the first ±infinity (row 3's `-infinity` date, the first
    column holding one) fails the run naming the table and the column; the destination table is
    never created."""
    path = tmp_path / "w.duckdb"
    table = _validity_table(pg_schema)

    with pytest.raises(
        UnrepresentableValueError,
        match=rf"Column `valid_from` of {table} holds '-infinity', which no date destination type",
    ):
        load(job("postgresql", table, path, on_unrepresentable="fail"))

    assert not duck_table_exists(path, "t")


def test_infinity_as_the_cursor_fails_instead_of_becoming_the_watermark(
    pg_schema: str, tmp_path: Path
) -> None:
    """A cursor column whose largest value is `infinity` fails the run with a typed error
    naming the column (a watermark of `infinity` would make every later run load nothing);
    nothing is written."""
    path = tmp_path / "w.duckdb"
    table = _validity_table(pg_schema)

    with pytest.raises(
        InfiniteCursorError,
        match=rf"Cursor column `valid_to` of {table} holds 'infinity', which cannot be a watermark",
    ):
        load(
            job(
                "postgresql",
                table,
                path,
                load_type="transactional",
                timestamp_column="valid_to",
                primary_key=["id"],
            )
        )

    assert not duck_table_exists(path, "t")
