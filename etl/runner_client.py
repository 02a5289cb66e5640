"""Cloud Run Job mode, runner side: get the job from the control plane, run it, report back.

The control plane is spoken to through `etl.runner_api.RunnerClient` (re-exported here with its
errors and `RunnerJob`); while a run works, a heartbeat thread (`Ticker`) posts its progress.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from etl.exceptions import EtlError, TransientError
from etl.runner_api import RunnerApiError, RunnerApiUnavailableError, RunnerClient, RunnerJob
from etl.state import RunResult

__all__ = [
    "RunFunction",
    "RunnerApiError",
    "RunnerApiUnavailableError",
    "RunnerClient",
    "RunnerJob",
    "Ticker",
    "failure_document",
    "run_fetched",
    "run_from_api",
    "run_reported",
]

logger = structlog.get_logger(__name__)

RunFunction = Callable[..., RunResult]
"""`etl.run`-compatible: `(job, state, *, run_id, progress, full_refresh) -> RunResult`."""


def run_from_api(
    client: RunnerClient,
    *,
    data_source_id: int,
    run_id: str | None,
    worker: str,
    run: RunFunction,
) -> tuple[dict[str, Any], bool]:
    """Fetch the job of `run_id`, run it with `run` (`etl.run`), report the outcome.

    While the job runs, a daemon thread posts a heartbeat with the progress every
    `heartbeat_interval_s` seconds. An engine error is reported as
    `{"status": "failed", "error_class", "error", "transient"}`; an error before the run
    started (refused token, finished run) is returned without reporting.

    Returns:
        `(document, succeeded)`: the RunResult JSON as reported (`status` succeeded), or the
        failure document (also when the report itself could not be delivered).
    """
    try:
        runner_job = client.fetch_job(data_source_id=data_source_id, run_id=run_id, worker=worker)
    except EtlError as exc:
        return failure_document(exc), False
    return run_fetched(client, runner_job, data_source_id=data_source_id, run=run)


def run_fetched(
    client: RunnerClient, runner_job: RunnerJob, *, data_source_id: int, run: RunFunction
) -> tuple[dict[str, Any], bool]:
    """Run a fetched (started) job with `run` and report the outcome, as `run_from_api`."""

    def work(progress: Callable[[int, int], None]) -> RunResult:
        _reader_wait(client, run_id=runner_job.run_id)
        return run(
            runner_job.job,
            runner_job.state,
            run_id=uuid.UUID(runner_job.run_id).hex,
            progress=progress,
            full_refresh=runner_job.full_refresh,
        )

    return run_reported(client, runner_job, data_source_id=data_source_id, work=work)


def run_reported(
    client: RunnerClient,
    runner_job: RunnerJob,
    *,
    data_source_id: int,
    work: Callable[[Callable[[int, int], None]], RunResult],
) -> tuple[dict[str, Any], bool]:
    """Call `work(progress)` while a heartbeat posts its progress every
    `runner_job.heartbeat_interval_s` seconds, then report its RunResult, or any error as a
    failure document, to the control plane.

    Returns:
        `(document, succeeded)`, as `run_from_api`.
    """
    log = logger.bind(run_id=runner_job.run_id, data_source_id=data_source_id)
    heartbeat = _Heartbeat(
        client, run_id=runner_job.run_id, interval_s=runner_job.heartbeat_interval_s
    )
    heartbeat.start()
    try:
        result = work(heartbeat.progress)
        document: dict[str, Any] = json.loads(result.model_dump_json(by_alias=True))
        succeeded = True
    except KeyboardInterrupt as exc:
        document = failure_document(
            exc, "interrupted before the load committed; nothing was written"
        )
        succeeded = False
    except Exception as exc:  # noqa: BLE001  runner boundary: report every failure, then exit 1
        document, succeeded = failure_document(exc), False
    finally:
        heartbeat.stop()
    try:
        client.report(run_id=runner_job.run_id, report=document)
    except EtlError as exc:
        log.error("runner.report_failed", error_class=type(exc).__name__, error=str(exc))
        return {**document, "status": "failed", "report_error": str(exc)}, False
    log.info("runner.reported", status=document["status"])
    return document, succeeded


def _reader_wait(client: RunnerClient, *, run_id: str) -> None:
    """Wait until the control plane gives this run a reader slot of its connection
    (`Connection.max_readers`); the heartbeat thread keeps the run alive meanwhile."""
    logged = False
    while True:
        answer = client.reader_claim(run_id=run_id)
        if answer.get("state") != "waiting":
            return
        if not logged:
            logger.info("reader_slot.waiting", run_id=run_id)
            logged = True
        time.sleep(float(answer.get("retry_after_s") or 1.0))


def failure_document(exc: BaseException, message: str | None = None) -> dict[str, Any]:
    """Return the failure document reported for `exc`: `{"status": "failed", "error_class",
    "error", "transient"}` (`message` replaces the error text)."""
    return {
        "status": "failed",
        "error_class": type(exc).__name__,
        "error": message or str(exc) or repr(exc),
        "transient": isinstance(exc, TransientError),
    }


class Ticker:
    """Call `tick()` every `interval_s` seconds from a daemon thread until stopped (nothing when
    `interval_s` is 0); an `EtlError` from it is logged as `failed_event` and the next tick
    tried. The runner's heartbeats to the control plane are built on it."""

    failed_event = "runner.tick_failed"

    def __init__(self, *, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError("subclasses of Ticker must provide tick()")

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except EtlError as exc:
                logger.warning(self.failed_event, error=str(exc))


class _Heartbeat(Ticker):
    """Post the run's latest progress every `interval_s` seconds."""

    failed_event = "runner.heartbeat_failed"

    def __init__(self, client: RunnerClient, *, run_id: str, interval_s: float) -> None:
        super().__init__(interval_s=interval_s, name="etl-runner-heartbeat")
        self.client, self.run_id = client, run_id
        self.rows = self.nbytes = 0

    def progress(self, rows: int, nbytes: int) -> None:
        self.rows, self.nbytes = rows, nbytes

    def tick(self) -> None:
        self.client.heartbeat(
            run_id=self.run_id, progress_rows=self.rows, progress_bytes=self.nbytes
        )
