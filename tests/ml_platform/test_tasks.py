"""The `ml_platform.etl_run_execute` task's retry policy: only `etl.TransientError` retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.exceptions import Retry

import etl
from config import celery_app
from ml_platform.models import DataSource, DataSourceState, EtlRun
from ml_platform.services import connection_create, data_source_create, etl_run_create
from ml_platform.tasks import etl_run_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def unreachable_source() -> DataSource:
    """A PostgreSQL catalog source on closed port 1 of 127.0.0.1: connecting is refused."""
    connection = connection_create(
        name="pg down",
        type="postgresql",
        host="127.0.0.1",
        port=1,
        database="test",
        user="postgres",
    )
    return data_source_create(
        name="down",
        connection=connection,
        dest_table_name="t",
        source_table_name="public.t",
        load_type="catalog",
    )


@pytest.fixture
def worker_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the task body as a worker would (not eager); retries are published to the in-memory
    broker of the test settings instead of running inline."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    yield
    etl_run_execute.pop_request()


def _execute_as_worker(run: EtlRun, *, retries: int) -> None:
    etl_run_execute.push_request(
        retries=retries,
        is_eager=False,
        called_directly=False,
        hostname="worker@test",
        id=f"task-{retries}",
        args=[run.id],
        kwargs={},
    )
    etl_run_execute.run(run.id)


@pytest.mark.integration
def test_transient_error_requeues_and_retries(
    unreachable_source: DataSource, worker_mode: None
) -> None:
    """A refused connection (SourceUnavailableError, transient) puts the run back to queued
    with the error recorded, and raises Retry for 30 s later."""
    run, _ = etl_run_create(data_source=unreachable_source, trigger="beat")

    with pytest.raises(Retry) as caught:
        _execute_as_worker(run, retries=0)

    assert caught.value.when == 30
    run.refresh_from_db()
    assert (run.status, run.attempts, run.error_class) == ("queued", 1, "SourceUnavailableError")
    assert run.worker == "worker@test"
    assert DataSourceState.objects.count() == 0


@pytest.mark.integration
def test_transient_error_after_last_retry_fails(
    unreachable_source: DataSource, worker_mode: None
) -> None:
    """On the 5th retry the transient error is raised and the run is failed."""
    run, _ = etl_run_create(data_source=unreachable_source, trigger="beat")

    with pytest.raises(etl.TransientError):
        _execute_as_worker(run, retries=5)

    run.refresh_from_db()
    assert (run.status, run.error_class) == ("failed", "SourceUnavailableError")
    assert run.finished_at is not None


@pytest.mark.integration
def test_eager_transient_error_fails_at_once(unreachable_source: DataSource) -> None:
    """Eager (one machine, no worker): a transient error fails the run on its only attempt."""
    run, _ = etl_run_create(data_source=unreachable_source, trigger="manual")

    with pytest.raises(etl.TransientError):
        etl_run_execute.delay(run.id)

    run.refresh_from_db()
    assert (run.status, run.attempts, run.error_class) == ("failed", 1, "SourceUnavailableError")


def test_every_log_line_of_a_run_names_one_run_id(csv_source: DataSource) -> None:
    """Every line a run logs, the control plane's and the engine's, carries the same `run_id`:
    the engine's UUID stamped on the loaded rows as `_etl_run_id`; the control plane's lines
    add the row's integer id as `run_pk` (issue 15: one Celery run logged two run ids)."""
    run, _ = etl_run_create(data_source=csv_source, trigger="manual")
    etl_run_execute.apply(args=[run.pk])

    run.refresh_from_db()
    assert run.status == "succeeded"
    events = [line["event"] for line in run.log_lines]
    assert {"etl_run.started", "run.start", "run.succeeded", "etl_run.succeeded"} <= set(events)
    assert {line["fields"]["run_id"] for line in run.log_lines} == {run.uid.hex}
    control = [line for line in run.log_lines if line["event"].startswith("etl_run.")]
    assert len(control) >= 3
    assert {line["fields"]["run_pk"] for line in control} == {str(run.pk)}
