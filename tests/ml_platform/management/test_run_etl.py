"""`manage.py run_etl` runs a source through the services and records the run."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pytest
from django.core.management import CommandError, call_command

from ml_platform.models import Connection, DataSource, DataSourceState, EtlRun, ProcessedFile
from ml_platform.services import connection_create, data_source_create
from tests.ml_platform.conftest import MALFORMED_CSV

pytestmark = pytest.mark.django_db


def _run_etl(source: DataSource) -> str:
    out = io.StringIO()
    call_command("run_etl", "--data-source-id", str(source.id), stdout=out)
    return out.getvalue()


def _duckdb_scalar(path: Path, sql: str) -> object:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchone()[0]


def test_run_etl_local_csv(csv_source: DataSource, warehouse: Path) -> None:
    """The first run loads the 4 rows of orders_1.csv, records a succeeded cli run and writes
    the file ledger; the table holds 4 rows summing to 137.75."""
    output = _run_etl(csv_source)

    run = EtlRun.objects.get()
    assert (run.status, run.trigger) == ("succeeded", "cli")
    assert (run.rows_extracted, run.rows_loaded, run.rows_skipped) == (4, 4, 0)
    assert (run.files_loaded, run.files_skipped) == (1, 0)
    assert run.bytes_extracted > 0
    assert run.attempts == 1
    assert run.error_class == ""
    assert (
        f"orders: run {run.id} succeeded: 4 rows extracted, 4 loaded, 0 rejected, 0 skipped"
        in output
    )
    assert "files 1 loaded / 0 unchanged" in output
    assert "rows/s" in output

    ledger = ProcessedFile.objects.get()
    size = (Path(csv_source.connection.base_path) / "orders_1.csv").stat().st_size
    assert (ledger.path, ledger.rows, ledger.size, ledger.status) == (
        "orders_1.csv",
        4,
        size,
        "loaded",
    )
    assert ledger.run == run
    assert ledger.engine_run_id == run.uid.hex
    state = DataSourceState.objects.get(data_source=csv_source)
    assert state.last_run_id == run.uid.hex
    assert state.column_map == {
        "id": "id",
        "customer": "customer",
        "amount": "amount",
        "ordered_at": "ordered_at",
    }
    assert _duckdb_scalar(warehouse, "SELECT count(*) FROM raw_data.orders") == 4
    assert _duckdb_scalar(warehouse, "SELECT sum(amount) FROM raw_data.orders") == 137.75


def test_run_etl_second_run_loads_nothing(csv_source: DataSource, warehouse: Path) -> None:
    """A second run finds orders_1.csv unchanged: 0 rows loaded, 1 file skipped, table still 4."""
    _run_etl(csv_source)

    output = _run_etl(csv_source)

    second = EtlRun.objects.order_by("id").last()
    assert (second.status, second.rows_extracted, second.rows_loaded) == ("succeeded", 0, 0)
    assert (second.files_loaded, second.files_skipped) == (0, 1)
    assert "0 rows extracted, 0 loaded" in output
    assert ProcessedFile.objects.count() == 1
    assert _duckdb_scalar(warehouse, "SELECT count(*) FROM raw_data.orders") == 4


def test_run_etl_new_file_loads_only_it(
    csv_source: DataSource, csv_dir: Path, warehouse: Path
) -> None:
    """A file added after the first run is the only one loaded by the next run."""
    _run_etl(csv_source)
    (csv_dir / "orders_2.csv").write_text(
        "id,customer,amount,ordered_at\n5,erin,1.00,2024-01-04T00:00:00Z\n"
    )

    _run_etl(csv_source)

    second = EtlRun.objects.order_by("id").last()
    assert (second.rows_loaded, second.files_loaded, second.files_skipped) == (1, 1, 1)
    assert sorted(ProcessedFile.objects.values_list("path", "rows")) == [
        ("orders_1.csv", 4),
        ("orders_2.csv", 1),
    ]
    assert _duckdb_scalar(warehouse, "SELECT count(*) FROM raw_data.orders") == 5


def test_run_etl_malformed_csv_fails_and_keeps_state(
    csv_source: DataSource, csv_dir: Path, warehouse: Path
) -> None:
    """A malformed file fails the run with BadInputError naming the file; DataSourceState, the ledger
    and the table stay as the first run left them."""
    _run_etl(csv_source)
    state_before = DataSourceState.objects.values().get(data_source=csv_source)
    ledger_before = list(ProcessedFile.objects.values())
    (csv_dir / "orders_2.csv").write_text(MALFORMED_CSV)

    with pytest.raises(CommandError, match=r"failed: BadInputError: Bad input \(file orders_2.csv"):
        _run_etl(csv_source)

    failed = EtlRun.objects.order_by("id").last()
    assert (failed.status, failed.error_class, failed.rows_loaded) == ("failed", "BadInputError", 0)
    assert "orders_2.csv" in failed.error_message
    assert failed.finished_at is not None
    assert DataSourceState.objects.values().get(data_source=csv_source) == state_before
    assert list(ProcessedFile.objects.values()) == ledger_before
    assert _duckdb_scalar(warehouse, "SELECT count(*) FROM raw_data.orders") == 4


def test_run_etl_first_run_failure_writes_no_state(
    local_connection: Connection, csv_dir: Path
) -> None:
    """When the very first run fails, no DataSourceState or ProcessedFile row is created."""
    (csv_dir / "orders_1.csv").write_text(MALFORMED_CSV)
    source = data_source_create(
        name="bad",
        connection=local_connection,
        dest_table_name="bad",
        file_pattern="*.csv",
        file_format="csv",
    )

    with pytest.raises(CommandError, match="BadInputError"):
        _run_etl(source)

    assert EtlRun.objects.get().status == "failed"
    assert DataSourceState.objects.count() == 0
    assert ProcessedFile.objects.count() == 0


def test_run_etl_unknown_source() -> None:
    """An unknown id is a CommandError naming it."""
    with pytest.raises(CommandError, match="Data source 999 does not exist."):
        call_command("run_etl", "--data-source-id", "999")


def test_run_etl_refuses_busy_source(csv_source: DataSource) -> None:
    """A source with a queued run is not run again from the command line."""
    queued = EtlRun.objects.create(data_source=csv_source, trigger="api")

    with pytest.raises(CommandError, match=f"already has run {queued.id} \\(queued\\)"):
        _run_etl(csv_source)


@pytest.mark.integration
def test_run_etl_postgresql(pg_events_table: str, warehouse: Path) -> None:
    """A transactional PostgreSQL source loads the 5 rows, stores the timestamptz watermark
    2024-03-03T11:00:00+00:00 with the two rows at it as boundary keys, and a second run after
    one new row at the watermark and one later row loads exactly those 2."""
    import psycopg

    from tests.ml_platform.conftest import PG_DSN

    connection = connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": "unused-with-trust"},
    )
    source = data_source_create(
        name="events",
        connection=connection,
        dest_table_name="events",
        source_table_name=pg_events_table,
        timestamp_column="updated_at",
        primary_key=["id"],
    )

    output = _run_etl(source)

    run = EtlRun.objects.get()
    assert (run.status, run.rows_extracted, run.rows_loaded) == ("succeeded", 5, 5)
    assert "5 rows extracted, 5 loaded" in output
    state = DataSourceState.objects.get(data_source=source)
    assert (state.watermark_value, state.watermark_type) == (
        "2024-03-03T11:00:00.000000+00:00",
        "timestamptz",
    )
    assert len(state.boundary_keys) == 2
    assert ProcessedFile.objects.count() == 0
    assert _duckdb_scalar(warehouse, "SELECT sum(value) FROM raw_data.events") == 16.5

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {pg_events_table} VALUES (6, 'login', 6.60, '2024-03-03 11:00:00+00'), "
            "(7, 'signup', 7.70, '2024-03-04 00:00:00+00')"
        )
    _run_etl(source)

    second = EtlRun.objects.order_by("id").last()
    assert (second.status, second.rows_loaded) == ("succeeded", 2)
    assert _duckdb_scalar(warehouse, "SELECT count(*) FROM raw_data.events") == 7
    assert _duckdb_scalar(warehouse, "SELECT count(DISTINCT id) FROM raw_data.events") == 7
    assert DataSourceState.objects.get(data_source=source).watermark_value == (
        "2024-03-04T00:00:00.000000+00:00"
    )
