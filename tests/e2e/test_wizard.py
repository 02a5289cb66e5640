"""A person in a real browser: logs in, creates a connection, walks the 5 wizard steps, saves,
clicks Run Now and sees the run succeed, for nycflights13.flights in PostgreSQL (336,776 rows)
and for a folder of CSV files. Celery is eager (the test settings), so Run Now executes the run
inside the request on the live server's real, transactional database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from ml_platform.models import DataSource, EtlRun
from tests.ml_platform.conftest import ORDERS_CSV

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FLIGHTS = 336_776
RUN_TIMEOUT_MS = 180_000


@pytest.fixture(autouse=True)
def warehouse(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    settings.ETL_DEFAULT_DUCKDB_PATH = str(path)
    return path


def _login(page: Any, live_server: Any) -> None:
    User.objects.create_user("ada", password="wizard-pass-1", is_staff=True)
    page.goto(f"{live_server.url}/etl/new/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "ada")
    page.fill("#id_password", "wizard-pass-1")
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/etl/new/1-connection/")


def _create_connection(page: Any, **fields: str) -> None:
    for name, value in fields.items():
        if name == "type":
            page.select_option("#id_new-type", value)
    for name, value in fields.items():
        if name != "type":
            page.fill(f"#id_new-{name}", value)
    page.click("button[value=create]")
    page.wait_for_load_state()
    page.click("button[value=test]")
    page.wait_for_selector("#test-result")
    assert page.inner_text("#test-result").startswith("Connection succeeded.")


def _run_now(page: Any, shot: Any, rows: int) -> EtlRun:
    page.click("#run-now", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("#runs .status[data-status=succeeded]", timeout=RUN_TIMEOUT_MS)
    shot("6-run-succeeded")
    row = page.locator("#runs tbody tr").first
    assert row.locator(".status").inner_text() == "Succeeded"
    assert row.locator(".rows").inner_text() == f"{rows:,}"
    run = EtlRun.objects.get()
    assert (run.status, run.rows_loaded, run.trigger) == ("succeeded", rows, "manual")
    return run


def test_postgresql_flights_wizard_and_run_now(
    page: Any, shot: Any, live_server: Any, pg_nycflights13: str
) -> None:
    """PostgreSQL 127.0.0.1:5432 database test: nycflights13.flights, all columns,
    transactional on time_hour, daily 06:00 Europe/Kyiv; Run Now loads 336,776 rows."""
    _login(page, live_server)
    _create_connection(
        page, name="pg test", type="postgresql", host="127.0.0.1", port="5432",
        database="test", user="postgres",
    )  # fmt: skip
    shot("1-connection")
    page.click("button[value=next]")

    page.wait_for_url("**/2-source/")
    page.select_option("#schema", pg_nycflights13)
    page.wait_for_url("**/2-source/?schema=*")
    page.check("input[value='nycflights13.flights']")
    shot("2-table")
    page.click("button[value=next]")

    page.wait_for_url("**/3-preview/")
    header = page.inner_text("#preview")
    assert "time_hour" in header and "TIMESTAMP WITH TIME ZONE" in header
    expect(page.locator("#preview tr")).to_have_count(3 + 20)
    shot("3-preview")
    page.click("#next")

    page.wait_for_url("**/4-destination/")
    page.click("button[value=next]")

    page.wait_for_url("**/5-strategy/")
    assert page.is_checked("input[name=load_type][value=transactional]")
    options = page.locator("#id_timestamp_column option").all_inner_texts()
    assert "time_hour" in options and "carrier" not in options
    page.select_option("#id_timestamp_column", "time_hour")
    assert page.input_value("#id_dest_table_name") == "flights"
    shot("4-strategy")
    page.click("button:has-text('Next: schedule')")

    page.wait_for_url("**/6-schedule/")
    page.fill("#id_schedule_cron", "0 6 * * *")
    page.fill("#id_schedule_timezone", "Europe/Kyiv")
    page.click("button[value=preview]")
    expect(page.locator("#fire-times li")).to_have_count(5)
    assert "06:00 EE" in page.inner_text("#fire-times")
    shot("5-schedule")
    page.click("button[value=save]")

    page.wait_for_url("**/etl/sources/*/")
    source = DataSource.objects.get()
    assert (source.source_table_name, source.timestamp_column, source.schedule_cron) == (
        "nycflights13.flights", "time_hour", "0 6 * * *",
    )  # fmt: skip
    _run_now(page, shot, FLIGHTS)
    page.goto(f"{live_server.url}/etl/")
    assert "Succeeded" in page.inner_text("#sources") and f"{FLIGHTS:,}" in page.inner_text(
        "#sources"
    )
    shot("7-source-list")


def test_local_csv_wizard_and_run_now(
    page: Any, shot: Any, live_server: Any, tmp_path: Path
) -> None:
    """Local files: a bad pattern is flagged next to the field, `orders/*.csv` lists 2 files;
    3 columns chosen, transactional (file ledger), no schedule; Run Now loads 8 rows."""
    folder = tmp_path / "files"
    (folder / "orders").mkdir(parents=True)
    (folder / "orders" / "2024-01.csv").write_text(ORDERS_CSV)
    (folder / "orders" / "2024-02.csv").write_text(ORDERS_CSV.replace("\n1,", "\n11,"))
    _login(page, live_server)
    _create_connection(page, name="exports", type="local", base_path=str(folder))
    shot("1-connection")
    page.click("button[value=next]")

    page.wait_for_url("**/2-source/")
    page.fill("#id_file_prefix", "orders/")
    page.fill("#id_file_pattern", "*.parquet")
    page.click("button[value=next]")
    assert "No file matches" in page.inner_text("#field-file_pattern")
    page.fill("#id_file_pattern", "*.csv")
    page.click("button[value=list]")
    expect(page.locator("#files tr")).to_have_count(1 + 2)
    shot("2-files")
    page.click("button[value=next]")

    page.wait_for_url("**/3-preview/")
    page.uncheck("input[name=columns][value=ordered_at]")
    shot("3-preview")
    page.click("#next")

    page.wait_for_url("**/4-destination/")
    page.click("button[value=next]")

    page.wait_for_url("**/5-strategy/")
    page.fill("#id_dest_table_name", "orders")
    shot("4-strategy")
    page.click("button:has-text('Next: schedule')")

    page.wait_for_url("**/6-schedule/")
    page.fill("#id_name", "orders files")
    page.fill("#id_schedule_cron", "61 * * * *")
    page.click("button[value=save]")
    assert "Invalid end range: 61 > 59" in page.inner_text("#field-schedule_cron")
    page.fill("#id_schedule_cron", "")
    shot("5-schedule")
    page.click("button[value=save]")

    page.wait_for_url("**/etl/sources/*/")
    source = DataSource.objects.get()
    assert source.selected_columns == ["id", "customer", "amount"]
    assert source.load_type == "transactional" and source.schedule_cron == ""
    _run_now(page, shot, 8)
