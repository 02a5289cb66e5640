"""`etl run --parallel N`: the chunks of one run in N local processes, coordinator in this one."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from etl.config import JobConfig
from etl.exceptions import EtlError, SnapshotExpiredError, TerminalError, TransientError
from etl.parallel.coordinator import chunk_plan
from etl.parallel.plan import ChunkPlan, ChunkReport
from etl.state import RunResult, SyncState

logger = structlog.get_logger(__name__)

MAX_CHUNK_ATTEMPTS = 3
"""Attempts of one chunk (a crashed process or a transient error starts the next) before the
run fails; the other chunks are not read again."""


class _ChunkError(EtlError):
    """A chunk that failed: which one, the error (class name and text), after how many
    attempts; the message is the subclass's `template` filled with them."""

    template = ""

    def __init__(self, index: int, error_class: str, error: str, attempts: int) -> None:
        self.index, self.error_class, self.error, self.attempts = (
            index,
            error_class,
            error,
            attempts,
        )
        super().__init__(
            self.template.format(
                index=index, error_class=error_class, error=error, attempts=attempts
            )
        )


class ChunkFailedError(_ChunkError, TerminalError):
    """A chunk failed terminally, or failed MAX_CHUNK_ATTEMPTS times; nothing was committed."""

    template = (
        "Chunk {index} failed after {attempts} attempt(s): {error_class}: {error}. "
        "Nothing was committed; the next run starts over."
    )


class ChunkUnavailableError(_ChunkError, TransientError):
    """A chunk kept failing with a transient error (source unreachable); nothing was committed."""

    template = (
        "Chunk {index} failed {attempts} times: {error_class}: {error}. Nothing was "
        "committed; a retry of the run may succeed."
    )


def run_parallel(
    job: JobConfig,
    state: SyncState | None = None,
    *,
    processes: int,
    run_id: str | None = None,
    staging: str | None = None,
    full_refresh: bool = False,
    fault_hook: Callable[[str], None] | None = None,
    chunk_fault_spec: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run `job` as `job.parallelism` chunks read by at most `processes` local processes.

    This process plans (`chunk_plan`, holding the PostgreSQL snapshot), starts one process per
    chunk (`forkserver`, else `spawn`: no connection is inherited), waits, and commits every chunk
    in one transaction (`ChunkCoordinator.commit`). A chunk whose process dies (any signal) or
    fails with a transient error is started again by itself, up to MAX_CHUNK_ATTEMPTS
    attempts; chunks already staged are kept.

    Args:
        job: the job; `job.parallelism` chunks are planned (`etl run --parallel N` sets it
            to N).
        state: the state after the last successful run.
        processes: chunk processes running at once (>= 1).
        run_id: the run's id; a new UUID4 hex when None.
        staging: where chunks stage Parquet parts; a temporary directory (removed after the
            run) when None.
        full_refresh: as `etl.run`.
        fault_hook: test-only callback for the coordinator's phases (`etl.pipeline.FaultHook`).
        chunk_fault_spec: test-only `ETL_FAULT_INJECT` spec applied in each chunk's *first*
            attempt (e.g. `chunk1.batch`: chunk 1's first attempt SIGKILLs itself after its
            first staged batch; its retry runs clean).
        progress: optional `(rows_loaded, bytes_extracted)` callback during the commit.

    Returns:
        RunResult: as `etl.run`.

    Raises:
        ChunkFailedError: a chunk failed terminally (names it and the cause).
        ChunkUnavailableError: a chunk kept failing transiently.
        SupersededError, TableOwnedError, TransientError, TerminalError: as `etl.run`.
    """
    run_id = run_id or uuid.uuid4().hex
    own_staging = staging is None
    root = staging or tempfile.mkdtemp(prefix="etl-parallel-")
    try:
        with chunk_plan(
            job,
            state,
            run_id=run_id,
            staging=root,
            full_refresh=full_refresh,
            fault_hook=fault_hook,
        ) as coordinator:
            reports = _run_chunks(job, coordinator.plan, max(1, processes), chunk_fault_spec)
            return coordinator.commit(reports, progress=progress)
    finally:
        if own_staging:
            shutil.rmtree(root, ignore_errors=True)


def _run_chunks(
    job: JobConfig, plan: ChunkPlan, processes: int, fault_spec: str
) -> list[ChunkReport]:
    """Run every chunk of `plan` in child processes; return their reports in chunk order."""
    pool = _ChunkPool(job, plan, processes, fault_spec)
    try:
        while pool.pending or pool.running:
            pool.start()
            for sentinel in multiprocessing.connection.wait(list(pool.running)):
                pool.finished(sentinel)
    finally:
        pool.close()
    return [pool.reports[i] for i in range(len(plan.chunks))]


class _ChunkPool:
    """The chunk processes of one run: at most `processes` at once, each chunk retried alone
    (a dead process or a transient error) up to MAX_CHUNK_ATTEMPTS attempts."""

    def __init__(self, job: JobConfig, plan: ChunkPlan, processes: int, fault_spec: str):
        self.job, self.plan, self.processes, self.fault_spec = job, plan, processes, fault_spec
        self.context = _context()
        self.results = Path(tempfile.mkdtemp(prefix="etl-chunk-results-"))
        self.pending: deque[int] = deque(range(len(plan.chunks)))
        self.attempts: dict[int, int] = {}
        self.running: dict[Any, tuple[int, Any, Path]] = {}  # sentinel -> (index, process, file)
        self.reports: dict[int, ChunkReport] = {}
        self.plan_data = plan.to_dict()

    def start(self) -> None:
        """Start pending chunks while fewer than `processes` run."""
        while self.pending and len(self.running) < self.processes:
            index = self.pending.popleft()
            attempt = self.attempts[index] = self.attempts.get(index, 0) + 1
            result = self.results / f"chunk-{index}-{attempt}.json"
            process = self.context.Process(
                target=_chunk_main,
                args=(
                    self.job,
                    self.plan_data,
                    index,
                    str(result),
                    self.fault_spec if attempt == 1 else "",
                ),
                name=f"etl-chunk-{index}",
                daemon=True,
            )
            process.start()
            self.running[process.sentinel] = (index, process, result)

    def finished(self, sentinel: Any) -> None:
        """Take the outcome of the process behind `sentinel`: its report, or a retry.

        Raises:
            SnapshotExpiredError, ChunkFailedError, ChunkUnavailableError: see `run_parallel`.
        """
        index, process, result = self.running.pop(sentinel)
        process.join()
        outcome = json.loads(result.read_text()) if result.exists() else None
        if outcome is not None and "report" in outcome:
            self.reports[index] = ChunkReport.from_dict(outcome["report"])
            logger.info(
                "parallel.chunk_done",
                chunk=index,
                attempt=self.attempts[index],
                rows=self.reports[index].rows,
            )
            return
        transient = outcome is None or outcome.get("transient", False)
        error_class = outcome["error_class"] if outcome else "ProcessDied"
        error = (
            outcome["error"]
            if outcome
            else f"the chunk's process exited with code {process.exitcode}"
        )
        if error_class == "SnapshotExpiredError":
            raise SnapshotExpiredError(self.plan.run_id, self.plan.snapshot or "")
        if not transient:
            raise ChunkFailedError(index, error_class, error, self.attempts[index])
        if self.attempts[index] >= MAX_CHUNK_ATTEMPTS:
            raise ChunkUnavailableError(index, error_class, error, self.attempts[index])
        logger.warning(
            "parallel.chunk_retry",
            chunk=index,
            attempt=self.attempts[index],
            exitcode=process.exitcode,
            error_class=error_class,
        )
        self.pending.appendleft(index)

    def close(self) -> None:
        """Stop the processes still running (this run's, by handle); remove the result files."""
        for _, process, _ in self.running.values():
            process.terminate()
            process.join(5)
        shutil.rmtree(self.results, ignore_errors=True)


def _context() -> Any:
    """Return the multiprocessing context chunk processes start from: `forkserver` where the
    platform has it (a clean server process, started once, imports the engine; each chunk is
    a fork of it: no connection of this process is inherited, and no per-chunk import cost),
    else `spawn`."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["etl.parallel.chunk", "etl.extract", "etl.load"])
        return context
    return multiprocessing.get_context("spawn")


def _chunk_main(
    job: JobConfig, plan_data: dict[str, Any], index: int, result: str, fault_spec: str
) -> None:
    """Entry point of a chunk process: run the chunk, write `{"report": ...}` or the error."""
    from etl.logging import configure_logging
    from etl.parallel.chunk import chunk_extract
    from etl.pipeline import fault_hook_from_spec

    configure_logging()  # stderr: stdout belongs to the parent's output
    try:
        report = chunk_extract(
            job, ChunkPlan.from_dict(plan_data), index, fault_hook=fault_hook_from_spec(fault_spec)
        )
        document: dict[str, Any] = {"report": report.to_dict()}
    except EtlError as exc:
        document = {
            "error_class": type(exc).__name__,
            "error": str(exc),
            "transient": isinstance(exc, TransientError),
        }
    except Exception as exc:  # noqa: BLE001  the process boundary: reported, then re-raised
        document = {"error_class": type(exc).__name__, "error": str(exc), "transient": False}
        _write(result, document)
        raise
    _write(result, document)


def _write(path: str, document: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(document, handle)
    os.replace(temporary, path)
