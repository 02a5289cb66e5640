"""MySQL / MariaDB errors translated into the engine's typed errors (transient or terminal),
from PyMySQL's error codes and connectorx's messages."""

from __future__ import annotations

import re
from urllib.parse import quote

from etl.exceptions import (
    SourceAuthError,
    SourceQueryError,
    SourceUnavailableError,
)

TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
"""Server error codes a retry may get past: too many connections, shutdown, lock wait or
deadlock, server gone or lost."""


class ConnectorxError(RuntimeError):
    """A connectorx failure, its message cut to the first line with the password removed."""


NETWORK_FAILURES = (
    "drivererror",
    "ioerror",
    "connection refused",
    "could not connect",
    "broken pipe",
    "connection reset",
    "unexpected eof",
    "timed out",
    "server has gone away",
    "lost connection",
)
"""connectorx messages (lowercased) of failures a retry may get past."""


def is_network_failure(message: str) -> bool:
    lowered = message.lower()
    return any(text.lower() in lowered for text in NETWORK_FAILURES)


class ErrorsMixin:
    """Error translation of `MySqlExtractor`."""

    def _driver_error(self, exc: BaseException) -> ConnectorxError:
        """Return connectorx's failure as a ConnectorxError with the first line of its message,
        the password (plain and percent-encoded) replaced by `***`."""
        text = str(exc).strip()
        message = text.splitlines()[0][:500] if text else type(exc).__name__
        password = self.job.connection_params.get("password")
        if password:
            for secret in (self._url(), quote(str(password), safe=""), str(password)):
                message = message.replace(secret, "***")
        return ConnectorxError(message)

    def translate_error(self, exc: Exception) -> Exception | None:
        import pymysql

        if isinstance(exc, ConnectorxError):
            return self._translate_connectorx(exc)
        if not isinstance(exc, pymysql.Error):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        if code in (1044, 1045, 1142, 1698):  # access denied to user, database or table
            return SourceAuthError(self.source_label, f"({code}) {reason}")
        if isinstance(exc, pymysql.OperationalError) and (
            2000 <= code < 3000 or code in (1205, 1213)
        ):
            return SourceUnavailableError(self.source_label, reason)
        return SourceQueryError(self.source_label, f"({code}) {reason}")

    def _translate_connectorx(self, exc: ConnectorxError) -> Exception:
        message = str(exc)
        match = re.search(r"ERROR (\d+) \(\w+\): (.*?)\s*}?$", message)
        code = int(match.group(1)) if match else 0
        reason = f"({code}) {match.group(2)}" if match else message
        if code in (1044, 1045, 1142, 1698):  # access denied to user, database or table
            return SourceAuthError(self.source_label, reason)
        if code in TRANSIENT_CODES or (not match and is_network_failure(message)):
            return SourceUnavailableError(self.source_label, reason)
        return SourceQueryError(self.source_label, reason)
