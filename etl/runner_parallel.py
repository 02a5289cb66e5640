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
from typing import Any

import structlog

from etl.exceptions import EtlError, TerminalError, TransientError
from etl.runner_client import (
    RunFunction,
    RunnerClient,
    RunnerJob,
    Ticker,
    _failure,
    _Heartbeat,
    run_fetched,
)

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
        return _failure(error), False
    if task_index == 0:
        return _coordinate(
            client,
            data_source_id=data_source_id,
            run_id=run_id,
            worker=worker,
            task_count=task_count,
            run=run,
            fault_hook=fault_hook,
            poll_s=poll_s,
        )
    try:
        plan_data = _plan_wait(client, run_id=run_id, poll_s=poll_s)
        if plan_data is None:
            return {"status": "skipped", "run_id": run_id, "chunks": []}, True
        from etl.parallel import ChunkPlan

        runner_job = client.read_job(data_source_id=data_source_id, run_id=run_id)
        plan = ChunkPlan.from_dict(plan_data)
        done = []
        for index in range(task_index, len(plan.chunks), task_count):
            _chunk_do(
                client, runner_job, plan, index, worker=worker, fault_hook=fault_hook, poll_s=poll_s
            )
            done.append(index)
    except EtlError as exc:
        logger.error("runner.chunk_task_failed", run_id=run_id, error_class=type(exc).__name__)
        return _failure(exc), False
    return {"status": "chunks_reported", "run_id": run_id, "chunks": done}, True


def _plan_wait(client: RunnerClient, *, run_id: str, poll_s: float) -> dict[str, Any] | None:
    """Return the run's plan once task 0 posted it; None when the run finished without one."""
    started = time.monotonic()
    while True:
        answer = client.chunks_get(run_id=run_id)
        if answer.get("plan"):
            return answer["plan"]
        if answer.get("run_status") not in ACTIVE:
            return None
        waited = time.monotonic() - started
        if waited > PLAN_WAIT_S:
            raise PlanNotReadyError(run_id, waited)
        time.sleep(poll_s)


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


def _chunk_do(
    client: RunnerClient,
    runner_job: RunnerJob,
    plan: Any,
    index: int,
    *,
    worker: str,
    fault_hook: Callable[[str], None] | None,
    poll_s: float,
    steal: bool = False,
) -> bool:
    """Claim chunk `index` (waiting for a reader slot as long as the control plane says so),
    extract it and post its report; return False when it was not this task's to do (done,
    failed, or busy with `steal`)."""
    from etl.parallel import chunk_extract

    run_id = runner_job.run_id
    log = logger.bind(run_id=run_id, chunk=index)
    attempt: int | None = None
    logged = False
    while True:
        answer = client.chunk_claim(run_id=run_id, index=index, worker=worker, attempt=attempt)
        state = answer["state"]
        if state == "claimed":
            attempt = int(answer["attempt"])
            break
        if state in ("done", "failed") or (state == "busy" and steal):
            return False
        if state == "waiting":
            attempt = int(answer["attempt"])
            if not logged:
                log.info("reader_slot.waiting", attempt=attempt)
                logged = True
        time.sleep(float(answer.get("retry_after_s") or poll_s))
    log.info("runner.chunk_started", attempt=attempt, worker=worker)
    pulse = _ChunkPulse(
        client,
        run_id=run_id,
        index=index,
        attempt=attempt,
        interval_s=runner_job.heartbeat_interval_s,
    )
    pulse.start()
    try:
        report = chunk_extract(runner_job.job, plan, index, fault_hook=fault_hook)
        document: dict[str, Any] = json.loads(json.dumps(report.to_dict()))
    except Exception as exc:  # noqa: BLE001  task boundary: the failure is reported
        document = _failure(exc)
    finally:
        pulse.stop()
    client.chunk_report(run_id=run_id, index=index, attempt=attempt, report=document)
    log.info("runner.chunk_reported", attempt=attempt, status=document.get("status", "done"))
    return True


def _coordinate(
    client: RunnerClient,
    *,
    data_source_id: int,
    run_id: str,
    worker: str,
    task_count: int,
    run: RunFunction,
    fault_hook: Callable[[str], None] | None,
    poll_s: float,
) -> tuple[dict[str, Any], bool]:
    from etl.parallel import ChunkReport, chunk_plan

    try:
        runner_job = client.fetch_job(data_source_id=data_source_id, run_id=run_id, worker=worker)
    except EtlError as exc:
        return _failure(exc), False
    if not runner_job.parallel:
        # parallelism was lowered since the execution started: one task does it all
        return run_fetched(client, runner_job, data_source_id=data_source_id, run=run)
    log = logger.bind(run_id=runner_job.run_id, data_source_id=data_source_id)
    heartbeat = _Heartbeat(
        client, run_id=runner_job.run_id, interval_s=runner_job.heartbeat_interval_s
    )
    heartbeat.start()
    try:
        with chunk_plan(
            runner_job.job,
            runner_job.state,
            run_id=uuid.UUID(runner_job.run_id).hex,
            staging=runner_job.staging,
            full_refresh=runner_job.full_refresh,
        ) as coordinator:
            plan = coordinator.plan
            client.chunks_create(run_id=runner_job.run_id, plan=plan.to_dict())
            planned_at = time.monotonic()
            log.info("runner.chunks_planned", chunks=len(plan.chunks), tasks=task_count)
            for index in range(0, len(plan.chunks), task_count):
                _chunk_do(
                    client,
                    runner_job,
                    plan,
                    index,
                    worker=worker,
                    fault_hook=fault_hook,
                    poll_s=poll_s,
                )
            while True:
                answer = client.chunks_get(run_id=runner_job.run_id)
                chunks = answer["chunks"]
                for chunk in chunks:
                    if chunk["status"] == "failed":
                        raise RunnerChunkFailedError(
                            runner_job.run_id,
                            chunk["index"],
                            chunk["error_class"],
                            chunk["error_message"],
                        )
                if all(chunk["status"] == "done" for chunk in chunks):
                    break
                late = time.monotonic() - planned_at > STEAL_AFTER_S
                for chunk in chunks:
                    # a pending chunk whose task never came, or a stale one (the control plane
                    # answers `busy` while its holder's heartbeat is fresh)
                    if chunk["status"] in ("waiting", "running") or (
                        chunk["status"] == "pending" and late
                    ):
                        _chunk_do(
                            client,
                            runner_job,
                            plan,
                            chunk["index"],
                            worker=worker,
                            fault_hook=None,
                            poll_s=poll_s,
                            steal=True,
                        )
                time.sleep(poll_s)
            reports = [ChunkReport.from_dict(chunk["report"]) for chunk in chunks]
            result = coordinator.commit(reports, progress=heartbeat.progress)
        document: dict[str, Any] = json.loads(result.model_dump_json(by_alias=True))
        succeeded = True
    except KeyboardInterrupt as exc:
        document = _failure(exc, "interrupted before the load committed; nothing was written")
        succeeded = False
    except Exception as exc:  # noqa: BLE001  runner boundary: report every failure, then exit 1
        document, succeeded = _failure(exc), False
    finally:
        heartbeat.stop()
    try:
        client.report(run_id=runner_job.run_id, report=document)
    except EtlError as exc:
        log.error("runner.report_failed", error_class=type(exc).__name__, error=str(exc))
        return {**document, "status": "failed", "report_error": str(exc)}, False
    log.info("runner.reported", status=document["status"])
    return document, succeeded
