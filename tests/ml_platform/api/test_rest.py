"""The API as REST clients expect it (issue 16): resources at conventional URLs with their verbs,
unknown fields refused with the closest valid name, every list paginated, filtered and ordered,
and every operation documenting the one error body."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource, DataSourceState, EtlRun
from ml_platform.services import data_source_create

pytestmark = pytest.mark.django_db


def test_source_lifecycle_on_resource_urls(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """POST the collection creates (201), PATCH the item changes, POST `reset/` resets the state,
    DELETE the item removes it (204, then 404); the old `/create/`, `/update/`, `/delete/`
    sub-URLs are gone (404)."""
    created = staff_client.post(
        "/api/etl/sources/",
        {"name": "orders", "connection": local_connection.id, "dest_table_name": "orders",
         "file_pattern": "*.csv", "file_format": "csv"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    url = f"/api/etl/sources/{created.json()['id']}/"

    patched = staff_client.patch(url, {"schedule_cron": "0 6 * * *"}, format="json")
    reset = staff_client.post(url + "reset/")

    assert (patched.status_code, patched.json()["schedule_cron"]) == (200, "0 6 * * *")
    assert reset.status_code == 200
    assert (
        DataSourceState.objects.get(data_source_id=created.json()["id"]).full_refresh_pending
        is True
    )
    assert staff_client.post("/api/etl/sources/create/", {}, format="json").status_code == 404
    assert staff_client.patch(url + "update/", {}, format="json").status_code == 404
    assert staff_client.delete(url).status_code == 204
    assert staff_client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "message"),
    [
        ("post", "/api/etl/sources/", {"primary_keys": ["id"]}, "primary_keys",
         "Unknown field `primary_keys`; did you mean `primary_key`?"),
        ("patch", "/api/etl/sources/{source}/", {"shedule_cron": "* * * * *"}, "shedule_cron",
         "Unknown field `shedule_cron`; did you mean `schedule_cron`?"),
        ("patch", "/api/etl/connections/{connection}/", {"password": "s3cret"}, "password",
         "Unknown field `password`; did you mean `credentials.password`?"),
        ("post", "/api/etl/connections/", {"password": "s3cret"}, "password",
         "Unknown field `password`; did you mean `credentials.password`?"),
        ("post", "/api/etl/connections/", {"aws_access_key_id": "AKIA"}, "aws_access_key_id",
         "Unknown field `aws_access_key_id`; did you mean `credentials.aws_access_key_id`?"),
        ("get", "/api/etl/runs/?stauts=failed", None, "stauts",
         "Unknown field `stauts`; did you mean `status`?"),
    ],
    ids=["create-source", "update-source", "update-connection", "create-connection",
         "create-connection-aws", "list-filter"],
)  # fmt: skip
def test_unknown_fields_answer_400_with_the_closest_name(
    staff_client: APIClient,
    csv_source: DataSource,
    method: str,
    path: str,
    body: dict | None,
    field: str,
    message: str,
) -> None:
    """A misspelled or unknown field is refused naming it (and the closest valid name), nothing
    changes, and a secret sent in the wrong field is not echoed."""
    url = path.format(source=csv_source.id, connection=csv_source.connection_id)
    before = DataSource.objects.values().get(pk=csv_source.pk)

    response = getattr(staff_client, method)(url, body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation error",
        "extra": {"fields": {field: [message]}},
    }
    assert "s3cret" not in response.content.decode()
    assert DataSource.objects.values().get(pk=csv_source.pk) == before


def test_lists_are_paginated_filtered_and_ordered(
    staff_client: APIClient, local_connection: Connection, csv_source: DataSource
) -> None:
    """Sources: `?limit=` pages with `count`/`next`, `?enabled=`, `?load_type=`, `?type=` and
    `?ordering=-name`; an unknown ordering is a 400 naming the allowed ones."""
    for name, load_type, enabled in [("b-catalog", "catalog", True), ("c-off", "catalog", False)]:
        data_source_create(
            name=name, connection=local_connection, dest_table_name=name.replace("-", "_"),
            load_type=load_type, file_pattern="*.csv", file_format="csv", enabled=enabled,
        )  # fmt: skip

    first = staff_client.get("/api/etl/sources/", {"limit": 2}).json()
    second = staff_client.get(first["next"]).json()
    descending = staff_client.get("/api/etl/sources/", {"ordering": "-name"}).json()
    catalog_on = staff_client.get(
        "/api/etl/sources/", {"load_type": "catalog", "enabled": "true"}
    ).json()
    of_type = staff_client.get("/api/etl/sources/", {"type": "postgresql"}).json()
    bad = staff_client.get("/api/etl/sources/", {"ordering": "password"})

    assert (first["count"], [s["name"] for s in first["results"]]) == (3, ["b-catalog", "c-off"])
    assert [s["name"] for s in second["results"]] == ["orders"]
    assert second["next"] is None
    assert [s["name"] for s in descending["results"]] == ["orders", "c-off", "b-catalog"]
    assert [s["name"] for s in catalog_on["results"]] == ["b-catalog"]
    assert of_type == {"count": 0, "next": None, "previous": None, "results": []}
    assert bad.status_code == 400
    assert bad.json()["extra"]["fields"]["ordering"] == [
        "Order by one of: name, load_type, dest_table_name, created_at, updated_at "
        "(prefix `-` for descending)."
    ]


def test_runs_filter_by_trigger_and_date_range(
    staff_client: APIClient, csv_source: DataSource
) -> None:
    """`?trigger=` and `?queued_after=` / `?queued_before=` (inclusive / exclusive) select runs;
    `?ordering=queued_at` lists oldest first."""
    now = timezone.now().replace(microsecond=0)
    runs = [
        EtlRun.objects.create(
            data_source=csv_source, trigger=trigger, status="succeeded", queued_at=now - age
        )
        for trigger, age in [
            ("manual", dt.timedelta(days=3)),
            ("scheduler", dt.timedelta(days=2)),
            ("scheduler", dt.timedelta(days=1)),
        ]
    ]

    scheduled = staff_client.get("/api/etl/runs/", {"trigger": "scheduler"}).json()
    window = staff_client.get(
        "/api/etl/runs/",
        {
            "queued_after": (now - dt.timedelta(days=3)).isoformat(),
            "queued_before": (now - dt.timedelta(days=1)).isoformat(),
            "ordering": "queued_at",
        },
    ).json()

    assert [run["id"] for run in scheduled["results"]] == [runs[2].id, runs[1].id]
    assert [run["id"] for run in window["results"]] == [runs[0].id, runs[1].id]


def test_every_operation_documents_the_error_body(staff_client: APIClient) -> None:
    """In `/api/schema/`, every operation answers 400, 401, 403, 404 and 503 with the `Error`
    component (`message`, `extra`), and lists are documented as pages, not arrays."""
    schema = json.loads(staff_client.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]

    assert len(operations) >= 20
    for path, method, operation in operations:
        for code in ("400", "401", "403", "404", "503"):
            assert operation["responses"][code]["content"] == error, (path, method, code)
    assert schema["components"]["schemas"]["Error"]["required"] == ["message", "extra"]
    sources = schema["paths"]["/api/etl/sources/"]["get"]["responses"]["200"]
    page = sources["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][page]["properties"]) == {
        "count", "next", "previous", "results",
    }  # fmt: skip


def test_value_policies_reach_the_engine(
    staff_client: APIClient, local_connection: Connection
) -> None:
    """`on_unrepresentable` and `allow_widen_to_string` set through the API are what the engine
    runs with; an unknown policy is a 400 naming the field."""
    from ml_platform.services import job_config_build

    created = staff_client.post(
        "/api/etl/sources/",
        {"name": "strict", "connection": local_connection.id, "dest_table_name": "strict",
         "file_pattern": "*.csv", "file_format": "csv", "on_unrepresentable": "fail",
         "allow_widen_to_string": True},
        format="json",
    )  # fmt: skip
    wrong = staff_client.patch(
        f"/api/etl/sources/{created.json()['id']}/",
        {"on_unrepresentable": "round"},
        format="json",
    )

    assert created.status_code == 201, created.json()
    job = job_config_build(data_source=DataSource.objects.get(pk=created.json()["id"]))
    assert (job.on_unrepresentable, job.allow_widen_to_string) == ("fail", True)
    assert (created.json()["on_unrepresentable"], created.json()["allow_widen_to_string"]) == (
        "fail",
        True,
    )
    assert wrong.status_code == 400
    assert list(wrong.json()["extra"]["fields"]) == ["on_unrepresentable"]
