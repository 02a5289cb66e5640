"""BigQuery table options (`destination.partitioning`, `clustering`, `description`, `labels`,
column descriptions; etl/load/bigquery/tables.py) on the `bqemulator` emulator: read back with
`client.get_table` after the table is created, after a catalog swap, after schema evolution of
an append, after a config change; refused where BigQuery refuses; the config contract's field
errors; the DuckDB warning.

Emulator gaps (the emulator keeps neither `rangePartitioning` nor `requirePartitionFilter`: a
table created with them reads back with both unset), so those two are asserted on the exact
table resource the loader sends to `tables.insert` (`Table.to_api_repr()`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.config import DestinationConfig
from etl.exceptions import ConfigError
from etl.load.bigquery.tables import apply_layout
from tests.etl.support import bigquery_destination, bq_rows, job_config

CSV_1 = b"id,ts,name\n1,2024-01-01 10:00:00,ann\n2,2024-01-02 11:00:00,bob\n"
CSV_2 = b"id,ts,name,note\n3,2024-01-03 12:00:00,cy,hello\n"
DESCRIPTIONS_1 = {
    "id": "source: id (int64)",
    "ts": "source: ts (timestamp[us])",
    "name": "source: name (string)",
}


def _files_job(
    tmp_path: Path, dataset: str, files: dict[str, bytes], **destination: Any
) -> JobConfig:
    """A `local` CSV job over `files` (written under tmp_path/in) into `dataset`.`t`."""
    base = tmp_path / "in"
    base.mkdir(exist_ok=True)
    for name, content in files.items():
        (base / name).write_bytes(content)
    dest = {**bigquery_destination(dataset), **destination}
    config = job_config(
        "local",
        tmp_path / "unused.duckdb",
        connection_params={"base_path": str(base)},
        file_pattern="*.csv",
        file_format="csv",
        dest_table_name="t",
        destination=dest,
    )
    return JobConfig.parse(config)


def _meta(client: Any, table_id: str) -> dict[str, Any]:
    table = client.get_table(table_id)
    tp = table.time_partitioning
    return {
        "time_partitioning": tp and (tp.type_, tp.field, tp.expiration_ms),
        "clustering": table.clustering_fields,
        "labels": table.labels,
        "description": table.description,
        "columns": {f.name: f.description for f in table.schema if not f.name.startswith("_")},
    }


OPTIONS = {
    "partitioning": {"type": "DAY", "field": "ts", "expiration_days": 3650},
    "clustering": ["name", "id"],
    "description": "Orders from the shop export",
    "labels": {"team": "data", "cost-center": "42"},
}


def test_options_set_at_creation_and_kept_across_catalog_swaps(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """A catalog load creates the table partitioned by DAY on `ts` (3,650-day expiration),
    clustered on (name, id), with the description, the labels and one description per column
    (its source name and type); the next snapshot (swapped in by a copy job) keeps all of it
    (a snapshot with a new column is not swapped by the emulator at all, options or not: its
    copy job answers HTTP 500, so schema evolution is checked on appends); a later config change of clustering, labels
    and description is applied to the existing table; a changed partitioning is refused with
    the reason, before anything is loaded."""
    table_id = f"{bq_dataset}.t"
    job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **OPTIONS)
    job = JobConfig.parse({**job.model_dump(), "load_type": "catalog"})
    first = run(job)
    expected = {
        "time_partitioning": ("DAY", "ts", 3650 * 86_400_000),
        "clustering": ["name", "id"],
        "labels": {"team": "data", "cost-center": "42"},
        "description": "Orders from the shop export",
        "columns": DESCRIPTIONS_1,
    }
    assert first.rows_loaded == 2
    assert _meta(bigquery_client, table_id) == expected

    (tmp_path / "in" / "b.csv").write_bytes(b"id,ts,name\n3,2024-01-03 12:00:00,cy\n")
    second = run(job, first.state)
    assert second.rows_loaded == 3
    assert bq_rows(bigquery_client, f"SELECT count(*) FROM `{table_id}`") == [(3,)]
    after_swap = expected
    assert _meta(bigquery_client, table_id) == after_swap

    changed = job.model_dump()
    changed["destination"].update(
        clustering=["id"], labels={"team": "finance"}, description="Orders (finance)"
    )
    third = run(JobConfig.parse(changed), second.state)
    assert third.rows_loaded == 3
    assert _meta(bigquery_client, table_id) == {
        **after_swap,
        "clustering": ["id"],
        "labels": {"team": "finance", "cost-center": "42"},
        "description": "Orders (finance)",
    }

    changed["destination"]["partitioning"] = {"type": "MONTH", "field": "ts"}
    with pytest.raises(ConfigError) as error:
        run(JobConfig.parse(changed), third.state)
    assert error.value.field == "destination.partitioning"
    assert str(error.value) == (
        "table t is partitioned DAY on ts, the config asks for MONTH on ts: BigQuery cannot "
        "change a table's partitioning. Keep the table's partitioning in the config, or load "
        "into a new table (a new dest_table_name, or drop the table and run with a full "
        "refresh)"
    )
    assert bq_rows(bigquery_client, f"SELECT count(*) FROM `{table_id}`") == [(3,)]


def test_options_kept_when_an_append_adds_a_column(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Transactional file loads: the second run's new file adds column `note` (ALTER TABLE ADD
    COLUMN on the destination); partitioning, clustering, labels, description and the column
    descriptions stay. Emulator gap: its catalog does not list a column added by ALTER TABLE,
    so `note` (and the description the loader gives it from real BigQuery's `get_table`) does
    not read back; its values do."""
    table_id = f"{bq_dataset}.t"
    job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **OPTIONS)
    first = run(job)
    (tmp_path / "in" / "b.csv").write_bytes(CSV_2)
    second = run(job, first.state)

    assert (first.rows_loaded, second.rows_loaded) == (2, 1)
    assert _meta(bigquery_client, table_id) == {
        "time_partitioning": ("DAY", "ts", 3650 * 86_400_000),
        "clustering": ["name", "id"],
        "labels": {"team": "data", "cost-center": "42"},
        "description": "Orders from the shop export",
        "columns": DESCRIPTIONS_1,
    }
    assert bq_rows(bigquery_client, f"SELECT id, note FROM `{table_id}` ORDER BY id") == [
        (1, None),
        (2, None),
        (3, "hello"),
    ]


def test_missing_or_mistyped_option_columns_fail_before_loading(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """A partition column the data does not have, a partition column of the wrong type and a
    clustering column the data does not have each fail the run with a ConfigError naming the
    field and the column; no table is created."""
    cases = [
        ({"partitioning": {"type": "DAY", "field": "when"}}, "destination.partitioning.field"),
        ({"partitioning": {"type": "DAY", "field": "name"}}, "destination.partitioning.field"),
        ({"clustering": ["name", "missing"]}, "destination.clustering"),
    ]
    messages = []
    for options, field in cases:
        job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **options)
        with pytest.raises(ConfigError) as error:
            run(job)
        assert error.value.field == field
        messages.append(str(error.value))
    assert messages == [
        "partition column 'when' is not a column of the table (columns: id, ts, name, "
        "_etl_source_file, _etl_run_id, _etl_loaded_at)",
        "partition column 'name' is STRING; DAY partitioning needs DATE or DATETIME or TIMESTAMP",
        "clustering column 'missing' is not a column of the table",
    ]
    assert {t.table_id for t in bigquery_client.list_tables(bq_dataset)} == {"_etl_loads"}


def test_range_partitioning_and_require_filter_request(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Emulator gap: it drops `rangePartitioning` and `requirePartitionFilter`, so the table
    resource the loader sends to `tables.insert` is asserted exactly; the run itself succeeds
    against the emulator and the options it keeps (clustering, labels) read back."""
    options = {
        "partitioning": {"field": "id", "start": 0, "end": 1000, "interval": 10},
        "clustering": ["name"],
        "labels": {"env": "test"},
    }
    dest = DestinationConfig.model_validate({**bigquery_destination(bq_dataset), **options})
    from google.cloud import bigquery

    sent = apply_layout(bigquery.Table("p.d.t"), dest, metadata=True).to_api_repr()
    assert sent == {
        "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"},
        "rangePartitioning": {
            "field": "id",
            "range": {"start": "0", "end": "1000", "interval": "10"},
        },
        "clustering": {"fields": ["name"]},
        "labels": {"env": "test"},
    }
    time_dest = DestinationConfig.model_validate(
        {
            **bigquery_destination(bq_dataset),
            "partitioning": {"type": "HOUR", "field": "ts", "require_filter": True},
        }
    )
    assert apply_layout(bigquery.Table("p.d.t"), time_dest, metadata=True).to_api_repr() == {
        "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"},
        "timePartitioning": {"type": "HOUR", "field": "ts"},
        "requirePartitionFilter": True,
        "labels": {},
    }

    job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **options)
    assert run(job).rows_loaded == 2
    table = bigquery_client.get_table(f"{bq_dataset}.t")
    assert (table.clustering_fields, table.labels) == (["name"], {"env": "test"})


def test_a_table_laid_out_by_hand_keeps_its_layout_without_options(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """A table partitioned and clustered by hand, loaded by a config without table options:
    the rows are appended, and partitioning, clustering, labels and description stay (only
    the column descriptions are added, where the columns had none)."""
    from google.cloud import bigquery

    bigquery_client.create_dataset(bq_dataset)
    table = bigquery.Table(
        f"{bigquery_client.project}.{bq_dataset}.t",
        schema=[
            bigquery.SchemaField("id", "INT64", description="order number"),
            bigquery.SchemaField("ts", "DATETIME"),
            bigquery.SchemaField("name", "STRING"),
            bigquery.SchemaField("_etl_source_file", "STRING"),
            bigquery.SchemaField("_etl_run_id", "STRING"),
            bigquery.SchemaField("_etl_loaded_at", "TIMESTAMP"),
        ],
    )
    table.time_partitioning = bigquery.TimePartitioning(type_="MONTH", field="ts")
    table.clustering_fields = ["name"]
    table.labels = {"owner": "ops"}
    table.description = "made by hand"
    bigquery_client.create_table(table)

    result = run(_files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}))

    assert result.rows_loaded == 2
    assert _meta(bigquery_client, f"{bq_dataset}.t") == {
        "time_partitioning": ("MONTH", "ts", None),
        "clustering": ["name"],
        "labels": {"owner": "ops"},
        "description": "made by hand",
        "columns": {**DESCRIPTIONS_1, "id": "order number"},
    }
