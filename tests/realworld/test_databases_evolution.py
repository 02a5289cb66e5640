"""Real-world corpus, schema evolution between runs (issue 17, item 8): a PostgreSQL column
changes type between two incremental runs, as in public bug reports against peer tools; the
destination widens in place when that is lossless, changes to STRING only with
`allow_widen_to_string`, and otherwise fails naming the column and both types with nothing
written. BigQuery runs on the emulator, which applies ALTER COLUMN SET DATA TYPE to the data but
not to the schema it reports (tests/etl/load/test_schema_evolution.py), so its cases check
values."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, SchemaChangeError
from tests.etl.support import bigquery_destination, bq_rows
from tests.realworld.db_support import duck_rows, job, load, pg, types

pytestmark = pytest.mark.integration


def _incremental(table: str, path: Path, **fields: Any) -> JobConfig:
    """A transactional job of `table` with cursor and key `id`."""
    return job(
        "postgresql",
        table,
        path,
        load_type="transactional",
        timestamp_column="id",
        primary_key=["id"],
        **fields,
    )


def _bq(dataset: str) -> dict[str, Any]:
    return bigquery_destination(dataset)


def test_integer_becoming_double_widens_in_duckdb_and_is_refused_by_bigquery(
    pg_schema: str, tmp_path: Path, bq_dataset: str
) -> None:
    """A score first seen as integers (5) then as doubles (3.7) widens the DuckDB column to
    DOUBLE in place (every 32-bit integer is exact in a double) instead of adding a variant
    column; BigQuery's INT64 cannot become FLOAT64 losslessly (integers past 2^53), so the
    BigQuery run fails naming the column and both types.
    https://github.com/dlt-hub/dlt/issues/3916"""
    table = f"{pg_schema}.metrics"
    pg(
        f"CREATE TABLE {table} (id int PRIMARY KEY, team text, score int)",
        f"INSERT INTO {table} VALUES (1, 'Alpha', 5)",
    )
    path = tmp_path / "w.duckdb"
    first = load(_incremental(table, path))
    on_bigquery = load(_incremental(table, path, destination=_bq(bq_dataset)))

    pg(
        f"ALTER TABLE {table} ALTER COLUMN score TYPE double precision",
        f"INSERT INTO {table} VALUES (2, 'Beta', 3.7)",
    )
    second = load(_incremental(table, path), first.state)

    assert (second.rows_loaded, second.warnings, types(second)["score"]) == (1, [], "DOUBLE")
    assert duck_rows(path, "id, team, score") == [(1, "Alpha", 5.0), (2, "Beta", 3.7)]
    with pytest.raises(
        SchemaChangeError, match=r"Column `score` of t is INT64 in the destination but FLOAT64"
    ):
        load(_incremental(table, path, destination=_bq(bq_dataset)), on_bigquery.state)


def test_number_becoming_text_needs_the_opt_in(
    pg_schema: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """An `age` column that turns from integers into text fails the run by default, naming the
    column and both types; with `allow_widen_to_string` the destination column becomes
    VARCHAR / STRING, the earlier integers as their text, in DuckDB and BigQuery.
    https://github.com/bruin-data/ingestr/issues/957"""
    table = f"{pg_schema}.people"
    pg(
        f"CREATE TABLE {table} (id int PRIMARY KEY, age int)",
        f"INSERT INTO {table} VALUES (1, 30), (2, NULL)",
    )
    path = tmp_path / "w.duckdb"
    first = load(_incremental(table, path))
    first_bq = load(_incremental(table, path, destination=_bq(bq_dataset)))
    pg(
        f"ALTER TABLE {table} ALTER COLUMN age TYPE text",
        f"INSERT INTO {table} VALUES (3, 'thirty')",
    )

    with pytest.raises(
        SchemaChangeError, match=r"Column `age` of t is INTEGER in the destination but VARCHAR"
    ):
        load(_incremental(table, path), first.state)
    second = load(_incremental(table, path, allow_widen_to_string=True), first.state)
    second_bq = load(
        _incremental(table, path, destination=_bq(bq_dataset), allow_widen_to_string=True),
        first_bq.state,
    )

    assert (second.rows_loaded, types(second)["age"]) == (1, "VARCHAR")
    assert duck_rows(path, "id, age") == [(1, "30"), (2, None), (3, "thirty")]
    assert (second_bq.rows_loaded, types(second_bq)["age"]) == (1, "STRING")
    assert bq_rows(bigquery_client, f"SELECT id, age FROM `{bq_dataset}.t` ORDER BY id") == [
        (1, "30"),
        (2, None),
        (3, "thirty"),
    ]


def test_decimal_columns_survive_a_second_run_unchanged(
    pg_schema: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """Decimal columns read back from the destination compare equal to the source's on the next
    run: no phantom widening (DECIMAL(38,0) vs (38,9) asking for precision 47), no failure;
    types unchanged after the second run.
    https://github.com/bruin-data/ingestr/pull/1124"""
    table = f"{pg_schema}.amounts"
    pg(
        f"CREATE TABLE {table} (id int PRIMARY KEY, a numeric(38,9), b numeric(10,2))",
        f"INSERT INTO {table} VALUES (1, 12345678901234567890123456789.123456789, 1.25)",
    )
    path = tmp_path / "w.duckdb"
    first = load(_incremental(table, path))
    first_bq = load(_incremental(table, path, destination=_bq(bq_dataset)))
    pg(f"INSERT INTO {table} VALUES (2, -0.000000001, 99999999.99)")

    second = load(_incremental(table, path), first.state)
    second_bq = load(_incremental(table, path, destination=_bq(bq_dataset)), first_bq.state)

    assert types(second) == {"id": "INTEGER", "a": "DECIMAL(38,9)", "b": "DECIMAL(10,2)"}
    assert duck_rows(path, "a, b") == [
        (Decimal("12345678901234567890123456789.123456789"), Decimal("1.25")),
        (Decimal("-0.000000001"), Decimal("99999999.99")),
    ]
    assert (second.rows_loaded, second_bq.rows_loaded) == (1, 1)
    assert types(second_bq) == {"id": "INT64", "a": "NUMERIC", "b": "NUMERIC"}
    assert bq_rows(bigquery_client, f"SELECT a, b FROM `{bq_dataset}.t` ORDER BY id") == [
        (Decimal("12345678901234567890123456789.123456789"), Decimal("1.25")),
        (Decimal("-0.000000001"), Decimal("99999999.99")),
    ]


def test_integer_becoming_numeric_widens_in_place(
    pg_schema: str, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """An `integer` column altered to `numeric(20,3)` at the source: every integer fits
    (17 integer digits >= 10), so DuckDB alters the column to DECIMAL(20,3) and BigQuery to
    NUMERIC in place (ALTER COLUMN SET DATA TYPE, which the peer reported BigQuery as not
    allowing for other changes), with the earlier rows unchanged.
    https://github.com/airbytehq/airbyte/issues/27590"""
    table = f"{pg_schema}.prices"
    pg(
        f"CREATE TABLE {table} (id int PRIMARY KEY, price integer)",
        f"INSERT INTO {table} VALUES (1, 2147483647), (2, -7)",
    )
    path = tmp_path / "w.duckdb"
    first = load(_incremental(table, path))
    first_bq = load(_incremental(table, path, destination=_bq(bq_dataset)))
    pg(
        f"ALTER TABLE {table} ALTER COLUMN price TYPE numeric(20,3)",
        f"INSERT INTO {table} VALUES (3, 12345.678)",
    )

    second = load(_incremental(table, path), first.state)
    second_bq = load(_incremental(table, path, destination=_bq(bq_dataset)), first_bq.state)

    assert (second.rows_loaded, types(second)["price"]) == (1, "DECIMAL(20,3)")
    assert duck_rows(path, "price") == [
        (Decimal("2147483647"),),
        (Decimal("-7"),),
        (Decimal("12345.678"),),
    ]
    assert second_bq.rows_loaded == 1
    # the emulator's ALTER gives DuckDB's DECIMAL(18,3): 2147483647 and 12345.678 fit it
    assert bq_rows(bigquery_client, f"SELECT price FROM `{bq_dataset}.t` ORDER BY id") == [
        (Decimal("2147483647"),),
        (Decimal("-7"),),
        (Decimal("12345.678"),),
    ]
