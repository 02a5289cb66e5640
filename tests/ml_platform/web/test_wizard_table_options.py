"""The wizard's destination step offers BigQuery's table options (issue 13 item 2): time,
ingestion-time and integer-range partitioning, clustering (4 ordered columns), partition
expiration, require partition filter, description and labels; the column choices come from the
preview and the values are checked with the engine's rules (etl.config.DestinationConfig,
etl.load.bigquery.tables.check_columns), each error next to its field.

Peers' reports behind the checks: clustering columns must be of a supported type, checked
before the table is made (https://github.com/PeerDB-io/peerdb/pull/2002); users want to pick
and order clustering fields from the schema instead of typing them
(https://github.com/data-integrations/google-cloud/pull/127); a partition column that is not a
date or timestamp is refused at configuration time
(https://github.com/data-integrations/google-cloud/pull/146).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from ml_platform.models import DataSource
from tests.ml_platform.web.test_wizard_input import (  # noqa: F401  (fixtures)
    CSV_STEP,
    field_errors,
    files_draft,
    post,
    staff,
)

pytestmark = pytest.mark.django_db

URL = "/etl/new/4-destination/"
BQ = {"type": "bigquery", "dataset": "raw", "project": "p1", "google_auth": "anonymous",
      "action": "next"}  # fmt: skip


def _to_step_4(client: Client) -> None:
    assert client.post("/etl/new/2-source/", CSV_STEP).status_code == 302
    response = client.post("/etl/new/3-preview/", {"columns": ["id", "customer", "ordered_at"]})
    assert response.url == URL


def _options(page: str, field: str) -> list[str]:
    block = re.search(rf'<select name="{field}"[^>]*>(.*?)</select>', page, re.S)
    assert block, field
    return re.findall(r'<option value="([^"]*)"', block.group(1))


def test_options_offered_from_the_preview_and_saved(staff: Client, files_draft: Path) -> None:  # noqa: F811
    """Partition columns are the preview's time columns, range columns its INT64 ones,
    clustering columns the clusterable ones (not the unselected `amount`); the options chosen
    land in the draft's `destination` block and come back when the step is opened again."""
    _to_step_4(staff)
    page = staff.get(URL).content.decode()
    assert _options(page, "partition_field") == ["", "ordered_at"]
    assert _options(page, "range_field") == ["", "id"]
    assert _options(page, "cluster_1") == ["", "id", "customer", "ordered_at", "_etl_source_file"]
    response = staff.post(URL, {
        **BQ, "partition_kind": "time", "partition_unit": "MONTH", "partition_field": "ordered_at",
        "partition_expiration_days": "30", "require_partition_filter": "on",
        "cluster_1": "customer", "cluster_2": "id", "table_description": "Orders by month",
        "labels": "team=data, cost_center=cc-42",
    })  # fmt: skip
    assert response.status_code == 302 and response.url == "/etl/new/5-strategy/"
    draft = staff.session["etl_wizard"]
    assert draft["destination"] == {
        "type": "bigquery", "dataset": "raw", "project": "p1",
        "partitioning": {"type": "MONTH", "field": "ordered_at", "expiration_days": 30.0,
                         "require_filter": True},
        "clustering": ["customer", "id"], "description": "Orders by month",
        "labels": {"team": "data", "cost_center": "cc-42"},
    }  # fmt: skip
    page = staff.get(URL).content.decode()
    assert re.search(r'name="partition_kind" value="time"[^>]*checked', page)
    assert '<option value="ordered_at" selected>' in page
    assert 'value="team=data, cost_center=cc-42"' in page
    response = staff.post(URL, {**BQ, "partition_kind": "range", "range_field": "id",
                                "range_start": "0", "range_end": "1000",
                                "range_interval": "10"})  # fmt: skip
    assert response.status_code == 302
    assert staff.session["etl_wizard"]["destination"]["partitioning"] == {
        "field": "id", "start": 0, "end": 1000, "interval": 10,
    }  # fmt: skip
    response = staff.post(URL, {**BQ, "partition_kind": "ingestion", "partition_unit": "HOUR"})
    assert response.status_code == 302
    assert staff.session["etl_wizard"]["destination"]["partitioning"] == {"type": "HOUR"}


def test_options_refused_with_the_engine_rules(staff: Client, files_draft: Path) -> None:  # noqa: F811
    """A column the preview does not offer for the role, a missing partition column, 10,000+
    range partitions, a column clustered twice and bad label keys are refused next to their
    fields; nothing is saved."""
    _to_step_4(staff)
    page = post(staff, URL, {**BQ, "partition_kind": "time", "partition_field": "customer",
                             "cluster_1": "amount"})  # fmt: skip
    assert field_errors(page, "partition_field") == [
        "Select a valid choice. customer is not one of the available choices."
    ]
    assert field_errors(page, "cluster_1") == [
        "Select a valid choice. amount is not one of the available choices."
    ]
    page = post(staff, URL, {**BQ, "partition_kind": "time"})
    assert field_errors(page, "partition_field") == ["Choose the column to partition on."]
    page = post(staff, URL, {**BQ, "partition_kind": "range", "range_field": "id",
                             "range_start": "0", "range_end": "1000000000",
                             "range_interval": "1"})  # fmt: skip
    assert field_errors(page, "partition_kind") == [
        "start/end/interval make 1,000,000,000 partitions; BigQuery allows 10,000 per table"
    ]
    page = post(staff, URL, {**BQ, "partition_kind": "range", "range_field": "id"})
    for name in ("range_start", "range_end", "range_interval"):
        assert field_errors(page, name) == ["Required for integer-range partitioning."]
    page = post(staff, URL, {**BQ, "cluster_1": "id", "cluster_2": "id"})
    assert field_errors(page, "cluster_1") == ["a column is named twice"]
    page = post(staff, URL, {**BQ, "labels": "Team=data"})
    assert field_errors(page, "labels") == [
        "label key 'Team': 1 to 63 lowercase letters, digits, `_` or `-`, starting with a "
        "lowercase letter"
    ]
    page = post(staff, URL, {**BQ, "labels": "a=1, a=2"})
    assert field_errors(page, "labels") == ["label 'a' is given twice"]
    assert "destination" not in staff.session["etl_wizard"]


def test_schedule_over_the_bigquery_budget_refused_in_the_wizard(
    staff: Client,  # noqa: F811
    files_draft: Path,  # noqa: F811
) -> None:
    """Step 6 of a BigQuery source: `*/3 * * * *` (480 runs x 2 jobs = 960 > 750, half of the
    1,500 load jobs per table per day) is refused next to the cron field with the numbers, on
    preview and on save; nothing is saved; `*/4` (720) saves."""
    _to_step_4(staff)
    assert staff.post(URL, {**BQ, "partition_kind": "none"}).status_code == 302
    response = staff.post("/etl/new/5-strategy/", {"load_type": "transactional",
                                                   "on_bad_rows": "fail",
                                                   "dest_table_name": "orders"})  # fmt: skip
    assert response.status_code == 302
    url = "/etl/new/6-schedule/"
    refusal = (
        "This schedule fires up to 480 times a day x 2 BigQuery jobs per run = 960 jobs a day "
        "on the destination table, over 50% of BigQuery's limit of 1,500 load jobs per table "
        "per day (750 jobs); choose a less frequent schedule (at most 375 runs a day)."
    )
    for action in ("preview", "save"):
        page = post(staff, url, {"name": "orders", "schedule_cron": "*/3 * * * *",
                                 "schedule_timezone": "UTC", "action": action})  # fmt: skip
        assert field_errors(page, "schedule_cron") == [refusal], action
    assert not DataSource.objects.exists()
    response = staff.post(url, {"name": "orders", "schedule_cron": "*/4 * * * *",
                                "schedule_timezone": "UTC", "action": "save"})  # fmt: skip
    assert response.status_code == 302
    assert DataSource.objects.get().schedule_cron == "*/4 * * * *"
