"""Model fields for secrets at rest (django-fernet-encrypted-fields, keyed by ETL_ENCRYPTION_KEY)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.utils.functional import cached_property
from encrypted_fields.fields import EncryptedTextField


class SecretTextField(EncryptedTextField):
    """Fernet-encrypted text whose keys come from `settings.ETL_ENCRYPTION_KEY` (then
    `ETL_ENCRYPTION_KEY_FALLBACKS`) and `settings.SALT_KEY`, not from Django's SECRET_KEY.

    The key derivation is the library's own (PBKDF2-SHA256, 100,000 iterations, one key per
    secret x salt, the first encrypts); only the secret's source differs, so the Django session
    key and the credentials key rotate independently. Settings are read on first use, never at
    import time.
    """

    @cached_property
    def keys(self) -> list[bytes]:
        salts = settings.SALT_KEY if isinstance(settings.SALT_KEY, list) else [settings.SALT_KEY]
        secrets = [settings.ETL_ENCRYPTION_KEY, *settings.ETL_ENCRYPTION_KEY_FALLBACKS]
        keys = []
        for secret in secrets:
            for salt in salts:
                kdf = PBKDF2HMAC(
                    algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100_000
                )
                keys.append(base64.urlsafe_b64encode(kdf.derive(secret.encode())))
        return keys
