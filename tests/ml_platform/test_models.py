"""Secrets at rest: encrypted in the database, readable only through the services."""

from __future__ import annotations

import pytest
from django.db import connection as db

from ml_platform.models import Connection
from ml_platform.services import connection_create, connection_params_build, credentials_read

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Pa55word-xyz"


def _raw_credentials(connection_id: int) -> str:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT credentials FROM ml_platform_connection WHERE id = %s", [connection_id]
        )
        return cursor.fetchone()[0]


def test_credentials_encrypted_at_rest() -> None:
    """The stored column holds a Fernet token, not the password; the service decrypts it."""
    connection = connection_create(
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        database="test",
        user="postgres",
        credentials={"password": SECRET},
    )

    raw = _raw_credentials(connection.id)

    assert SECRET not in raw
    assert "password" not in raw
    assert raw.startswith("gAAAAA")
    reloaded = Connection.objects.get(id=connection.id)
    assert credentials_read(connection=reloaded) == {"password": SECRET}
    assert connection_params_build(connection=reloaded) == {
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "user": "postgres",
        "password": SECRET,
    }


def test_credentials_not_in_repr_or_str() -> None:
    """Neither `str()` nor the repr of a connection shows its secret."""
    connection = connection_create(
        name="s3 bucket",
        type="s3",
        bucket="b",
        credentials={"aws_secret_access_key": SECRET},
    )

    assert SECRET not in str(connection)
    assert SECRET not in repr(connection)


def test_unreadable_credentials_raise() -> None:
    """Credentials encrypted under another key raise CredentialsUnreadableError, never return
    the ciphertext as a password."""
    from ml_platform.exceptions import CredentialsUnreadableError

    connection = connection_create(
        name="pg",
        type="postgresql",
        host="h",
        database="d",
        user="u",
        credentials={"password": SECRET},
    )
    with db.cursor() as cursor:
        cursor.execute(
            "UPDATE ml_platform_connection SET credentials = %s WHERE id = %s",
            ["gAAAAABnot-a-token-for-this-key", connection.id],
        )

    with pytest.raises(CredentialsUnreadableError, match="cannot be decrypted"):
        credentials_read(connection=Connection.objects.get(id=connection.id))
