"""Schedules of data sources: a 5-field cron expression (minute precision) in an IANA time zone,
validated, previewed (next fire times) and kept in sync with the executor named by
`settings.ETL_SCHEDULER_EXECUTOR`:

- `local`: django-celery-beat. One `PeriodicTask` named `etl-source-<id>` per scheduled source,
  running task `ml_platform.data_source_run_scheduled` with args `[<id>]` on a
  `CrontabSchedule` row shared by every task with the same fields and zone. A shared row is
  never edited in place: a changed schedule points the task at another row; instances are
  saved (never `QuerySet.update()`) so beat notices the change.
- `cloud`: Google Cloud Scheduler, one HTTP job per source (`schedules_cloud`).

A source is scheduled when it is enabled and has a cron expression; otherwise its task or job
is removed.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import structlog
from celery.schedules import ParseException, crontab
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from ml_platform.models import DataSource

logger = structlog.get_logger(__name__)

SCHEDULE_CRON_INVALID = "Expected five cron fields (minute hour day month weekday): {reason}."
SCHEDULE_TIMEZONE_INVALID = "Unknown time zone {value!r}; use an IANA name such as Europe/Kyiv."
SCHEDULER_EXECUTOR_UNKNOWN = "ETL_SCHEDULER_EXECUTOR is {value!r}; expected 'local' or 'cloud'."

SCHEDULED_TASK = "ml_platform.data_source_run_scheduled"
"""Celery task beat sends for a scheduled source (args: `[data_source_id]`)."""
NEXT_FIRE_TIMES = 5

BIGQUERY_LOAD_JOBS_PER_TABLE_PER_DAY = 1_500
"""https://cloud.google.com/bigquery/quotas#load_jobs: load jobs per table per day; copy jobs
and query appends into the table count toward the same table-operations limit."""
BIGQUERY_JOBS_PER_RUN = 2
"""Jobs a BigQuery run makes that count toward a table's daily operations, counted
conservatively: one load job (all of a run's batches and files go into one staged Parquet set,
one more per million rows or per mid-run column change) and one commit into the table (a copy
job swapping a snapshot in, or the DML INSERT of an append)."""
SCHEDULE_QUOTA_EXCEEDED = (
    "This schedule fires up to {runs:,} times a day x {per_run} BigQuery jobs per run = "
    "{jobs:,} jobs a day on the destination table, over {share:.0%} of BigQuery's limit of "
    "{limit:,} load jobs per table per day ({budget:,} jobs); choose a less frequent schedule "
    "(at most {max_runs:,} runs a day)."
)


def periodic_task_name(*, data_source_id: int) -> str:
    """Return the `PeriodicTask.name` (and Cloud Scheduler job id) of a data source."""
    return f"etl-source-{data_source_id}"


def schedule_validate(
    *, cron: str, timezone: str, destination_type: str | None = None, jobs_per_run: int = 1
) -> None:
    """Check a 5-field cron expression (as croniter and Celery's crontab both read it) and an
    IANA time zone name (aliases such as `Europe/Kiev` included); for a BigQuery destination,
    also the daily job budget (`schedule_quota_check`).

    Args:
        destination_type: the data source's `destination.type`; `bigquery` checks the budget.
        jobs_per_run: tables a run loads (1 per data source; the destination table).

    Raises:
        ValidationError: keyed by `schedule_cron` or `schedule_timezone`.
    """
    from croniter import croniter

    if cron:
        parts = cron.split()
        try:
            if len(parts) != 5:
                raise ValueError(f"got {len(parts)} field(s)")
            minute, hour, day_of_month, month_of_year, day_of_week = parts
            # celery's positional order differs from cron's: name every field
            crontab(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
            )
            if not croniter.is_valid(cron):
                raise ValueError(f"{cron!r} is not a valid cron expression")
        except (ValueError, ParseException) as exc:
            reason = str(exc).rstrip(".")
            raise ValidationError(
                {"schedule_cron": SCHEDULE_CRON_INVALID.format(reason=reason)}
            ) from exc
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(
            {"schedule_timezone": SCHEDULE_TIMEZONE_INVALID.format(value=timezone)}
        ) from None
    if cron and destination_type == "bigquery":
        schedule_quota_check(cron=cron, jobs_per_run=BIGQUERY_JOBS_PER_RUN * jobs_per_run)


def schedule_runs_per_day(*, cron: str) -> int:
    """Return the most runs `cron` fires on one day: minutes x hours of its fields (the day
    fields only choose which days fire). A DST change can add or drop one hour's runs."""
    from croniter import croniter

    fields = croniter.expand(cron)[0]
    minutes = 60 if fields[0] == ["*"] else len(fields[0])
    hours = 24 if fields[1] == ["*"] else len(fields[1])
    return minutes * hours


def schedule_quota_check(*, cron: str, jobs_per_run: int = BIGQUERY_JOBS_PER_RUN) -> None:
    """Refuse a schedule whose BigQuery jobs per day (runs per day x `jobs_per_run`) exceed
    `settings.ETL_BIGQUERY_QUOTA_SHARE` (default 0.5) of the 1,500 load jobs per table per
    day (https://cloud.google.com/bigquery/quotas#load_jobs), leaving the rest to retries,
    full refreshes and manual runs.

    Raises:
        ValidationError: keyed by `schedule_cron`, with runs, jobs and the budget.
    """
    share = float(getattr(settings, "ETL_BIGQUERY_QUOTA_SHARE", 0.5))
    runs = schedule_runs_per_day(cron=cron)
    budget = int(BIGQUERY_LOAD_JOBS_PER_TABLE_PER_DAY * share)
    if runs * jobs_per_run > budget:
        raise ValidationError(
            {
                "schedule_cron": SCHEDULE_QUOTA_EXCEEDED.format(
                    runs=runs,
                    per_run=jobs_per_run,
                    jobs=runs * jobs_per_run,
                    share=share,
                    limit=BIGQUERY_LOAD_JOBS_PER_TABLE_PER_DAY,
                    budget=budget,
                    max_runs=budget // jobs_per_run,
                )
            }
        )


def schedule_next_fire_times(
    *, cron: str, timezone: str, count: int = NEXT_FIRE_TIMES, after: dt.datetime | None = None
) -> list[dt.datetime]:
    """Return the next `count` fire times of `cron` after `after` (default: now), aware, in
    `timezone`, ascending.

    Cron fields are matched against the wall clock of the zone. At a DST change a wall-clock
    time that does not exist (spring forward) fires at the same offset from the previous
    midnight, i.e. one gap later (02:30 -> 03:30 when 02:00 jumps to 03:00); one that occurs
    twice (fall back) fires once, at its first occurrence.

    Raises:
        ValidationError: the cron expression or the zone is invalid.
    """
    from croniter import croniter

    schedule_validate(cron=cron, timezone=timezone)
    if not cron:
        return []
    zone = zoneinfo.ZoneInfo(timezone)
    start = (after or dt.datetime.now(dt.UTC)).astimezone(zone)
    # iterate naive wall-clock times, then place each in the zone: croniter's own DST handling
    # of aware datetimes differs between versions
    wall = croniter(cron, start.replace(tzinfo=None, second=0, microsecond=0))
    times: list[dt.datetime] = []
    while len(times) < count:
        naive = wall.get_next(dt.datetime)
        instant = naive.replace(tzinfo=zone, fold=0).astimezone(dt.UTC).astimezone(zone)
        if instant > start and (not times or instant > times[-1]):
            times.append(instant)
    return times


def schedule_sync(*, data_source: DataSource) -> None:
    """Create, update or delete the data source's scheduled task or job so it matches the
    source (enabled with a cron expression: scheduled; otherwise: not).

    Raises:
        ValidationError: the executor refused the schedule (cloud: keyed by `schedule_cron`).
        ImproperlyConfigured: an unknown executor, or cloud settings missing.
    """
    scheduled = bool(data_source.enabled and data_source.schedule_cron)
    executor = _executor()
    if executor == "local":
        if scheduled:
            _beat_task_save(data_source)
        else:
            _beat_task_delete(data_source_id=data_source.pk)
    else:
        from ml_platform.services import schedules_cloud

        if scheduled:
            schedules_cloud.cloud_job_save(data_source=data_source)
        else:
            schedules_cloud.cloud_job_delete(data_source_id=data_source.pk)


def schedule_delete(*, data_source: DataSource) -> None:
    """Remove the data source's scheduled task or job (none: nothing happens)."""
    if _executor() == "local":
        _beat_task_delete(data_source_id=data_source.pk)
    else:
        from ml_platform.services import schedules_cloud

        schedules_cloud.cloud_job_delete(data_source_id=data_source.pk)


def _executor() -> str:
    executor = settings.ETL_SCHEDULER_EXECUTOR
    if executor not in ("local", "cloud"):
        raise ImproperlyConfigured(SCHEDULER_EXECUTOR_UNKNOWN.format(value=executor))
    return executor


def _beat_task_save(data_source: DataSource) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    minute, hour, day_of_month, month_of_year, day_of_week = data_source.schedule_cron.split()
    # shared rows are looked up (or added), never changed: other tasks may point at them
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=zoneinfo.ZoneInfo(data_source.schedule_timezone),
    )
    name = periodic_task_name(data_source_id=data_source.pk)
    task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    previous = task.crontab_id
    task.task = SCHEDULED_TASK
    task.crontab = schedule
    task.interval = task.solar = task.clocked = None
    task.args = json.dumps([data_source.pk])
    task.kwargs = "{}"
    task.enabled = True
    task.one_off = False
    task.description = f"Runs data source {data_source.name!r} ({data_source.schedule_cron} "
    task.description += f"{data_source.schedule_timezone})"
    task.save()  # the save signal bumps PeriodicTasks.last_update: beat reloads its schedule
    if previous and previous != schedule.pk:
        _crontab_delete_unused(previous)
    logger.info(
        "schedule.beat_saved",
        data_source_id=data_source.pk,
        cron=data_source.schedule_cron,
        timezone=data_source.schedule_timezone,
    )


def _beat_task_delete(*, data_source_id: int) -> None:
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(name=periodic_task_name(data_source_id=data_source_id))
    task = task.first()
    if task is None:
        return
    crontab_id = task.crontab_id
    task.delete()  # instance delete: its signal tells beat
    if crontab_id:
        _crontab_delete_unused(crontab_id)
    logger.info("schedule.beat_deleted", data_source_id=data_source_id)


def _crontab_delete_unused(crontab_id: int) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if not PeriodicTask.objects.filter(crontab_id=crontab_id).exists():
        CrontabSchedule.objects.filter(pk=crontab_id).delete()
