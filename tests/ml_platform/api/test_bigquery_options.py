"""BigQuery sources in the API: table options in `destination` validated by the config
contract, and the daily job budget of a schedule (ml_platform/services/schedules.py
`schedule_quota_check`): runs a day of the cron expression x 2 jobs a run, refused above
`ETL_BIGQUERY_QUOTA_SHARE` (default 50%) of the 1,500 load jobs per table per day
(https://cloud.google.com/bigquery/quotas#load_jobs). Peers hit the daily limit with frequent
schedules: https://github.com/cloudflare/cloudflare-gcp/issues/72 (a file every 30 s = 2,880
loads a day)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource
from ml_platform.services.schedules import schedule_quota_check, schedule_runs_per_day

pytestmark = pytest.mark.django_db

BIGQUERY = {"type": "bigquery", "project": "p", "dataset": "raw"}


@pytest.mark.parametrize(
    ("cron", "runs"),
    [("* * * * *", 1440), ("*/5 * * * *", 288), ("*/5 9-17 * * 1-5", 108), ("0 3 * * *", 1)],
)
def test_runs_per_day(cron: str, runs: int) -> None:
    assert schedule_runs_per_day(cron=cron) == runs


def _create(client: APIClient, connection: Connection, cron: str, **fields: object) -> object:
    return client.post(
        "/api/etl/sources/",
        {
            "name": "orders",
            "connection": connection.id,
            "dest_table_name": "orders",
            "file_pattern": "*.csv",
            "file_format": "csv",
            "schedule_cron": cron,
            **fields,
        },
        format="json",
    )


def test_schedule_over_the_budget_is_refused_with_the_numbers(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """`*/3 * * * *` into BigQuery: 480 runs x 2 jobs = 960 > 750 (50% of 1,500): 400 keyed
    by schedule_cron with the numbers; `*/4` (360 x 2 = 720) is accepted; the same `*/3`
    into DuckDB has no such limit."""
    refused = _create(staff_client, local_connection, "*/3 * * * *", destination=BIGQUERY)
    assert refused.status_code == 400
    assert refused.json() == {
        "message": "Validation error",
        "extra": {
            "fields": {
                "schedule_cron": [
                    "This schedule fires up to 480 times a day x 2 BigQuery jobs per run = "
                    "960 jobs a day on the destination table, over 50% of BigQuery's limit of "
                    "1,500 load jobs per table per day (750 jobs); choose a less frequent "
                    "schedule (at most 375 runs a day)."
                ]
            }
        },
    }
    assert DataSource.objects.count() == 0

    accepted = _create(staff_client, local_connection, "*/4 * * * *", destination=BIGQUERY)
    assert accepted.status_code == 201
    DataSource.objects.all().delete()
    duckdb = _create(staff_client, local_connection, "*/3 * * * *")
    assert duckdb.status_code == 201


def test_share_is_a_setting() -> None:
    """With ETL_BIGQUERY_QUOTA_SHARE 0.9 (1,350 jobs) `*/2` (720 x 2 = 1,440) is still
    refused and `*/3` (960) passes."""
    with override_settings(ETL_BIGQUERY_QUOTA_SHARE=0.9):
        schedule_quota_check(cron="*/3 * * * *")
        with pytest.raises(ValidationError) as error:
            schedule_quota_check(cron="*/2 * * * *")
    assert error.value.message_dict["schedule_cron"][0].startswith(
        "This schedule fires up to 720 times a day x 2 BigQuery jobs per run = 1,440 jobs"
    )


def test_table_options_are_validated_by_the_api(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """BigQuery table options travel in `destination`: five clustering columns are refused
    with 400 keyed by `destination`, naming `destination.clustering`; valid options are
    stored as given."""
    refused = _create(
        staff_client,
        local_connection,
        "",
        destination={**BIGQUERY, "clustering": ["a", "b", "c", "d", "e"]},
    )
    assert refused.status_code == 400
    assert refused.json()["extra"]["fields"] == {
        "destination": [
            "Invalid job config: `destination.clustering`: List should have at most 4 items "
            "after validation, not 5"
        ]
    }
    options = {
        # columns of the source (orders_1.csv): they are checked against it at save
        "partitioning": {"type": "DAY", "field": "ordered_at", "expiration_days": 30},
        "clustering": ["customer"],
        "labels": {"team": "data"},
        "description": "orders",
    }
    accepted = _create(staff_client, local_connection, "", destination={**BIGQUERY, **options})
    assert accepted.status_code == 201
    assert DataSource.objects.get().destination == {**BIGQUERY, **options}
