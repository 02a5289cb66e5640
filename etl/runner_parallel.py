"""Cloud Run Job mode of a parallel run: one execution with N tasks (`CLOUD_RUN_TASK_COUNT`),
each extracting the chunks of its `CLOUD_RUN_TASK_INDEX` (i, i + N, ...).

Task 0 coordinates: it starts the run (`RunnerClient.fetch_job`), plans the chunks with
`etl.chunk_plan` (holding PostgreSQL's exported snapshot until the commit), posts the plan,
extracts its own chunks, waits until every chunk has a report posted to the runner API,
commits them all (`coordinator.commit`) and reports the RunResult as a one-task runner does.
Tasks 1..N-1 read the job without starting anything, wait for the plan, claim their chunk (the
control plane answers `waiting` while the connection's reader slots are all busy), send chunk
heartbeats, stage the chunk's Parquet parts and post its report.

A task Cloud Run retries after its container died claims its chunk again once the dead
attempt's heartbeat is stale (a new attempt; the dead attempt's parts are never loaded). A
chunk still pending `STEAL_AFTER_S` seconds after the plan (its task never started) is taken by
task 0. A lost task 0 loses the snapshot: the run is failed (reaper, or `CoordinatorLostError`
when Cloud Run starts task 0 again), and the other tasks stop at their next call (409).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from etl.exceptions import EtlError, TerminalError, TransientError
from etl.runner_client import (
    RunFunction,
    RunnerClient,
    RunnerJob,
    Ticker,
    failure_document,
    run_fetched,
    run_reported,
)
from etl.state import RunResult

logger = structlog.get_logger(__name__)

POLL_S = 1.0
"""Seconds between two looks at the run's chunks."""
PLAN_WAIT_S = 900.0
"""Longest wait of tasks 1..N-1 for task 0's plan, seconds."""
STEAL_AFTER_S = 60.0
"""Task 0 extracts a chunk still pending this many seconds after the plan was posted."""
ACTIVE = ("queued", "running")


class RunnerChunkFailedError(TerminalError):
    """A chunk of the run failed for good; nothing of the run was committed."""

    def __init__(self, run_id: str, index: int, error_class: str, error: str) -> None:
        self.run_id, self.index, self.error_class, self.error = run_id, index, error_class, error
        super().__init__(
            f"Chunk {index} of run {run_id} failed: {error_class}: {error}. Nothing was committed."
        )


class PlanNotReadyError(TransientError):
    """Task 0 posted no chunk plan in time (it may not have started)."""

    def __init__(self, run_id: str, waited_s: float) -> None:
        self.run_id, self.waited_s = run_id, waited_s
        super().__init__(f"Run {run_id} has no chunk plan after {waited_s:.0f} s.")


def run_task_from_api(
    client: RunnerClient,
    *,
    data_source_id: int,
    run_id: str | None,
    worker: str,
    task_index: int,
    task_count: int,
    run: RunFunction,
    fault_hook: Callable[[str], None] | None = None,
    poll_s: float = POLL_S,
) -> tuple[dict[str, Any], bool]:
    """Do task `task_index` of `task_count` of a parallel run (see the module docstring).

    Args:
        client: the runner API client.
        data_source_id: `DataSource.id`.
        run_id: the run (UUID text); required, every task must work on the same run.
        worker: this task's name (`<execution>/<task index>`).
        task_index: `CLOUD_RUN_TASK_INDEX`, 0 .. task_count - 1.
        task_count: `CLOUD_RUN_TASK_COUNT`.
        run: `etl.run`, for task 0 when the control plane says the run is not parallel.
        fault_hook: test-only phase callback passed to `etl.chunk_extract`.
        poll_s: seconds between two looks at the chunks.

    Returns:
        `(document, succeeded)`: task 0's RunResult JSON or failure document; for the other
        tasks `{"status": "chunks_reported", "chunks": [...]}` or a failure document.
    """
    if not run_id:
        error = TerminalError("A parallel run's tasks need --run-id (one run for all tasks).")
        return failure_document(error), False
    task = _Task(client, data_source_id, run_id, worker, task_index, task_count, fault_hook, poll_s)
    if task_index == 0:
        return task.coordinate(run)
    try:
        done = task.extract_share()
    except EtlError as exc:
        logger.error("runner.chunk_task_failed", run_id=run_id, error_class=type(exc).__name__)
        return failure_document(exc), False
    if done is None:
        return {"status": "skipped", "run_id": run_id, "chunks": []}, True
    return {"status": "chunks_reported", "run_id": run_id, "chunks": done}, True


class _ChunkPulse(Ticker):
    """Post a chunk heartbeat every `interval_s` seconds while the chunk is extracted."""

    failed_event = "runner.chunk_heartbeat_failed"

    def __init__(
        self, client: RunnerClient, *, run_id: str, index: int, attempt: int, interval_s: float
    ) -> None:
        super().__init__(interval_s=interval_s, name="etl-chunk-pulse")
        self.client, self.run_id, self.index, self.attempt = client, run_id, index, attempt

    def tick(self) -> None:
        self.client.chunk_heartbeat(run_id=self.run_id, index=self.index, attempt=self.attempt)


@dataclass(frozen=True)
class _Task:
    """Task `index` of `count` of parallel run `run_id` (see the module docstring)."""

    client: RunnerClient
    data_source_id: int
    run_id: str
    worker: str
    index: int
    count: int
    fault_hook: Callable[[str], None] | None
    poll_s: float

    def coordinate(self, run: RunFunction) -> tuple[dict[str, Any], bool]:
        """Task 0: start the run, plan it, extract its chunks and those left behind, commit
        them all and report the RunResult (with `run`, as one task, if it is not parallel)."""
        try:
            runner_job = self.client.fetch_job(
                data_source_id=self.data_source_id, run_id=self.run_id, worker=self.worker
            )
        except EtlError as exc:
            return failure_document(exc), False
        if not runner_job.parallel:
            # parallelism was lowered since the execution started: one task does it all
            return run_fetched(self.client, runner_job, data_source_id=self.data_source_id, run=run)
        return run_reported(
            self.client,
            runner_job,
            data_source_id=self.data_source_id,
            work=lambda progress: self._plan_and_commit(runner_job, progress),
        )

    def extract_share(self) -> list[int] | None:
        """Tasks 1..N-1: wait for the plan, extract this task's chunks; return their indexes,
        or None when the run finished without a plan."""
        from etl.parallel import ChunkPlan

        plan_data = self._plan_wait()
        if plan_data is None:
            return None
        runner_job = self.client.read_job(data_source_id=self.data_source_id, run_id=self.run_id)
        return self._extract_own(runner_job, ChunkPlan.from_dict(plan_data))

    def _plan_wait(self) -> dict[str, Any] | None:
        """Return the run's plan once task 0 posted it; None when the run finished without one."""
        started = time.monotonic()
        while True:
            answer = self.client.chunks_get(run_id=self.run_id)
            if answer.get("plan"):
                return answer["plan"]
            if answer.get("run_status") not in ACTIVE:
                return None
            waited = time.monotonic() - started
            if waited > PLAN_WAIT_S:
                raise PlanNotReadyError(self.run_id, waited)
            time.sleep(self.poll_s)

    def _plan_and_commit(
        self, runner_job: RunnerJob, progress: Callable[[int, int], None]
    ) -> RunResult:
        from etl.parallel import ChunkReport, chunk_plan

        log = logger.bind(run_id=runner_job.run_id, data_source_id=self.data_source_id)
        with chunk_plan(
            runner_job.job,
            runner_job.state,
            run_id=uuid.UUID(runner_job.run_id).hex,
            staging=runner_job.staging,
            full_refresh=runner_job.full_refresh,
        ) as coordinator:
            plan = coordinator.plan
            self.client.chunks_create(run_id=runner_job.run_id, plan=plan.to_dict())
            planned_at = time.monotonic()
            log.info("runner.chunks_planned", chunks=len(plan.chunks), tasks=self.count)
            self._extract_own(runner_job, plan)
            chunks = self._chunks_wait(runner_job, plan, planned_at)
            reports = [ChunkReport.from_dict(chunk["report"]) for chunk in chunks]
            return coordinator.commit(reports, progress=progress)

    def _extract_own(self, runner_job: RunnerJob, plan: Any) -> list[int]:
        """Extract chunks `index`, `index + count`, ... of `plan`; return their indexes."""
        done = []
        for index in range(self.index, len(plan.chunks), self.count):
            self._chunk_do(runner_job, plan, index)
            done.append(index)
        return done

    def _chunks_wait(self, runner_job: RunnerJob, plan: Any, planned_at: float) -> list[Any]:
        """Return the run's chunks once all are done, extracting those left behind meanwhile.

        Raises:
            RunnerChunkFailedError: a chunk failed for good.
        """
        while True:
            chunks = self.client.chunks_get(run_id=runner_job.run_id)["chunks"]
            for chunk in chunks:
                if chunk["status"] == "failed":
                    raise RunnerChunkFailedError(
                        runner_job.run_id,
                        chunk["index"],
                        chunk["error_class"],
                        chunk["error_message"],
                    )
            if all(chunk["status"] == "done" for chunk in chunks):
                return chunks
            late = time.monotonic() - planned_at > STEAL_AFTER_S
            for chunk in chunks:
                # a pending chunk whose task never came, or a stale one (the control plane
                # answers `busy` while its holder's heartbeat is fresh)
                if chunk["status"] in ("waiting", "running") or (
                    chunk["status"] == "pending" and late
                ):
                    self._chunk_do(runner_job, plan, chunk["index"], steal=True)
            time.sleep(self.poll_s)

    def _chunk_do(self, runner_job: RunnerJob, plan: Any, index: int, steal: bool = False) -> bool:
        """Claim chunk `index` (waiting for a reader slot as long as the control plane says
        so), extract it and post its report; return False when it was not this task's to do
        (done, failed, or busy with `steal`). A stolen chunk runs without the fault hook."""
        from etl.parallel import chunk_extract

        attempt = self._claim(runner_job.run_id, index, steal)
        if attempt is None:
            return False
        log = logger.bind(run_id=runner_job.run_id, chunk=index)
        log.info("runner.chunk_started", attempt=attempt, worker=self.worker)
        pulse = _ChunkPulse(
            self.client,
            run_id=runner_job.run_id,
            index=index,
            attempt=attempt,
            interval_s=runner_job.heartbeat_interval_s,
        )
        pulse.start()
        try:
            fault_hook = None if steal else self.fault_hook
            report = chunk_extract(runner_job.job, plan, index, fault_hook=fault_hook)
            document: dict[str, Any] = json.loads(json.dumps(report.to_dict()))
        except Exception as exc:  # noqa: BLE001  task boundary: the failure is reported
            document = failure_document(exc)
        finally:
            pulse.stop()
        self.client.chunk_report(
            run_id=runner_job.run_id, index=index, attempt=attempt, report=document
        )
        log.info("runner.chunk_reported", attempt=attempt, status=document.get("status", "done"))
        return True

    def _claim(self, run_id: str, index: int, steal: bool) -> int | None:
        """Return the attempt the control plane gave this task for chunk `index` once it is
        claimed; None when it is done, failed, or (with `steal`) busy."""
        attempt: int | None = None
        logged = False
        while True:
            answer = self.client.chunk_claim(
                run_id=run_id, index=index, worker=self.worker, attempt=attempt
            )
            state = answer["state"]
            if state == "claimed":
                return int(answer["attempt"])
            if state in ("done", "failed") or (state == "busy" and steal):
                return None
            if state == "waiting":
                attempt = int(answer["attempt"])
                if not logged:
                    logger.info("reader_slot.waiting", run_id=run_id, chunk=index, attempt=attempt)
                    logged = True
            time.sleep(float(answer.get("retry_after_s") or self.poll_s))
