"""structlog set-up for the Django processes: one line per event on stderr, so command output
on stdout stays clean. JSON in production (Cloud Logging reads `severity`/`message`), a
readable console line elsewhere."""

from __future__ import annotations

import logging
import sys

import structlog


def structlog_configure(*, level: str, json: bool) -> None:
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
        processors: list[structlog.typing.Processor] = [
            structlog.processors.EventRenamer("message")
        ]
    else:
        # plain tracebacks: rich's (the default when rich is installed) print each frame's
        # local variables, which can hold connection passwords
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        processors = []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *processors,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
