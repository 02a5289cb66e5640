"""A person in a real browser sets up CSV files in an S3 bucket (moto) loaded into BigQuery
(the emulator) with the table options of issue 13 chosen in step 4: DAY partitioning on the
preview's timestamp column, two ordered clustering columns, a description and labels; Run Now
loads the rows, and the table's metadata read back from the emulator is what was chosen.

Peers' reports behind it: partitioning and clustering chosen in a connector's UI, columns
picked from the schema rather than typed
(https://github.com/data-integrations/google-cloud/pull/127), and clustering columns checked
against BigQuery's types before the table exists (https://github.com/PeerDB-io/peerdb/pull/2002).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from ml_platform.models import DataSource
from tests.conftest import BIGQUERY_PROJECT, emulator_env
from tests.e2e.test_wizard import _create_connection, _login, _run_now
from tests.etl.extract.conftest import S3_CREDENTIALS, S3Bucket, emulator_endpoint
from tests.ml_platform.conftest import ORDERS_CSV

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def s3_orders() -> Any:
    """A fresh moto bucket holding `orders/2024-01.csv` and `orders/2024-02.csv` (4 rows each,
    ids 1-4 and 11-14)."""
    bucket = S3Bucket(emulator_endpoint("s3"), f"e2e-{uuid.uuid4().hex[:10]}")
    bucket.create()
    bucket.put("orders/2024-01.csv", ORDERS_CSV.encode())
    second = ORDERS_CSV
    for n in range(1, 5):  # ids 1-4 -> 11-14
        second = second.replace(f"\n{n},", f"\n{n + 10},")
    bucket.put("orders/2024-02.csv", second.encode())
    try:
        yield bucket
    finally:
        bucket.delete()


def test_s3_csv_into_partitioned_clustered_bigquery_table(
    page: Any, shot: Any, live_server: Any, s3_orders: S3Bucket, bq_dataset: str,
    bigquery_client: Any,
) -> None:  # fmt: skip
    """Step 4 offers `ordered_at` (TIMESTAMP) to partition on and the loaded columns to
    cluster on; the saved source's destination holds the options; Run Now loads 8 rows into a
    table partitioned DAY on `ordered_at`, clustered on (customer, id), with the description
    and labels, whose ids and amounts equal the files'."""
    _login(page, live_server)
    _create_connection(
        page, name="orders bucket", type="s3", bucket=s3_orders.name,
        region=S3_CREDENTIALS["region"], endpoint_url=emulator_endpoint("s3"),
        aws_access_key_id=S3_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["aws_secret_access_key"],
    )  # fmt: skip
    page.click("button[value=next]")

    page.wait_for_url("**/2-source/")
    page.fill("#id_file_prefix", "orders/")
    page.fill("#id_file_pattern", "*.csv")
    page.click("button[value=list]")
    expect(page.locator("#files tr")).to_have_count(1 + 2)
    page.click("button[value=next]")

    page.wait_for_url("**/3-preview/")
    page.click("#next")

    page.wait_for_url("**/4-destination/")
    assert not page.is_visible("#table-options")  # DuckDB first: no BigQuery options
    page.check("input[name=type][value=bigquery]")
    assert page.is_visible("#table-options")
    page.fill("#id_project", BIGQUERY_PROJECT)
    page.fill("#id_dataset", bq_dataset)
    page.fill("#id_api_endpoint", emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
    page.check("input[name=google_auth][value=anonymous]")
    assert not page.is_visible("#id_partition_field")
    page.check("input[name=partition_kind][value=time]")
    assert page.locator("#id_partition_field option").all_inner_texts() == ["—", "ordered_at"]
    assert not page.is_visible("#id_range_start")
    page.select_option("#id_partition_unit", "DAY")
    page.select_option("#id_partition_field", "ordered_at")
    page.select_option("#id_cluster_1", "customer")
    page.select_option("#id_cluster_2", "id")
    page.fill("#id_table_description", "Orders exported to S3")
    page.fill("#id_labels", "team=data, cost_center=cc-42")
    shot("4-destination-options")
    page.click("button[value=test]")
    page.wait_for_selector("#test-result")
    assert "error" not in (page.get_attribute("#test-result", "class") or "")
    page.click("button[value=next]")

    page.wait_for_url("**/5-strategy/")
    page.fill("#id_dest_table_name", "orders")
    page.click("button:has-text('Next: schedule')")

    page.wait_for_url("**/6-schedule/")
    page.fill("#id_name", "orders to bigquery")
    page.click("button[value=save]")

    page.wait_for_url("**/etl/sources/*/")
    source = DataSource.objects.get()
    assert {k: source.destination.get(k) for k in ("partitioning", "clustering", "labels",
                                                    "description")} == {
        "partitioning": {"type": "DAY", "field": "ordered_at"},
        "clustering": ["customer", "id"],
        "labels": {"team": "data", "cost_center": "cc-42"},
        "description": "Orders exported to S3",
    }  # fmt: skip
    _run_now(page, shot, 8)

    table = bigquery_client.get_table(f"{BIGQUERY_PROJECT}.{bq_dataset}.orders")
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "ordered_at")
    assert table.clustering_fields == ["customer", "id"]
    assert table.description == "Orders exported to S3"
    assert {k: table.labels.get(k) for k in ("team", "cost_center")} == {
        "team": "data", "cost_center": "cc-42",
    }  # fmt: skip
    rows = bigquery_client.query(
        f"SELECT id, amount FROM `{bq_dataset}.orders` ORDER BY id"
    ).result()
    expected = [(int(line.split(",")[0]), Decimal(line.split(",")[2]))
                for csv in (ORDERS_CSV,) for line in csv.splitlines()[1:]]  # fmt: skip
    expected += [(i + 10, amount) for i, amount in expected]
    assert [(row["id"], Decimal(str(row["amount"]))) for row in rows] == sorted(expected)
