"""A hostile BigQuery *source* table name (`source_type: bigquery`, issue 5, item 5) cannot
inject SQL into the emulator: the name is one backquoted identifier (backquotes and backslashes
escaped per https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#quoted_identifiers),
so the run fails with a typed error, and the canary table `x` of the same dataset keeps its row.
The emulator's lexer does not take backslash escapes in quoted identifiers: it rejects the first
two names with "Unexpected character '\\'" and reports the third as a table not found; real
BigQuery reads each as one (missing) table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.exceptions import EtlError
from tests.conftest import BIGQUERY_PROJECT, emulator_env
from tests.etl.support import bq_rows, duck_table_exists, job_config

pytestmark = pytest.mark.integration

HOSTILE = [
    "t` WHERE FALSE; DROP TABLE `{ds}.x`; --",
    "t`; DELETE FROM `{ds}.x` WHERE TRUE; SELECT 1 FROM `{ds}.x",
    "t\\` UNION ALL SELECT 1 --",
]


@pytest.mark.parametrize("name", HOSTILE, ids=["drop", "delete", "backslash"])
def test_hostile_bigquery_source_name_cannot_inject(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, name: str
) -> None:
    """The extract fails with an EtlError (the table does not exist), nothing is loaded, and
    the canary `x` still holds its one row."""
    bigquery_client.create_dataset(bq_dataset)
    bigquery_client.query(f"CREATE TABLE `{bq_dataset}.x` AS SELECT 42 AS v").result(timeout=60)
    job = JobConfig.parse(
        job_config(
            "bigquery",
            tmp_path / "w.duckdb",
            source_table_name=f"{bq_dataset}.{name.format(ds=bq_dataset)}",
            load_type="catalog",
            connection_params={
                "project": BIGQUERY_PROJECT,
                "credentials": "anonymous",
                "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
            },
        )
    )

    with pytest.raises(EtlError, match=r"BigQuery rejected"):
        run(job)

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")
    assert bq_rows(bigquery_client, f"SELECT v FROM `{bq_dataset}.x`") == [(42,)]
