"""Credentials never leak from the control plane (issue 5, item 5).

A connection (or a data source's BigQuery destination) is created with a wrong or malformed
secret, then: the test-connection API is called, the source is run by `manage.py run_etl
--data-source-id` and through the Celery task path (`etl_run_enqueue`, eager in tests), and the
connection, data source and run APIs and the run pages are read back. The distinctive secret
(`S3cr3t-<uuid>` plus URL-special characters) and its URL-encoded forms must be in none of: the
API response bodies, the CommandError, the raised exceptions and their chains, the log records
(structlog routed through `logging` at DEBUG), the process output, and any row of any table of
the Django database (credentials are encrypted at rest, so their plain text is nowhere).
The run is still recorded with the typed error class and a useful message.
"""

from __future__ import annotations

import base64
import html
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ml_platform.models import DataSource, EtlRun
from ml_platform.services import connection_create, data_source_create, etl_run_enqueue
from tests.conftest import BIGQUERY_PROJECT, MYSQL_PARAMS, emulator_env
from tests.etl.extract.conftest import Bucket, make_bucket  # noqa: F401
from tests.etl.extract.test_cloud_files import s3_with_auth  # noqa: F401
from tests.etl.test_secrets import (
    assert_no_secret,
    exception_text,
    log_text,
    new_secret,
    service_account,
    structlog_records,  # noqa: F401
)

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.integration]

Case = tuple[DataSource, str, str, list[str]]
"""(data source, error class of its runs, text the run's error message contains, further
secret values the connection holds)."""


def _source(connection: Any, **fields: Any) -> DataSource:
    defaults: dict[str, Any] = {"name": "leaky", "connection": connection, "dest_table_name": "t"}
    return data_source_create(**{**defaults, **fields})


def case_postgresql(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    conn = connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user=role,
        credentials={"password": secret},
    )
    source = _source(conn, source_table_name="public.t", load_type="catalog")
    return source, "SourceAuthError", f'role "{role}" does not exist', []


def case_mysql(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    conn = connection_create(
        name="my",
        type="mysql",
        host="127.0.0.1",
        port=MYSQL_PARAMS["port"],
        database="test",
        user="root",
        credentials={"password": secret},
    )
    source = _source(conn, source_table_name="test.t", load_type="catalog")
    return source, "SourceAuthError", "Access denied for user 'root'", []


def case_s3(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    server = request.getfixturevalue("s3_with_auth")
    conn = connection_create(
        name="s3",
        type="s3",
        bucket="signed",
        endpoint_url=server["endpoint_url"],
        extra_params={"region": "us-east-1"},
        credentials={
            "aws_access_key_id": server["aws_access_key_id"],
            "aws_secret_access_key": secret,
        },
    )
    source = _source(conn, file_format="csv")
    return source, "SourceAuthError", "rejected the credentials", []


def case_azure(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    container: Bucket = request.getfixturevalue("make_bucket")("azure_blob")
    container.put("rows.csv", b"id\n1\n")
    key = base64.b64encode(secret.encode().ljust(64, b"!")).decode()
    parts = [
        f"AccountKey={key}" if part.startswith("AccountKey=") else part
        for part in container.connection_params()["connection_string"].split(";")
    ]
    conn = connection_create(
        name="az",
        type="azure_blob",
        container=container.name,
        credentials={"connection_string": ";".join(parts)},
    )
    source = _source(conn, file_format="csv")
    return source, "SourceAuthError", "rejected the credentials", [key]


def case_gcs(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    bucket: Bucket = request.getfixturevalue("make_bucket")("gcs")
    bucket.put("rows.csv", b"id\n1\n")
    conn = connection_create(
        name="gcs",
        type="gcs",
        bucket=bucket.name,
        endpoint_url=bucket.connection_params().get("endpoint_url", ""),
        credentials={"credentials": service_account(secret)},
    )
    source = _source(conn, file_format="csv")
    return source, "ConfigError", "not a valid service-account JSON key", []


def case_bigquery_destination(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "rows.csv").write_text("id\n1\n")
    conn = connection_create(name="local", type="local", base_path=str(folder))
    source = _source(
        conn,
        file_format="csv",
        destination={
            "type": "bigquery",
            "project": BIGQUERY_PROJECT,
            "dataset": "raw_data",
            "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
        },
        destination_credentials=service_account(secret),
    )
    return source, "ConfigError", "not a valid service-account JSON document", []


CASES: dict[str, Callable[[str, Path, pytest.FixtureRequest], Case]] = {
    "postgresql-unknown-role": case_postgresql,
    "mysql-wrong-password": case_mysql,
    "s3-wrong-secret": case_s3,
    "azure-wrong-key": case_azure,
    "gcs-malformed-key": case_gcs,
    "bigquery-destination-malformed-key": case_bigquery_destination,
}


def database_text() -> str:
    """Every row of every table of the Django database, as text."""
    parts = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(table)}")
            parts += [repr(row) for row in cursor.fetchall()]
    return "\n".join(parts)


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_failed_runs_never_show_the_secret(
    name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    staff_client: APIClient,
    admin_user: Any,
    structlog_records: pytest.LogCaptureFixture,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Test-connection, `run_etl`, the Celery task path and every read of the API and the run
    pages show the error class and message of the failure, never the secret."""
    secret = new_secret()
    source, error_class, message, others = CASES[name](secret, tmp_path, request)
    bodies: list[str] = []

    tested = staff_client.post(reverse("api:connections:test", args=[source.connection_id]))
    assert tested.status_code == 200
    bodies.append(tested.content.decode())
    if name != "bigquery-destination-malformed-key":  # its connection is a local folder
        assert tested.json()["ok"] is False

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as command_error:
        call_command("run_etl", "--data-source-id", str(source.id), stdout=out, stderr=err)
    assert f"{error_class}" in str(command_error.value)
    assert message in str(command_error.value)

    with pytest.raises(Exception) as task_error, django_capture_on_commit_callbacks(execute=True):
        etl_run_enqueue(data_source=source, trigger="api")
    assert type(task_error.value).__name__ == error_class

    runs = list(EtlRun.objects.order_by("id"))
    assert [(run.status, run.error_class) for run in runs] == [("failed", error_class)] * 2
    assert all(message in run.error_message for run in runs)

    for url in [
        reverse("api:connections:list"),
        reverse("api:connections:detail", args=[source.connection_id]),
        reverse("api:sources:list"),
        reverse("api:sources:detail", args=[source.id]),
        reverse("api:runs:list"),
        *[reverse("api:runs:detail", args=[run.id]) for run in runs],
    ]:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        bodies.append(response.content.decode())
    pages = Client()
    pages.force_login(admin_user)
    for url in [
        reverse("web:source-detail", args=[source.id]),
        reverse("web:source-runs-json", args=[source.id]),
        reverse("admin:ml_platform_etlrun_change", args=[runs[0].id]),
        reverse("admin:ml_platform_connection_change", args=[source.connection_id]),
        reverse("admin:ml_platform_datasource_change", args=[source.id]),
    ]:
        response = pages.get(url)
        assert response.status_code == 200, url
        bodies.append(response.content.decode())
    # the error itself is shown (JSON escapes quotes as \", HTML as &quot;)
    assert any(message in html.unescape(body).replace('\\"', '"') for body in bodies)

    captured = capfd.readouterr()
    texts = {
        "an API response or page": "\n".join(bodies),
        "the CommandError": exception_text(command_error.value),
        "the task's exception": exception_text(task_error.value),
        "the command output": out.getvalue() + err.getvalue(),
        "the log records": log_text(structlog_records),
        "the process output": captured.out + captured.err,
        "the database": database_text(),
    }
    for value in [secret, *others]:
        for where, text in texts.items():
            assert_no_secret(value, where, text)
