"""Run Now of a run that fails, in the README's default mode (eager Celery: the run executes
inside the request): the API answers the failed run, the web page redirects to the run's page
with the error, never a 500 or Django's debug page.

With `task_eager_propagates` Celery re-raises the task's error into the caller and skips the
task's `on_failure` hook (https://github.com/celery/celery/issues/3728), so the edge, not the
hook, must answer the run and record it failed when the service could not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ml_platform.models import DataSource, EtlRun
from ml_platform.services import connection_create, data_source_create

pytestmark = [pytest.mark.django_db(transaction=True)]
"""Committed as a request outside a transaction is: the run executes before the view answers."""

BAD_CSV = "id,amount\n1,2\n2,x\n"
"""Line 3's `amount` is not an integer: the run fails with BadInputError (terminal)."""


def _bad_source(tmp_path: Path) -> DataSource:
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_text(BAD_CSV)
    connection = connection_create(name="files", type="local", base_path=str(base))
    return data_source_create(
        name="bad",
        connection=connection,
        dest_table_name="t",
        load_type="catalog",
        file_pattern="a.csv",
        file_format="csv",
        file_format_options={"column_types": {"amount": "integer"}},
        destination={"type": "duckdb", "path": str(tmp_path / "w.duckdb")},
    )


def test_api_run_now_of_a_failing_run_answers_the_failed_run(
    staff_client: APIClient, tmp_path: Path
) -> None:
    """202 with the run's JSON, status `failed`, the typed error class and message."""
    source = _bad_source(tmp_path)
    response = staff_client.post(reverse("api:sources:run", args=[source.id]))
    assert response.status_code == 202, response.content
    body = response.json()
    run = EtlRun.objects.get()
    assert body["id"] == run.id
    assert body["status"] == "failed" == run.status
    assert body["error_class"] == "BadInputError" == run.error_class
    assert "file a.csv, line 3, column `amount`" in body["error_message"]
    assert body["error_message"] == run.error_message


def test_web_run_now_of_a_failing_run_redirects_to_the_run_page_with_the_error(
    tmp_path: Path,
) -> None:
    """302 to the run's page, which shows the error class and message."""
    source = _bad_source(tmp_path)
    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    client = Client(raise_request_exception=True)
    client.force_login(user)
    response = client.post(reverse("web:source-run", args=[source.id]))
    run = EtlRun.objects.get()
    assert (run.status, run.error_class) == ("failed", "BadInputError")
    assert response.status_code == 302
    assert response["Location"] == reverse("web:run-detail", args=[run.id])
    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "BadInputError" in text
    assert "line 3, column" in text
