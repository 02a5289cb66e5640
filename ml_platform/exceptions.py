"""Control-plane errors. Each branches off the engine's tree, so Celery's retry policy (retry
`etl.TransientError` only) covers them too."""

from __future__ import annotations

from etl import TerminalError, TransientError

CREDENTIALS_NOT_OBJECT = "Credentials must be a JSON object of secret keys."
CREDENTIALS_UNKNOWN_KEYS = "Unknown credential key(s): {unknown}. Allowed: {allowed}."


class DataSourceBusyError(TransientError):
    """Another run of the data source is running; this one can be retried later."""

    def __init__(self, data_source_id: int, active_run_id: int) -> None:
        self.data_source_id, self.active_run_id = data_source_id, active_run_id
        super().__init__(
            f"Data source {data_source_id} already has run {active_run_id} in progress; "
            "this run stays queued and can be retried when it finishes."
        )


class CredentialsUnreadableError(TerminalError):
    """Stored credentials cannot be decrypted with the configured key(s)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        super().__init__(
            f"Credentials of {owner} cannot be decrypted with ETL_ENCRYPTION_KEY / "
            "ETL_ENCRYPTION_SALT (or their fallbacks). Restore the key or enter the credentials "
            "again."
        )


class ApplicationError(Exception):
    """An error the API answers with 400 `{"message", "extra"}` (the single EXCEPTION_HANDLER)."""

    def __init__(self, message: str, extra: dict | None = None) -> None:
        self.message, self.extra = message, extra or {}
        super().__init__(message)
