"""The admin never renders a secret, writes through the services and keeps runs read-only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ml_platform.models import Connection, DataSource, EtlRun
from ml_platform.services import connection_create, credentials_read, data_source_create

pytestmark = pytest.mark.django_db

PASSWORD = "pg-Pa55-never-shown"
SERVICE_ACCOUNT_KEY = "-----BEGIN PRIVATE KEY-----never-shown"


@pytest.fixture
def pg_connection() -> Connection:
    return connection_create(
        name="warehouse db",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": PASSWORD},
    )


@pytest.fixture
def bq_source(pg_connection: Connection) -> DataSource:
    return data_source_create(
        name="events to bq",
        connection=pg_connection,
        dest_table_name="events",
        source_table_name="public.events",
        load_type="catalog",
        destination={"type": "bigquery", "project": "p", "dataset": "raw"},
        destination_credentials={"type": "service_account", "private_key": SERVICE_ACCOUNT_KEY},
    )


@pytest.mark.parametrize("url_name", ["changelist", "change"], ids=["list", "detail"])
def test_connection_admin_hides_credentials(
    admin_client: Client, pg_connection: Connection, url_name: str
) -> None:
    """Neither the list nor the change page contains the password or its ciphertext."""
    args = [pg_connection.id] if url_name == "change" else []

    response = admin_client.get(reverse(f"admin:ml_platform_connection_{url_name}", args=args))

    assert response.status_code == 200
    content = response.content.decode()
    assert "warehouse db" in content
    assert PASSWORD not in content
    assert pg_connection.credentials not in content
    assert "gAAAAA" not in content


@pytest.mark.parametrize("url_name", ["changelist", "change"], ids=["list", "detail"])
def test_data_source_admin_hides_destination_credentials(
    admin_client: Client, bq_source: DataSource, url_name: str
) -> None:
    """Neither the list nor the change page contains the destination's private key."""
    args = [bq_source.id] if url_name == "change" else []

    response = admin_client.get(reverse(f"admin:ml_platform_datasource_{url_name}", args=args))

    assert response.status_code == 200
    content = response.content.decode()
    assert "events to bq" in content
    assert SERVICE_ACCOUNT_KEY not in content
    assert PASSWORD not in content
    assert "gAAAAA" not in content


def _connection_form(connection: Connection, **overrides: str) -> dict[str, str]:
    data = {
        "name": connection.name,
        "type": connection.type,
        "host": connection.host,
        "port": str(connection.port),
        "database": connection.database,
        "user": connection.user,
        "bucket": "",
        "container": "",
        "base_path": "",
        "project": "",
        "endpoint_url": "",
        "extra_params": "{}",
        "max_readers": str(connection.max_readers),
        "password": "",
        "new_credentials": "",
    }
    return {**data, **overrides}


def test_connection_admin_blank_password_keeps_secret(
    admin_client: Client, pg_connection: Connection
) -> None:
    """Saving the form with the password left blank keeps the stored password."""
    url = reverse("admin:ml_platform_connection_change", args=[pg_connection.id])

    response = admin_client.post(url, _connection_form(pg_connection, host="db.internal"))

    assert response.status_code == 302
    saved = Connection.objects.get(id=pg_connection.id)
    assert saved.host == "db.internal"
    assert credentials_read(connection=saved) == {"password": PASSWORD}


def test_connection_admin_sets_new_password(
    admin_client: Client, pg_connection: Connection
) -> None:
    """A typed password replaces the stored one (encrypted)."""
    url = reverse("admin:ml_platform_connection_change", args=[pg_connection.id])

    response = admin_client.post(url, _connection_form(pg_connection, password="new-pw-42"))

    assert response.status_code == 302
    saved = Connection.objects.get(id=pg_connection.id)
    assert credentials_read(connection=saved) == {"password": "new-pw-42"}


def test_connection_admin_add_validates_through_service(admin_client: Client) -> None:
    """Adding a PostgreSQL connection without host re-renders the form with the error on
    `host`; nothing is saved."""
    data = {
        "name": "no host",
        "type": "postgresql",
        "host": "",
        "port": "",
        "database": "d",
        "user": "u",
        "bucket": "",
        "container": "",
        "base_path": "",
        "project": "",
        "endpoint_url": "",
        "extra_params": "{}",
        "max_readers": "4",
        "password": "secret-typed",
        "new_credentials": "",
    }

    response = admin_client.post(reverse("admin:ml_platform_connection_add"), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "host": ["This field is required for a postgresql connection."]
    }
    assert "secret-typed" not in response.content.decode()
    assert Connection.objects.count() == 0


def test_runs_are_read_only(admin_client: Client, bq_source: DataSource) -> None:
    """A run's page renders for viewing; changing, adding or deleting is forbidden."""
    run = EtlRun.objects.create(data_source=bq_source, trigger="manual")

    view = admin_client.get(reverse("admin:ml_platform_etlrun_change", args=[run.id]))
    change = admin_client.post(
        reverse("admin:ml_platform_etlrun_change", args=[run.id]), {"status": "succeeded"}
    )
    add = admin_client.get(reverse("admin:ml_platform_etlrun_add"))
    delete = admin_client.post(
        reverse("admin:ml_platform_etlrun_delete", args=[run.id]), {"post": "yes"}
    )

    assert view.status_code == 200
    assert (change.status_code, add.status_code, delete.status_code) == (403, 403, 403)
    assert EtlRun.objects.get(id=run.id).status == "queued"


def test_data_source_admin_add_shows_contract_error(
    admin_client: Client, pg_connection: Connection
) -> None:
    """A transactional table source without cursor is refused with the error on
    `timestamp_column`; a valid one is created through the service."""
    data = {
        "name": "orders",
        "connection": str(pg_connection.id),
        "load_type": "transactional",
        "dest_table_name": "orders",
        "selected_columns": "[]",
        "source_table_name": "public.orders",
        "custom_sql": "",
        "timestamp_column": "",
        "primary_key": "[]",
        "cursor_lag_seconds": "0",
        "null_cursor": "fail",
        "on_bad_rows": "fail",
        "on_unrepresentable": "nearest",
        "initial_value": "",
        "file_pattern": "*",
        "file_prefix": "",
        "file_format": "",
        "file_format_options": "{}",
        "chunk_size": "100000",
        "parallelism": "1",
        "destination": "{}",
        "new_destination_credentials": "",
        "enabled": "on",
        "schedule_cron": "",
        "schedule_timezone": "UTC",
    }
    url = reverse("admin:ml_platform_datasource_add")

    refused = admin_client.post(url, data)
    created = admin_client.post(url, {**data, "timestamp_column": "updated_at"})

    assert refused.status_code == 200
    assert list(refused.context["adminform"].form.errors) == ["timestamp_column"]
    assert created.status_code == 302
    assert DataSource.objects.get().timestamp_column == "updated_at"


def test_data_source_admin_run_now(
    admin_client: Client, csv_source: DataSource, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    """The "Run now" action enqueues a manual run, which the eager task executes on commit."""
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:ml_platform_datasource_changelist"),
            {"action": "run_now", "_selected_action": [str(csv_source.id)]},
        )

    assert response.status_code == 302
    run = EtlRun.objects.get()
    assert (run.trigger, run.status, run.rows_loaded) == ("manual", "succeeded", 4)
