"""Schedules: cron and zone validation, next fire times across DST, and the django-celery-beat
rows the local executor keeps in sync with each data source."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from ml_platform.models import Connection, DataSource
from ml_platform.services import data_source_create, data_source_delete, data_source_update
from ml_platform.services.schedules import schedule_next_fire_times, schedule_validate

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@pytest.mark.parametrize(
    ("cron", "timezone", "field", "message"),
    [
        ("* * * *", "UTC", "schedule_cron", "got 4 field(s)"),
        ("0 0 * * * *", "UTC", "schedule_cron", "got 6 field(s)"),
        ("61 * * * *", "UTC", "schedule_cron", "Invalid end range: 61 > 59"),
        ("@daily", "UTC", "schedule_cron", "got 1 field(s)"),
        ("0 0 * * *", "Mars/Olympus", "schedule_timezone", "Unknown time zone 'Mars/Olympus'"),
        ("0 0 * * *", "", "schedule_timezone", "Unknown time zone ''"),
    ],
    ids=["four-fields", "six-fields", "minute-61", "macro", "unknown-zone", "empty-zone"],
)
def test_schedule_validate_rejects(cron: str, timezone: str, field: str, message: str) -> None:
    """Each bad schedule is refused with the message keyed by the field at fault."""
    with pytest.raises(ValidationError) as excinfo:
        schedule_validate(cron=cron, timezone=timezone)
    assert list(excinfo.value.message_dict) == [field]
    assert message in excinfo.value.message_dict[field][0]


@pytest.mark.parametrize("timezone", ["Europe/Kyiv", "Europe/Kiev", "America/New_York"])
def test_schedule_validate_accepts_iana_names_and_aliases(timezone: str) -> None:
    """Canonical IANA names and backward-compatible aliases are both accepted."""
    schedule_validate(cron="0 6 * * MON-FRI", timezone=timezone)


def test_next_fire_times_in_zone_across_spring_forward() -> None:
    """03:30 daily in Kyiv: on 2025-03-30 03:00 jumps to 04:00, so that day fires at 04:30
    EEST (one gap later); the others at 03:30, offset +02:00 before and +03:00 after."""
    times = schedule_next_fire_times(
        cron="30 3 * * *", timezone="Europe/Kiev", after=dt.datetime(2025, 3, 28, 12, tzinfo=UTC)
    )
    assert [t.isoformat() for t in times] == [
        "2025-03-29T03:30:00+02:00",
        "2025-03-30T04:30:00+03:00",
        "2025-03-31T03:30:00+03:00",
        "2025-04-01T03:30:00+03:00",
        "2025-04-02T03:30:00+03:00",
    ]
    assert all(t.tzinfo == zoneinfo.ZoneInfo("Europe/Kiev") for t in times)


def test_next_fire_times_fall_back_fires_once() -> None:
    """Every 20 minutes of 03:xx on 26 October in Kyiv: 03:00-04:00 happens twice on
    2025-10-26 (04:00 EEST -> 03:00 EET) and fires once, at the first (+03:00) occurrence."""
    times = schedule_next_fire_times(
        cron="*/20 3 26 10 *", timezone="Europe/Kyiv", after=dt.datetime(2025, 10, 1, tzinfo=UTC)
    )
    assert [t.isoformat() for t in times] == [
        "2025-10-26T03:00:00+03:00",
        "2025-10-26T03:20:00+03:00",
        "2025-10-26T03:40:00+03:00",
        "2026-10-26T03:00:00+02:00",
        "2026-10-26T03:20:00+02:00",
    ]


def test_next_fire_times_start_after_now_and_empty_without_cron() -> None:
    """Without `after` the times start after now; no cron gives no times."""
    now = dt.datetime.now(UTC)
    times = schedule_next_fire_times(cron="* * * * *", timezone="UTC")
    assert len(times) == 5 and times[0] > now and times[0] - now <= dt.timedelta(minutes=1)
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] == [60] * 4
    assert schedule_next_fire_times(cron="", timezone="UTC") == []


def _task(source: DataSource) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=f"etl-source-{source.pk}")


def _crontab_fields(task: PeriodicTask) -> tuple[str, ...]:
    c = task.crontab
    return (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week, str(c.timezone))


def _source(connection: Connection, name: str, **kwargs) -> DataSource:
    return data_source_create(
        name=name,
        connection=connection,
        dest_table_name=name,
        file_pattern="*.csv",
        file_format="csv",
        **kwargs,
    )


def test_beat_task_created_changed_cleared(local_connection: Connection) -> None:
    """Setting a schedule creates one PeriodicTask (task, args, crontab fields and zone exact);
    changing it points the task at another CrontabSchedule row, leaving the row another
    source shares untouched; clearing the cron deletes the task. Every change bumps beat's
    `PeriodicTasks.last_update`."""
    source = _source(
        local_connection, "orders", schedule_cron="15 6 * * 1-5", schedule_timezone="Europe/Kiev"
    )
    other = _source(
        local_connection, "orders2", schedule_cron="15 6 * * 1-5", schedule_timezone="Europe/Kiev"
    )
    task = _task(source)
    assert (task.task, json.loads(task.args), json.loads(task.kwargs)) == (
        "ml_platform.data_source_run_scheduled",
        [source.pk],
        {},
    )
    assert (task.enabled, task.one_off, task.interval_id) == (True, False, None)
    assert _crontab_fields(task) == ("15", "6", "*", "*", "1-5", "Europe/Kiev")
    shared = task.crontab
    assert _task(other).crontab_id == shared.pk  # same schedule, same row
    stamp = PeriodicTasks.last_change()

    data_source_update(
        data_source=source, data={"schedule_cron": "*/5 * * * *", "schedule_timezone": "UTC"}
    )
    changed = _task(source)
    assert changed.pk == task.pk
    assert _crontab_fields(changed) == ("*/5", "*", "*", "*", "*", "UTC")
    shared.refresh_from_db()
    assert (shared.minute, shared.hour, shared.day_of_week, str(shared.timezone)) == (
        "15",
        "6",
        "1-5",
        "Europe/Kiev",
    )
    assert PeriodicTasks.last_change() > stamp
    assert PeriodicTask.objects.filter(task="ml_platform.data_source_run_scheduled").count() == 2

    data_source_update(data_source=source, data={"schedule_cron": ""})
    assert not PeriodicTask.objects.filter(name=f"etl-source-{source.pk}").exists()
    assert CrontabSchedule.objects.filter(pk=shared.pk).exists()  # still used by `other`


def test_beat_task_follows_enabled_and_delete(local_connection: Connection) -> None:
    """Disabling removes the task, enabling brings it back, deleting the source removes it
    with its now unused crontab row; a source without a schedule has no task."""
    plain = _source(local_connection, "plain")
    assert not PeriodicTask.objects.filter(name=f"etl-source-{plain.pk}").exists()
    source = _source(local_connection, "orders", schedule_cron="0 2 * * *")
    data_source_update(data_source=source, data={"enabled": False})
    assert not PeriodicTask.objects.filter(name=f"etl-source-{source.pk}").exists()
    data_source_update(data_source=source, data={"enabled": True})
    crontab_id = _task(source).crontab_id
    assert _crontab_fields(_task(source)) == ("0", "2", "*", "*", "*", "UTC")

    data_source_delete(data_source=source)
    assert not PeriodicTask.objects.filter(name=f"etl-source-{source.pk}").exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()


def test_invalid_schedule_saves_nothing(local_connection: Connection) -> None:
    """A bad cron on create is a ValidationError on `schedule_cron`; no source, no task."""
    with pytest.raises(ValidationError, match="got 3 field"):
        _source(local_connection, "orders", schedule_cron="0 2 *")
    assert not DataSource.objects.exists()
    assert not PeriodicTask.objects.filter(task="ml_platform.data_source_run_scheduled").exists()
