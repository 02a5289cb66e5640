"""Real-world corpus, MySQL / MariaDB inputs (issue 17): each case rebuilds a table from a public
bug report against a peer tool and checks the exact values, destination types, row counts and
the run's warnings (what was adjusted). Zero and invalid dates follow `on_unrepresentable`
(docs/config.md, "Unrepresentable values")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from etl.exceptions import UnrepresentableValueError
from tests.etl.support import bq_rows, duck_table_exists
from tests.realworld.db_support import duck_rows, job, load, mysql, types

pytestmark = pytest.mark.integration


def _warning(column: str, count: int) -> str:
    values = "value" if count == 1 else "values"
    return (
        f"column `{column}`: {count} {values} zero/invalid date loaded as NULL "
        "(on_unrepresentable: nearest)"
    )


def test_zero_dates_and_datetimes_load_as_null_and_are_counted(
    mysql_database: str, tmp_path: Path
) -> None:
    """'0000-00-00' in a DATE and '0000-00-00 00:00:00' in a DATETIME (the "tricky" values a
    JDBC driver refuses with "Zero date value prohibited") load as NULL next to the valid
    values; the warnings count them per column.
    https://github.com/airbytehq/airbyte/issues/3931"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, d date, dtm datetime)",
        "INSERT INTO t VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), "
        "(2, '2021-07-15', '2021-07-15 21:35:29'), (3, NULL, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert result.rows_loaded == 3
    assert result.warnings == [_warning("d", 1), _warning("dtm", 1)]
    assert types(result) == {"id": "INTEGER", "d": "DATE", "dtm": "TIMESTAMP"}
    assert duck_rows(path, "id, d, dtm") == [
        (1, None, None),
        (2, dt.date(2021, 7, 15), dt.datetime(2021, 7, 15, 21, 35, 29)),
        (3, None, None),
    ]


def test_year_zero_dates_fail_but_early_years_load(mysql_database: str, tmp_path: Path) -> None:
    """MariaDB accepts '0000-11-30' (year zero: no such date) next to '0007-01-05' (a real, early
    date): the year-zero values load as NULL and are counted, the early years load exactly.
    https://github.com/airbytehq/airbyte/issues/16159"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, d date)",
        "INSERT INTO t VALUES (1, '0000-00-00'), (2, '0000-11-30'), (3, '0007-01-05'), "
        "(4, '0007-07-02'), (5, '0008-12-28')",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert (result.rows_loaded, result.warnings) == (5, [_warning("d", 2)])
    assert duck_rows(path, "d") == [
        (None,),
        (None,),
        (dt.date(7, 1, 5),),
        (dt.date(7, 7, 2),),
        (dt.date(8, 12, 28),),
    ]


def test_year_column_and_year_zero_date(mysql_database: str, tmp_path: Path) -> None:
    """A YEAR column (including its zero value 0000) loads as integers; a DATE of '0000-12-19'
    loads as NULL, counted. https://github.com/airbytehq/airbyte/issues/16574"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, y year, d date)",
        "INSERT INTO t VALUES (1, 2022, '0000-12-19'), (2, 0, '2022-09-11'), (3, 1901, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert (result.rows_loaded, result.warnings) == (3, [_warning("d", 1)])
    assert types(result) == {"id": "INTEGER", "y": "SMALLINT", "d": "DATE"}
    assert duck_rows(path, "y, d") == [(2022, None), (0, dt.date(2022, 9, 11)), (1901, None)]


@pytest.fixture
def zero_datetimes(mysql_database: str) -> str:
    """A NOT NULL DATETIME holding '0000-00-00 00:00:00' (MySQL 5.7 without strict mode)."""
    mysql(
        mysql_database,
        "CREATE TABLE cdrs (id int PRIMARY KEY, setup_time datetime NOT NULL, "
        "answer_time datetime(6) NOT NULL)",
        "INSERT INTO cdrs VALUES (1, '0000-00-00 00:00:00', '2025-05-30 10:00:00.123456'), "
        "(2, '2025-05-30 09:59:59', '0000-00-00 00:00:00.000000')",
    )
    return f"{mysql_database}.cdrs"


def test_zero_datetime_with_the_arrow_reader(zero_datetimes: str, tmp_path: Path) -> None:
    """The Arrow reader (connectorx, as dlt's pyarrow backend) meets '0000-00-00 00:00:00' in a
    NOT NULL column: the value loads as NULL (there is no such instant), counted per column;
    the valid values keep their microseconds.
    https://github.com/dlt-hub/dlt/issues/2699"""
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", zero_datetimes, path))

    assert result.rows_loaded == 2
    assert result.warnings == [_warning("answer_time", 1), _warning("setup_time", 1)]
    assert duck_rows(path, "setup_time, answer_time") == [
        (None, dt.datetime(2025, 5, 30, 10, 0, 0, 123456)),
        (dt.datetime(2025, 5, 30, 9, 59, 59), None),
    ]


def test_zero_datetime_fails_the_run_when_asked(zero_datetimes: str, tmp_path: Path) -> None:
    """With `on_unrepresentable: fail` the zero datetime fails the run naming the table, the
    column and the value; nothing is written. https://github.com/dlt-hub/dlt/issues/2699"""
    path = tmp_path / "w.duckdb"

    with pytest.raises(
        UnrepresentableValueError,
        match=rf"Column `setup_time` of {zero_datetimes.replace('.', '[.]')} holds "
        r"'0000-00-00 00:00:00'",
    ):
        load(job("mysql", zero_datetimes, path, on_unrepresentable="fail"))

    assert not duck_table_exists(path, "t")


def test_zero_datetimes_into_bigquery(
    zero_datetimes: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """Zero datetimes bound for BigQuery load as NULL DATETIMEs, counted, instead of crashing
    the job. https://github.com/airbytehq/airbyte/issues/2601"""
    result = load(job("mysql", zero_datetimes, tmp_path / "x", bq_dataset=bq_dataset))

    assert result.rows_loaded == 2
    assert result.warnings == [_warning("answer_time", 1), _warning("setup_time", 1)]
    assert types(result) == {"id": "INT64", "setup_time": "DATETIME", "answer_time": "DATETIME"}
    assert bq_rows(
        bigquery_client, f"SELECT setup_time, answer_time FROM `{bq_dataset}.t` ORDER BY id"
    ) == [
        (None, dt.datetime(2025, 5, 30, 10, 0, 0, 123456)),
        (dt.datetime(2025, 5, 30, 9, 59, 59), None),
    ]


def test_unsigned_int_beyond_int32_and_bigint_unsigned_max(
    mysql_database: str, tmp_path: Path
) -> None:
    """An `int unsigned` holding 4176160650 (beyond a signed 32-bit integer) loads as BIGINT,
    and `bigint unsigned` 18446744073709551615 as UBIGINT, both exact.
    https://github.com/airbytehq/airbyte/issues/3840"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, u int unsigned, ub bigint unsigned)",
        "INSERT INTO t VALUES (1, 4176160650, 18446744073709551615), (2, 0, 0), "
        "(3, 3428724653, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert (result.rows_loaded, result.warnings) == (3, [])
    assert types(result) == {"id": "INTEGER", "u": "BIGINT", "ub": "UBIGINT"}
    assert duck_rows(path, "u, ub") == [
        (4176160650, 18446744073709551615),
        (0, 0),
        (3428724653, None),
    ]


def test_smallint_and_tinyint_unsigned_maxima(mysql_database: str, tmp_path: Path) -> None:
    """`smallint unsigned` 65535 and `tinyint unsigned` 255 ("Value '65535' is outside of valid
    range for type java.lang.Short") load exactly, in the next wider signed types.
    https://github.com/airbytehq/airbyte/issues/5842"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, s smallint unsigned, b tinyint unsigned)",
        "INSERT INTO t VALUES (1, 65535, 255), (2, 0, 0)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert (result.rows_loaded, result.warnings) == (2, [])
    assert types(result) == {"id": "INTEGER", "s": "INTEGER", "b": "SMALLINT"}
    assert duck_rows(path, "s, b") == [(65535, 255), (0, 0)]


def test_tinyint_1_keeps_its_integers_and_bit_1_its_bit(
    mysql_database: str, tmp_path: Path
) -> None:
    """tinyint(1) holding 0, 1, 127 and -127 keeps every value (typing it boolean would fold
    127 and -127 into true); bit(1) loads as 0 or 1.
    https://github.com/singer-io/tap-mysql/pull/38"""
    mysql(
        mysql_database,
        "CREATE TABLE t (id int PRIMARY KEY, c_tinyint_4 tinyint(4), c_tinyint_1 tinyint(1), "
        "c_bit bit(1))",
        "INSERT INTO t VALUES (1, 0, 0, b'0'), (2, 1, 1, b'1'), (3, 127, 127, b'1'), "
        "(4, -127, -127, NULL)",
    )
    path = tmp_path / "w.duckdb"

    result = load(job("mysql", f"{mysql_database}.t", path))

    assert (result.rows_loaded, result.warnings) == (4, [])
    assert types(result) == {
        "id": "INTEGER",
        "c_tinyint_4": "TINYINT",
        "c_tinyint_1": "TINYINT",
        "c_bit": "BIGINT",
    }
    assert duck_rows(path, "c_tinyint_4, c_tinyint_1, c_bit") == [
        (0, 0, 0),
        (1, 1, 1),
        (127, 127, 1),
        (-127, -127, None),
    ]
