"""Alerts: a data source whose last run failed, or whose last success is older than its
threshold, notifies by email (Django's mail backend) and a Slack-compatible webhook, once per
incident, and once more when it recovers.

Recipients are global (`settings.ETL_ALERT_EMAILS`, `settings.ETL_ALERT_WEBHOOK_URL`) plus the
source's own (`alert_emails`, `alert_webhook_url`). `alerts_evaluate` is run by Celery beat
every `ETL_ALERT_INTERVAL_S` seconds; it is idempotent (an open incident is never alerted
again, the database allows one open incident per source and kind)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml_platform.models import AlertIncident, DataSource, EtlRun
from ml_platform.services.schedules import schedule_next_fire_times

logger = structlog.get_logger(__name__)

WEBHOOK_TIMEOUT_S = 10
FINISHED = (EtlRun.Status.SUCCEEDED, EtlRun.Status.FAILED)

ALERT_FAILED = "[ETL Runner] {source}: run {run_id} failed"
ALERT_FAILED_TEXT = "Data source {source} (id {source_id}): run {run_id} failed: {error}"
ALERT_STALE = "[ETL Runner] {source}: no successful run for {age}"
ALERT_STALE_TEXT = (
    "Data source {source} (id {source_id}) has not succeeded since {since} ({age} ago; alert "
    "threshold {threshold})."
)
ALERT_RECOVERED = "[ETL Runner] {source}: recovered"
ALERT_RECOVERED_TEXT = (
    "Data source {source} (id {source_id}) recovered: run {run_id} succeeded at {at} "
    "({kind} since {opened})."
)


def alerts_evaluate(*, now: dt.datetime | None = None) -> list[AlertIncident]:
    """Open and alert new incidents, close and announce recovered ones, for every data source.

    Args:
        now: the evaluation time (UTC); default the current time.

    Returns:
        The incidents opened or closed by this call (each notified once).
    """
    now = now or timezone.now()
    changed: list[AlertIncident] = []
    for source in DataSource.objects.select_related("connection").order_by("pk"):
        last_run = (
            EtlRun.objects.filter(data_source=source, status__in=FINISHED)
            .order_by("-finished_at", "-id")
            .first()
        )
        last_success = (
            EtlRun.objects.filter(data_source=source, status=EtlRun.Status.SUCCEEDED)
            .order_by("-finished_at", "-id")
            .first()
        )
        failed = last_run is not None and last_run.status == EtlRun.Status.FAILED
        changed += _track(source, AlertIncident.Kind.FAILED, failed, last_run, last_success, now)
        threshold = stale_threshold(data_source=source)
        since = last_success.finished_at if last_success else source.created_at
        stale = bool(source.enabled and threshold and since and now - since > threshold)
        changed += _track(source, AlertIncident.Kind.STALE, stale, last_run, last_success, now)
    return changed


def stale_threshold(*, data_source: DataSource) -> dt.timedelta | None:
    """`alert_stale_after_s`, else `settings.ETL_ALERT_STALE_FACTOR` (2) x the interval between
    the schedule's next two fire times; None for an unscheduled source without a threshold."""
    if data_source.alert_stale_after_s:
        return dt.timedelta(seconds=data_source.alert_stale_after_s)
    if not data_source.schedule_cron:
        return None
    times = schedule_next_fire_times(
        cron=data_source.schedule_cron, timezone=data_source.schedule_timezone, count=2
    )
    if len(times) < 2:
        return None
    return (times[1] - times[0]) * float(settings.ETL_ALERT_STALE_FACTOR)


def _track(
    source: DataSource,
    kind: str,
    active: bool,
    last_run: EtlRun | None,
    last_success: EtlRun | None,
    now: dt.datetime,
) -> list[AlertIncident]:
    open_incident = AlertIncident.objects.filter(
        data_source=source, kind=kind, closed_at__isnull=True
    ).first()
    if active and open_incident is None:
        if kind == AlertIncident.Kind.FAILED:
            subject = ALERT_FAILED.format(source=source.name, run_id=last_run.pk)
            text = ALERT_FAILED_TEXT.format(
                source=source.name, source_id=source.pk, run_id=last_run.pk,
                error=f"{last_run.error_class}: {last_run.error_message}"[:1000],
            )  # fmt: skip
        else:
            since = last_success.finished_at if last_success else source.created_at
            age = _duration(now - since)
            subject = ALERT_STALE.format(source=source.name, age=age)
            text = ALERT_STALE_TEXT.format(
                source=source.name, source_id=source.pk, since=since.isoformat(), age=age,
                threshold=_duration(stale_threshold(data_source=source)),
            )  # fmt: skip
        incident = AlertIncident(
            data_source=source, kind=kind, opened_at=now, run=last_run, message=text
        )
        try:
            with transaction.atomic():
                incident.save()
        except IntegrityError:
            return []  # another evaluation opened it first and alerts it
        _deliver(incident, subject, text)
        return [incident]
    if not active and open_incident is not None and last_success is not None:
        updated = AlertIncident.objects.filter(pk=open_incident.pk, closed_at__isnull=True).update(
            closed_at=now
        )
        if not updated:
            return []
        open_incident.closed_at = now
        subject = ALERT_RECOVERED.format(source=source.name)
        text = ALERT_RECOVERED_TEXT.format(
            source=source.name, source_id=source.pk, run_id=last_success.pk,
            at=last_success.finished_at.isoformat(), kind=open_incident.get_kind_display().lower(),
            opened=open_incident.opened_at.isoformat(),
        )  # fmt: skip
        _deliver(open_incident, subject, text)
        return [open_incident]
    return []


def _deliver(incident: AlertIncident, subject: str, text: str) -> None:
    """Send `text` to every email recipient and webhook; record the channels that failed (a
    failing channel does not reopen or repeat the incident)."""
    source = incident.data_source
    emails = [*settings.ETL_ALERT_EMAILS, *_split(source.alert_emails)]
    webhooks = [url for url in (settings.ETL_ALERT_WEBHOOK_URL, source.alert_webhook_url) if url]
    errors = []
    if emails:
        try:
            send_mail(subject, text, settings.ETL_ALERT_FROM_EMAIL, list(dict.fromkeys(emails)))
        except OSError as exc:
            errors.append(f"email: {type(exc).__name__}: {exc}")
    for url in dict.fromkeys(webhooks):
        try:
            _post_json(url, {"text": f"*{subject}*\n{text}"})
        except (OSError, urllib.error.URLError) as exc:
            errors.append(f"webhook {url.split('?')[0]}: {type(exc).__name__}")
    logger.info(
        "alert.sent",
        data_source_id=source.pk,
        kind=incident.kind,
        closed=incident.closed_at is not None,
        emails=len(emails),
        webhooks=len(webhooks),
        failed_channels=len(errors),
    )
    if errors:
        incident.delivery_errors = "\n".join([incident.delivery_errors, *errors]).strip()
        AlertIncident.objects.filter(pk=incident.pk).update(
            delivery_errors=incident.delivery_errors
        )


def _post_json(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
        response.read()


def _split(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _duration(delta: dt.timedelta | None) -> str:
    seconds = int(delta.total_seconds()) if delta else 0
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
