"""Errors of the file sources' stores as the engine's: credentials refused (terminal) or the
store out of reach (transient), worded without any secret of the connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from etl.config import SECRET_KEYS
from etl.exceptions import EtlError, SourceAuthError, SourceUnavailableError
from etl.extract.listing import FileSource


@contextmanager
def storage_errors(job: FileSource, where: str) -> Iterator[None]:
    """Re-raise a store's errors inside the block as the engine's, naming `where`.

    Raises:
        SourceAuthError: credentials rejected or access denied (terminal).
        SourceUnavailableError: network failure, timeout, server error, or an object that
            vanished between listing and reading (transient).
    """
    try:
        yield
    except Exception as exc:
        # one clause naming a builtin: a generator finalized at interpreter exit (its module's
        # globals already None) throws GeneratorExit here, and a clause naming a module global
        # (`except EtlError:`) then raised "catching classes that do not inherit from
        # BaseException" instead of letting it through
        if isinstance(exc, EtlError):
            raise
        kind = _classify(exc)
        if kind is None:
            raise
        reason = redact(first_line(exc), job.connection_params)
        source = f"{job.source_type} {where}"
        if kind == "auth":
            raise SourceAuthError(source, reason) from exc
        raise SourceUnavailableError(source, reason) from exc


_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationFailure",
        "AuthenticationFailed",
        "AuthorizationPermissionMismatch",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "InvalidAuthenticationInfo",
    }
)
"""Error codes (S3, Azure) that mean the credentials or permissions are wrong."""
_AUTH_CLASSES = frozenset(
    {
        "ClientAuthenticationError",
        "NoCredentialsError",
        "PartialCredentialsError",
        "RefreshError",
        "DefaultCredentialsError",
    }
)
_NETWORK_CLASSES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ServiceRequestError",
        "ServiceResponseError",
        "ClientConnectionError",
        "ServerTimeoutError",
        "TransportError",
    }
)


def _classify(exc: BaseException) -> str | None:
    """`auth`, `network` or None; by class name, so no optional SDK is imported here."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    code = getattr(exc, "error_code", None)  # azure
    code = getattr(code, "value", code)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = response.get("Error", {}).get("Code") or code
    if isinstance(exc, PermissionError) or names & _AUTH_CLASSES or code in _AUTH_CODES:
        return "auth"
    if status in (401, 403):
        return "auth"
    if isinstance(exc, (OSError, TimeoutError)) or names & _NETWORK_CLASSES:
        return "network"
    if isinstance(status, int) and (status >= 500 or status in (408, 429)):
        return "network"
    return None


def first_line(exc: BaseException) -> str:
    """Return the first line of `exc`'s message (at most 500 characters), or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0][:500].rstrip(".") if text else type(exc).__name__


def redact(text: str, params: dict[str, Any]) -> str:
    """Remove every secret of `params` (whole values and the key parts of a connection string)."""
    secrets: list[str] = []
    for key, value in params.items():
        if key not in SECRET_KEYS or not value:
            continue
        if isinstance(value, dict):
            secrets.extend(str(v) for v in value.values() if isinstance(v, str) and len(v) > 8)
        else:
            secrets.append(str(value))
            secrets.extend(
                part.split("=", 1)[1]
                for part in str(value).split(";")
                if part.split("=", 1)[0] in ("AccountKey", "SharedAccessSignature") and "=" in part
            )
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
