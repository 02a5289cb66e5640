"""A local connection reads only inside `ETL_LOCAL_SOURCE_ROOTS` (on save, and again at use), and
a file listing stops at its bounds, answering `truncated: true`.

Peer reports of the same class (a file connector reading anywhere the server process can):
https://github.com/airbytehq/airbyte/issues/6538 (Airbyte's File source pulling from the local
filesystem), https://github.com/lf-edge/ekuiper/pull/4144 (file source/sink restricted to the
data directory by default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test import override_settings
from rest_framework.test import APIClient

from ml_platform.models import Connection, EtlRun
from ml_platform.services import connection_create, data_source_create, etl_run_enqueue

pytestmark = [pytest.mark.django_db(transaction=False)]


def _roots() -> str:
    return ", ".join(os.path.realpath(r) for r in settings.ETL_LOCAL_SOURCE_ROOTS)


def test_base_path_outside_the_roots_is_refused_naming_the_field_and_roots(
    staff_client: APIClient,
) -> None:
    """/etc (where /etc/shadow lives), /usr/share and `/tmp/../etc` are refused with a JSON 400
    on `base_path`; no connection is stored. (The checkout may itself lie under a root, e.g. a
    clone in /tmp: its var/ database is refused by the next test's rule.)"""
    for path in ["/etc", "/usr/share", "/tmp/../etc"]:
        response = staff_client.post(
            "/api/etl/connections/",
            {"name": "x", "type": "local", "base_path": path},
            format="json",
        )
        assert response.status_code == 400, path
        assert response.json()["extra"]["fields"] == {
            "base_path": [
                f"base_path {path!r} is outside the folders local connections may read: "
                f"{_roots()} (ETL_LOCAL_SOURCE_ROOTS)."
            ]
        }
    # the same through `extra_params`, which overrides the field in connection_params
    response = staff_client.post(
        "/api/etl/connections/",
        {"name": "x", "type": "local", "base_path": "/tmp", "extra_params": {"base_path": "/"}},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == ["base_path"]
    assert Connection.objects.count() == 0


def test_base_path_holding_the_control_plane_database_is_refused(
    staff_client: APIClient,
) -> None:
    """Even inside a root, the folder of the control plane's SQLite file is not a source."""
    db_file = db_connection.settings_dict["NAME"]
    folder = os.path.dirname(os.path.realpath(db_file))
    with override_settings(ETL_LOCAL_SOURCE_ROOTS=[folder]):
        response = staff_client.post(
            "/api/etl/connections/",
            {"name": "x", "type": "local", "base_path": folder},
            format="json",
        )
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {
        "base_path": [
            f"base_path {folder!r} holds the control plane's own database; give a folder of "
            "data files."
        ]
    }


def test_a_stored_connection_outside_the_roots_fails_its_run_and_listing(
    staff_client: APIClient, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    """A row saved before the setting (or under other roots) cannot bypass it: the run fails
    with ConfigError on `connection_params.base_path`, and the file listing answers 400."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_text("id\n1\n")
    connection = connection_create(name="files", type="local", base_path=str(base))
    source = data_source_create(
        name="s",
        connection=connection,
        dest_table_name="t",
        load_type="catalog",
        file_pattern="*.csv",
        file_format="csv",
        destination={"type": "duckdb", "path": str(tmp_path / "w.duckdb")},
    )
    Connection.objects.filter(pk=connection.pk).update(base_path="/etc")

    listing = staff_client.get(
        f"/api/etl/connections/{connection.pk}/files/", {"pattern": "shadow"}
    )
    assert listing.status_code == 400
    assert "shadow" not in listing.content.decode()
    assert listing.json()["extra"]["fields"] == {
        "connection_params.base_path": [
            f"base_path '/etc' is outside the folders local connections may read: {_roots()} "
            "(ETL_LOCAL_SOURCE_ROOTS)."
        ]
    }

    with (
        pytest.raises(Exception) as failed,  # eager Celery re-raises the run's error
        django_capture_on_commit_callbacks(execute=True),
    ):
        etl_run_enqueue(data_source=source, trigger="api")
    assert type(failed.value).__name__ == "ConfigError"
    run = EtlRun.objects.get()
    assert (run.status, run.error_class) == ("failed", "ConfigError")
    assert "outside the folders local connections may read" in run.error_message


def test_file_listing_stops_at_its_entry_bound_and_says_truncated(
    staff_client: APIClient, tmp_path: Path
) -> None:
    """30 files in 3 folders; a bound of 12 entries stops the walk: fewer files, all real, and
    `truncated: true`. Unbounded, all 30 and `truncated: false`. A bound of 0 seconds stops
    after the first folder."""
    base = tmp_path / "tree"
    for folder in ["a", "b", "c"]:
        (base / folder).mkdir(parents=True)
        for i in range(10):
            (base / folder / f"f{i}.sqlite3").write_bytes(b"x" * i)
    connection = connection_create(name="tree", type="local", base_path=str(base))
    url = f"/api/etl/connections/{connection.pk}/files/"
    every = {f"{folder}/f{i}.sqlite3" for folder in "abc" for i in range(10)}

    full = staff_client.get(url, {"pattern": "**/*.sqlite3"}).json()
    assert ({f["key"] for f in full["files"]}, full["truncated"]) == (every, False)

    with override_settings(ETL_BROWSE_MAX_ENTRIES=12):
        bounded = staff_client.get(url, {"pattern": "**/*.sqlite3"}).json()
    keys = {f["key"] for f in bounded["files"]}
    assert bounded["truncated"] is True
    assert 0 < len(keys) < 30 and keys < every

    with override_settings(ETL_BROWSE_MAX_SECONDS=0.0):
        timed = staff_client.get(url, {"pattern": "**/*.sqlite3"}).json()
    assert timed["truncated"] is True
    assert {f["key"] for f in timed["files"]} == set()  # the root folder holds no file itself
