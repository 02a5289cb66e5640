"""Bad requests and bad stored state answer as data: every error under `/api/` is the API's JSON
shape `{"message", "extra"}` (unknown URLs, wrong methods, oversized and too-deep bodies), a
data source whose stored config went bad is listed and shown with its validation error, and
preview names the field (400) instead of answering 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from ml_platform.api.parsers import BODY_TOO_DEEP, BODY_TOO_LARGE
from ml_platform.models import DataSource
from ml_platform.services.job_config import DESTINATION_PATH_OUTSIDE

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "url", "status", "message"),
    [
        ("get", "/api/etl/nowhere/", 404, "Not Found"),
        ("get", "/api/etl/sources/999999/", 404, "Not found."),
        ("get", "/api/etl/runs/not-a-number/", 404, "Not Found"),
        ("delete", "/api/etl/connections/", 405, 'Method "DELETE" not allowed.'),
        ("get", "/api/etl/sources/1/run/", 405, 'Method "GET" not allowed.'),
    ],
    ids=["unknown-url", "unknown-row", "malformed-id", "405-collection", "405-action"],
)
def test_unknown_urls_and_methods_answer_json(
    staff_client: APIClient, method: str, url: str, status: int, message: str
) -> None:
    """404 and 405 under /api/ are `{"message", "extra": {}}` JSON, never Django's HTML."""
    response = getattr(staff_client, method)(url)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": message, "extra": {}}


def test_oversized_json_body_is_413_json(staff_client: APIClient) -> None:
    """A JSON body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) is refused with 413
    JSON naming the limit; nothing is created."""
    body = '{"name": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '", "type": "local"}'

    response = staff_client.generic(
        "POST", "/api/etl/connections/", body, content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json() == {
        "message": BODY_TOO_LARGE.format(limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        "extra": {},
    }


def test_oversized_form_body_is_json(staff_client: APIClient) -> None:
    """A form-encoded body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused with a JSON 4xx too."""
    body = "name=" + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + "&type=local"

    response = staff_client.generic(
        "POST",
        "/api/etl/connections/",
        body,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["message"] == BODY_TOO_LARGE.format(
        limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )


def test_deeply_nested_json_is_400_json(staff_client: APIClient) -> None:
    """A 100,000-deep JSON array (200 kB) is a 400 parse error, not a RecursionError 500.

    Field report: https://github.com/flop-labs/technocore-chat/issues/130 (a deeply nested
    body answered 500 because `json.loads` raises RecursionError, not ValueError)."""
    body = "[" * 100_000 + "]" * 100_000

    response = staff_client.generic(
        "POST", "/api/etl/connections/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"message": BODY_TOO_DEEP, "extra": {}}


BAD_STORED = [
    ("selected_columns", "id,amount", "selected_columns must be a JSON array, not string."),
    ("selected_columns", [1, 2], "selected_columns must be an array of strings."),
    ("primary_key", 5, "primary_key must be a JSON array, not number."),
    ("primary_key", {"id": 1}, "primary_key must be a JSON array, not object."),
    ("file_format_options", ["x"], "file_format_options must be a JSON object, not array."),
    ("file_format_options", "csv", "file_format_options must be a JSON object, not string."),
    ("destination", "duckdb", "destination must be a JSON object, not string."),
    ("destination", ["duckdb"], "destination must be a JSON object, not array."),
    ("destination", {"type": "duckdb", "path": "/etc/w.duckdb"}, "destination.path '/etc/w"),
    ("destination", {"type": "duckdb", "path": "../../w.duckdb"}, "destination.path '../../w"),
    (
        "load_type",
        "bogus",
        "Invalid job config: `load_type`: Input should be 'transactional', 'catalog' or 'merge'",
    ),
    (
        "file_format",
        "xml",
        "Invalid job config: `file_format`: Input should be 'csv', 'parquet', 'json' or 'jsonl'",
    ),
]


@pytest.mark.parametrize(
    ("field", "value", "message_start"),
    BAD_STORED,
    ids=[f"{field}-{i}" for i, (field, _, _) in enumerate(BAD_STORED)],
)
def test_bad_stored_config_is_listed_shown_and_previewed_as_400(
    staff_client: APIClient, csv_source: DataSource, field: str, value: Any, message_start: str
) -> None:
    """A source whose stored field was changed behind the API (a wrongly typed JSON value, a
    path outside the data directory, an unknown choice): the list and the detail answer 200
    with the source and its `config_errors` naming the field; preview answers 400 naming the
    field; a healthy source beside it is listed with no errors."""
    healthy = DataSource.objects.create(
        name="healthy",
        connection=csv_source.connection,
        dest_table_name="healthy",
        file_pattern="*.csv",
        file_format="csv",
    )
    DataSource.objects.filter(pk=csv_source.pk).update(**{field: value})

    listed = staff_client.get("/api/etl/sources/")
    shown = staff_client.get(f"/api/etl/sources/{csv_source.id}/")
    preview = staff_client.get(f"/api/etl/sources/{csv_source.id}/preview/")

    assert listed.status_code == 200
    by_id = {source["id"]: source for source in listed.json()["results"]}
    assert by_id[healthy.id]["config_errors"] == {}
    bad = by_id[csv_source.id]
    assert list(bad["config_errors"]) == [field]
    assert bad["config_errors"][field][0].startswith(message_start)
    assert bad[field] == value
    assert (shown.status_code, shown.json()["config_errors"]) == (200, bad["config_errors"])
    assert preview.status_code == 400
    assert preview.json() == {
        "message": "Validation error",
        "extra": {"fields": bad["config_errors"]},
    }


def test_destination_secrets_are_masked(staff_client: APIClient, csv_source: DataSource) -> None:
    """A secret key stored in a destination block (`credentials`) is shown as ***."""
    DataSource.objects.filter(pk=csv_source.pk).update(
        destination={"type": "bigquery", "project": "p", "credentials": {"private_key": "k"}}
    )

    shown = staff_client.get(f"/api/etl/sources/{csv_source.id}/").json()

    assert shown["destination"] == {"type": "bigquery", "project": "p", "credentials": "***"}


@pytest.mark.parametrize(
    "path", ["../outside.duckdb", "/etc/w.duckdb"], ids=["dot-dot", "absolute-elsewhere"]
)
def test_destination_path_outside_data_dir_is_a_field_error(
    staff_client: APIClient, csv_source: DataSource, path: str
) -> None:
    """Creating or updating a source whose DuckDB path leaves ETL_DATA_DIR answers 400 naming
    `destination`; nothing is stored."""
    root = str(Path(settings.ETL_DATA_DIR).resolve())
    expected = {
        "message": "Validation error",
        "extra": {
            "fields": {"destination": [DESTINATION_PATH_OUTSIDE.format(path=path, root=root)]}
        },
    }
    destination = {"type": "duckdb", "path": path}

    created = staff_client.post(
        "/api/etl/sources/",
        {"name": "escape", "connection": csv_source.connection_id, "dest_table_name": "t",
         "file_pattern": "*.csv", "file_format": "csv", "destination": destination},
        format="json",
    )  # fmt: skip
    updated = staff_client.patch(
        f"/api/etl/sources/{csv_source.id}/", {"destination": destination}, format="json"
    )

    assert (created.status_code, created.json()) == (400, expected)
    assert (updated.status_code, updated.json()) == (400, expected)
    assert DataSource.objects.get(pk=csv_source.pk).destination == {}
    assert not DataSource.objects.filter(name="escape").exists()


def test_application_error_status_and_code_mapped_once() -> None:
    """The one exception handler answers an `ApplicationError` with the status its class (or
    the instance) carries, in the JSON error shape; no view maps it by hand."""
    from ml_platform.api.exception_handlers import api_exception_handler
    from ml_platform.exceptions import ApplicationError
    from ml_platform.services.runner import RUN_NOT_ACTIVE, RunNotActiveError

    message = RUN_NOT_ACTIVE.format(run_id="r1", status="failed")
    conflict = api_exception_handler(RunNotActiveError(message), {})
    assert (RunNotActiveError.code, conflict.status_code, conflict.data) == (
        "run_not_active", 409, {"message": message, "extra": {}},
    )  # fmt: skip
    plain = api_exception_handler(ApplicationError("bad", {"k": 1}), {})
    assert (plain.status_code, plain.data) == (400, {"message": "bad", "extra": {"k": 1}})
    gone = ApplicationError("gone", code="gone", status=410)
    assert (gone.code, api_exception_handler(gone, {}).status_code) == ("gone", 410)
