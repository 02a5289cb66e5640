"""Alerts (issue 12 item 5): a failing source sends exactly one email and one webhook call per
incident, then one recovery message of each; a source without a recent success is alerted once
as stale. Delivered to a real SMTP server (aiosmtpd on a free port of 127.0.0.1) and a local
HTTP receiver, through Django's SMTP mail backend and `requests`, as in production."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from ml_platform.models import AlertIncident, DataSource, EtlRun
from ml_platform.services import etl_run_create, etl_run_execute
from ml_platform.services.alerts import alerts_check_stale
from tests.ml_platform.conftest import MALFORMED_CSV

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, str(message["Subject"]), message.get_content()))
        return "250 OK"


@pytest.fixture
def smtp_inbox(settings: Any) -> Iterator[_Inbox]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; Django sends to it."""
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.ETL_ALERT_EMAILS = ["oncall@example.com"]
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook_calls(settings: Any) -> Iterator[list[dict[str, Any]]]:
    """A local HTTP receiver of Slack-style JSON posts; `ETL_ALERT_WEBHOOK_URL` points at it."""
    calls: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ETL_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/x"
    try:
        yield calls
    finally:
        server.shutdown()
        server.server_close()


def _run(data_source: DataSource, capture: Any) -> EtlRun:
    run, _ = etl_run_create(data_source=data_source, trigger=EtlRun.Trigger.MANUAL)
    with capture(execute=True):
        try:
            etl_run_execute(run=run)
        except Exception:  # noqa: BLE001  a failed run is what some steps want
            pass
    return EtlRun.objects.get(pk=run.pk)


def test_failing_source_alerts_once_then_recovers_once(
    csv_source: DataSource,
    csv_dir: Path,
    smtp_inbox: _Inbox,
    webhook_calls: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Two failed runs send one email and one webhook call; the next successful run sends one
    recovery email and one recovery call; the incident is closed."""
    (csv_dir / "orders_2.csv").write_text(MALFORMED_CSV)

    first = _run(csv_source, django_capture_on_commit_callbacks)
    second = _run(csv_source, django_capture_on_commit_callbacks)

    assert (first.status, second.status) == ("failed", "failed")
    subject = f"ETL Runner: orders failed (run {first.id}): BadInputError: "
    assert len(smtp_inbox.messages) == 1
    recipients, sent_subject, body = smtp_inbox.messages[0]
    assert recipients == ["oncall@example.com"]
    assert sent_subject.startswith(subject) and "orders_2.csv" in sent_subject
    assert "line 3" in body
    assert len(webhook_calls) == 1 and webhook_calls[0]["text"].startswith(subject)

    (csv_dir / "orders_2.csv").unlink()
    third = _run(csv_source, django_capture_on_commit_callbacks)

    assert third.status == "succeeded"
    recovered = f"ETL Runner: orders recovered: run {third.id} succeeded after a failure"
    assert [m[1] for m in smtp_inbox.messages[1:]] == [recovered]
    assert [call["text"] for call in webhook_calls[1:]] == [recovered]
    assert AlertIncident.objects.get().closed_at is not None


def test_stale_source_alerts_once(
    csv_source: DataSource,
    smtp_inbox: _Inbox,
    webhook_calls: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A `*/5` source whose last success is 11 minutes old is past 2 x 5 minutes: one stale
    alert; checking again sends nothing; a success sends one recovery."""
    csv_source.schedule_cron = "*/5 * * * *"
    csv_source.save(update_fields=["schedule_cron"])
    run = _run(csv_source, django_capture_on_commit_callbacks)
    finished = timezone.now() - dt.timedelta(minutes=11)
    EtlRun.objects.filter(pk=run.pk).update(finished_at=finished)

    opened = alerts_check_stale()
    again = alerts_check_stale()

    assert (len(opened), again) == (1, [])
    subject = (
        "ETL Runner: orders has had no successful run for 11 min (limit 10 min); last success: "
        + finished.isoformat(timespec="seconds")
    )
    assert [m[1] for m in smtp_inbox.messages] == [subject]
    assert [call["text"] for call in webhook_calls] == [subject]

    recovery = _run(csv_source, django_capture_on_commit_callbacks)

    assert [m[1] for m in smtp_inbox.messages[1:]] == [
        f"ETL Runner: orders recovered: run {recovery.id} succeeded"
    ]
    assert len(webhook_calls) == 2


def test_unreachable_receivers_never_fail_a_run(
    csv_source: DataSource, csv_dir: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """With the SMTP server and the webhook down, a failing run is still recorded as failed
    with its own error and the incident is opened (delivery is retried by nothing: it is
    logged)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    settings.ETL_ALERT_EMAILS = ["oncall@example.com"]
    settings.ETL_ALERT_WEBHOOK_URL = "http://127.0.0.1:1/hook"
    (csv_dir / "orders_2.csv").write_text(MALFORMED_CSV)

    run = _run(csv_source, django_capture_on_commit_callbacks)

    assert (run.status, run.error_class) == ("failed", "BadInputError")
    assert AlertIncident.objects.filter(kind="failed", closed_at__isnull=True).count() == 1
