"""A property-based run of the whole API against its own OpenAPI schema (`/api/schema/`,
drf-spectacular), with schemathesis generating requests (valid and invalid) for every operation
as a staff user: no answer is a 5xx and none contains a secret of the seeded connection or data
source. Bounded: a few examples per operation, no shrinking, derandomized (same examples each
run), so the whole run takes seconds.

Operations that set where a connection points (connection create, `POST /api/etl/connections/`,
and update, `PATCH /api/etl/connections/{id}/`) are left out:
a generated host would make the probes connect to an address outside this machine. The probes
still run against the seeded connections, which point at the local PostgreSQL and a folder.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token

from ml_platform.models import Connection
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_create,
    etl_run_execute,
)

pytestmark = pytest.mark.django_db

PASSWORD = f"fuzz-pg-secret-{uuid.uuid4().hex}"
"""PostgreSQL trusts local connections, so any password works; it must never be answered."""
DESTINATION_KEY = f"fuzz-destination-key-{uuid.uuid4().hex}"
SECRETS = (PASSWORD, DESTINATION_KEY)


@pytest.fixture
def staff_headers() -> dict[str, str]:
    user = get_user_model().objects.create_user("fuzz", password="x", is_staff=True)
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def seeded(
    local_connection: Connection, pg_events_table: str, tmp_path: Path
) -> dict[str, list[int]]:
    """A PostgreSQL connection with a known password and a source on it whose BigQuery
    destination credentials hold a known key; a CSV folder connection and its source, run once.
    Returns the ids a generated path parameter is mapped onto (plus one that does not exist)."""
    pg = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": PASSWORD},
    )  # fmt: skip
    events = data_source_create(
        name="events", connection=pg, dest_table_name="events",
        source_table_name=pg_events_table, timestamp_column="updated_at", primary_key=["id"],
        destination={"type": "duckdb", "path": str(tmp_path / "events.duckdb"), "dataset": "raw"},
    )  # fmt: skip
    events_bq = data_source_create(
        name="events bq", connection=pg, dest_table_name="events_bq", load_type="catalog",
        source_table_name=pg_events_table,
        destination={"type": "bigquery", "project": "p", "dataset": "raw",
                     "api_endpoint": "http://127.0.0.1:9"},
        destination_credentials={"type": "service_account", "private_key": DESTINATION_KEY},
    )  # fmt: skip
    orders = data_source_create(
        name="orders", connection=local_connection, dest_table_name="orders",
        file_pattern="*.csv", file_format="csv",
    )  # fmt: skip
    run = etl_run_execute(run=etl_run_create(data_source=orders, trigger="api")[0])
    return {
        "connection_id": [pg.id, local_connection.id, 10**6],
        "source_id": [events.id, events_bq.id, orders.id, 10**6],
        "run_id": [run.id, 10**6],
    }


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse, in this process, any connection to an address off this machine (a guard: no
    generated value may make the API reach out)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else ""
        if self.family in (socket.AF_INET, socket.AF_INET6) and not (
            ipaddress.ip_address(host.split("%")[0]).is_loopback
        ):
            raise ConnectionRefusedError(f"test guard: {host} is not a loopback address")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """Django's WSGI application, keeping the test's database connection open across requests
    (as Django's test client does: the test runs in a transaction it rolls back)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _api_schema() -> Any:
    """The schema `/api/schema/` serves (drf-spectacular's generator, as the view runs it),
    loaded at collection time, when no database is open yet; requests go to Django's WSGI
    application."""
    from drf_spectacular.generators import SchemaGenerator

    raw = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(raw, default=str)))
    loaded.app = get_wsgi_application()
    return loaded.exclude(method="POST", path="/api/etl/connections/").exclude(
        method="PATCH", path="/api/etl/connections/{connection_id}/"
    )


schema = _api_schema()


def test_fuzzed_schema_is_the_served_one(staff_client: Any) -> None:
    """The schema fuzzed below is the one `/api/schema/` serves, less the two operations left
    out (connection create and update)."""
    served = staff_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert served.status_code == 200
    paths = json.loads(served.content)["paths"]
    served_operations = {(method.upper(), path) for path, item in paths.items() for method in item}
    fuzzed = {(operation.method.upper(), operation.path) for operation in _operations()}
    assert fuzzed == served_operations - {
        ("POST", "/api/etl/connections/"),
        ("PATCH", "/api/etl/connections/{connection_id}/"),
    }


def _operations() -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_no_secret(
    case: Any,
    staff_headers: dict[str, str],
    seeded: dict[str, list[int]],
    wsgi_app: Any,
    loopback_only: None,
) -> None:
    """Every generated request is answered below 500, in JSON when it is an error, and no
    answer carries the seeded password or destination key. Generated ids are mapped onto the
    seeded rows (and one missing id), so requests reach real objects."""
    for name, ids in seeded.items():
        generated = (case.path_parameters or {}).get(name)
        if isinstance(generated, str) and generated.isdigit():
            generated = int(generated)
        if isinstance(generated, int) and not isinstance(generated, bool):
            case.path_parameters[name] = ids[generated % len(ids)]
    response = case.call(headers=staff_headers)

    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    for secret in SECRETS:
        assert secret not in response.text, (case.method, case.formatted_path)
    if response.status_code >= 400:
        headers = {name.lower(): values for name, values in response.headers.items()}
        assert headers["content-type"][0].startswith("application/json"), (
            case.method, case.formatted_path, response.text[:300],
        )  # fmt: skip
