"""Secrets at rest and in messages: the one place that serializes, reads back and redacts the
JSON a `SecretTextField` holds (connection `credentials`, data source
`destination_credentials`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db.models import Model

from ml_platform.exceptions import CredentialsUnreadableError

REDACTED = "***"
"""What a secret is replaced with in error messages and probe results."""


def secret_dump(value: Any) -> str | None:
    """Serialize a secret (JSON object or string) for a `SecretTextField`; None clears it.

    Returns:
        Sorted-key JSON text, or None for None, "" and {}.
    """
    return None if value in (None, "", {}) else json.dumps(value, sort_keys=True)


def secret_read(stored: str | None, *, owner: str) -> Any:
    """Return the decrypted JSON value of a `SecretTextField` (None when nothing is stored).

    Args:
        stored: the field's value as the model returns it (already decrypted).
        owner: names the row in the error, e.g. "connection 3".

    Raises:
        CredentialsUnreadableError: the stored value does not decrypt with the configured keys.
    """
    if not stored:
        return None
    try:
        return json.loads(stored)
    except json.JSONDecodeError:
        # the library returns the ciphertext itself when no key decrypts it
        raise CredentialsUnreadableError(owner) from None


def secret_apply(
    *,
    instance: Model,
    field: str,
    value: Any,
    clear: bool,
    dump: Callable[[Any], str | None] = secret_dump,
) -> None:
    """Set `instance.<field>` (a `SecretTextField`) for an update, without saving.

    `clear` stores None; else a `value` that is not None replaces the stored secret (through
    `dump`, which may raise `ValidationError`); None keeps it.
    """
    if clear:
        setattr(instance, field, None)
    elif value is not None:
        setattr(instance, field, dump(value))


def secret_strings(value: Any) -> Iterator[str]:
    """Yield every string inside a JSON value (dict values and list items, recursively)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secret_strings(item)


def redact(message: str, secrets: Iterable[str]) -> str:
    """Replace each secret of 3 characters or more in `message` with `REDACTED`, longest first
    (so a secret that contains another is removed whole)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        message = message.replace(secret, REDACTED)
    return message


def secret_seal(value: Any) -> str:
    """Encrypt a JSON value with the credentials key (`ETL_ENCRYPTION_KEY`), e.g. to keep a
    secret typed into the wizard in the session until the source is saved.

    Returns:
        Fernet token text; `secret_unseal` reads it back.
    """
    from cryptography.fernet import MultiFernet

    return MultiFernet(_fernets()).encrypt(json.dumps(value).encode()).decode("ascii")


def secret_unseal(token: str, *, owner: str) -> Any:
    """Return the JSON value `secret_seal` encrypted.

    Raises:
        CredentialsUnreadableError: the token does not decrypt with the configured keys.
    """
    from cryptography.fernet import InvalidToken, MultiFernet

    try:
        return json.loads(MultiFernet(_fernets()).decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError):
        raise CredentialsUnreadableError(owner) from None


def _fernets() -> list[Any]:
    from cryptography.fernet import Fernet

    from ml_platform.fields import SecretTextField

    return [Fernet(key) for key in SecretTextField().keys]
