"""`data_source_create` / `data_source_update` validate the config contract and name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from ml_platform.models import Connection, DataSource
from ml_platform.services import (
    connection_create,
    data_source_create,
    data_source_update,
    job_config_build,
)
from ml_platform.services.job_config import DESTINATION_PATH_OUTSIDE

pytestmark = pytest.mark.django_db


@pytest.fixture
def pg_connection() -> Connection:
    return connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": "pw-123456"},
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (
            {"source_table_name": "public.t"},
            "timestamp_column",
            "timestamp_column is required for a transactional table load",
        ),
        (
            {"source_table_name": "public.t", "custom_sql": "SELECT 1", "timestamp_column": "ts"},
            "source_table_name",
            "give exactly one of source_table_name and custom_sql",
        ),
        (
            {"source_table_name": "public.t", "timestamp_column": "ts", "dest_table_name": "9bad"},
            "dest_table_name",
            "must be letters, digits and underscores",
        ),
        (
            {
                "source_table_name": "public.t",
                "load_type": "catalog",
                "destination": {"type": "bigquery", "dataset": "raw"},
            },
            "destination",
            "`project` is required for a bigquery destination",
        ),
        (
            {
                "source_table_name": "public.t",
                "load_type": "catalog",
                "schedule_cron": "99 * * * *",
            },
            "schedule_cron",
            "Invalid end range: 99 > 59",
        ),
        (
            {
                "source_table_name": "public.t",
                "load_type": "catalog",
                "schedule_timezone": "Mars/Olympus",
            },
            "schedule_timezone",
            "Unknown time zone",
        ),
        (
            {"source_table_name": "public.t", "load_type": "sometimes"},
            "load_type",
            "is not a valid choice",
        ),
    ],
    ids=[
        "no-cursor",
        "table-and-sql",
        "bad-dest-name",
        "bigquery-no-project",
        "bad-cron",
        "bad-timezone",
        "bad-load-type",
    ],
)
def test_data_source_create_names_field(
    pg_connection: Connection, kwargs: dict[str, Any], field: str, message: str
) -> None:
    """An invalid source is not saved; the ValidationError is keyed by the field at fault."""
    arguments = {"name": "src", "connection": pg_connection, "dest_table_name": "t", **kwargs}

    with pytest.raises(ValidationError) as caught:
        data_source_create(**arguments)

    assert list(caught.value.message_dict) == [field]
    assert message in caught.value.message_dict[field][0]
    assert DataSource.objects.count() == 0


def test_file_source_needs_format(tmp_path) -> None:  # noqa: ANN001
    """A file source without `file_format` fails on `file_format`; its delimiter must be one
    character."""
    local = connection_create(name="files", type="local", base_path=str(tmp_path))

    with pytest.raises(ValidationError) as caught:
        data_source_create(name="f", connection=local, dest_table_name="t")
    assert caught.value.message_dict == {
        "file_format": [
            "Invalid job config: `file_format`: file_format is required for file sources "
            "(csv, parquet, json, jsonl)"
        ],
    }

    with pytest.raises(ValidationError) as caught:
        data_source_create(
            name="f",
            connection=local,
            dest_table_name="t",
            file_format="csv",
            file_format_options={"delimiter": ";;"},
        )
    assert caught.value.message_dict == {
        "file_format_options": [
            "Invalid job config: `file_format_options.delimiter`: must be exactly one character"
        ],
    }


def test_connection_create_names_missing_field() -> None:
    """A PostgreSQL connection without host fails on `host`."""
    with pytest.raises(ValidationError) as caught:
        connection_create(name="pg", type="postgresql", database="d", user="u")

    assert caught.value.message_dict == {
        "host": ["This field is required for a postgresql connection."]
    }


def test_data_source_update_revalidates(pg_connection: Connection) -> None:
    """Clearing the cursor of a transactional table source is refused and nothing changes."""
    source = data_source_create(
        name="src",
        connection=pg_connection,
        dest_table_name="t",
        source_table_name="public.t",
        timestamp_column="ts",
    )

    with pytest.raises(ValidationError) as caught:
        data_source_update(data_source=source, data={"timestamp_column": ""})

    assert list(caught.value.message_dict) == ["timestamp_column"]
    assert DataSource.objects.get(id=source.id).timestamp_column == "ts"


def test_job_config_build_resolves_secrets(pg_connection: Connection, settings) -> None:  # noqa: ANN001
    """The JobConfig carries the decrypted password, the default DuckDB path and the data
    source as the owner of its table (`datasource:<id>`); its redacted form hides the
    password."""
    source = data_source_create(
        name="src",
        connection=pg_connection,
        dest_table_name="t",
        source_table_name="public.t",
        timestamp_column="ts",
        primary_key=["id"],
    )

    job = job_config_build(data_source=source)

    assert job.connection_params["password"] == "pw-123456"
    assert job.destination.type == "duckdb"
    assert job.destination.path == settings.ETL_DEFAULT_DUCKDB_PATH
    assert job.primary_key == ["id"]
    assert job.owner_id == job.pipeline_id == f"datasource:{source.id}"
    assert job.redacted()["connection_params"]["password"] == "***"


def test_duckdb_path_is_confined_to_data_dir(
    pg_connection: Connection, settings, tmp_path: Path
) -> None:  # noqa: ANN001
    """A relative DuckDB destination path resolves under `settings.ETL_DATA_DIR`, an absolute
    one inside it is kept; `..` out of it, an absolute path elsewhere and a symlink leading out
    are refused with a `destination` field error naming the path."""
    settings.ETL_DATA_DIR = str(tmp_path / "data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "out").symlink_to("/srv")
    fields = {"connection": pg_connection, "dest_table_name": "t", "load_type": "catalog",
              "source_table_name": "public.t"}  # fmt: skip
    relative = data_source_create(
        name="rel", destination={"type": "duckdb", "path": "wh/rel.duckdb"}, **fields
    )
    inside = str(tmp_path / "data" / "abs.duckdb")
    absolute = data_source_create(
        name="abs", destination={"type": "duckdb", "path": inside}, **fields
    )

    assert job_config_build(data_source=relative).destination.path == str(
        tmp_path / "data" / "wh" / "rel.duckdb"
    )
    assert job_config_build(data_source=absolute).destination.path == inside
    root = str(tmp_path / "data")
    for path in ("../escape.duckdb", "/srv/abs.duckdb", "out/w.duckdb", "wh/../../x.duckdb"):
        with pytest.raises(ValidationError) as caught:
            data_source_create(
                name=f"bad {path}", destination={"type": "duckdb", "path": path}, **fields
            )
        assert caught.value.message_dict == {
            "destination": [DESTINATION_PATH_OUTSIDE.format(path=path, root=root)]
        }
