"""Runs you can read: a run that succeeded with warnings (its pattern matched no file) and one
that quarantined a bad row show amber "Succeeded with warnings" with their counts on the
sources list, the run page, the API and `run_etl`'s output, instead of a green "Succeeded".

The field report behind it: a run whose rows went elsewhere reported a plain success
(https://github.com/airbytehq/airbyte/issues/74283, rows kept instead of replaced without a
word)."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from ml_platform.models import Connection, EtlRun
from ml_platform.services import data_source_create
from tests.ml_platform.conftest import MALFORMED_CSV

pytestmark = pytest.mark.django_db

NO_FILE_WARNING = "no object matches file_prefix '' and file_pattern 'none_*.csv'"


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    return client


@pytest.fixture
def runs(local_connection: Connection, csv_dir: Path) -> tuple[EtlRun, EtlRun]:
    """Two sources run through `run_etl`: one matching no file (1 warning), one quarantining
    the malformed line 3 of `bad.csv` (1 rejected row, 4 + 1 rows loaded)."""
    (csv_dir / "bad.csv").write_text(MALFORMED_CSV)
    empty = data_source_create(
        name="empty", connection=local_connection, dest_table_name="nothing",
        file_pattern="none_*.csv", file_format="csv",
    )  # fmt: skip
    quarantined = data_source_create(
        name="quarantined", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv", on_bad_rows="quarantine",
    )  # fmt: skip
    outputs = {}
    for source in (empty, quarantined):
        out = StringIO()
        call_command("run_etl", "--data-source-id", str(source.pk), stdout=out)
        outputs[source.name] = out.getvalue()
    first = EtlRun.objects.get(data_source=empty)
    second = EtlRun.objects.get(data_source=quarantined)
    assert (
        outputs["empty"]
        .splitlines()[0]
        .startswith(
            f"empty: run {first.id} succeeded with warnings: 0 rows extracted, 0 loaded, "
            "0 rejected, 0 skipped"
        )
    )
    assert outputs["empty"].splitlines()[1] == f"  warning: {NO_FILE_WARNING}"
    assert (
        outputs["quarantined"]
        .splitlines()[0]
        .startswith(
            f"quarantined: run {second.id} succeeded with warnings: 5 rows extracted, 5 loaded, "
            "1 rejected, 0 skipped"
        )
    ), outputs["quarantined"]
    assert outputs["quarantined"].splitlines()[1] == "  1 rejected row(s) are in orders__rejected"
    return first, second


def test_stored_on_the_run(runs: tuple[EtlRun, EtlRun]) -> None:
    empty, quarantined = runs
    assert (empty.status, empty.warnings, empty.rows_rejected) == (
        "succeeded", [NO_FILE_WARNING], 0,
    )  # fmt: skip
    assert (quarantined.status, quarantined.rows_loaded, quarantined.rows_rejected) == (
        "succeeded", 5, 1,
    )  # fmt: skip
    assert (empty.status_label, empty.status_class) == ("Succeeded with warnings", "warning")


def test_api_shows_warnings_and_rejected(runs: tuple[EtlRun, EtlRun]) -> None:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("api", is_staff=True))
    empty, quarantined = runs
    body = client.get(f"/api/etl/runs/{empty.id}/").json()
    assert (body["status"], body["has_warnings"], body["status_label"], body["warnings"]) == (
        "succeeded", True, "Succeeded with warnings", [NO_FILE_WARNING],
    )  # fmt: skip
    body = client.get(f"/api/etl/runs/{quarantined.id}/").json()
    assert (body["has_warnings"], body["rows_rejected"], body["rows_loaded"]) == (True, 1, 5)


def test_sources_list_is_amber_with_counts(staff: Client, runs: tuple[EtlRun, EtlRun]) -> None:
    empty, quarantined = runs
    page = staff.get("/etl/").content.decode()
    for run, extra in ((empty, "1 warning"), (quarantined, "")):
        row = re.search(rf'<tr id="source-{run.data_source_id}">(.*?)</tr>', page, re.S).group(1)
        assert (
            f'<a href="/etl/runs/{run.id}/" class="status-warning">Succeeded with warnings</a>'
            in row
        )
        assert extra in row
    row = re.search(rf'<tr id="source-{quarantined.data_source_id}">(.*?)</tr>', page, re.S)
    assert '<td class="num rejected"><span class="status-warning">1</span></td>' in row.group(1)


def test_run_page_shows_warnings_and_first_rejected_rows(
    staff: Client, runs: tuple[EtlRun, EtlRun]
) -> None:
    empty, quarantined = runs
    page = staff.get(f"/etl/runs/{empty.id}/").content.decode()
    assert 'id="run-status" class="status-warning"' in page
    assert f"<li>{NO_FILE_WARNING}</li>".replace("'", "&#x27;") in page
    page = staff.get(f"/etl/runs/{quarantined.id}/").content.decode()
    assert '<dd id="run-rows-rejected"><span class="status-warning">1</span></dd>' in page
    assert '<dd id="run-rows-loaded">5</dd>' in page
    rejected = re.search(r'<table id="run-rejected">(.*?)</table>', page, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rejected.split("</tr>")[1], re.S)
    assert cells[:2] == ["bad.csv", "3"]
    assert "2.00" in cells[4]
    assert quarantined.uid.hex in page


def test_run_page_shows_the_runs_own_log_searchable(
    staff: Client, runs: tuple[EtlRun, EtlRun]
) -> None:
    """The lines logged while the run executed (control plane and engine) are stored on the
    run and shown on its page; `?q=` keeps the matching ones."""
    empty, _ = runs
    empty.refresh_from_db()
    events = [line["event"] for line in empty.log_lines]
    assert events == [
        "etl_run.started",
        "etl_run.destination_locked",
        "run.start",
        "run.succeeded",
        "etl_run.succeeded",
    ]
    assert empty.log_lines[2]["fields"]["run_id"] == empty.uid.hex
    assert all(line["ts"] and line["level"] for line in empty.log_lines)
    page = staff.get(f"/etl/runs/{empty.id}/").content.decode()
    assert page.count('<tr class="log-') == len(events)
    page = staff.get(f"/etl/runs/{empty.id}/", {"q": "SUCCEEDED"}).content.decode()
    shown = re.findall(r'<tr class="log-\w+">.*?<code>(.*?)</code>', page)
    assert shown == ["run.succeeded", "etl_run.succeeded"]
    page = staff.get(f"/etl/runs/{empty.id}/", {"q": "warnings"}).content.decode()
    assert re.findall(r'<tr class="log-\w+">.*?<code>(.*?)</code>', page) == ["etl_run.succeeded"]
    page = staff.get(f"/etl/runs/{empty.id}/", {"q": "no-such-thing"}).content.decode()
    assert "No line matches “no-such-thing”." in page
