"""The job contract is defined once: the engine's `JobConfig` and the `DataSource` model (its
labels, help texts, choices), the connection types in `ml_platform.contract` with the engine's
registry, required keys and cursor rule. The API, admin, services and wizard derive from them, so
a field added to both (here the real `description`) reaches every surface and the engine with
no other change."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

import etl
from etl.cli import main as etl_main
from ml_platform import contract
from ml_platform.admin import PASSWORD_NOT_TAKEN
from ml_platform.admin import ConnectionForm as AdminConnectionForm
from ml_platform.api.connections import ConnectionListApi
from ml_platform.models import Connection, DataSource, SourceType
from ml_platform.services import (
    connection_create,
    credentials_read,
    job_config_build,
    job_config_data,
)
from ml_platform.web.forms_connection import ConnectionForm as WizardConnectionForm
from ml_platform.web.wizard import draft_from_source

pytestmark = pytest.mark.django_db

DESCRIPTION = "Nightly orders from the shop's export folder, for the finance dashboards."
NOT_JOB_FIELDS = {"source_type", "connection_params", "pipeline_id"}
"""JobConfig fields the control plane builds from the connection and the source's id."""


def test_every_engine_job_field_is_a_data_source_field() -> None:
    """Each `etl.JobConfig` field but those built from the connection is a `DataSource` field
    of the same name, so `job_config_data` passes it without a hand-written line."""
    engine = set(etl.JobConfig.model_fields) - NOT_JOB_FIELDS
    assert set(contract.job_fields()) == engine
    assert "description" in engine


def test_source_types_come_from_the_engine_registry() -> None:
    """The model's choices, the API's and the connection types are the engine's one list,
    which its registry of extractors follows."""
    from etl.registry import EXTRACTOR_MODULES

    contract.connection_types_check()
    assert tuple(EXTRACTOR_MODULES) == etl.SOURCE_TYPES
    assert tuple(SourceType.values) == etl.SOURCE_TYPES
    api_type = ConnectionListApi.InputSerializer().fields["type"]
    assert tuple(api_type.choices) == etl.SOURCE_TYPES
    assert set(contract.CONNECTION_TYPES) == set(etl.SOURCE_TYPES)


@pytest.mark.parametrize("source_type", sorted(etl.SOURCE_TYPES))
def test_connection_keys_the_control_plane_sends_are_the_engines(source_type: str) -> None:
    """Every `connection_params` key a connection of the type can produce (its fields, extras
    and secrets in `contract.CONNECTION_TYPES`, BigQuery's `api_endpoint`) is one the engine
    takes (`etl.CONNECTION_KEYS`), so no stored connection trips its unknown-key check."""
    kind = contract.CONNECTION_TYPES[source_type]
    keys = {*kind.params, *kind.extras, *kind.secrets}
    if source_type == "bigquery":
        keys.add("api_endpoint")

    assert etl.unknown_connection_keys(source_type, keys) == []


@pytest.mark.parametrize("source_type", sorted(etl.SOURCE_TYPES))
@pytest.mark.parametrize("load_type", ["transactional", "catalog", "merge"])
def test_cursor_rule_is_the_engines(source_type: str, load_type: str) -> None:
    """`etl.needs_cursor` is the rule the engine's contract enforces (and the wizard asks)."""
    params = {key: "x" for key in etl.REQUIRED_CONNECTION_KEYS[source_type]}
    job = {"source_type": source_type, "connection_params": params, "dest_table_name": "t",
           "load_type": load_type, "primary_key": ["id"], "file_format": "csv",
           "source_table_name": "d.t" if source_type not in etl.FILE_SOURCES else None}  # fmt: skip
    if etl.needs_cursor(source_type, load_type):
        with pytest.raises(etl.ConfigError) as refused:
            etl.JobConfig.parse(job)
        assert refused.value.field == "timestamp_column"
        assert source_type in etl.TABLE_SOURCES and load_type != "catalog"
    else:
        assert etl.JobConfig.parse(job).timestamp_column is None


def test_description_end_to_end(
    staff_client: APIClient, admin_client: Client, local_connection: Connection, tmp_path: Path
) -> None:
    """`description` was added to `etl.JobConfig` and `DataSource` only: the API takes, checks
    (1,000 characters at most) and shows it, the runner's job config carries it, the engine's
    `etl validate` prints it, the admin form and the wizard's draft have it."""
    created = staff_client.post(
        "/api/etl/sources/",
        {"name": "orders", "connection": local_connection.id, "dest_table_name": "orders",
         "file_format": "csv", "file_pattern": "*.csv", "description": DESCRIPTION},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    assert created.json()["description"] == DESCRIPTION
    source = DataSource.objects.get(id=created.json()["id"])
    assert job_config_build(data_source=source).description == DESCRIPTION

    too_long = staff_client.patch(
        f"/api/etl/sources/{source.id}/", {"description": "x" * 1001}, format="json"
    )
    assert too_long.status_code == 400
    assert list(too_long.json()["extra"]["fields"]) == ["description"]
    assert DataSource.objects.get(id=source.id).description == DESCRIPTION

    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job_config_data(data_source=source)))
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert etl_main(["validate", "--config", str(job_file)]) == 0
    assert printed.getvalue() == f"valid: {job_file}: {DESCRIPTION}\n"

    page = admin_client.get(reverse("admin:ml_platform_datasource_change", args=[source.id]))
    assert 'name="description"' in page.content.decode()
    assert draft_from_source(source)["description"] == DESCRIPTION


@pytest.mark.parametrize(
    ("kind", "fields", "stored"),
    [
        ("postgresql", {"host": "h", "database": "d", "user": "u"}, "password"),
        ("mysql", {"host": "h", "database": "d", "user": "u"}, "password"),
        ("s3", {"bucket": "b"}, "aws_secret_access_key"),
        ("azure_blob", {"container": "c"}, "account_key"),
    ],
)
def test_admin_stores_the_secret_under_the_types_key(
    kind: str, fields: dict[str, str], stored: str
) -> None:
    """The admin's one secret box goes to the key `contract.CONNECTION_TYPES` names."""
    form = AdminConnectionForm(
        data={
            "name": f"{kind} conn",
            "type": kind,
            "extra_params": "{}",
            "max_readers": "4",  # the add page's initial value (the model's default)
            "password": "s3cr3t",
            **fields,
        },  # fmt: skip
    )
    assert form.is_valid(), form.errors
    assert contract.CONNECTION_TYPES[kind].secret == stored
    assert form.secret_input() == {stored: "s3cr3t"}


@pytest.mark.parametrize("kind", ["gcs", "bigquery", "local"])
def test_admin_refuses_a_single_secret_for_a_type_without_one(kind: str) -> None:
    """A service-account key is a JSON object and a local folder has no secret: the one box
    is refused naming the field, instead of storing an unused `password`."""
    fields = {"gcs": {"bucket": "b"}, "bigquery": {"project": "p"}, "local": {"base_path": "/"}}
    form = AdminConnectionForm(
        data={
            "name": f"{kind} conn",
            "type": kind,
            "extra_params": "{}",
            "password": "s3cr3t",
            **fields[kind],
        },  # fmt: skip
    )
    assert not form.is_valid()
    assert form.errors["password"] == [PASSWORD_NOT_TAKEN.format(type=kind)]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_wizard_stores_the_password_under_the_types_key(kind: str) -> None:
    """The wizard's password field is stored under the type's secret key, as the admin does."""
    form = WizardConnectionForm(
        data={
            "new-name": "db",
            "new-type": kind,
            "new-host": "h",
            "new-database": "d",
            "new-user": "u",
            "new-password": "pw-1",
        },  # fmt: skip
        prefix="new",
    )
    assert form.is_valid(), form.errors
    values = form.connection_values()
    assert values["credentials"] == {contract.CONNECTION_TYPES[kind].secret: "pw-1"}
    assert values["port"] == contract.CONNECTION_TYPES[kind].default_port
    saved = connection_create(**values)
    assert credentials_read(connection=saved) == {"password": "pw-1"}
