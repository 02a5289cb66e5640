"""One writer per DuckDB file: runs that load into the same DuckDB file wait for each other on a
lock the control plane holds, instead of failing on DuckDB's own file lock and retrying.

DuckDB lets one process open a database file for writing (DuckDB manual, "Concurrency"): a
second writer fails at once with "Could not set lock on file". The lock here is
an exclusive `flock(2)` on `<path>.etl.lock` beside the DuckDB file, keyed by the resolved path
(so `a/../w.duckdb` and `w.duckdb` are one file), taken before the engine opens the file and
released when the run ends. The kernel drops it when the holding process dies, so a killed
worker never leaves the file locked. Like the DuckDB file itself, it serializes the processes of
one machine (or of a file system with working `flock`, e.g. NFSv4).
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
    *, job: etl.JobConfig, run_id: int, timeout_s: float | None = None
) -> Iterator[float]:
    """Hold the writer lock of `job`'s DuckDB file while the block runs (no lock for other
    destinations); yield the seconds waited for another run to release it (0.0 when free).

    Args:
        job: the run's engine config; `destination.path` is the DuckDB file.
        run_id: `EtlRun.id`, logged while waiting.
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
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not logged:
                    logger.info("etl_run.destination_lock_wait", run_id=run_id, path=path)
                    logged = True
                if time.monotonic() - started >= timeout_s:
                    raise DestinationBusyError(path, timeout_s) from None
                time.sleep(POLL_INTERVAL_S)
        waited_s = round(time.monotonic() - started, 3) if logged else 0.0
        logger.info("etl_run.destination_locked", run_id=run_id, path=path, waited_s=waited_s)
        try:
            yield waited_s
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
