"""Control-plane errors. Each branches off the engine's tree, so Celery's retry policy (retry
`etl.TransientError` only) covers them too."""

from __future__ import annotations

from etl import TerminalError

CREDENTIALS_NOT_OBJECT = "Credentials must be a JSON object of secret keys."
CREDENTIALS_UNKNOWN_KEYS = "Unknown credential key(s): {unknown}. Allowed: {allowed}."


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
    """An error of a service that the API answers as `{"message", "extra"}` with HTTP `status`;
    the single EXCEPTION_HANDLER (`ml_platform.api.exception_handlers`) maps it, so no view
    maps errors by hand. `code` is a stable, machine-readable name of the error (logged with
    it); a subclass sets `code` and `status` for a kind of error (e.g. `RunNotActiveError`:
    `run_not_active`, 409), an instance may override them.

    Args:
        message: shown to the user as is (no secrets).
        extra: more JSON-able detail (`{"fields": {field: [message]}}`, ...).
        code: overrides the class's `code`.
        status: overrides the class's HTTP `status`.
    """

    code = "invalid"
    status = 400

    def __init__(
        self,
        message: str,
        extra: dict | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message, self.extra = message, extra or {}
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(message)
