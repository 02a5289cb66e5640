"""A hostile BigQuery *source* table name (`source_type: bigquery`, issue 5, item 5) cannot
inject SQL: BigQuery names never hold a backquote, backslash or line break
(https://cloud.google.com/bigquery/docs/tables#table_naming), so a config with one is refused
with a ConfigError naming the field before any query; every other name is one backquoted
identifier, and a missing table is a SourceQueryError. The canary table `x` keeps its row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.exceptions import ConfigError, SourceQueryError
from tests.conftest import BIGQUERY_PROJECT, emulator_env
from tests.etl.support import bq_rows, duck_table_exists, job_config

pytestmark = pytest.mark.integration

HOSTILE = [
    "t` WHERE FALSE; DROP TABLE `{ds}.x`; --",
    "t`; DELETE FROM `{ds}.x` WHERE TRUE; SELECT 1 FROM `{ds}.x",
    "t\\` UNION ALL SELECT 1 --",
]


def _job(tmp_path: Path, table: str, **fields: Any) -> dict[str, Any]:
    return job_config(
        "bigquery",
        tmp_path / "w.duckdb",
        source_table_name=table,
        load_type="catalog",
        connection_params={
            "project": BIGQUERY_PROJECT,
            "credentials": "anonymous",
            "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
            "storage_api_endpoint": emulator_env("ETL_BIGQUERY_STORAGE_API_ENDPOINT"),
        },
        **fields,
    )


@pytest.fixture
def canary(bq_dataset: str, bigquery_client: Any) -> str:
    bigquery_client.create_dataset(bq_dataset)
    bigquery_client.query(f"CREATE TABLE `{bq_dataset}.x` AS SELECT 42 AS v").result(timeout=60)
    return bq_dataset


@pytest.mark.parametrize("name", HOSTILE, ids=["drop", "delete", "backslash"])
def test_hostile_bigquery_source_name_is_refused(
    tmp_path: Path, canary: str, bigquery_client: Any, name: str
) -> None:
    """The config is refused naming `source_table_name`; nothing runs, the canary keeps its row."""
    with pytest.raises(ConfigError, match=r"cannot hold a backquote, backslash") as caught:
        JobConfig.parse(_job(tmp_path, f"{canary}.{name.format(ds=canary)}"))

    assert caught.value.field == "source_table_name"
    assert bq_rows(bigquery_client, f"SELECT v FROM `{canary}.x`") == [(42,)]


def test_hostile_bigquery_column_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        JobConfig.parse(_job(tmp_path, "d.t", selected_columns=["v` FROM x; DROP TABLE y; --"]))

    assert caught.value.field == "selected_columns"


def test_unusual_but_legal_name_is_one_identifier_and_a_missing_table_a_query_error(
    tmp_path: Path, canary: str, bigquery_client: Any
) -> None:
    """`x; DROP TABLE x --` (spaces, `;` and dashes inside the backquotes) names one missing
    table: SourceQueryError, nothing loaded, the canary intact."""
    job = JobConfig.parse(_job(tmp_path, f"{canary}.x; DROP TABLE x --"))

    with pytest.raises(SourceQueryError, match=r"rejected the query"):
        run(job)

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")
    assert bq_rows(bigquery_client, f"SELECT v FROM `{canary}.x`") == [(42,)]
