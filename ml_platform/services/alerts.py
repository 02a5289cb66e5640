"""Alerts: a failed run, or a data source without a successful run for too long, notifies by
email (Django's mail backend) and a Slack-compatible webhook, once per incident, and once more
when it recovers.

An incident is an `AlertIncident` row: opened (and notified) when its condition starts, closed
(and notified) at the next successful run. While it is open nothing more is sent, however many
runs fail: a `*/5` schedule failing all night sends one message, not 100. Recipients are the
global settings (`ETL_ALERT_EMAILS`, `ETL_ALERT_WEBHOOK_URL`) plus the source's own
(`DataSource.alert_emails`, `alert_webhook_url`).

Delivery never fails a run: an unreachable SMTP server or webhook is logged
(`alert.delivery_failed`, without the URL, which holds a token) and the incident stays recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml_platform.models import AlertIncident, DataSource, EtlRun

logger = structlog.get_logger(__name__)

ALERT_FAILED = "ETL Runner: {source} failed (run {run}): {error_class}: {error}"
ALERT_FAILED_RECOVERED = "ETL Runner: {source} recovered: run {run} succeeded after a failure"
ALERT_STALE = (
    "ETL Runner: {source} has had no successful run for {age} (limit {limit}); last success: {last}"
)
ALERT_STALE_RECOVERED = "ETL Runner: {source} recovered: run {run} succeeded"
ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class Alert:
    """One message: `subject` is the one line a webhook posts; `body` adds the details."""

    subject: str
    body: str


def alerts_run_finished(*, run: EtlRun) -> None:
    """Open or close `run`'s source's incidents after `run` finished, notifying once for each.

    A failed run opens a `failed` incident (if none is open); a succeeded run closes the open
    `failed` and `stale` incidents with a recovery message. Other statuses change nothing.
    Called on commit by the run services; never raises for a delivery problem.
    """
    if run.status == EtlRun.Status.FAILED:
        _incident_open(
            data_source=run.data_source,
            kind=AlertIncident.Kind.FAILED,
            run=run,
            alert=_failed_alert(run),
        )
    elif run.status == EtlRun.Status.SUCCEEDED:
        for incident in AlertIncident.objects.filter(
            data_source=run.data_source, closed_at__isnull=True
        ):
            template = (
                ALERT_FAILED_RECOVERED
                if incident.kind == AlertIncident.Kind.FAILED
                else ALERT_STALE_RECOVERED
            )
            subject = template.format(source=run.data_source.name, run=run.id)
            _incident_close(incident=incident, alert=Alert(subject, subject + _link(run)))


def alerts_check_stale(*, now: dt.datetime | None = None) -> list[AlertIncident]:
    """Open a `stale` incident (and notify once) for every enabled data source whose last
    successful run is older than its limit: `alert_stale_after_s`, or `ETL_ALERT_STALE_FACTOR`
    (default 2) times its schedule's interval (seconds between the next two fire times).
    Sources without either are never stale. Beat runs it every `ETL_ALERT_CHECK_INTERVAL_S`.

    Returns:
        The incidents opened by this check.
    """
    now = now or timezone.now()
    opened = []
    for data_source in DataSource.objects.filter(enabled=True):
        limit_s = stale_limit_s(data_source=data_source, now=now)
        if limit_s is None:
            continue
        last = (
            EtlRun.objects.filter(data_source=data_source, status=EtlRun.Status.SUCCEEDED)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        since = last or data_source.created_at
        age_s = (now - since).total_seconds()
        if age_s <= limit_s:
            continue
        subject = ALERT_STALE.format(
            source=data_source.name,
            age=_duration(age_s),
            limit=_duration(limit_s),
            last=last.isoformat(timespec="seconds") if last else "never",
        )
        incident = _incident_open(
            data_source=data_source,
            kind=AlertIncident.Kind.STALE,
            run=None,
            alert=Alert(subject, subject),
        )
        if incident is not None:
            opened.append(incident)
    return opened


def stale_limit_s(*, data_source: DataSource, now: dt.datetime) -> float | None:
    """Return the seconds without a successful run after which `data_source` is stale, or
    None when it has neither `alert_stale_after_s` nor a schedule."""
    if data_source.alert_stale_after_s:
        return float(data_source.alert_stale_after_s)
    if not data_source.schedule_cron:
        return None
    from ml_platform.services.schedules import schedule_next_fire_times

    first, second = schedule_next_fire_times(
        cron=data_source.schedule_cron, timezone=data_source.schedule_timezone, count=2, after=now
    )
    return settings.ETL_ALERT_STALE_FACTOR * (second - first).total_seconds()


def _incident_open(
    *, data_source: DataSource, kind: str, run: EtlRun | None, alert: Alert
) -> AlertIncident | None:
    """Record a new open incident and notify; return None (and send nothing) when one of this
    kind is already open (the database's partial unique constraint decides between racers)."""
    try:
        with transaction.atomic():
            incident = AlertIncident.objects.create(
                data_source=data_source, kind=kind, run=run, message=alert.subject
            )
    except IntegrityError:
        return None
    logger.info("alert.opened", data_source_id=data_source.id, kind=kind, incident=incident.id)
    _deliver(data_source=data_source, alert=alert)
    return incident


def _incident_close(*, incident: AlertIncident, alert: Alert) -> None:
    closed = AlertIncident.objects.filter(pk=incident.pk, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )
    if closed:  # a concurrent closer already sent the recovery
        logger.info("alert.closed", data_source_id=incident.data_source_id, kind=incident.kind)
        _deliver(data_source=incident.data_source, alert=alert)


def _deliver(*, data_source: DataSource, alert: Alert) -> None:
    emails = list(dict.fromkeys([*settings.ETL_ALERT_EMAILS, *(data_source.alert_emails or [])]))
    hooks = [url for url in (settings.ETL_ALERT_WEBHOOK_URL, data_source.alert_webhook_url) if url]
    if emails:
        from django.core.mail import send_mail

        try:
            send_mail(
                alert.subject[:200],
                alert.body,
                settings.DEFAULT_FROM_EMAIL,
                emails,
                fail_silently=False,
            )
        except OSError as exc:  # smtplib errors are OSErrors
            logger.warning("alert.delivery_failed", channel="email", error_class=type(exc).__name__)
    for url in dict.fromkeys(hooks):
        import requests

        try:
            response = requests.post(
                url, json={"text": alert.body}, timeout=settings.ETL_ALERT_TIMEOUT_S
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            # the URL holds the webhook's token: never logged
            logger.warning(
                "alert.delivery_failed", channel="webhook", error_class=type(exc).__name__
            )


def _failed_alert(run: EtlRun) -> Alert:
    error = (run.error_message or "")[:ERROR_MAX_CHARS]
    subject = ALERT_FAILED.format(
        source=run.data_source.name,
        run=run.id,
        error_class=run.error_class or "error",
        error=error.splitlines()[0] if error else "",
    )
    return Alert(subject, subject + (f"\n\n{error}" if error else "") + _link(run))


def _link(run: EtlRun) -> str:
    base = settings.ETL_PUBLIC_BASE_URL.rstrip("/")
    return f"\n{base}/etl/sources/{run.data_source_id}/" if base else ""


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
