"""PostgreSQL driver errors as the engine's: credentials or role refused (terminal), the
server out of reach (transient), any other a refused query (terminal); never the password."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from etl.exceptions import SourceAuthError, SourceQueryError, SourceUnavailableError

AUTH_FAILURES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "no password supplied",
    "authentication failed",
)
"""libpq/server messages a retry cannot fix (wrong credentials, role or database missing)."""
NETWORK_FAILURES = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "could not translate host name",
    "connection reset",
    "the database system is starting up",
    "too many connections",
    "terminating connection",
    "server terminated abnormally",
)
"""Messages of failures a retry may get past."""


def translate(exc: Exception, source: str, password: Any) -> Exception | None:
    """Return the engine error for a driver exception of `source` (`SqlExtractor.source_label`),
    its message without `password`; None when `exc` is not a driver error."""
    try:
        import adbc_driver_manager
    except ModuleNotFoundError:  # pragma: no cover
        return None
    # a connection lost while a result streams surfaces from the Arrow reader as an OSError
    # carrying libpq's message, not as an adbc_driver_manager.Error
    from_stream = isinstance(exc, OSError) and str(exc).startswith("[libpq]")
    if not isinstance(exc, adbc_driver_manager.Error) and not from_stream:
        return None
    message = first_line(exc)
    if password:
        message = message.replace(str(password), "***").replace(
            quote(str(password), safe=""), "***"
        )
    lowered = message.lower()
    if any(text in lowered for text in AUTH_FAILURES) or re.search(
        r'(role|database) ".*" does not exist', lowered
    ):
        return SourceAuthError(source, message)
    if any(text in lowered for text in NETWORK_FAILURES):
        return SourceUnavailableError(source, message)
    return SourceQueryError(source, message)


def first_line(exc: Exception) -> str:
    """Return the first line of `exc`'s message, or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
