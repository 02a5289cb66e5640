"""A run's own log lines: every structlog event emitted while the run executes in this process
(the control plane's and the engine's), stored on `EtlRun.log_lines` for the run page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from config.logging import RUN_LOG, RUN_LOG_MAX_LINES
from ml_platform.models import EtlRun


@contextmanager
def etl_run_log_capture(*, run: EtlRun) -> Iterator[None]:
    """Capture the log events of the block (this thread/context only) and append them to
    `run.log_lines` when it ends, however it ends; a retried run keeps its earlier attempts'
    lines first (at most `RUN_LOG_MAX_LINES` in all)."""
    lines: list[dict[str, Any]] = []
    token = RUN_LOG.set(lines)
    try:
        yield
    finally:
        RUN_LOG.reset(token)
        earlier = EtlRun.objects.filter(pk=run.pk).values_list("log_lines", flat=True).first()
        if earlier is not None:
            combined = [*(earlier or []), *lines][:RUN_LOG_MAX_LINES]
            EtlRun.objects.filter(pk=run.pk).update(log_lines=combined)


def etl_run_log_search(*, run: EtlRun, query: str = "") -> list[dict[str, Any]]:
    """Return the run's log lines whose event, level or field values contain `query`
    (case-insensitive; every line when empty), oldest first."""
    needle = query.strip().lower()
    lines = run.log_lines or []
    if not needle:
        return lines
    return [
        line
        for line in lines
        if needle
        in " ".join(
            [
                line.get("level", ""),
                line.get("event", ""),
                *map(str, (line.get("fields") or {}).values()),
                *(line.get("fields") or {}).keys(),
            ]
        ).lower()  # fmt: skip
    ]
