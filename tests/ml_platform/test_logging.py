"""The Django processes' log set-up (config/logging.py) never prints a frame's local variables."""

from __future__ import annotations

import uuid

import pytest
import structlog

from config.logging import structlog_configure


def _connect(password: str) -> None:
    raise ConnectionError("authentication failed")


@pytest.mark.parametrize("json", [False, True])
def test_logged_traceback_holds_no_local_variables(
    json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret in a local variable of a failing frame is not in the logged exception (rich's
    traceback renderer, the console default when rich is installed, prints locals)."""
    secret = f"S3cr3t-{uuid.uuid4()}"  # not in any source line the traceback quotes
    structlog_configure(level="info", json=json)
    try:
        try:
            _connect(secret)
        except ConnectionError:
            structlog.get_logger().exception("connect.failed")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()

    assert "connect.failed" in err
    assert secret not in err
    if not json:
        assert "ConnectionError: authentication failed" in err
