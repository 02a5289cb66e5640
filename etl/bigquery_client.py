"""google-cloud-bigquery clients and error translation, shared by the BigQuery source and
destination (imported only by them: shared/STYLE.md E9)."""

from __future__ import annotations

import json
from typing import Any

from etl.exceptions import (
    ConfigError,
    DestinationError,
    EtlError,
    MissingDependencyError,
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
    TransientError,
)

try:
    from google.api_core import exceptions as api_exceptions
    from google.api_core.client_options import ClientOptions
    from google.api_core.retry import Retry
    from google.cloud import bigquery
except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
    raise MissingDependencyError("google-cloud-bigquery", "BigQuery") from exc

TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.TooManyRequests,
    api_exceptions.GatewayTimeout,
    api_exceptions.BadGateway,
    api_exceptions.RetryError,
    ConnectionError,
    TimeoutError,
)


def make_client(
    *,
    project: str,
    credentials: dict[str, Any] | str | None,
    api_endpoint: str | None = None,
    location: str | None = None,
    field: str = "destination.credentials",
) -> bigquery.Client:
    """Return a BigQuery client.

    Args:
        project: the project jobs run in (billing project).
        credentials: a service-account JSON object (or its text); None: Application Default
            Credentials; "anonymous": no credentials (the emulator).
        api_endpoint: e.g. `http://127.0.0.1:9050` for the emulator; None: Google's.
        location: default job location, e.g. `EU`.
        field: the config field a `ConfigError` names (`connection_params.credentials` for a
            source or a connection).

    Raises:
        ConfigError: the credentials are not a service-account document (no part of them is
            in the message).
    """
    creds: Any = None
    if credentials == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        creds = AnonymousCredentials()
    elif credentials is not None:
        from google.oauth2 import service_account

        try:
            info = json.loads(credentials) if isinstance(credentials, str) else credentials
            creds = service_account.Credentials.from_service_account_info(info)
        except (ValueError, KeyError, TypeError):
            creds = None
        if creds is None:
            # raised outside the handler, so neither cause nor context (a JSONDecodeError keeps
            # the whole document in `doc`) carries the secret
            raise ConfigError(
                "credentials are not a valid service-account JSON document", field=field
            )
    options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
    return bigquery.Client(
        project=project, credentials=creds, client_options=options, location=location
    )


def retry(timeout_s: float) -> Retry:
    """Return the client's default retry policy with a deadline of `timeout_s` seconds."""
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(timeout_s)


def translate(exc: Exception, what: str, *, source: bool = False) -> EtlError:
    """Return the engine error for a BigQuery API error (`what` names the table or job).

    Transient: 5xx, 429, timeouts. Terminal: everything else, with BigQuery's own error
    messages (which name the file, row and column of a failed load job). An engine error
    (e.g. the `ConfigError` of malformed credentials, raised when the client is first made) is
    returned unchanged.
    """
    if isinstance(exc, EtlError):
        return exc
    if isinstance(exc, TRANSIENT):
        if source:
            return SourceUnavailableError(f"BigQuery {what}", _message(exc))
        return TransientError(
            f"BigQuery is unavailable for {what}: {_message(exc)}. Retry the run."
        )
    if source:
        if getattr(exc, "code", None) in (401, 403):
            return SourceAuthError(f"BigQuery {what}", _message(exc))
        return SourceQueryError(f"BigQuery {what}", _message(exc))
    return DestinationError(f"BigQuery rejected {what}: {_message(exc)}")


def _message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or []
    details = [
        " ".join(str(e.get(key)) for key in ("location", "message") if e.get(key))
        for e in errors
        if isinstance(e, dict)
    ]
    text = getattr(exc, "message", None) or str(exc)
    return "; ".join([text, *[d for d in details if d and d not in text]])[:2000]
