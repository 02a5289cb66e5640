"""Writes of `Connection`: create and update, credentials encrypted at rest."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

import etl
from ml_platform import contract
from ml_platform.exceptions import CREDENTIALS_NOT_OBJECT, CREDENTIALS_UNKNOWN_KEYS
from ml_platform.models import Connection
from ml_platform.services.common import model_fields_apply
from ml_platform.services.secrets import secret_apply, secret_dump, secret_read

CREDENTIAL_KEYS = contract.CREDENTIAL_KEYS
"""Keys a connection's encrypted `credentials` object may hold (`contract.CONNECTION_TYPES`)."""

UPDATABLE_FIELDS = contract.connection_fields()
"""Every `Connection` field a person sets (the model's editable fields but `credentials`)."""


def credentials_read(*, connection: Connection) -> dict[str, Any]:
    """Return the decrypted credentials object (empty when none are stored).

    Raises:
        CredentialsUnreadableError: the stored value does not decrypt with the configured keys.
    """
    return secret_read(connection.credentials, owner=f"connection {connection.pk}") or {}


LOCAL_BASE_PATH_OUTSIDE = (
    "base_path {path!r} is outside the folders local connections may read: {roots} "
    "(ETL_LOCAL_SOURCE_ROOTS)."
)
LOCAL_BASE_PATH_HOLDS_DATABASE = (
    "base_path {path!r} holds the control plane's own database; give a folder of data files."
)


def local_base_path_check(base_path: str) -> str:
    """Return the absolute, symlink-free form of a local connection's `base_path`, which must
    lie inside one of `settings.ETL_LOCAL_SOURCE_ROOTS` and must not hold the control plane's
    SQLite database (its tokens and encrypted credentials).

    Raises:
        etl.ConfigError: `field="connection_params.base_path"`, naming the allowed roots.
    """
    resolved = os.path.realpath(os.path.expanduser(str(base_path)))
    roots = [os.path.realpath(os.path.expanduser(str(r))) for r in settings.ETL_LOCAL_SOURCE_ROOTS]
    if not any(os.path.commonpath([root, resolved]) == root for root in roots):
        raise etl.ConfigError(
            LOCAL_BASE_PATH_OUTSIDE.format(path=str(base_path), roots=", ".join(roots)),
            field="connection_params.base_path",
        )
    database = settings.DATABASES["default"]
    if "sqlite" in database["ENGINE"] and str(database.get("NAME") or "") not in ("", ":memory:"):
        db_file = os.path.realpath(str(database["NAME"]))
        if os.path.commonpath([resolved, db_file]) == resolved:
            raise etl.ConfigError(
                LOCAL_BASE_PATH_HOLDS_DATABASE.format(path=str(base_path)),
                field="connection_params.base_path",
            )
    return resolved


def connection_params_build(*, connection: Connection) -> dict[str, Any]:
    """Return the `connection_params` of the config contract, secrets included (plain text).

    Non-empty model fields of the type (its `params` in `contract.CONNECTION_TYPES`), then
    `extra_params`, then the decrypted credentials; `endpoint_url` doubles as `api_endpoint`
    for BigQuery.
    """
    params: dict[str, Any] = {}
    for field in contract.CONNECTION_TYPES[connection.type].params:
        value = getattr(connection, field)
        if value not in (None, ""):
            params[field] = value
    if connection.type == "bigquery" and "endpoint_url" in params:
        params["api_endpoint"] = params["endpoint_url"]
    params.update(connection.extra_params or {})
    params.update(credentials_read(connection=connection))
    if connection.type == "local" and params.get("base_path"):
        # again at use: a row saved before ETL_LOCAL_SOURCE_ROOTS (or edited in the database)
        # is refused by every run, preview and listing
        local_base_path_check(params["base_path"])
    return params


def connection_build(
    *,
    name: str,
    type: str,
    credentials: dict[str, Any] | None = None,
    pk: int | None = None,
    **fields: Any,
) -> Connection:
    """Return a validated, unsaved connection (e.g. to test it before saving); the arguments
    are those of `connection_create`, `pk` the id of the connection it would replace (edit:
    its own name is then not a clash).

    Raises:
        ValidationError: keyed by the model field at fault (`host`, `credentials`, ...), or by
            each argument that is not a field a person sets.
    """
    connection = Connection(pk=pk, name=name, type=type)
    fields["extra_params"] = fields.get("extra_params") or {}
    model_fields_apply(instance=connection, data=fields, updatable=UPDATABLE_FIELDS)
    connection.credentials = _credentials_dump(credentials)
    if pk is not None:
        connection._state.adding = False  # the row exists: its own id and name are no clash
    connection_validate(connection=connection)
    return connection


@transaction.atomic
def connection_create(
    *, name: str, type: str, credentials: dict[str, Any] | None = None, **fields: Any
) -> Connection:
    """Create a connection of `type` (a source type); `fields` are the other `Connection`
    fields of the type (`host`, `port`, `bucket`, ..., see `contract.CONNECTION_TYPES`),
    `extra_params` its non-secret extras such as S3 `region` or Azure `account_name`;
    `credentials` (keys of `CREDENTIAL_KEYS`) are encrypted at rest.

    Raises:
        ValidationError: keyed by the model field at fault (`host`, `credentials`, ...).
    """
    connection = connection_build(name=name, type=type, credentials=credentials, **fields)
    connection.save()
    return connection


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    data: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    clear_credentials: bool = False,
) -> Connection:
    """Update the fields named in `data` (see `UPDATABLE_FIELDS`).

    Args:
        connection: the connection to change.
        data: field name -> new value; other fields keep their values.
        credentials: when given, replaces the stored credentials object; None keeps it.
        clear_credentials: remove the stored credentials.

    Raises:
        ValidationError: an unknown field, or a value invalid for its field.
    """
    model_fields_apply(instance=connection, data=data or {}, updatable=UPDATABLE_FIELDS)
    secret_apply(
        instance=connection,
        field="credentials",
        value=credentials,
        clear=clear_credentials,
        dump=_credentials_dump,
    )
    connection_validate(connection=connection)
    connection.save()
    return connection


def connection_validate(*, connection: Connection) -> None:
    """Check fields and the keys the connection's type needs, without saving.

    Raises:
        ValidationError: keyed by the model field at fault.
    """
    connection.full_clean()
    try:
        params = connection_params_build(connection=connection)
    except etl.ConfigError as exc:
        if exc.field != "connection_params.base_path":
            raise
        # `base_path` (or an `extra_params` key of that name) points outside the allowed roots
        raise ValidationError({"base_path": str(exc)}) from None
    missing = [
        key
        for key in etl.REQUIRED_CONNECTION_KEYS[connection.type]
        if params.get(key) in (None, "")
    ]
    if missing:
        raise ValidationError(
            {key: f"This field is required for a {connection.type} connection." for key in missing}
        )


def _credentials_dump(credentials: dict[str, Any] | None) -> str | None:
    if credentials is None:
        return None
    if not isinstance(credentials, dict):
        raise ValidationError({"credentials": CREDENTIALS_NOT_OBJECT})
    unknown = sorted(set(credentials) - CREDENTIAL_KEYS)
    if unknown:
        raise ValidationError(
            {
                "credentials": CREDENTIALS_UNKNOWN_KEYS.format(
                    unknown=", ".join(unknown), allowed=", ".join(sorted(CREDENTIAL_KEYS))
                )
            }
        )
    return secret_dump(
        {key: value for key, value in credentials.items() if value not in (None, "")}
    )


CONNECTION_IN_USE = "Connection {name} is used by data source(s) {sources}; delete those first."


@transaction.atomic
def connection_delete(*, connection: Connection) -> None:
    """Delete a connection that no data source uses.

    Raises:
        ApplicationError: data sources still use it (named in the message).
    """
    from ml_platform.exceptions import ApplicationError

    names = list(connection.data_sources.order_by("name").values_list("name", flat=True))
    if names:
        raise ApplicationError(
            CONNECTION_IN_USE.format(name=connection.name, sources=", ".join(names))
        )
    connection.delete()
