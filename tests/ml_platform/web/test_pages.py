"""Web pages through Django's test client: staff only, the wizard for a local CSV source,
errors next to the field, the source page and its runs JSON."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from ml_platform.models import Connection, DataSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_pages_need_staff_login(client: Client) -> None:
    """Anonymous users are sent to the login page; logged-in non-staff users get 403."""
    response = client.get("/etl/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=/etl/")
    User.objects.create_user("guest", password="pw")
    client.login(username="guest", password="pw")
    response = client.get("/etl/new/1-connection/")
    assert response.status_code == 403
    assert "this account is not a <strong>staff</strong> account" in response.content.decode()
    assert client.get("/accounts/login/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_wizard_local_csv_source_end_to_end(staff: Client, local_connection: Connection) -> None:
    """Five steps for a CSV folder: files listed, preview with destination types, file-ledger
    transactional load, a bad cron shown next to its field, then saved; Run Now loads 4 rows
    (eager Celery) and the runs JSON reports them."""
    staff.get("/etl/new/")
    response = staff.post(
        "/etl/new/1-connection/", {"choose-connection": local_connection.pk, "action": "test"}
    )
    assert "Connection succeeded." in response.content.decode()
    response = staff.post(
        "/etl/new/1-connection/", {"choose-connection": local_connection.pk, "action": "next"}
    )
    assert response.url == "/etl/new/2-source/"
    form = {"file_prefix": "", "file_pattern": "*.csv", "file_format": "csv", "has_header": "on",
            "delimiter": ",", "encoding": "utf-8", "quote_char": '"'}  # fmt: skip
    response = staff.post("/etl/new/2-source/", {**form, "action": "list"})
    assert "orders_1.csv" in response.content.decode()
    assert staff.post("/etl/new/2-source/", {**form, "action": "next"}).url == "/etl/new/3-preview/"
    page = staff.get("/etl/new/3-preview/").content.decode()
    assert "alice" in page and "→ <code>ordered_at</code>" in page
    response = staff.post("/etl/new/3-preview/", {"columns": ["id", "customer", "amount"]})
    assert response.url == "/etl/new/4-destination/"
    response = staff.post(
        "/etl/new/4-destination/", {"type": "duckdb", "dataset": "raw_data", "action": "next"}
    )
    assert response.url == "/etl/new/5-strategy/"
    strategy = {"load_type": "transactional", "dest_table_name": "orders", "null_cursor": "fail",
                "cursor_lag_seconds": "0", "on_bad_rows": "fail"}  # fmt: skip
    response = staff.post("/etl/new/5-strategy/", strategy)
    assert response.url == "/etl/new/6-schedule/"
    bad = {"name": "orders", "schedule_cron": "99 * * * *", "schedule_timezone": "Europe/Kiev"}
    page = staff.post("/etl/new/6-schedule/", {**bad, "action": "save"}).content.decode()
    assert 'id="field-schedule_cron"' in page and "Invalid end range: 99 &gt; 59" in page
    assert not DataSource.objects.exists()
    good = {**bad, "schedule_cron": "0 6 * * *", "description": "Shop orders, nightly."}
    page = staff.post("/etl/new/6-schedule/", {**good, "action": "preview"}).content.decode()
    assert page.count("06:00 EE") == 5
    response = staff.post("/etl/new/6-schedule/", {**good, "action": "save"})
    source = DataSource.objects.get()
    assert response.url == f"/etl/sources/{source.pk}/"
    assert (source.selected_columns, source.load_type, source.file_pattern) == (
        ["id", "customer", "amount"], "transactional", "*.csv",
    )  # fmt: skip
    assert source.description == "Shop orders, nightly."

    # committed for real (transactional test): the eager task runs on commit, as in production
    staff.post(f"/etl/sources/{source.pk}/run/")
    runs = staff.get(f"/etl/sources/{source.pk}/runs.json").json()["runs"]
    assert [(r["status"], r["rows_loaded"], r["trigger"]) for r in runs] == [
        ("succeeded", 4, "Manual")
    ]
    listing = staff.get("/etl/").content.decode()
    assert "orders" in listing and "succeeded" in listing


def test_wizard_merge_strategy_needs_a_primary_key(
    staff: Client, local_connection: Connection
) -> None:
    """The strategy step offers "Incremental, deduplicated on the primary key"; choosing it
    without a primary key shows the contract's error next to the field; with `id` the source
    is saved as a merge on ["id"]."""
    staff.get("/etl/new/")
    staff.post(
        "/etl/new/1-connection/", {"choose-connection": local_connection.pk, "action": "next"}
    )
    form = {"file_prefix": "", "file_pattern": "*.csv", "file_format": "csv", "has_header": "on",
            "delimiter": ",", "encoding": "utf-8", "quote_char": '"', "action": "next"}  # fmt: skip
    staff.post("/etl/new/2-source/", form)
    staff.post("/etl/new/3-preview/", {"columns": ["id", "customer", "amount"]})
    staff.post(
        "/etl/new/4-destination/", {"type": "duckdb", "dataset": "raw_data", "action": "next"}
    )
    page = staff.get("/etl/new/5-strategy/").content.decode()
    assert "Incremental, deduplicated on the primary key" in page
    strategy = {"load_type": "merge", "dest_table_name": "orders", "on_bad_rows": "fail"}
    page = staff.post("/etl/new/5-strategy/", strategy).content.decode()
    assert 'id="error-primary_key"' in page
    assert "primary_key is required for a merge load" in page
    response = staff.post("/etl/new/5-strategy/", {**strategy, "primary_key": ["id"]})
    assert response.url == "/etl/new/6-schedule/"
    schedule = {"name": "orders", "schedule_timezone": "UTC", "action": "save"}
    response = staff.post("/etl/new/6-schedule/", schedule)
    assert response.status_code == 302, response.content.decode()[-2000:]
    source = DataSource.objects.get()
    assert (source.load_type, source.primary_key) == ("merge", ["id"])
