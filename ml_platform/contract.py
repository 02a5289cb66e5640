"""The job contract as the control plane stores it, defined once.

A data source's job fields (DESIGN.md §4) are the `DataSource` model fields that share their
name with a field of the engine's `etl.JobConfig` (`JOB_FIELDS`): their labels, help texts,
choices and defaults live on the model, and the model form (admin), the API serializers, the
wizard's draft and `services.job_config` all take them from there. Adding a job field is: the
field on `etl.JobConfig`, the same-named field on `DataSource` (+ its migration), tests.

A connection's fields per type are `CONNECTION_TYPES` below: which `Connection` model fields
form the type's `connection_params`, which non-secret extras it takes, which control-plane
settings apply to it (`max_readers`: the reader slots of a database), which credential keys
hold its secrets and which one the admin's single "secret" box fills. The list of types is the
engine's one list (`etl.SOURCE_TYPES`, which its registry of extractors follows), the keys
each type requires are the engine's (`etl.REQUIRED_CONNECTION_KEYS`); `connection_types_check`
fails fast when they drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Model

import etl


@dataclass(frozen=True)
class ConnectionType:
    """How one source type's connection is stored.

    Attributes:
        label: shown in choices (forms, admin, API schema).
        params: `Connection` model fields copied into `connection_params` when not blank.
        extras: non-secret `connection_params` keys kept in `Connection.extra_params`.
        secrets: `connection_params` keys of the encrypted `credentials` object.
        secret: the key of `secrets` a single secret value goes to (the admin's "Password /
            secret key" box, the wizard's password field); None: the type's secret is a JSON
            object (`credentials`: a service-account key) or has no single form.
        default_port: the port stored when none is given.
        settings: `Connection` model fields of the control plane alone (not passed to the
            engine) that apply to the type: `max_readers`, the reader slots of a source
            database (`services.reader_slots`).
    """

    label: str
    params: tuple[str, ...]
    extras: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    secret: str | None = None
    default_port: int | None = None
    settings: tuple[str, ...] = ()


_DATABASE = ("host", "port", "database", "user")
_GOOGLE_SECRETS = ("credentials",)
_AZURE_SECRETS = ("connection_string", "account_key", "sas_token")

CONNECTION_TYPES: dict[str, ConnectionType] = {
    "postgresql": ConnectionType(
        "PostgreSQL",
        _DATABASE,
        secrets=("password",),
        secret="password",
        default_port=5432,
        settings=("max_readers",),
    ),
    "mysql": ConnectionType(
        "MySQL / MariaDB",
        _DATABASE,
        secrets=("password",),
        secret="password",
        default_port=3306,
        settings=("max_readers",),
    ),
    "bigquery": ConnectionType("BigQuery", ("project", "endpoint_url"), secrets=_GOOGLE_SECRETS),
    "local": ConnectionType("Local files", ("base_path",)),
    "gcs": ConnectionType(
        "Google Cloud Storage", ("bucket", "project", "endpoint_url"), secrets=_GOOGLE_SECRETS
    ),
    "s3": ConnectionType(
        "Amazon S3",
        ("bucket", "endpoint_url"),
        extras=("region",),
        secrets=("aws_access_key_id", "aws_secret_access_key"),
        secret="aws_secret_access_key",
    ),
    "azure_blob": ConnectionType(
        "Azure Blob Storage",
        ("container", "endpoint_url"),
        extras=("account_name",),
        secrets=_AZURE_SECRETS,
        secret="account_key",
    ),
}
"""Per source type of the engine's registry (`etl.SOURCE_TYPES`)."""

CREDENTIAL_KEYS = frozenset(key for kind in CONNECTION_TYPES.values() for key in kind.secrets)
"""Keys a connection's encrypted `credentials` object may hold."""

SOURCE_TYPE_CHOICES = [(kind, CONNECTION_TYPES[kind].label) for kind in etl.SOURCE_TYPES]
"""`(value, label)` of every source type, in the registry's order."""

CONNECTION_TYPES_DRIFT = (
    "ml_platform.contract.CONNECTION_TYPES does not match the engine: {problem}. Describe each "
    "engine source type (etl.SOURCE_TYPES) there, with the keys it requires."
)


def connection_types_check() -> None:
    """Check `CONNECTION_TYPES` against the engine: the same types as its registry, every key
    a type requires (`etl.REQUIRED_CONNECTION_KEYS`) one of its params, and every secret a
    key the engine keeps out of logs (`etl.SECRET_KEYS`, or the access key id).

    Raises:
        RuntimeError: naming what drifted (the app refuses to start: ml_platform.apps).
    """
    if set(CONNECTION_TYPES) != set(etl.SOURCE_TYPES):
        problem = f"types {sorted(CONNECTION_TYPES)} != registry {sorted(etl.SOURCE_TYPES)}"
        raise RuntimeError(CONNECTION_TYPES_DRIFT.format(problem=problem))
    for name, kind in CONNECTION_TYPES.items():
        missing = set(etl.REQUIRED_CONNECTION_KEYS[name]) - set(kind.params)
        if missing:
            problem = f"{name} requires {sorted(missing)}, not among its params"
            raise RuntimeError(CONNECTION_TYPES_DRIFT.format(problem=problem))
        leaky = set(kind.secrets) - etl.SECRET_KEYS - {"aws_access_key_id"}
        if leaky or (kind.secret is not None and kind.secret not in kind.secrets):
            problem = f"{name} secrets {sorted(kind.secrets)} / {kind.secret!r}"
            raise RuntimeError(CONNECTION_TYPES_DRIFT.format(problem=problem))


def job_fields() -> tuple[str, ...]:
    """The `DataSource` fields that are job fields of the engine (`etl.JobConfig`), in model
    order: passed to the engine under the same name by `services.job_config`."""
    from ml_platform.models import DataSource

    engine = set(etl.JobConfig.model_fields)
    return tuple(f.name for f in DataSource._meta.concrete_fields if f.name in engine)


def data_source_fields() -> tuple[str, ...]:
    """The `DataSource` fields a person sets (create, update, API, wizard draft), in model
    order: every editable concrete field but the id and the write-only secret."""
    from ml_platform.models import DataSource

    return _editable_fields(DataSource, exclude={"destination_credentials"})


def connection_fields() -> tuple[str, ...]:
    """The `Connection` fields a person sets, in model order (the credentials are separate)."""
    from ml_platform.models import Connection

    return _editable_fields(Connection, exclude={"credentials"})


def _editable_fields(model: type[Model], exclude: set[str]) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in exclude
    )


def label(model: type[Model], name: str) -> str:
    """The label of `model`'s field `name` (its `verbose_name`, capitalised), for a form field
    that cannot be the model's own form field (e.g. choices known only at run time)."""
    text = str(model._meta.get_field(name).verbose_name)
    return text[:1].upper() + text[1:]


def form_field(model: type[Model], name: str, **kwargs: Any) -> forms.Field:
    """The form field of `model`'s field `name` (type, label, help text, choices, length,
    default, and the bounds of its Min/MaxValueValidators as `min_value` / `max_value`: the
    model's own form field leaves those to model validation, which a plain form does not run);
    `kwargs` adapt it to the form."""
    for validator in model._meta.get_field(name).validators:
        if isinstance(validator, MinValueValidator):
            kwargs.setdefault("min_value", validator.limit_value)
        elif isinstance(validator, MaxValueValidator):
            kwargs.setdefault("max_value", validator.limit_value)
    field = model._meta.get_field(name).formfield(**kwargs)
    assert field is not None, name
    return field


def help_text(model: type[Model], name: str) -> str:
    """The help text of `model`'s field `name`."""
    return str(model._meta.get_field(name).help_text)
