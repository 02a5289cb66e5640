"""One writer per DuckDB file: two runs of two data sources loading into the same DuckDB file,
started at the same moment in two processes (`manage.py run_etl`, which retries nothing), both
succeed on their first attempt; the second waits for the first on the control plane's lock
instead of failing on DuckDB's file lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from django.db import connection as django_connection

from ml_platform.models import DataSource, EtlRun
from ml_platform.services import connection_create, data_source_create
from ml_platform.services.job_config import job_config_build
from ml_platform.services.runs_lock import DestinationBusyError, destination_writer_lock

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[3]


def _sources(pg_events_table: str, path: Path) -> list[DataSource]:
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres",
    )  # fmt: skip
    return [
        data_source_create(
            name=f"events {table}",
            connection=connection,
            dest_table_name=table,
            # 0.2 s per row read: a run holds the DuckDB file for seconds
            custom_sql=f"SELECT * FROM {pg_events_table} WHERE pg_sleep(0.2)::text = ''",
            timestamp_column="updated_at",
            primary_key=["id"],
            chunk_size=1,
            destination={"type": "duckdb", "path": str(path), "dataset": "raw"},
        )
        for table in ("events_a", "events_b")
    ]


def test_two_runs_on_one_duckdb_file_both_succeed_first_time(
    pg_events_table: str, tmp_path: Path
) -> None:
    """Both processes exit 0; both runs succeeded with attempts 1 and 5 rows each; the file
    holds both tables; one run logged that it waited for the other's lock.

    Field report: https://github.com/duckdb/dbt-duckdb/pull/298 (DuckDB IOExceptions retried
    by its users as if they were network blips)."""
    path = tmp_path / "shared.duckdb"
    sources = _sources(pg_events_table, path)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
        "ETL_LOG_JSON": "true",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_etl", "--data-source-id", str(source.id)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for source in sources
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    runs = {run.data_source_id: run for run in EtlRun.objects.all()}
    assert [(runs[s.id].status, runs[s.id].attempts, runs[s.id].rows_loaded) for s in sources] == [
        ("succeeded", 1, 5),
        ("succeeded", 1, 5),
    ]
    with duckdb.connect(str(path), read_only=True) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
            for table in ("events_a", "events_b")
        ]
    assert counts == [5, 5]
    locked = [
        json.loads(line)
        for output in outputs
        for line in output.splitlines()
        if line.startswith("{") and '"etl_run.destination_locked"' in line
    ]
    assert len(locked) == 2
    assert sorted(event["waited_s"] > 0 for event in locked) == [False, True]
    assert {event["path"] for event in locked} == {str(path)}


def test_lock_wait_is_bounded(pg_events_table: str, tmp_path: Path) -> None:
    """While one holder keeps the lock, a second waiter gives up after its timeout with the
    transient DestinationBusyError naming the file; once released, the lock is taken at once."""
    path = tmp_path / "w" / ".." / "shared.duckdb"
    job = job_config_build(data_source=_sources(pg_events_table, path)[0])

    with destination_writer_lock(job=job, run_pk=1) as first_wait:
        with pytest.raises(DestinationBusyError, match=r"shared\.duckdb is being written"):
            with destination_writer_lock(job=job, run_pk=2, timeout_s=0.5):
                pass
    with destination_writer_lock(job=job, run_pk=3, timeout_s=0.5) as later_wait:
        pass

    assert (first_wait, later_wait) == (0.0, 0.0)
