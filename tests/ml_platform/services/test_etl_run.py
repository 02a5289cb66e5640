"""`etl_run_enqueue` / `etl_run_execute` and the `ml_platform.etl_run_execute` task."""

from __future__ import annotations

import pytest

import etl
from ml_platform.models import DataSource, DataSourceState, EtlRun
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_enqueue,
    etl_run_execute,
)

pytestmark = pytest.mark.django_db


def test_enqueue_duplicate_idempotency_key_returns_existing(
    csv_source: DataSource, django_capture_on_commit_callbacks
) -> None:
    """The same key returns the same run and enqueues once, also after the run finished; a new
    key after it finished creates a second run."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = etl_run_enqueue(data_source=csv_source, trigger="scheduler", idempotency_key="k1")
        again = etl_run_enqueue(data_source=csv_source, trigger="scheduler", idempotency_key="k1")
    assert again.id == first.id
    assert len(callbacks) == 1
    assert EtlRun.objects.count() == 1

    etl_run_execute(run=first)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        repeated = etl_run_enqueue(
            data_source=csv_source, trigger="scheduler", idempotency_key="k1"
        )
        fresh = etl_run_enqueue(data_source=csv_source, trigger="scheduler", idempotency_key="k2")
    assert (repeated.id, repeated.status) == (first.id, "succeeded")
    assert fresh.id != first.id
    assert len(callbacks) == 1


def test_enqueue_while_queued_returns_active_run(
    csv_source: DataSource, django_capture_on_commit_callbacks
) -> None:
    """A trigger without key while a run is queued returns that run and enqueues nothing."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = etl_run_enqueue(data_source=csv_source, trigger="api")
        second = etl_run_enqueue(data_source=csv_source, trigger="beat")

    assert second.id == queued.id
    assert second.trigger == "api"
    assert len(callbacks) == 1


def test_enqueue_runs_task_on_commit(
    csv_source: DataSource, django_capture_on_commit_callbacks
) -> None:
    """On commit the (eager) task executes the run: succeeded, 4 rows, DataSourceState written."""
    with django_capture_on_commit_callbacks(execute=True):
        run = etl_run_enqueue(data_source=csv_source, trigger="manual")

    run.refresh_from_db()
    assert (run.status, run.rows_loaded, run.files_loaded, run.attempts) == ("succeeded", 4, 1, 1)
    assert run.progress_rows == 4
    assert DataSourceState.objects.get(data_source=csv_source).last_run_id == run.uid.hex


def test_execute_finished_run_is_a_no_op(csv_source: DataSource) -> None:
    """Executing a run that already succeeded (a redelivered task) changes nothing."""
    run = etl_run_enqueue(data_source=csv_source, trigger="manual")
    run = etl_run_execute(run=run)
    finished_at = run.finished_at

    again = etl_run_execute(run=run)

    assert (again.status, again.attempts, again.finished_at) == ("succeeded", 1, finished_at)


def test_execute_calls_progress(csv_source: DataSource) -> None:
    """The progress callback receives (rows loaded so far, bytes extracted so far)."""
    seen: list[tuple[int, int]] = []
    run = etl_run_enqueue(data_source=csv_source, trigger="manual")

    run = etl_run_execute(run=run, progress=lambda rows, nbytes: seen.append((rows, nbytes)))

    assert seen[-1] == (4, run.bytes_extracted)


@pytest.mark.integration
def test_terminal_error_is_not_retried_and_hides_secrets(
    pg_events_table: str, django_capture_on_commit_callbacks
) -> None:
    """A query PostgreSQL rejects (unknown relation) is terminal: one attempt, failed with
    SourceQueryError; the password, which the relation name happens to contain, shows as ***."""
    secret = "hunter2-Secret"
    connection = connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": secret},
    )
    source = data_source_create(
        name="leaky",
        connection=connection,
        dest_table_name="t",
        custom_sql=f'SELECT * FROM "{secret}"',
        load_type="catalog",
    )

    with pytest.raises(etl.TerminalError), django_capture_on_commit_callbacks(execute=True):
        etl_run_enqueue(data_source=source, trigger="api")

    run = EtlRun.objects.get()
    assert (run.status, run.attempts, run.error_class) == ("failed", 1, "SourceQueryError")
    assert secret not in run.error_message
    assert 'relation "***" does not exist' in run.error_message
