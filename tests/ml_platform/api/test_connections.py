"""Connections API: CRUD with write-only credentials, test connection and browsing against the
real PostgreSQL, MariaDB and a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from ml_platform.models import Connection, DataSource
from ml_platform.services import connection_create, credentials_read

pytestmark = pytest.mark.django_db

PASSWORD = "api-Pa55-never-returned"


def _pg_payload(**overrides: object) -> dict:
    return {
        "name": "pg",
        "type": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "user": "postgres",
        "credentials": {"password": PASSWORD},
        **overrides,
    }


@pytest.mark.parametrize(
    ("client_fixture", "status"),
    [("client", 401), ("user_client", 403), ("staff_client", 200)],
    ids=["anonymous-401", "not-staff-403", "staff-200"],
)
def test_only_staff_may_read(
    client_fixture: str, status: int, request: pytest.FixtureRequest
) -> None:
    """Nobody gets 401 (with a WWW-Authenticate challenge), a non-staff user 403, staff 200."""
    client = request.getfixturevalue(client_fixture)
    if client_fixture == "client":
        client = APIClient()
    response = client.get("/api/etl/connections/")
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"] == "Token"


def test_session_login_reads(db: None) -> None:
    """A staff user logged in by session (the browsable API) reads the list."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("admin2", password="x", is_staff=True)
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/etl/connections/").json()["results"] == []


def test_create_never_returns_credentials(staff_client: APIClient) -> None:
    """Created with a password: 201, the body and later reads say `has_credentials` only; the
    password is stored encrypted and readable by the services."""
    response = staff_client.post("/api/etl/connections/", _pg_payload(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert PASSWORD not in response.content.decode()
    assert "credentials" not in body
    assert body["has_credentials"] is True
    assert (body["name"], body["type"], body["port"]) == ("pg", "postgresql", 5432)
    detail = staff_client.get(f"/api/etl/connections/{body['id']}/")
    assert PASSWORD not in detail.content.decode()
    listing = staff_client.get("/api/etl/connections/")
    assert PASSWORD not in listing.content.decode()
    assert credentials_read(connection=Connection.objects.get()) == {"password": PASSWORD}


def test_create_missing_required_key_names_field(staff_client: APIClient) -> None:
    """A PostgreSQL connection without host: 400 naming `host`."""
    response = staff_client.post("/api/etl/connections/", _pg_payload(host=""), format="json")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation error",
        "extra": {"fields": {"host": ["This field is required for a postgresql connection."]}},
    }


def test_create_unknown_credential_key(staff_client: APIClient) -> None:
    """Credentials with an unknown key: 400 on `credentials`, listing the allowed keys."""
    response = staff_client.post(
        "/api/etl/connections/",
        _pg_payload(credentials={"pasword": "x"}),
        format="json",
    )
    assert response.status_code == 400
    message = response.json()["extra"]["fields"]["credentials"][0]
    assert message.startswith("Unknown credential key(s): pasword. Allowed: ")


def test_create_unknown_extra_param_is_refused(staff_client: APIClient) -> None:
    """`extra_params` with a key the engine's PostgreSQL source does not read (`sslmod` for
    `sslmode`): 400 in the API's JSON error shape naming the key, the closest allowed key and
    every allowed one; nothing is stored. A PATCH adding such a key is refused the same way.
    Before, the key was stored and the engine ignored it (the connection went without TLS
    required)."""
    message = (
        "connection_params for postgresql has an unknown key `sslmod` (did you mean "
        "`sslmode`?); allowed: application_name, connect_timeout, database, host, password, "
        "port, sslmode, user"
    )
    response = staff_client.post(
        "/api/etl/connections/", _pg_payload(extra_params={"sslmod": "require"}), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation error",
        "extra": {"fields": {"extra_params": [message]}},
    }
    assert Connection.objects.count() == 0

    created = staff_client.post(
        "/api/etl/connections/", _pg_payload(extra_params={"sslmode": "require"}), format="json"
    )
    assert created.status_code == 201
    url = f"/api/etl/connections/{created.json()['id']}/"
    patched = staff_client.patch(url, {"extra_params": {"sslmod": "disable"}}, format="json")
    assert patched.status_code == 400
    assert patched.json()["extra"]["fields"] == {"extra_params": [message]}
    assert Connection.objects.get().extra_params == {"sslmode": "require"}


def test_credential_key_of_another_type_is_refused(staff_client: APIClient) -> None:
    """A credentials key the control plane knows but this type's source does not read (an
    Azure `sas_token` on a PostgreSQL connection): 400 on `credentials` naming it."""
    response = staff_client.post(
        "/api/etl/connections/",
        _pg_payload(credentials={"password": PASSWORD, "sas_token": "x"}),
        format="json",
    )

    assert response.status_code == 400
    (message,) = response.json()["extra"]["fields"]["credentials"]
    assert message.startswith("connection_params for postgresql has an unknown key `sas_token`")


def test_update_keeps_then_replaces_then_clears_credentials(staff_client: APIClient) -> None:
    """PATCH without credentials keeps them; with credentials replaces; clear removes."""
    connection = connection_create(**{k: v for k, v in _pg_payload().items()})
    url = f"/api/etl/connections/{connection.id}/"

    kept = staff_client.patch(url, {"host": "localhost"}, format="json")
    assert kept.status_code == 200
    assert (kept.json()["host"], kept.json()["has_credentials"]) == ("localhost", True)
    connection.refresh_from_db()
    assert credentials_read(connection=connection) == {"password": PASSWORD}

    staff_client.patch(url, {"credentials": {"password": "new"}}, format="json")
    connection.refresh_from_db()
    assert credentials_read(connection=connection) == {"password": "new"}

    cleared = staff_client.patch(url, {"clear_credentials": True}, format="json")
    assert cleared.json()["has_credentials"] is False


def test_delete_refused_while_used(staff_client: APIClient, csv_source: DataSource) -> None:
    """A connection used by a data source is not deleted (400 names the source); once the
    source is deleted, the connection deletes with 204."""
    connection_id = csv_source.connection_id
    refused = staff_client.delete(f"/api/etl/connections/{connection_id}/")
    assert refused.status_code == 400
    assert refused.json() == {
        "message": "Connection local files is used by data source(s) orders; delete those first.",
        "extra": {},
    }
    assert staff_client.delete(f"/api/etl/sources/{csv_source.id}/").status_code == 204
    assert staff_client.delete(f"/api/etl/connections/{connection_id}/").status_code == 204
    assert Connection.objects.count() == 0


def test_unknown_connection_404(staff_client: APIClient) -> None:
    response = staff_client.get("/api/etl/connections/999/")
    assert (response.status_code, response.json()) == (404, {"message": "Not found.", "extra": {}})


@pytest.mark.integration
def test_test_connection_postgresql(staff_client: APIClient) -> None:
    """A reachable PostgreSQL: ok with its server version; a closed port: ok false, 200."""
    good = connection_create(**_pg_payload())
    response = staff_client.post(f"/api/etl/connections/{good.id}/test/")
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["message"]) == (True, "Connection succeeded.")
    assert body["details"]["server_version"].split(".")[0].isdigit()

    bad = connection_create(**_pg_payload(name="pg down", port=1))
    body = staff_client.post(f"/api/etl/connections/{bad.id}/test/").json()
    assert body["ok"] is False
    assert "127.0.0.1" in body["message"] and PASSWORD not in body["message"]


@pytest.mark.integration
def test_test_connection_mysql_wrong_password(staff_client: APIClient) -> None:
    """MariaDB: root with no password succeeds; a wrong password fails with access denied and
    the password is not echoed."""
    good = connection_create(
        name="maria", type="mysql", host="127.0.0.1", port=3306, database="test", user="root"
    )
    assert staff_client.post(f"/api/etl/connections/{good.id}/test/").json()["ok"] is True
    bad = connection_create(
        name="maria bad",
        type="mysql",
        host="127.0.0.1",
        port=3306,
        database="test",
        user="nobody_here",
        credentials={"password": "wrong-secret-pw"},
    )
    body = staff_client.post(f"/api/etl/connections/{bad.id}/test/").json()
    assert body["ok"] is False
    assert "Access denied" in body["message"]
    assert "wrong-secret-pw" not in body["message"]


def test_test_connection_local_files(staff_client: APIClient, local_connection: Connection) -> None:
    """A local folder with one CSV: ok, 1 object."""
    body = staff_client.post(f"/api/etl/connections/{local_connection.id}/test/").json()
    assert body["ok"] is True
    assert body["details"] == {"objects": 1, "truncated": False}


@pytest.mark.integration
def test_browse_schemas_tables_columns(staff_client: APIClient, pg_events_table: str) -> None:
    """PostgreSQL: the fixture's schema is listed, its `events` table, and its 4 columns with
    types, nullability and the primary key."""
    schema, table = pg_events_table.split(".")
    connection = connection_create(**_pg_payload())
    base = f"/api/etl/connections/{connection.id}"

    assert schema in staff_client.get(f"{base}/schemas/").json()
    assert staff_client.get(f"{base}/tables/", {"schema": schema}).json() == [
        {"schema": schema, "name": "events", "kind": "table"}
    ]
    assert staff_client.get(f"{base}/columns/", {"table": pg_events_table}).json() == [
        {"name": "id", "type": "INTEGER", "nullable": False, "primary_key": True},
        {"name": "kind", "type": "TEXT", "nullable": False, "primary_key": False},
        {"name": "value", "type": "NUMERIC(10, 2)", "nullable": True, "primary_key": False},
        {"name": "updated_at", "type": "TIMESTAMP", "nullable": False, "primary_key": False},
    ]
    missing = staff_client.get(f"{base}/columns/", {"table": f"{schema}.nope"})
    assert missing.status_code == 400
    assert missing.json()["message"] == f"Table {schema}.nope does not exist or is not visible."


@pytest.mark.integration
def test_browse_tables_mysql(staff_client: APIClient, mysql_database: str) -> None:
    """MariaDB: a table created in a fresh database is listed with its columns."""
    from tests.conftest import mysql_connect

    conn = mysql_connect(mysql_database)
    try:
        conn.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    finally:
        conn.close()
    connection = connection_create(
        name="maria",
        type="mysql",
        host="127.0.0.1",
        port=3306,
        database=mysql_database,
        user="root",
    )
    base = f"/api/etl/connections/{connection.id}"
    assert staff_client.get(f"{base}/tables/").json() == [
        {"schema": mysql_database, "name": "t", "kind": "table"}
    ]
    columns = staff_client.get(f"{base}/columns/", {"table": "t"}).json()
    assert [(c["name"], c["type"], c["primary_key"]) for c in columns] == [
        ("id", "INTEGER", True),
        ("name", "VARCHAR(20)", False),
    ]


def test_browse_files_prefix_and_glob(staff_client: APIClient, tmp_path: Path) -> None:
    """Files under a prefix matching a glob, sorted, with sizes; `..` outside the base path is
    refused naming `file_prefix`; browsing tables of a file connection is refused."""
    root = tmp_path / "bucket"
    (root / "2024" / "01").mkdir(parents=True)
    (root / "2024" / "01" / "a.csv").write_text("x\n1\n")
    (root / "2024" / "b.csv").write_text("x\n22\n")
    (root / "2024" / "c.json").write_text("{}")
    (root / "other.csv").write_text("x\n")
    connection = connection_create(name="files", type="local", base_path=str(root))
    base = f"/api/etl/connections/{connection.id}"

    body = staff_client.get(f"{base}/files/", {"prefix": "2024", "pattern": "**/*.csv"}).json()
    assert [(f["key"], f["size"]) for f in body["files"]] == [
        ("2024/01/a.csv", 4),
        ("2024/b.csv", 5),
    ]
    body = staff_client.get(f"{base}/files/", {"prefix": "2024", "pattern": "*/*.csv"}).json()
    assert [f["key"] for f in body["files"]] == ["2024/01/a.csv"]
    body = staff_client.get(f"{base}/files/", {"prefix": "2024", "pattern": "*.csv"}).json()
    assert [f["key"] for f in body["files"]] == ["2024/b.csv"]
    body = staff_client.get(f"{base}/files/").json()
    assert [f["key"] for f in body["files"]] == [
        "2024/01/a.csv",
        "2024/b.csv",
        "2024/c.json",
        "other.csv",
    ]
    assert body["truncated"] is False

    outside = staff_client.get(f"{base}/files/", {"prefix": "../"})
    assert outside.status_code == 400
    assert outside.json()["extra"] == {
        "fields": {"file_prefix": ["file_prefix '../' points outside the base path"]}
    }
    tables = staff_client.get(f"{base}/tables/")
    assert tables.status_code == 400
    assert tables.json()["message"] == "Browsing tables is not supported for local connections."


def test_openapi_schema_lists_operations(staff_client: APIClient) -> None:
    """/api/schema/ serves OpenAPI 3 with the CRUD, run-now and webhook paths."""
    response = staff_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/etl/connections/",
        "/api/etl/connections/",
        "/api/etl/connections/{connection_id}/test/",
        "/api/etl/sources/{source_id}/preview/",
        "/api/etl/sources/{source_id}/run/",
        "/api/etl/sources/{source_id}/scheduler-webhook/",
        "/api/etl/runs/{run_id}/",
    ):
        assert path in schema["paths"], path
    assert "credentials" not in schema["components"]["schemas"]["Connection"]["properties"]


def test_browsable_api_renders_html(staff_client: APIClient) -> None:
    response = staff_client.get("/api/etl/connections/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
