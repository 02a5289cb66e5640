"""Parallel runs without worker processes (issue 14): the one-machine path (eager Celery: the
coordinator extracts every chunk itself) on the real PostgreSQL, reader slots and their leases,
the runner chunk API's claims and attempts, a lost coordinator, Cloud Run's task count, and the
`parallelism` / `max_readers` fields in the REST API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource, EtlRun, EtlRunChunk, ReaderSlot
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_create,
    etl_run_enqueue,
    etl_run_execute,
)
from ml_platform.services.reader_slots import reader_slot_try, reader_slots_in_use
from ml_platform.services.runner import RunNotActiveError, etl_run_heartbeat, etl_run_report
from ml_platform.services.runner_chunks import (
    etl_run_chunk_claim,
    etl_run_chunk_report,
    etl_run_chunks_create,
    etl_run_reader_claim,
)
from ml_platform.services.runs_execute import etl_run_start
from ml_platform.services.runs_parallel import COORDINATOR_LOST, CoordinatorLostError
from tests.ml_platform.api.conftest import staff_client  # noqa: F401  fixture
from tests.ml_platform.services.test_cloud_run import (  # noqa: F401  fixtures
    FakeCloudRun,
    cloud_run_executor,
    cloud_run_server,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def pg_connection() -> Connection:
    return connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", max_readers=1,
    )  # fmt: skip


@pytest.fixture
def events_source(pg_connection: Connection, pg_events_table: str, tmp_path: Any) -> DataSource:
    """The 5 `events` rows, transactional on `updated_at`, parallelism 2, into DuckDB."""
    return data_source_create(
        name="events", connection=pg_connection, dest_table_name="events",
        source_table_name=pg_events_table, timestamp_column="updated_at", primary_key=["id"],
        parallelism=2,
        destination={"type": "duckdb", "path": str(tmp_path / "e.duckdb"), "dataset": "raw"},
    )  # fmt: skip


def test_eager_parallel_run_extracts_every_chunk_in_the_coordinator(
    events_source: DataSource,
    settings: Any,
    tmp_path: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """One machine (eager Celery, no broker): the run's coordinator plans the chunks, extracts
    each itself (attempt 1, its own worker name) and commits once: 5 rows, each once."""
    settings.ETL_STAGING_DIR = str(tmp_path / "staging")

    with django_capture_on_commit_callbacks(execute=True):
        run = etl_run_enqueue(data_source=events_source, trigger=EtlRun.Trigger.API)

    run.refresh_from_db()
    assert (run.status, run.error_message, run.rows_loaded) == ("succeeded", "", 5)
    chunks = list(EtlRunChunk.objects.filter(run=run).order_by("index"))
    assert chunks and {(c.status, c.attempt, c.worker) for c in chunks} == {("done", 1, run.worker)}
    assert sum(c.rows for c in chunks) == 5
    assert run.chunk_plan["run_id"] == run.uid.hex
    with duckdb.connect(events_source.destination["path"], read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM raw.events").fetchone() == (
            5, 5,
        )  # fmt: skip
    assert not ReaderSlot.objects.exclude(holder="").exists()  # every slot released


def test_coordinator_started_again_fails_the_run(events_source: DataSource) -> None:
    """A run that already has chunks (its coordinator was lost with the snapshot) is failed at
    once when executed again, with `CoordinatorLostError`; nothing is extracted."""
    run, _ = etl_run_create(data_source=events_source, trigger=EtlRun.Trigger.API)
    EtlRunChunk.objects.create(run=run, index=0)

    with pytest.raises(CoordinatorLostError, match="was started again after its coordinator"):
        etl_run_execute(run=run)

    run.refresh_from_db()
    assert (run.status, run.error_class) == ("failed", "CoordinatorLostError")
    assert run.error_message == COORDINATOR_LOST.format(run_id=run.uid)
    chunk = EtlRunChunk.objects.get(run=run)  # not left looking pending on the run page
    assert (chunk.status, chunk.error_class) == ("failed", "ChunkAbandonedError")


def test_reader_slots_bound_holders_and_expire_when_a_holder_dies(
    pg_connection: Connection, tmp_path: Path
) -> None:
    """max_readers=1: a second holder gets no slot while the first holds it; a repeated try by
    the holder gets its own slot back; a released slot is free; a slot whose lease expired (its
    holder was killed and renews nothing) is taken by the next reader."""
    first = reader_slot_try(connection=pg_connection, holder="run:1#1")
    assert first is not None and first.slot == 0
    assert reader_slot_try(connection=pg_connection, holder="chunk:2/0#1") is None
    assert reader_slot_try(connection=pg_connection, holder="run:1#1").slot == 0
    assert reader_slots_in_use(connection=pg_connection) == 1
    first.release()
    second = reader_slot_try(connection=pg_connection, holder="chunk:2/0#1")
    assert second is not None
    ReaderSlot.objects.filter(holder="chunk:2/0#1").update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    third = reader_slot_try(connection=pg_connection, holder="chunk:2/1#1")
    assert third is not None and third.slot == 0
    assert not second.renew()  # the dead holder's lease is gone
    # a folder of data files (ETL_DATA_DIR also holds the test database: refused since fixcp)
    local = connection_create(name="files", type="local", base_path=str(tmp_path))
    assert reader_slot_try(connection=local, holder="x").slot is None  # files: not limited


def test_runner_chunk_claims_wait_for_a_slot_and_drop_a_lost_attempts_report(
    events_source: DataSource, settings: Any
) -> None:
    """Runner chunk API: with the connection's only slot held, a claim answers `waiting` with
    its attempt; once free, the same attempt is `claimed`. A chunk whose heartbeat went stale
    is claimed again (attempt 2) and the lost attempt 1's late report is refused; attempt 2's
    report marks it done and frees the slot."""
    settings.ETL_CHUNK_STALE_AFTER_S = 60
    run, _ = etl_run_create(data_source=events_source, trigger=EtlRun.Trigger.API)
    etl_run_start(run=run, worker="task0")
    etl_run_chunks_create(run_uid=run.uid, plan={"chunks": [{}, {}], "run_id": run.uid.hex})
    blocker = reader_slot_try(connection=events_source.connection, holder="other-run")

    waiting = etl_run_chunk_claim(run_uid=run.uid, index=1, worker="task1")
    assert (waiting["state"], waiting["attempt"]) == ("waiting", 1)
    assert EtlRunChunk.objects.get(run=run, index=1).status == "waiting"
    blocker.release()
    assert etl_run_chunk_claim(run_uid=run.uid, index=1, worker="task1", attempt=1) == {
        "state": "claimed", "attempt": 1,
    }  # fmt: skip
    assert etl_run_chunk_claim(run_uid=run.uid, index=1, worker="task0")["state"] == "busy"

    EtlRunChunk.objects.filter(run=run, index=1).update(
        heartbeat_at=timezone.now() - dt.timedelta(seconds=61)
    )
    ReaderSlot.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert etl_run_chunk_claim(run_uid=run.uid, index=1, worker="task1-retry") == {
        "state": "claimed", "attempt": 2,
    }  # fmt: skip
    with pytest.raises(RunNotActiveError, match="is not held by attempt 1"):
        etl_run_chunk_report(run_uid=run.uid, index=1, attempt=1, report={"rows": 3})
    chunk = etl_run_chunk_report(run_uid=run.uid, index=1, attempt=2, report={"rows": 3})
    assert (chunk.status, chunk.attempt, chunk.rows, chunk.worker) == ("done", 2, 3, "task1-retry")
    assert reader_slots_in_use(connection=events_source.connection) == 0


def test_cloud_run_execution_of_a_parallel_run_has_one_task_per_chunk(
    cloud_run_executor: FakeCloudRun,  # noqa: F811  fixture
    events_source: DataSource,
    csv_source: DataSource,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A parallel source's RunJob asks for `parallelism` tasks; a one-reader source for 1."""
    with django_capture_on_commit_callbacks(execute=True):
        etl_run_enqueue(data_source=events_source, trigger=EtlRun.Trigger.API)
        etl_run_enqueue(data_source=csv_source, trigger=EtlRun.Trigger.API)

    assert [r.overrides.task_count for r in cloud_run_executor.requests] == [2, 1]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("parallelism", 0, "Ensure this value is greater than or equal to 1."),
        ("parallelism", 65, "Ensure this value is less than or equal to 64."),
    ],
    ids=["zero", "too-many"],
)
def test_api_refuses_parallelism_out_of_range(
    staff_client: APIClient,  # noqa: F811  fixture
    pg_connection: Connection,
    field: str,
    value: int,
    message: str,
) -> None:
    body = {"name": "s", "connection": pg_connection.id, "dest_table_name": "t",
            "source_table_name": "public.t", "load_type": "catalog", field: value}  # fmt: skip
    response = staff_client.post("/api/etl/sources/", body, format="json")
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {field: [message]}


def test_api_sets_and_shows_parallelism_and_max_readers(
    staff_client: APIClient,  # noqa: F811  fixture
    pg_connection: Connection,
) -> None:
    """`parallelism` (data source) and `max_readers` (connection) are written and read back."""
    created = staff_client.post(
        "/api/etl/sources/",
        {"name": "s", "connection": pg_connection.id, "dest_table_name": "t",
         "source_table_name": "public.t", "load_type": "catalog", "parallelism": 8},
        format="json",
    )  # fmt: skip
    assert (created.status_code, created.json()["parallelism"]) == (201, 8)
    changed = staff_client.patch(
        f"/api/etl/connections/{pg_connection.id}/", {"max_readers": 3}, format="json"
    )
    assert (changed.status_code, changed.json()["max_readers"]) == (200, 3)
    assert Connection.objects.get(pk=pg_connection.id).max_readers == 3


def test_one_task_runner_waits_for_a_reader_slot_and_frees_it_with_its_report(
    events_source: DataSource,
) -> None:
    """Cloud Run, one task: with the connection's only slot held the runner is told to wait;
    once free it gets the slot, its heartbeats renew it and its (failure) report frees it."""
    DataSource.objects.filter(pk=events_source.pk).update(parallelism=1)
    run, _ = etl_run_create(data_source=events_source, trigger=EtlRun.Trigger.API)
    run, _ = etl_run_start(run=run, worker="runner")
    blocker = reader_slot_try(connection=events_source.connection, holder="other-run")

    assert etl_run_reader_claim(run_uid=run.uid) == {"state": "waiting", "retry_after_s": 1.0}
    blocker.release()
    assert etl_run_reader_claim(run_uid=run.uid) == {"state": "claimed"}
    held = ReaderSlot.objects.get(holder=f"run:{run.id}#1")
    ReaderSlot.objects.filter(pk=held.pk).update(expires_at=timezone.now())
    etl_run_heartbeat(run_uid=run.uid, progress_rows=0, progress_bytes=0)
    assert ReaderSlot.objects.get(pk=held.pk).expires_at > timezone.now()
    etl_run_report(run_uid=run.uid, report={"status": "failed", "error_class": "X", "error": "x"})
    assert reader_slots_in_use(connection=events_source.connection) == 0
