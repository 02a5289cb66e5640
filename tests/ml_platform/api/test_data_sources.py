"""Data sources API: CRUD with the contract's validation, preview through the engine (nothing
written), Run Now."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource, DataSourceState, EtlRun
from ml_platform.services import connection_create, data_source_create, etl_run_create

pytestmark = pytest.mark.django_db


def test_create_file_source(staff_client: APIClient, local_connection: Connection) -> None:
    """A CSV source needs no cursor and no columns: 201 with the stored fields."""
    response = staff_client.post(
        "/api/etl/sources/",
        {
            "name": "orders",
            "connection": local_connection.id,
            "dest_table_name": "orders",
            "file_pattern": "*.csv",
            "file_format": "csv",
            "file_format_options": {"delimiter": ","},
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["source_type"], body["load_type"], body["selected_columns"]) == (
        "local",
        "transactional",
        [],
    )
    assert body["has_destination_credentials"] is False
    assert DataSource.objects.get().file_format_options == {"delimiter": ","}


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (
            {"source_table_name": "public.t", "load_type": "transactional"},
            "timestamp_column",
            "Invalid job config: `timestamp_column`: timestamp_column is required for a "
            "transactional table load",
        ),
        (
            {"source_table_name": "public.t", "load_type": "merge", "timestamp_column": "ts"},
            "primary_key",
            "Invalid job config: `primary_key`: primary_key is required for a merge load: the "
            "columns that identify a row",
        ),
        (
            {"load_type": "catalog"},
            "source_table_name",
            "Invalid job config: `source_table_name`: give exactly one of source_table_name "
            "and custom_sql",
        ),
        (
            {"source_table_name": "public.t", "load_type": "catalog", "dest_table_name": "9x"},
            "dest_table_name",
            "Invalid job config: `dest_table_name`: must be letters, digits and underscores, "
            "not starting with a digit",
        ),
        (
            {"source_table_name": "public.t", "load_type": "catalog", "schedule_cron": "* *"},
            "schedule_cron",
            "Expected five cron fields (minute hour day month weekday): got 2 field(s).",
        ),
    ],
    ids=["cursor-required", "merge-key-required", "table-or-sql", "bad-dest-table", "bad-cron"],
)
def test_create_invalid_names_field(
    staff_client: APIClient, payload: dict, field: str, message: str
) -> None:
    """An invalid PostgreSQL source: 400 keyed by the offending field with the contract's
    message; nothing is stored."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", database="test", user="postgres"
    )
    body = {"name": "s", "connection": connection.id, "dest_table_name": "t", **payload}
    response = staff_client.post("/api/etl/sources/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation error",
        "extra": {"fields": {field: [message]}},
    }
    assert DataSource.objects.count() == 0


def test_create_unknown_connection(staff_client: APIClient) -> None:
    response = staff_client.post(
        "/api/etl/sources/",
        {"name": "s", "connection": 42, "dest_table_name": "t"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {
        "connection": ['Invalid pk "42" - object does not exist.']
    }


def test_update_and_destination_credentials_write_only(
    staff_client: APIClient, csv_source: DataSource
) -> None:
    """PATCH changes the given fields and re-validates; destination credentials are accepted,
    never returned; an invalid change (file source without format) is refused by field."""
    url = f"/api/etl/sources/{csv_source.id}/"
    response = staff_client.patch(
        url,
        {
            "chunk_size": 2,
            "destination": {"type": "bigquery", "project": "p", "dataset": "raw"},
            "destination_credentials": {"type": "service_account", "private_key": "K-SECRET"},
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["chunk_size"] == 2
    assert response.json()["has_destination_credentials"] is True
    assert "K-SECRET" not in response.content.decode()
    assert "K-SECRET" not in staff_client.get(f"/api/etl/sources/{csv_source.id}/").content.decode()

    refused = staff_client.patch(url, {"file_format": ""}, format="json")
    assert refused.status_code == 400
    assert list(refused.json()["extra"]["fields"]) == ["file_format"]


def test_delete_refused_while_running(staff_client: APIClient, csv_source: DataSource) -> None:
    run, _ = etl_run_create(data_source=csv_source, trigger="api")
    response = staff_client.delete(f"/api/etl/sources/{csv_source.id}/")
    assert response.status_code == 400
    assert response.json()["message"] == (
        f"Data source orders has run {run.id} queued; delete it when the run ends."
    )


def test_preview_csv_writes_nothing(
    staff_client: APIClient, csv_source: DataSource, warehouse: Path
) -> None:
    """The first 2 CSV rows with destination names and DuckDB types; no table, no state, no run."""
    response = staff_client.get(f"/api/etl/sources/{csv_source.id}/preview/", {"limit": 2})

    assert response.status_code == 200
    body = response.json()
    assert [(c["source_name"], c["name"], c["destination_type"]) for c in body["columns"]] == [
        ("id", "id", "BIGINT"),
        ("customer", "customer", "VARCHAR"),
        ("amount", "amount", "DOUBLE"),
        ("ordered_at", "ordered_at", "TIMESTAMP WITH TIME ZONE"),
        ("_etl_source_file", "_etl_source_file", "VARCHAR"),
    ]
    assert body["rows"] == [
        {
            "id": 1,
            "customer": "alice",
            "amount": 10.5,
            "ordered_at": "2024-01-01T10:00:00+00:00",
            "_etl_source_file": "orders_1.csv",
        },
        {
            "id": 2,
            "customer": "bob",
            "amount": 20.0,
            "ordered_at": "2024-01-01T11:00:00+00:00",
            "_etl_source_file": "orders_1.csv",
        },
    ]
    assert not warehouse.exists()
    assert (DataSourceState.objects.count(), EtlRun.objects.count()) == (0, 0)


@pytest.mark.integration
def test_preview_postgresql_names_and_bigquery_types(
    staff_client: APIClient, pg_events_table: str
) -> None:
    """A PostgreSQL source with a column needing a new name (`Event Kind`) and a BigQuery
    destination: sanitized names, BigQuery types (NUMERIC, TIMESTAMP), exact decimals."""
    import psycopg

    from tests.ml_platform.conftest import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE {pg_events_table} RENAME COLUMN kind TO "Event Kind"')
    connection = connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
    )
    source = data_source_create(
        name="events",
        connection=connection,
        dest_table_name="events",
        source_table_name=pg_events_table,
        timestamp_column="updated_at",
        primary_key=["id"],
        destination={"type": "bigquery", "project": "p", "dataset": "raw"},
    )
    body = staff_client.get(f"/api/etl/sources/{source.id}/preview/", {"limit": 3}).json()

    assert [(c["source_name"], c["name"], c["destination_type"]) for c in body["columns"]] == [
        ("id", "id", "INT64"),
        ("Event Kind", "event_kind", "STRING"),
        ("value", "value", "NUMERIC"),
        ("updated_at", "updated_at", "TIMESTAMP"),
    ]
    assert body["rows"][0] == {
        "id": 1,
        "event_kind": "signup",
        "value": "1.10",
        "updated_at": "2024-03-01T08:00:00+00:00",
    }
    assert len(body["rows"]) == 3


def test_preview_limit_bounds(staff_client: APIClient, csv_source: DataSource) -> None:
    response = staff_client.get(f"/api/etl/sources/{csv_source.id}/preview/", {"limit": 100000})
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"limit": ["Ensure this value is at most 1000."]}


def test_preview_bad_source_names_problem(
    staff_client: APIClient, csv_source: DataSource, csv_dir: Path
) -> None:
    """A selected column missing from the file: 400 naming `selected_columns`."""
    DataSource.objects.filter(pk=csv_source.pk).update(selected_columns=["nope"])
    response = staff_client.get(f"/api/etl/sources/{csv_source.id}/preview/")
    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == ["selected_columns"]


def test_run_now_executes_and_returns_active_run(
    staff_client: APIClient,
    csv_source: DataSource,
    warehouse: Path,
    django_capture_on_commit_callbacks,
) -> None:
    """Run Now queues a run (202) that the (eager) task loads: 4 rows. A Run Now while a run is
    running returns that run and starts nothing."""
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/api/etl/sources/{csv_source.id}/run/")
    assert response.status_code == 202
    run = EtlRun.objects.get(pk=response.json()["id"])
    assert (run.status, run.trigger, run.rows_loaded) == ("succeeded", "api", 4)
    with duckdb.connect(str(warehouse)) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.orders").fetchone() == (4,)

    running, _ = etl_run_create(data_source=csv_source, trigger="beat")
    EtlRun.objects.filter(pk=running.pk).update(status="running")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = staff_client.post(f"/api/etl/sources/{csv_source.id}/run/")
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (
        202,
        running.id,
        "running",
    )
    assert callbacks == []
    assert EtlRun.objects.count() == 2


def test_runs_list_and_detail(
    staff_client: APIClient, csv_source: DataSource, django_capture_on_commit_callbacks
) -> None:
    """Runs list newest first with filters; detail has counts, timings and the error."""
    with django_capture_on_commit_callbacks(execute=True):
        first = staff_client.post(f"/api/etl/sources/{csv_source.id}/run/").json()
    failed, _ = etl_run_create(data_source=csv_source, trigger="beat")
    EtlRun.objects.filter(pk=failed.pk).update(
        status="failed", error_class="SourceUnavailableError", error_message="down"
    )

    listing = staff_client.get("/api/etl/runs/", {"data_source": csv_source.id}).json()
    assert listing["count"] == 2
    assert [r["id"] for r in listing["results"]] == [failed.id, first["id"]]
    only_failed = staff_client.get("/api/etl/runs/", {"status": "failed"}).json()
    assert [r["id"] for r in only_failed["results"]] == [failed.id]

    detail = staff_client.get(f"/api/etl/runs/{first['id']}/").json()
    assert (detail["status"], detail["rows_extracted"], detail["rows_loaded"]) == (
        "succeeded",
        4,
        4,
    )
    assert (detail["files_loaded"], detail["data_source_name"]) == (1, "orders")
    assert detail["started_at"] is not None and detail["finished_at"] is not None
    assert detail["duration_s"] >= 0
    error = staff_client.get(f"/api/etl/runs/{failed.id}/").json()
    assert (error["error_class"], error["error_message"]) == ("SourceUnavailableError", "down")
