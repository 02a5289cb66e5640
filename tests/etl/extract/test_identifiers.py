"""Identifiers from job configs cannot inject SQL (issue 5, item 5).

Source side (PostgreSQL, MariaDB): a table, a selected column and the cursor column named like
`t"; DROP TABLE x; --`, `` t`; DROP TABLE x; -- ``, `t'; DROP TABLE x; --` or with spaces are read
verbatim, each as one quoted identifier, and the canary table `x` of the same namespace is
still there with its row. A name with a dot is split into schema and table (the documented
`schema.table` form), so it names another relation: the run fails with SourceQueryError and the
canary survives. Destination side (DuckDB, BigQuery): `dest_table_name`, `destination.dataset`
and `destination.project` with quotes, backticks, dots or spaces are refused by a ConfigError
naming the field, before anything connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import ConfigError, JobConfig, run
from etl.exceptions import SourceQueryError
from tests.etl.support import DATASET, SqlSource, duck_query, job_config

pytestmark = pytest.mark.integration

HOSTILE = {
    "double-quote": 't"; DROP TABLE x; --',
    "backtick": "t`; DROP TABLE x; --",
    "single-quote": "t'; DROP TABLE x; --",
    "spaces": "my table (copy)",
}


def _prepare(source: SqlSource, table: str, column: str, cursor: str) -> None:
    q = source.quote
    source.rows(f"CREATE TABLE {source.table('x')} (id integer)")
    source.rows(f"INSERT INTO {source.table('x')} VALUES (42)")
    source.rows(
        f"CREATE TABLE {source.table(table)} (id integer, {q(column)} integer, "
        f"{q(cursor)} timestamp NULL)"
    )
    source.rows(
        f"INSERT INTO {source.table(table)} VALUES (1, 10, '2024-01-01 00:00:00'), "
        "(2, 20, '2024-01-02 00:00:00')"
    )


def _canary(source: SqlSource) -> list[tuple[int]]:
    return [tuple(row) for row in source.rows(f"SELECT id FROM {source.table('x')}")]


@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_source_names_are_one_identifier(
    sql_source: SqlSource, tmp_path: Path, name: str
) -> None:
    """Table, selected column and cursor column with SQL in their names are read verbatim: the
    2 rows load with their values, and the canary table keeps its row."""
    column, cursor = f"c{name}", f"ts{name}"
    _prepare(sql_source, name, column, cursor)
    config = job_config(
        sql_source.source_type,
        tmp_path / "w.duckdb",
        source_table_name=f"{sql_source.namespace}.{name}",
        selected_columns=["id", column],
        timestamp_column=cursor,
    )

    result = run(JobConfig.parse(config))

    assert (result.rows_extracted, result.rows_loaded) == (2, 2)
    loaded = duck_query(
        tmp_path / "w.duckdb",
        f"SELECT * EXCLUDE (_etl_run_id, _etl_loaded_at) FROM {DATASET}.t ORDER BY id",
    )
    assert [row[:2] for row in loaded] == [(1, 10), (2, 20)]
    assert _canary(sql_source) == [(42,)]


def test_dotted_source_name_is_schema_and_table(sql_source: SqlSource, tmp_path: Path) -> None:
    """`x; DROP TABLE x.t` is read as schema `x; DROP TABLE x` and table `t`: no such relation,
    SourceQueryError; the canary keeps its row."""
    _prepare(sql_source, "t", "c", "ts")
    config = job_config(
        sql_source.source_type,
        tmp_path / "w.duckdb",
        load_type="catalog",
        source_table_name=f"{sql_source.namespace}; DROP TABLE x.t",
    )

    with pytest.raises(SourceQueryError):
        run(JobConfig.parse(config))

    assert _canary(sql_source) == [(42,)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dest_table_name", 't"; DROP TABLE x; --'),
        ("dest_table_name", "t`; DROP TABLE x; --"),
        ("dest_table_name", "raw.t"),
        ("dest_table_name", "my table"),
        ("destination.dataset", 'raw"; DROP SCHEMA main; --'),
        ("destination.dataset", "raw`.x"),
        ("destination.project", "p`; DROP TABLE x; --"),
        ("destination.project", "p.x` y"),
    ],
)
@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
def test_hostile_destination_names_are_refused(
    tmp_path: Path, destination: str, field: str, value: str
) -> None:
    """The name is refused with ConfigError naming the field (project: BigQuery only)."""
    if field == "destination.project" and destination == "duckdb":
        destination = "bigquery"
    config = job_config(
        "local", tmp_path / "w.duckdb", connection_params={"base_path": "."}, file_format="csv"
    )
    config["destination"] = {
        "type": destination,
        "path": str(tmp_path / "w.duckdb"),
        "dataset": DATASET,
    }
    if destination == "bigquery":
        config["destination"] |= {"project": "test-project", "credentials": "anonymous"}
    if field == "dest_table_name":
        config["dest_table_name"] = value
    else:
        config["destination"][field.split(".")[1]] = value

    with pytest.raises(ConfigError, match=f"`{field}`: must be") as info:
        JobConfig.parse(config)

    assert info.value.field == field
    assert not (tmp_path / "w.duckdb").exists()
