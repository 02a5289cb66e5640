"""Alerts against a real local SMTP server (aiosmtpd) and a local HTTP receiver: a failing
source sends exactly one email and one webhook call however often it is evaluated and however
often it fails again, then exactly one recovery when a run succeeds; a scheduled source with
no recent success raises one stale alert.

Field reports: admins must not be "bombarded with emails for each sync hiccup"
(https://github.com/firezone/firezone/issues/7725); a failed-sync email that is sent once and
reset by a successful sync (https://github.com/joestump/spotter/issues/263); a sync that stops
silently after its retries with nobody told (https://github.com/CartoDB/cartodb/issues/3501)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ml_platform.models import AlertIncident, Connection, DataSource
from ml_platform.services import data_source_create, etl_run_create, etl_run_execute
from ml_platform.services.alerts import alerts_evaluate, stale_threshold
from tests.ml_platform.conftest import MALFORMED_CSV, ORDERS_CSV

pytestmark = pytest.mark.django_db


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content)
        self.messages.append((envelope.rcpt_tos, message["Subject"], message.get_payload()))
        return "250 OK"


@pytest.fixture
def smtp(settings: Any, free_tcp_port: int) -> Iterator[_Inbox]:
    """A real SMTP server on 127.0.0.1; Django's SMTP backend points at it."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_tcp_port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_tcp_port
    settings.ETL_ALERT_EMAILS = ["oncall@example.com"]
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook(settings: Any) -> Iterator[list[dict]]:
    """A local HTTP receiver collecting the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ETL_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hooks/slack"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def _run(source: DataSource) -> None:
    run, _ = etl_run_create(data_source=source, trigger="api")
    try:
        etl_run_execute(run=run)
    except Exception:  # noqa: BLE001, S110  the failure is recorded on the run
        pass


def test_failure_alerts_once_then_recovers_once(
    smtp: _Inbox, webhook: list[dict], local_connection: Connection, csv_dir: Path
) -> None:
    """A malformed CSV fails the run: one email to the global and the source's recipients and
    one webhook call; evaluating again and failing again sends nothing; fixing the file and a
    successful run sends one recovery each."""
    (csv_dir / "orders_1.csv").write_text(MALFORMED_CSV)
    source = data_source_create(
        name="orders", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv", alert_emails="owner@example.com",
    )  # fmt: skip
    _run(source)
    changed = alerts_evaluate()
    assert [(i.kind, i.closed_at) for i in changed] == [("failed", None)]
    run = source.runs.get()
    assert len(smtp.messages) == 1
    recipients, subject, body = smtp.messages[0]
    assert recipients == ["oncall@example.com", "owner@example.com"]
    assert subject == f"[ETL Runner] orders: run {run.pk} failed"
    assert body.startswith(f"Data source orders (id {source.pk}): run {run.pk} failed: ")
    assert run.error_class in body
    assert webhook == [{"text": f"*{subject}*\n{body.strip()}"}]

    assert alerts_evaluate() == []
    _run(source)
    assert alerts_evaluate() == []
    assert (len(smtp.messages), len(webhook)) == (1, 1)

    (csv_dir / "orders_1.csv").write_text(ORDERS_CSV)
    _run(source)
    (recovered,) = alerts_evaluate()
    assert (recovered.kind, recovered.closed_at is not None) == ("failed", True)
    assert len(smtp.messages) == 2 and len(webhook) == 2
    assert smtp.messages[1][1] == "[ETL Runner] orders: recovered"
    assert webhook[1]["text"].startswith("*[ETL Runner] orders: recovered*\nData source orders")
    assert alerts_evaluate() == []
    assert AlertIncident.objects.filter(closed_at__isnull=True).count() == 0


def test_stale_source_alerts_once(
    smtp: _Inbox, webhook: list[dict], local_connection: Connection
) -> None:
    """Hourly schedule: threshold 2 h; 1 h after its last success nothing, 3 h after one stale
    alert, 4 h after nothing more."""
    source = data_source_create(
        name="hourly", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv", schedule_cron="0 * * * *",
    )  # fmt: skip
    assert stale_threshold(data_source=source) == dt.timedelta(hours=2)
    _run(source)
    finished = source.runs.get().finished_at
    assert alerts_evaluate(now=finished + dt.timedelta(hours=1)) == []
    (incident,) = alerts_evaluate(now=finished + dt.timedelta(hours=3))
    assert incident.kind == "stale"
    assert smtp.messages[0][1] == "[ETL Runner] hourly: no successful run for 3 h 0 min"
    assert alerts_evaluate(now=finished + dt.timedelta(hours=4)) == []
    assert (len(smtp.messages), len(webhook)) == (1, 1)


def test_unreachable_channels_are_recorded_not_retried(
    settings: Any, local_connection: Connection, csv_dir: Path
) -> None:
    """With the SMTP server and the webhook down the incident still opens once and says which
    channels failed; the next evaluation does not send again."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    settings.ETL_ALERT_EMAILS = ["oncall@example.com"]
    settings.ETL_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/hook?token=abc"
    (csv_dir / "orders_1.csv").write_text(MALFORMED_CSV)
    source = data_source_create(
        name="orders", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv",
    )  # fmt: skip
    _run(source)
    (incident,) = alerts_evaluate()
    incident.refresh_from_db()
    lines = incident.delivery_errors.splitlines()
    assert lines[0].startswith("email: ConnectionRefusedError")
    assert lines[1] == "webhook http://127.0.0.1:9/hook: URLError"
    assert alerts_evaluate() == []
