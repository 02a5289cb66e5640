"""One writer per DuckDB file: runs that load into the same DuckDB file wait for each other on a
lock the control plane holds, instead of failing on DuckDB's own file lock and retrying.

DuckDB lets one process open a database file for writing (DuckDB manual, "Concurrency"): a
second writer fails at once with "Could not set lock on file". The lock here is
an exclusive `flock(2)` on `<path>.etl.lock` beside the DuckDB file, keyed by the resolved path
(so `a/../w.duckdb` and `w.duckdb` are one file), taken before the engine opens the file and
released when the run ends. The kernel drops it when the holding process dies, so a killed
worker never leaves the file locked. Like the DuckDB file itself, it serializes the processes of
one machine (or of a file system with working `flock`, e.g. NFSv4).

The holder writes its run id into the lock file. A process that is alive but stalled (SIGSTOP,
a paused VM) keeps its `flock`; once the reaper has failed its run, a waiter goes on without
the lock: the stalled run can no longer commit (its commit is fenced, `etl.SupersededError`),
so waiting for it would only block the source.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

import structlog
from django.conf import settings

import etl

logger = structlog.get_logger(__name__)

LOCK_SUFFIX = ".etl.lock"
POLL_INTERVAL_S = 0.2
DESTINATION_BUSY = (
    "DuckDB file {path} is being written by another run for more than {timeout_s:g} s "
    "(ETL_DUCKDB_LOCK_TIMEOUT_S); this run is retried later."
)


class DestinationBusyError(etl.TransientError):
    """Another run held the DuckDB file's writer lock for longer than the timeout."""

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path, self.timeout_s = path, timeout_s
        super().__init__(DESTINATION_BUSY.format(path=path, timeout_s=timeout_s))


@contextlib.contextmanager
def destination_writer_lock(
    *, job: etl.JobConfig, run_pk: int, timeout_s: float | None = None
) -> Iterator[float]:
    """Hold the writer lock of `job`'s DuckDB file while the block runs (no lock for other
    destinations); yield the seconds waited for another run to release it (0.0 when free).

    Args:
        job: the run's engine config; `destination.path` is the DuckDB file.
        run_pk: `EtlRun.id`, logged while waiting.
        timeout_s: longest wait, seconds; defaults to `settings.ETL_DUCKDB_LOCK_TIMEOUT_S`.

    Raises:
        DestinationBusyError: still held by another run after `timeout_s` (transient).
    """
    if job.destination.type != "duckdb" or not job.destination.path:
        yield 0.0
        return
    if timeout_s is None:
        timeout_s = float(settings.ETL_DUCKDB_LOCK_TIMEOUT_S)
    path = os.path.realpath(job.destination.path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    started = time.monotonic()
    fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        logged = False
        locked = True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not logged:
                    logger.info("etl_run.destination_lock_wait", run_pk=run_pk, path=path)
                    logged = True
                holder = _holder(fd)
                if holder is not None and _finished(holder):
                    # stalled while holding the lock and reaped since: it cannot commit anymore
                    logger.warning(
                        "etl_run.destination_lock_stale", run_pk=run_pk, holder=holder, path=path
                    )
                    locked = False
                    break
                if time.monotonic() - started >= timeout_s:
                    raise DestinationBusyError(path, timeout_s) from None
                time.sleep(POLL_INTERVAL_S)
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(run_pk).encode(), 0)
        waited_s = round(time.monotonic() - started, 3) if logged else 0.0
        logger.info("etl_run.destination_locked", run_pk=run_pk, path=path, waited_s=waited_s)
        try:
            yield waited_s
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> int | None:
    """Return the run id the lock's holder wrote, or None (not written yet, or unreadable)."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _finished(run_pk: int) -> bool:
    """Return whether run `run_pk` exists and is no longer queued or running (reaped)."""
    from ml_platform.models import EtlRun

    status = EtlRun.objects.filter(pk=run_pk).values_list("status", flat=True).first()
    return status is not None and status not in EtlRun.ACTIVE_STATUSES
