"""`etl_run_reap_stale` / `manage.py etl_reap_stale_runs`: runs whose worker is gone are failed,
live ones are left alone, and a reaped run that finishes anyway does not overwrite the outcome."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from ml_platform.models import DataSource, DataSourceState, EtlRun
from ml_platform.services import etl_run_create, etl_run_execute, etl_run_reap_stale
from ml_platform.tasks import etl_run_reap_stale as etl_run_reap_stale_task

pytestmark = pytest.mark.django_db


def _running(source: DataSource, *, heartbeat_age_s: float) -> EtlRun:
    run, _ = etl_run_create(data_source=source, trigger="beat")
    beat = timezone.now() - dt.timedelta(seconds=heartbeat_age_s)
    EtlRun.objects.filter(pk=run.pk).update(
        status="running", started_at=beat, updated_at=beat, worker="w1@host"
    )
    return EtlRun.objects.get(pk=run.pk)


def test_reaps_only_runs_without_recent_heartbeat(csv_source: DataSource, settings) -> None:
    """Heartbeat 10 s old with a 300 s threshold: kept; 400 s old: failed as WorkerLostError
    with the worker named, and the source accepts a new run."""
    settings.ETL_RUN_STALE_AFTER_S = 300
    fresh = _running(csv_source, heartbeat_age_s=10)
    assert etl_run_reap_stale() == []
    EtlRun.objects.filter(pk=fresh.pk).update(updated_at=timezone.now() - dt.timedelta(seconds=400))

    reaped = etl_run_reap_stale()

    assert [r.id for r in reaped] == [fresh.id]
    run = EtlRun.objects.get(pk=fresh.pk)
    assert (run.status, run.error_class) == ("failed", "WorkerLostError")
    assert "worker 'w1@host' lost" in run.error_message
    assert run.error_message.endswith(
        "the next run reconciles the destination and loads what is missing."
    )
    new, created = etl_run_create(data_source=csv_source, trigger="api")
    assert created and new.id != run.id


def test_reaps_queued_run_never_picked_up(csv_source: DataSource, settings) -> None:
    settings.ETL_RUN_QUEUED_STALE_AFTER_S = 3600
    run, _ = etl_run_create(data_source=csv_source, trigger="beat")
    EtlRun.objects.filter(pk=run.pk).update(queued_at=timezone.now() - dt.timedelta(hours=2))

    assert etl_run_reap_stale_task.apply().get() == [run.id]
    assert EtlRun.objects.get(pk=run.pk).error_class == "RunNeverStartedError"


def test_command_prints_reaped_runs(csv_source: DataSource) -> None:
    run = _running(csv_source, heartbeat_age_s=60)
    out = StringIO()
    call_command("etl_reap_stale_runs", "--stale-after", "30", stdout=out)
    assert out.getvalue() == (
        f"run {run.id} of data source {csv_source.id}: failed (WorkerLostError)\n"
        "1 stale run(s) marked failed\n"
    )


def test_run_finishing_after_reap_keeps_failed(csv_source: DataSource, monkeypatch) -> None:
    """A worker that was only slow finishes after being reaped: the run stays failed and the
    state is not written (the next run rolls forward from the destination's load log)."""
    import etl

    run, _ = etl_run_create(data_source=csv_source, trigger="beat")
    real_run = etl.run

    def reaped_meanwhile(*args, **kwargs):
        result = real_run(*args, **kwargs)
        EtlRun.objects.filter(pk=run.pk).update(status="failed", error_class="WorkerLostError")
        return result

    monkeypatch.setattr(etl, "run", reaped_meanwhile)
    outcome = etl_run_execute(run=run)

    assert (outcome.status, outcome.error_class) == ("failed", "WorkerLostError")
    assert DataSourceState.objects.count() == 0
