"""One owner per destination table: a second data source onto a table (or its `__rejected`
side table) another source owns is refused by the service and the API with the owner named;
the owner's table is left intact; clashes already in the database are reported, not changed."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import duckdb
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from ml_platform.checks import destination_owners_check
from ml_platform.models import Connection, DataSource
from ml_platform.services import (
    data_source_create,
    data_source_update,
    etl_run_create,
    etl_run_execute,
)
from ml_platform.services.ownership import (
    DESTINATION_TABLE_OWNED,
    DESTINATION_TABLE_RESERVED,
    destination_table_name_free,
)

pytestmark = pytest.mark.django_db


def _create(connection: Connection, name: str, table: str, **kwargs: object) -> DataSource:
    return data_source_create(
        name=name,
        connection=connection,
        dest_table_name=table,
        load_type="catalog",
        file_pattern="*.csv",
        file_format="csv",
        **kwargs,
    )


def test_api_refuses_second_source_and_keeps_the_owners_table(
    staff_client: APIClient, csv_source: DataSource, warehouse: Path
) -> None:
    """The issue's silent data loss (a catalog source replacing another source's rows): the
    create is a 400 whose `dest_table_name` error names the owner and its id; the owner's 4
    loaded rows are still there and no second source exists."""
    run, _ = etl_run_create(data_source=csv_source, trigger="api")
    etl_run_execute(run=run)
    response = staff_client.post(
        "/api/etl/sources/",
        {
            "name": "other orders",
            "connection": csv_source.connection_id,
            "dest_table_name": "ORDERS",
            "load_type": "catalog",
            "file_pattern": "orders_1.csv",
            "file_format": "csv",
        },
        format="json",
    )
    assert response.status_code == 400
    where = f"raw_data of DuckDB file {warehouse.resolve()}"
    assert response.json() == {
        "message": "Validation error",
        "extra": {
            "fields": {
                "dest_table_name": [
                    DESTINATION_TABLE_OWNED.format(
                        table="ORDERS", where=where, owner="orders", owner_id=csv_source.pk
                    )
                ]
            }
        },
    }
    assert list(DataSource.objects.values_list("name", flat=True)) == ["orders"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.orders").fetchone() == (4,)


def test_update_onto_an_owned_table_is_refused(
    staff_client: APIClient, csv_source: DataSource
) -> None:
    """PATCH moving another source onto `orders` is a 400 naming `orders`; the row keeps its
    table."""
    other = _create(csv_source.connection, "customers", "customers")
    response = staff_client.patch(
        f"/api/etl/sources/{other.pk}/", {"dest_table_name": "orders"}, format="json"
    )
    assert response.status_code == 400
    (message,) = response.json()["extra"]["fields"]["dest_table_name"]
    assert message.startswith("Destination table orders in raw_data of DuckDB file ")
    assert message.endswith(f"belongs to data source 'orders' (id {csv_source.pk}); choose "
                            "another table name or dataset.")  # fmt: skip
    other.refresh_from_db()
    assert other.dest_table_name == "customers"


@pytest.mark.parametrize(
    "table", ["orders__rejected", "Orders__Rejected"], ids=["rejects-table", "rejects-any-case"]
)
def test_another_sources_rejected_table_is_owned(csv_source: DataSource, table: str) -> None:
    """`<table>__rejected` holds the owner's quarantined rows: no other source may load it."""
    with pytest.raises(ValidationError, match="is the rejected-rows table of data source 'orders'"):
        _create(csv_source.connection, "x", table)


def test_a_table_whose_rejects_would_hit_an_owned_table_is_refused(
    local_connection: Connection,
) -> None:
    """A source owning `t__rejected` as its main table blocks `t` (whose rejects would land in
    it)."""
    _create(local_connection, "odd", "t__rejected")
    with pytest.raises(ValidationError, match="rejected-rows table of data source 'odd'"):
        _create(local_connection, "t", "t")


def test_engine_tables_are_reserved(local_connection: Connection) -> None:
    """`_etl_loads` is the dataset's load log: no source may name its table `_etl_...`."""
    with pytest.raises(ValidationError) as caught:
        _create(local_connection, "log", "_etl_loads")
    assert caught.value.message_dict == {"dest_table_name": [DESTINATION_TABLE_RESERVED]}


def test_same_name_elsewhere_is_allowed(
    csv_source: DataSource, tmp_path: Path, warehouse: Path
) -> None:
    """Another dataset, another DuckDB file, a BigQuery project: different tables, all allowed;
    the same file spelled relative to var/ or absolute is the same table."""
    conn = csv_source.connection
    _create(conn, "staging orders", "orders", destination={"dataset": "staging"})
    _create(conn, "other file", "orders", destination={"path": str(tmp_path / "b.duckdb")})
    bq = {"type": "bigquery", "project": "p1", "dataset": "raw_data"}
    _create(conn, "bq orders", "orders", destination=bq)
    with pytest.raises(ValidationError, match="data source 'bq orders'"):
        _create(conn, "bq orders 2", "orders", destination={**bq, "location": "EU"})
    _create(conn, "bq other project", "orders", destination={**bq, "project": "p2"})
    with pytest.raises(ValidationError, match="data source 'orders'"):
        _create(conn, "explicit path", "orders", destination={"path": str(warehouse)})


def test_renaming_a_source_keeps_its_own_table(csv_source: DataSource) -> None:
    """A source is not its own rival: updating it in place passes."""
    data_source_update(data_source=csv_source, data={"name": "orders v2"})
    assert DataSource.objects.get().name == "orders v2"


def test_free_name_for_the_wizard_default(csv_source: DataSource) -> None:
    """The wizard's default destination name skips owned names: orders -> orders_2 -> _3."""
    draft = DataSource(connection=csv_source.connection, dest_table_name="x")
    assert destination_table_name_free(data_source=draft, base="orders") == "orders_2"
    _create(csv_source.connection, "orders 2", "orders_2")
    assert destination_table_name_free(data_source=draft, base="orders") == "orders_3"
    assert destination_table_name_free(data_source=draft, base="fresh") == "fresh"
    assert draft.dest_table_name == "x"


def test_existing_clashes_are_reported_not_changed(csv_source: DataSource) -> None:
    """Rows written before the rule (bypassing the service) are listed by the command (exit
    1) and the database check (W001); both rows stay as they are."""
    twin = DataSource.objects.create(
        name="twin", connection=csv_source.connection, dest_table_name="orders"
    )
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 destination table clash\(es\) found"):
        call_command("etl_destination_owners", stdout=out)
    assert out.getvalue().startswith(
        f"Data sources 'orders' (id {csv_source.pk}) and 'twin' (id {twin.pk}) load the same "
        "destination table orders (raw_data of DuckDB file "
    )
    (warning,) = destination_owners_check()
    assert (warning.id, warning.obj) == ("ml_platform.W001", twin)
    assert sorted(DataSource.objects.values_list("dest_table_name", flat=True)) == [
        "orders",
        "orders",
    ]
    twin.delete()
    out = StringIO()
    call_command("etl_destination_owners", stdout=out)
    assert out.getvalue() == "No destination table has more than one data source.\n"
