"""BigQuery table options (`destination.partitioning`, `clustering`, `description`, `labels`,
column descriptions; etl/load/bigquery/tables.py) on the `bqemulator` emulator: read back with
`client.get_table` after the table is created, after a catalog swap, after schema evolution of
an append, after merges (one after a schema change) and a merge's full refresh, after a config
change; refused where BigQuery refuses; the config contract's field
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


def test_options_kept_across_merges_and_a_merge_full_refresh(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Merge on `id` (file source): the first run creates the table with the options; a
    rewritten file merged in (updated rows and a new column, so the MERGE runs after a schema
    change) keeps partitioning, clustering, labels, description and column descriptions; so
    does a full refresh of another merge table (one row per key swapped in by a copy job from
    a staging table laid out like the table). The rows equal each key's latest. Emulator gaps:
    a column added by ALTER TABLE is not in its catalog (see the append test), so `note`'s
    description does not read back (its values do), and a snapshot whose columns differ from
    the catalog's is not swapped (HTTP 500 on the copy job), so the full refresh runs on a
    table without an added column."""
    job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **OPTIONS)
    job = JobConfig.parse({**job.model_dump(), "load_type": "merge", "primary_key": ["id"]})
    expected = {
        "time_partitioning": ("DAY", "ts", 3650 * 86_400_000),
        "clustering": ["name", "id"],
        "labels": {"team": "data", "cost-center": "42"},
        "description": "Orders from the shop export",
        "columns": DESCRIPTIONS_1,
    }
    first = run(job)
    assert _meta(bigquery_client, f"{bq_dataset}.t") == expected
    (tmp_path / "in" / "a.csv").write_bytes(
        b"id,ts,name,note\n1,2024-01-01 10:00:00,ann,paid\n2,2024-01-05 09:00:00,bob,late\n"
    )
    second = run(job, first.state)
    assert second.rows_loaded == 2
    assert _meta(bigquery_client, f"{bq_dataset}.t") == expected
    rows = f"SELECT id, name, note FROM `{bq_dataset}.t` ORDER BY id"
    assert bq_rows(bigquery_client, rows) == [(1, "ann", "paid"), (2, "bob", "late")]

    other = tmp_path / "other"
    other.mkdir()
    (other / "a.csv").write_bytes(CSV_1)
    config = job.model_dump()
    config.update(dest_table_name="u", connection_params={"base_path": str(other)})
    refreshing = JobConfig.parse(config)
    state = run(refreshing).state
    (other / "b.csv").write_bytes(b"id,ts,name\n2,2024-01-06 09:00:00,bo\n")
    refreshed = run(refreshing, state, full_refresh=True)
    assert refreshed.rows_loaded == 3
    assert bq_rows(bigquery_client, f"SELECT id, name FROM `{bq_dataset}.u` ORDER BY id") == [
        (1, "ann"),
        (2, "bo"),
    ]
    assert _meta(bigquery_client, f"{bq_dataset}.u") == expected


def test_range_partitioning_and_partition_filter_requests_across_merges(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Emulator gap (it drops `rangePartitioning` and `requirePartitionFilter`): the requests
    on the wire, recorded by a proxy in front of it, are asserted instead, and the proxy
    answers `tables.get` of `t` with the two fields the table was created with, as BigQuery
    does (without them the second run would be refused: the emulator reports the table
    unpartitioned). A merge source creates its table with the range partitioning and the
    partition filter; a merge run sends no request that changes or re-creates the table; a
    full refresh stages its snapshot in a table with the same range partitioning (which the
    copy job swaps in) and never re-creates or patches the table's partitioning."""
    import json

    from tests.conftest import emulator_env
    from tests.etl.load.test_bigquery_labels import RecordingProxy

    proxy = RecordingProxy(emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
    try:
        options = {
            "partitioning": {
                "field": "id", "start": 0, "end": 1000, "interval": 10, "require_filter": True,
            },
            "api_endpoint": proxy.url,
        }  # fmt: skip
        job = _files_job(tmp_path, bq_dataset, {"a.csv": CSV_1}, **options)
        job = JobConfig.parse({**job.model_dump(), "load_type": "merge", "primary_key": ["id"]})
        range_spec = {"field": "id", "range": {"start": "0", "end": "1000", "interval": "10"}}
        table_path = f"/datasets/{bq_dataset}/tables/t"

        def keep_partitioning(method: str, path: str, body: bytes, forward: Any) -> Any:
            status, headers, answer = forward()
            if method == "GET" and path.split("?")[0].endswith(table_path) and status == 200:
                resource = json.loads(answer)
                resource.update(rangePartitioning=range_spec, requirePartitionFilter=True)
                answer = json.dumps(resource).encode()
            return status, headers, answer

        proxy.intercept = keep_partitioning

        def tables_sent(start: int) -> tuple[dict[str, dict], list[dict]]:
            inserted, patched = {}, []
            for method, path, body in proxy.requests[start:]:
                route = path.split("?")[0]
                if method == "POST" and route.endswith(f"/datasets/{bq_dataset}/tables"):
                    resource = json.loads(body)
                    inserted[resource["tableReference"]["tableId"]] = resource
                elif method in ("PATCH", "PUT") and f"/datasets/{bq_dataset}/tables/t" in route:
                    patched.append(json.loads(body))
            return inserted, patched

        state = run(job).state
        inserted, _ = tables_sent(0)
        assert inserted["t"]["rangePartitioning"] == range_spec
        assert inserted["t"]["requirePartitionFilter"] is True

        mark = len(proxy.requests)
        (tmp_path / "in" / "a.csv").write_bytes(CSV_1.replace(b"ann", b"anne"))
        state = run(job, state).state
        inserted, patched = tables_sent(mark)
        assert "t" not in inserted
        assert all("rangePartitioning" not in p and "timePartitioning" not in p for p in patched)
        assert all("requirePartitionFilter" not in p for p in patched)

        mark = len(proxy.requests)
        run(job, state, full_refresh=True)
        inserted, patched = tables_sent(mark)
        (staging,) = [name for name in inserted if name.startswith("t__etl_staging_")]
        assert inserted[staging]["rangePartitioning"] == range_spec
        assert "t" not in inserted
        assert all("rangePartitioning" not in p for p in patched)
        rows = f"SELECT id, name FROM `{bq_dataset}.t` ORDER BY id"
        assert bq_rows(bigquery_client, rows) == [(1, "anne"), (2, "bob")]
    finally:
        proxy.close()
