"""structlog set-up for the command-line entry point: JSON lines on stderr, or readable lines
above the progress display on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _StderrLoggerFactory:
    """Return a WriteLogger on the *current* `sys.stderr`, so log lines go through a live
    display that redirects stderr (rich prints them above its progress line). WriteLogger
    writes each line with its newline in one call (PrintLogger's `print` writes the two apart,
    so the lines of a parallel run's processes sharing one stderr pipe could join)."""

    def __call__(self, *args: Any) -> structlog.WriteLogger:
        return structlog.WriteLogger(file=sys.stderr)


def configure_logging(level: int = logging.INFO, *, console: bool = False) -> None:
    """Render structlog events on stderr: one JSON object per line (Cloud Logging reads
    `severity` and `message`), or with `console=True` one readable `key=value` line each, for a
    person at a terminal."""
    renderer: Any
    if console:
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
        ]
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.EventRenamer("message"),
        ]
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StderrLoggerFactory(),
    )
