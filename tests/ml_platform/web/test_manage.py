"""Managing sources and connections in the web pages: edit a connection (prefilled, secrets
never shown and kept when left blank, tested before saving), enable / disable and delete a
source (its beat schedule follows), reset state and full refresh (the next run reloads and
replaces the table: no duplicates, no adopted state), log out, and the page a non-staff user
sees.

Reset semantics follow the field: a reset that leaves the rows of the earlier sync in place is
reported as duplicated data (https://github.com/airbytehq/airbyte/issues/74283)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_celery_beat.models import PeriodicTask

from ml_platform.models import Connection, DataSource, DataSourceState, EtlRun, ProcessedFile
from ml_platform.services import connection_create, data_source_create
from ml_platform.services.schedules import periodic_task_name

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    return client


def test_connection_edit_keeps_secrets_and_tests_first(staff: Client) -> None:
    """The edit form is prefilled but shows no password; saving with the password blank keeps
    it; a change that fails the test is not saved until "Save anyway"."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": "s3cr3t-pw"},
    )  # fmt: skip
    url = f"/etl/connections/{connection.pk}/edit/"
    page = staff.get(url).content.decode()
    assert 'name="new-host" value="127.0.0.1"' in page and "s3cr3t-pw" not in page
    form = {"new-name": "pg main", "new-type": "postgresql", "new-host": "127.0.0.1",
            "new-port": "5432", "new-database": "test", "new-user": "postgres",
            "action": "save"}  # fmt: skip
    response = staff.post(url, form)
    assert response.status_code == 302 and response.url == "/etl/connections/"
    connection.refresh_from_db()
    assert (connection.name, connection.credentials) == ("pg main", '{"password": "s3cr3t-pw"}')
    page = staff.post(url, {**form, "new-port": "1"}).content.decode()
    assert 'id="create-test-error">The connection test failed: ' in page
    connection.refresh_from_db()
    assert connection.port == 5432
    response = staff.post(url, {**form, "new-port": "1", "action": "save_anyway"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert (connection.port, connection.credentials) == (1, '{"password": "s3cr3t-pw"}')


def test_connection_delete_refused_while_used(staff: Client, csv_source: DataSource) -> None:
    connection = csv_source.connection
    response = staff.post(f"/etl/connections/{connection.pk}/delete/", follow=True)
    assert "Connection local files is used by data source(s) orders; delete those first." in (
        response.content.decode()
    )
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_enable_disable_and_delete_follow_the_schedule(
    staff: Client, local_connection: Connection
) -> None:
    source = data_source_create(
        name="hourly", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv", schedule_cron="0 * * * *",
    )  # fmt: skip
    task = periodic_task_name(data_source_id=source.pk)
    assert PeriodicTask.objects.filter(name=task).exists()
    staff.post(f"/etl/sources/{source.pk}/enable/", {"enabled": "0"})
    source.refresh_from_db()
    assert not source.enabled and not PeriodicTask.objects.filter(name=task).exists()
    page = staff.get(f"/etl/sources/{source.pk}/").content.decode()
    assert "(disabled)" in page and ">Enable</button>" in page
    staff.post(f"/etl/sources/{source.pk}/enable/", {"enabled": "1"})
    assert PeriodicTask.objects.filter(name=task).exists()
    page = staff.get(f"/etl/sources/{source.pk}/delete/").content.decode()
    assert "its schedule (<code>0 * * * *</code>)" in page
    response = staff.post(f"/etl/sources/{source.pk}/delete/")
    assert response.url == "/etl/"
    assert not DataSource.objects.exists() and not PeriodicTask.objects.filter(name=task).exists()


@pytest.mark.django_db(transaction=True)
def test_reset_and_full_refresh_reload_without_duplicates(
    staff: Client, local_connection: Connection, csv_dir: Path, warehouse: Path
) -> None:
    """File ledger source: 4 rows; Full refresh now reloads them replacing the table (4, not
    8) and the ledger is rebuilt; the next run loads nothing; Reset state alone only marks the
    source, its next run replaces again."""
    source = data_source_create(
        name="orders", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv",
    )  # fmt: skip

    def count() -> int:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            return conn.execute("SELECT count(*) FROM raw_data.orders").fetchone()[0]

    staff.post(f"/etl/sources/{source.pk}/run/")
    assert (count(), ProcessedFile.objects.count()) == (4, 1)
    response = staff.post(f"/etl/sources/{source.pk}/reset/", {"action": "refresh"})
    assert response.status_code == 302
    runs = list(EtlRun.objects.order_by("id").values_list("status", "rows_loaded"))
    assert runs == [("succeeded", 4), ("succeeded", 4)]
    assert (count(), ProcessedFile.objects.count()) == (4, 1)
    assert DataSourceState.objects.get().full_refresh_pending is False
    staff.post(f"/etl/sources/{source.pk}/run/")
    assert EtlRun.objects.order_by("-id").first().rows_loaded == 0 and count() == 4
    response = staff.post(f"/etl/sources/{source.pk}/reset/", {"action": "reset"}, follow=True)
    assert "State reset: the next run reloads everything." in response.content.decode()
    assert (DataSourceState.objects.get().full_refresh_pending, ProcessedFile.objects.count()) == (
        True,
        0,
    )
    staff.post(f"/etl/sources/{source.pk}/run/")
    assert (EtlRun.objects.order_by("-id").first().rows_loaded, count()) == (4, 4)
    listing = staff.get("/etl/").content.decode()
    assert (
        '<td class="trend" title="rows loaded by the last successful runs, oldest first">██▁█</td>'
        in listing
    )


@pytest.mark.django_db(transaction=True)
def test_reset_of_a_table_source_restarts_the_watermark(
    staff: Client, pg_events_table: str, warehouse: Path
) -> None:
    """PostgreSQL events (5 rows, cursor updated_at): run, reset, run: 5 rows again replacing
    the table, the run page shows the watermark `(none)` -> the latest value."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres",
    )  # fmt: skip
    source = data_source_create(
        name="events", connection=connection, dest_table_name="events",
        source_table_name=pg_events_table, timestamp_column="updated_at", primary_key=["id"],
    )  # fmt: skip
    staff.post(f"/etl/sources/{source.pk}/run/")
    staff.post(f"/etl/sources/{source.pk}/reset/", {"action": "refresh"})
    first, second = EtlRun.objects.order_by("id")
    assert (first.rows_loaded, second.rows_loaded) == (5, 5)
    assert first.watermark_before == "" and second.watermark_before == ""
    assert second.watermark_after == first.watermark_after != ""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.events").fetchone() == (5,)
    page = staff.get(f"/etl/runs/{second.pk}/").content.decode()
    watermark = re.search(r'id="run-watermark">(.*?)</dd>', page, re.S).group(1)
    assert watermark == f"<code>(none)</code> → <code>{second.watermark_after}</code>"


def test_logout_and_non_staff_page(client: Client) -> None:
    User.objects.create_user("guest", password="pw")
    client.login(username="guest", password="pw")
    response = client.get("/etl/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You cannot use ETL Runner yet" in page and "Staff status" in page
    assert 'id="logout"' in page
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response.url == "/accounts/login/"
    assert client.get("/etl/").url.startswith("/accounts/login/")


def test_sparkline() -> None:
    """Rows per run scaled to the largest: the list's row trend."""
    from ml_platform.web.sources import sparkline

    assert (sparkline([0, 4, 8, 4, 0]), sparkline([5, 5]), sparkline([0]), sparkline([])) == (
        "▁▅█▅▁", "██", "▁", "",
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_full_refresh_never_takes_over_a_deleted_sources_table(
    staff: Client, local_connection: Connection, warehouse: Path
) -> None:
    """A deleted source's table (and its load log) stays; a new source onto it whose first act
    is Full refresh now is refused by the engine (the load log names the deleted source's
    pipeline as the owner), nothing is adopted, and the table keeps its 4 rows."""

    def make() -> DataSource:
        return data_source_create(
            name="orders", connection=local_connection, dest_table_name="orders",
            file_pattern="*.csv", file_format="csv",
        )  # fmt: skip

    first = make()
    staff.post(f"/etl/sources/{first.pk}/run/")
    staff.post(f"/etl/sources/{first.pk}/delete/")
    second = make()
    staff.post(f"/etl/sources/{second.pk}/reset/", {"action": "refresh"})
    run = EtlRun.objects.get(data_source=second)
    assert (run.status, run.error_class, run.reconciled_run_id) == (
        "failed",
        "TableOwnedError",
        "",
    )
    assert f"belongs to pipeline `datasource:{first.pk}`" in run.error_message
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.orders").fetchone() == (4,)
