"""A Google service-account JSON key given in a form, uploaded as a file or pasted: the
connection form (GCS, BigQuery sources) and the destination form (BigQuery) take it alike."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError

GOOGLE_AUTH = [
    ("service_account", "Service-account JSON key"),
    ("adc", "Application Default Credentials"),
    ("anonymous", "Anonymous (emulator only)"),
]
SERVICE_ACCOUNT_INVALID = (
    'Not a service-account JSON key: expected a JSON object with type "service_account", '
    "client_email and private_key."
)
SERVICE_ACCOUNT_MAX_BYTES = 64 * 1024


def service_account_parse(text: str) -> dict[str, Any]:
    """Return the service-account key object in `text` (JSON).

    Raises:
        ValidationError: not JSON, or not a service-account key (no part of it is quoted).
    """
    try:
        info = json.loads(text)
    except ValueError:
        raise ValidationError(SERVICE_ACCOUNT_INVALID) from None
    if not (
        isinstance(info, dict)
        and info.get("type") == "service_account"
        and isinstance(info.get("client_email"), str)
        and isinstance(info.get("private_key"), str)
    ):
        raise ValidationError(SERVICE_ACCOUNT_INVALID)
    return info


def service_account_from(cleaned: dict[str, Any]) -> dict[str, Any] | None:
    """Return the key from the uploaded file or the pasted text (None when neither).

    Raises:
        ValidationError: keyed by the field holding an invalid key.
    """
    upload = cleaned.get("service_account_file")
    if upload:
        if upload.size > SERVICE_ACCOUNT_MAX_BYTES:
            raise ValidationError({"service_account_file": "The file is larger than 64 KiB."})
        try:
            return service_account_parse(upload.read().decode("utf-8"))
        except UnicodeDecodeError:
            raise ValidationError({"service_account_file": SERVICE_ACCOUNT_INVALID}) from None
        except ValidationError as exc:
            raise ValidationError({"service_account_file": exc.messages}) from None
    if cleaned.get("service_account_json"):
        try:
            return service_account_parse(cleaned["service_account_json"])
        except ValidationError as exc:
            raise ValidationError({"service_account_json": exc.messages}) from None
    return None
