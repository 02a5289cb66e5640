"""What a running `EtlRun` writes while the engine works: a heartbeat (`updated_at`) and
progress counters (rows loaded, bytes extracted), each on its own connection and outside the
run's final transaction."""

from __future__ import annotations

import threading
import time

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import etl
from ml_platform.models import EtlRun

logger = structlog.get_logger(__name__)


class Pulse:
    """Call `beat()` every `interval_s` seconds from a daemon thread with its own database
    connection, outside the caller's transaction: the one mechanism behind a run's heartbeat,
    a chunk's heartbeat and a reader slot's lease renewal.

    `start()` does nothing when `interval_s` is 0 or inside an open transaction (an eager task
    in a request or a test: a second connection's write would wait on this one's lock); `stop()`
    waits for the thread at most `interval_s + 5` seconds. An exception in `beat()` is logged as
    `failed_event` and the next beat tries again.
    """

    failed_event = "pulse.failed"

    def __init__(self, *, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self.fields: dict[str, object] = {}
        """Logged with a failed beat (e.g. the run's `run_pk`)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def beat(self) -> None:
        raise NotImplementedError("subclasses of Pulse must provide beat()")

    def start(self) -> None:
        if self.interval_s > 0 and not transaction.get_connection().in_atomic_block:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.interval_s):
                try:
                    self.beat()
                except Exception as exc:  # noqa: BLE001  thread boundary: next beat retries
                    logger.warning(self.failed_event, error=type(exc).__name__, **self.fields)
        finally:
            connection.close()


class RunHeartbeat(Pulse):
    """Refresh the running run's `updated_at` every `interval_s` seconds, so the reaper
    (`runs_reap`) can tell a long batch from a dead worker."""

    failed_event = "etl_run.heartbeat_failed"

    def __init__(self, *, run_pk: int, interval_s: float) -> None:
        super().__init__(interval_s=interval_s, name=f"etl-run-{run_pk}-heartbeat")
        self.run_pk = run_pk
        self.fields = {"run_pk": run_pk}

    def beat(self) -> None:
        EtlRun.objects.filter(pk=self.run_pk, status=EtlRun.Status.RUNNING).update(
            updated_at=timezone.now()
        )


def run_progress_recorder(
    *, run: EtlRun, forward: etl.ProgressCallback | None
) -> etl.ProgressCallback:
    """Return a callback that stores `(rows, bytes)` on the run's `progress_rows` /
    `progress_bytes` at most every `settings.ETL_RUN_PROGRESS_INTERVAL_S` seconds (outside the
    run's final transaction, so others can watch it), then calls `forward` with them."""
    interval = float(settings.ETL_RUN_PROGRESS_INTERVAL_S)
    last = [0.0]

    def record(rows: int, nbytes: int) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            # a counter write outside the run's final transaction, so others can watch it
            EtlRun.objects.filter(pk=run.pk).update(
                progress_rows=rows, progress_bytes=nbytes, updated_at=timezone.now()
            )
        if forward is not None:
            forward(rows, nbytes)

    return record
