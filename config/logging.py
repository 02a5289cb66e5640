"""structlog set-up for the Django processes: one line per event on stderr, so command output
on stdout stays clean. JSON in production (Cloud Logging reads `severity`/`message`), a
readable console line elsewhere."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

import structlog

RUN_LOG: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "etl_run_log", default=None
)
"""Lines of the run being executed in this context (set by `ml_platform.services.run_logs`)."""
RUN_LOG_MAX_LINES = 2000
RUN_LOG_FIELD_MAX_CHARS = 500
_RUN_LOG_SKIP = frozenset({"event", "level", "timestamp", "message"})


def run_log_capture(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: copy each event of a run being captured (`RUN_LOG` set) as
    `{"ts", "level", "event", "fields"}` (values as text, each at most 500 characters; at most
    2,000 lines per run); the event itself goes on unchanged."""
    lines = RUN_LOG.get()
    if lines is not None and len(lines) < RUN_LOG_MAX_LINES:
        lines.append(
            {
                "ts": str(event_dict.get("timestamp", "")),
                "level": str(event_dict.get("level", "")),
                "event": str(event_dict.get("event", ""))[:RUN_LOG_FIELD_MAX_CHARS],
                "fields": {
                    key: str(value)[:RUN_LOG_FIELD_MAX_CHARS]
                    for key, value in event_dict.items()
                    if key not in _RUN_LOG_SKIP
                },
            }
        )
    return event_dict


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
            run_log_capture,
            *processors,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),  # one write per line
        cache_logger_on_first_use=False,
    )
