"""A BigQuery destination's partition and clustering columns are checked against the source's
columns when the data source is saved through the API (as the wizard's step 4 checks them),
not only when the run creates the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource
from ml_platform.services import connection_create

pytestmark = [pytest.mark.django_db(transaction=False)]

COLUMNS = "id, customer, amount, ordered_at, _etl_source_file, _etl_run_id, _etl_loaded_at"
"""The destination columns of `orders_1.csv` (tests/ml_platform/conftest.py ORDERS_CSV) plus
the loader's own columns, in the engine's order."""


def _create(
    client: APIClient, connection: Connection, destination: dict, table: str = "orders_bq"
) -> dict:
    response = client.post(
        "/api/etl/sources/",
        {
            "name": table,
            "connection": connection.pk,
            "dest_table_name": table,
            "load_type": "catalog",
            "file_pattern": "*.csv",
            "file_format": "csv",
            "destination": {"type": "bigquery", "project": "p", "dataset": "raw", **destination},
        },
        format="json",
    )
    return {"status": response.status_code, "body": response.json()}


def test_unknown_partition_column_is_refused_at_save(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """`partitioning.field: "nope"` answers 400 on `destination` naming the column and the
    table's columns; nothing is stored."""
    answer = _create(staff_client, local_connection, {"partitioning": {"field": "nope"}})
    assert answer["status"] == 400
    fields = answer["body"]["extra"]["fields"]
    assert list(fields) == ["destination"]
    (message,) = fields["destination"]
    assert message.startswith("partition column 'nope' is not a column of the table (columns: ")
    listed = message.split("(columns: ", 1)[1].rstrip(")").split(", ")
    assert set(listed) == set(COLUMNS.split(", "))
    assert DataSource.objects.filter(name="orders_bq").count() == 0


def test_partition_column_of_a_wrong_type_is_refused_and_a_right_one_accepted(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """`customer` (STRING) cannot partition by DAY; `ordered_at` (TIMESTAMP) can; clustering on
    a missing column is refused on `destination` too."""
    wrong = _create(staff_client, local_connection, {"partitioning": {"field": "customer"}})
    assert wrong["status"] == 400
    assert wrong["body"]["extra"]["fields"]["destination"] == [
        "partition column 'customer' is STRING; DAY partitioning needs DATE or DATETIME or "
        "TIMESTAMP"
    ]
    cluster = _create(staff_client, local_connection, {"clustering": ["nope"]})
    assert cluster["status"] == 400
    assert cluster["body"]["extra"]["fields"]["destination"] == [
        "clustering column 'nope' is not a column of the table"
    ]
    right = _create(
        staff_client,
        local_connection,
        {"partitioning": {"field": "ordered_at"}, "clustering": ["customer"]},
    )
    assert right["status"] == 201, right["body"]
    assert right["body"]["destination"]["partitioning"]["field"] == "ordered_at"
    by_load_time = {"partitioning": {"type": "HOUR", "field": "_etl_loaded_at"}}
    loaded_at = _create(staff_client, local_connection, by_load_time, table="orders_bq2")
    assert loaded_at["status"] == 201, loaded_at["body"]  # the loader's own column


def test_columns_unknown_at_save_leave_the_check_to_the_run(
    staff_client: APIClient, tmp_path: Path
) -> None:
    """A folder without files yet has no columns to check against: the source is accepted (the
    run refuses the column with the same typed error when it creates the table)."""
    empty = tmp_path / "later"
    empty.mkdir()
    connection = connection_create(name="later", type="local", base_path=str(empty))
    answer = _create(staff_client, connection, {"partitioning": {"field": "nope"}})
    assert answer["status"] == 201, answer["body"]
