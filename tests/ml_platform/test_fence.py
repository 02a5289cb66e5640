"""A run presumed dead that was alive (issue 11, item 1): `manage.py run_etl` in a subprocess
SIGSTOPs itself before its commit (test-only `ETL_FAULT_INJECT`, read by the test settings), the
reaper fails it once its heartbeat is older than `ETL_RUN_STALE_AFTER_S`, a second run loads the
rows, then the first is SIGCONTed: its commit is refused by the destination's fence and the run
ends `superseded`; the destination holds each row once and the next run is normal. DuckDB and
the BigQuery emulator, a crafted PostgreSQL table as the source (tests/etl/test_faults.py).

Field report: a load presumed failed that goes on appending after the retry loaded the rows
(https://github.com/bruin-data/ingestr/pull/1076).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as django_connection

from etl import SupersededError
from ml_platform.models import DataSource, DataSourceState, EtlRun
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_create,
    etl_run_execute,
    etl_run_fail,
    etl_run_reap_stale,
)
from ml_platform.services.runner import RunNotActiveError, etl_run_report
from ml_platform.services.runs_reap import WorkerLostError
from tests.etl.test_faults import (
    ROWS_FIRST,
    ROWS_TOTAL,
    Destination,
    TableSource,
    compare,
    wait_stopped,
)

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
STALE_AFTER_S = 2.0


def _source(pg_schema: str, dest: Destination) -> tuple[DataSource, TableSource]:
    """A transactional data source reading a new crafted table (12,000 rows) into `dest`."""
    table = TableSource(pg_schema)
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": "unused"},
    )  # fmt: skip
    block = dest.block()
    credentials = block.pop("credentials", None)
    source = data_source_create(
        name="events",
        connection=connection,
        dest_table_name="events",
        source_table_name=table.table,
        timestamp_column="ts",
        primary_key=["id"],
        chunk_size=1_000,
        destination=block,
        destination_credentials=credentials,
    )
    return source, table


def _run_now(source: DataSource) -> EtlRun:
    run, created = etl_run_create(data_source=source, trigger=EtlRun.Trigger.CLI)
    assert created
    return etl_run_execute(run=run)


def _run_etl_process(source: DataSource, fault: str) -> subprocess.Popen[str]:
    """`manage.py run_etl --data-source-id N` on this test's database, with `fault`."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
        "ETL_RUN_HEARTBEAT_INTERVAL_S": "0.5",
        "ETL_FAULT_INJECT": fault,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_etl", "--data-source-id", str(source.id)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(
    ("dest_kind", "phase"),
    [("duckdb", "run.planned"), ("bigquery", "load.before_commit")],
    ids=["duckdb", "bigquery"],
)
def test_reaped_run_that_wakes_after_a_rerun_ends_superseded(
    request: pytest.FixtureRequest,
    settings: Any,
    tmp_path: Path,
    pg_schema: str,
    dest_kind: str,
    phase: str,
) -> None:
    """The stalled run is reaped (failed, WorkerLostError), the rerun loads the 8,000 new rows,
    the stalled run resumes: it ends `superseded` with SupersededError naming the run it planned
    from and the rerun, its `run_etl` exits 1, sync state is the rerun's, the destination equals
    the source and the next run loads 0 rows."""
    settings.ETL_RUN_STALE_AFTER_S = STALE_AFTER_S
    if dest_kind == "duckdb":
        dest = Destination("duckdb", tmp_path, None, None)
    else:
        dest = Destination(
            "bigquery",
            tmp_path,
            request.getfixturevalue("bq_dataset"),
            request.getfixturevalue("bigquery_client"),
        )
    source, table = _source(pg_schema, dest)
    first = _run_now(source)
    assert (first.status, first.rows_loaded) == ("succeeded", ROWS_FIRST)
    table.change(catalog=False)

    process = _run_etl_process(source, f"{phase}:1:stop")
    try:
        wait_stopped(process)
        stalled = EtlRun.objects.get(data_source=source, status=EtlRun.Status.RUNNING)
        time.sleep(STALE_AFTER_S + 1)
        assert [run.id for run in etl_run_reap_stale()] == [stalled.id]
        stalled.refresh_from_db()
        assert (stalled.status, stalled.error_class) == ("failed", "WorkerLostError")

        rerun = _run_now(source)
        assert (rerun.status, rerun.rows_loaded) == ("succeeded", ROWS_TOTAL - ROWS_FIRST)

        os.kill(process.pid, signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 1, stdout + stderr[-3000:]
    assert f"Run {stalled.id} of data source {source.id} failed: SupersededError" in stderr
    stalled.refresh_from_db()
    assert (stalled.status, stalled.error_class, stalled.get_status_display()) == (
        "superseded", "SupersededError", "Superseded",
    )  # fmt: skip
    assert stalled.error_message == str(SupersededError("events", first.uid.hex, rerun.uid.hex))
    assert DataSourceState.objects.get(data_source=source).last_run_id == rerun.uid.hex
    compare(table.rows(), dest.rows(), f"control plane {dest_kind} after the superseded run")

    after = _run_now(source)
    assert (after.status, after.rows_loaded, after.reconciled_run_id) == ("succeeded", 0, "")
    compare(table.rows(), dest.rows(), f"control plane {dest_kind} next run")


def test_superseded_report_of_reaped_run_is_recorded(tmp_path: Path) -> None:
    """A Cloud Run runner reporting SupersededError for a run the reaper failed records it as
    superseded (once: the same report again changes nothing); any other failure report of a
    reaped run is refused as before."""
    folder = tmp_path / "files"
    folder.mkdir()
    connection = connection_create(name="local", type="local", base_path=str(folder))
    source = data_source_create(
        name="f", connection=connection, dest_table_name="t", file_format="csv"
    )
    run, _ = etl_run_create(data_source=source, trigger=EtlRun.Trigger.API)
    etl_run_fail(run=run, exc=WorkerLostError("lost"))
    message = str(SupersededError("t", "a" * 32, "b" * 32))
    report = {"status": "failed", "error_class": "SupersededError", "error": message}

    recorded, changed = etl_run_report(run_uid=run.uid, report=report)
    again, changed_again = etl_run_report(run_uid=run.uid, report=report)

    assert (recorded.status, recorded.error_class, recorded.error_message, changed) == (
        "superseded", "SupersededError", message, True,
    )  # fmt: skip
    assert (again.status, changed_again) == ("superseded", False)

    other, _ = etl_run_create(data_source=source, trigger=EtlRun.Trigger.API)
    etl_run_fail(run=other, exc=WorkerLostError("lost"))
    with pytest.raises(RunNotActiveError, match="failed"):
        etl_run_report(
            run_uid=other.uid,
            report={"status": "failed", "error_class": "BadInputError", "error": "bad"},
        )
    other.refresh_from_db()
    assert (other.status, other.error_class) == ("failed", "WorkerLostError")
