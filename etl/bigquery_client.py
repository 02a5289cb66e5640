"""google-cloud-bigquery clients and error translation, shared by the BigQuery source and
destination (imported only by them: shared/STYLE.md E9)."""

from __future__ import annotations

import json
import re
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

from etl.bigquery_memory import bound_process_memory  # noqa: E402  after the dependency check

bound_process_memory()

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
    creds = google_credentials(credentials, field=field)
    options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
    return bigquery.Client(
        project=project, credentials=creds, client_options=options, location=location
    )


def google_credentials(credentials: dict[str, Any] | str | None, *, field: str) -> Any:
    """Return google-auth credentials: a service-account JSON object (or its text), None for
    Application Default Credentials (returned as None), `"anonymous"` for none (emulators).

    Raises:
        ConfigError: the credentials are not a service-account document (no part of them is
            in the message); `field` names the config field.
    """
    if credentials is None:
        return None
    if credentials == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    from google.oauth2 import service_account

    creds: Any = None
    try:
        info = json.loads(credentials) if isinstance(credentials, str) else credentials
        creds = service_account.Credentials.from_service_account_info(info)
    except (ValueError, KeyError, TypeError):
        creds = None
    if creds is None:
        # raised outside the handler, so neither cause nor context (a JSONDecodeError keeps
        # the whole document in `doc`) carries the secret
        raise ConfigError("credentials are not a valid service-account JSON document", field=field)
    return creds


def make_read_client(
    *,
    credentials: dict[str, Any] | str | None,
    storage_api_endpoint: str | None = None,
    field: str = "connection_params.credentials",
) -> Any:
    """Return a BigQuery Storage Read API client (`BigQueryReadClient`, gRPC).

    Args:
        credentials: as for `make_client`.
        storage_api_endpoint: `http://HOST:PORT` for a plain-text gRPC endpoint (the emulator,
            whose `--grpc-port` serves it), `HOST[:PORT]` or `https://HOST[:PORT]` for a TLS
            one (e.g. a Private Service Connect name); None: Google's
            `bigquerystorage.googleapis.com`.
        field: the config field a `ConfigError` names.

    Raises:
        MissingDependencyError: `google-cloud-bigquery-storage` is not installed.
        ConfigError: unreadable credentials.
    """
    try:
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )
    except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
        raise MissingDependencyError(
            "google-cloud-bigquery-storage", "the BigQuery Storage Read API"
        ) from exc
    endpoint = (storage_api_endpoint or "").strip().rstrip("/")
    if endpoint.startswith("http://"):
        import grpc

        # the options the client sets on channels it makes itself: Arrow pages may be large
        channel = grpc.insecure_channel(
            endpoint.removeprefix("http://"),
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        return BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
    creds = google_credentials(credentials, field=field)
    host = endpoint.removeprefix("https://")
    options = ClientOptions(api_endpoint=host) if host else None
    return BigQueryReadClient(credentials=creds, client_options=options)


LOAD_JOBS_PER_TABLE_PER_DAY = 1_500
"""https://cloud.google.com/bigquery/quotas#load_jobs: load jobs per table per day (failed
ones included); table operations (loads, copies, DML appends) share it."""
_DAILY = re.compile(
    r"imports or query appends per table|per table per day|per day|daily|"
    r"table operations|partition modifications",
    re.IGNORECASE,
)
_SHORT = re.compile(
    r"rate limit|per 10 seconds|per second|per minute|too many (?:table )?update operations|"
    r"too many api requests|concurrent",
    re.IGNORECASE,
)


class QuotaExceededError(DestinationError):
    """A daily BigQuery quota is exhausted: retrying today cannot succeed. `limit` names it."""

    def __init__(self, what: str, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(
            f"BigQuery quota exhausted for {what}: {limit}. The run fails until the quota "
            f"resets (midnight Pacific time); make fewer runs a day (a less frequent schedule) "
            f"or ask Google for more. BigQuery said: {message}"
        )


def _reasons(exc: BaseException) -> list[tuple[str, str]]:
    """(reason, message) of each error of a BigQuery API error (`exc.errors`)."""
    errors = getattr(exc, "errors", None) or []
    found = [
        (str(e.get("reason", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict)
    ]
    return found or [("", str(getattr(exc, "message", "") or exc))]


def quota_kind(exc: BaseException) -> str | None:
    """Classify a BigQuery error: `rate` (`rateLimitExceeded`, or a `quotaExceeded` of a
    short window such as 5 table-metadata updates per 10 s: retried), `daily` (a
    `quotaExceeded` of a daily limit such as 1,500 load jobs per table per day: terminal), or
    None (https://cloud.google.com/bigquery/docs/error-messages#errortable,
    https://cloud.google.com/bigquery/docs/troubleshoot-quotas)."""
    for reason, message in _reasons(exc):
        if reason == "rateLimitExceeded":
            return "rate"
        if reason == "quotaExceeded" or message.startswith("Quota exceeded"):
            if _SHORT.search(message) and not _DAILY.search(message):
                return "rate"
            return "daily"
    return None


def _daily_limit(message: str) -> str:
    if re.search(r"imports or query appends per table", message, re.IGNORECASE):
        return (
            f"{LOAD_JOBS_PER_TABLE_PER_DAY:,} load jobs (imports or query appends) per table per "
            "day (https://cloud.google.com/bigquery/quotas#load_jobs)"
        )
    return "a daily quota (https://cloud.google.com/bigquery/quotas)"


def rate_limit_retry(timeout_s: float) -> Retry:
    """Return the policy that re-runs a load or commit whose job failed with a short-window
    quota (`quota_kind` == `rate`, of the error or of the API error it was translated from): exponential backoff from 1 s, doubling, capped at 32 s per
    wait, with api_core's full jitter (each wait is random up to the cap), within `timeout_s`."""
    return Retry(
        # an engine error translated from the API's (`translate(...) from exc`) counts as it
        predicate=lambda exc: (
            quota_kind(exc) == "rate"
            or (exc.__cause__ is not None and quota_kind(exc.__cause__) == "rate")
        ),
        initial=1.0,
        maximum=32.0,
        multiplier=2.0,
        timeout=timeout_s,
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
    if not source and quota_kind(exc) == "daily":
        message = _message(exc)
        return QuotaExceededError(what, _daily_limit(message), message)
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
