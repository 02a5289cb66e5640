"""The control plane's runner API (`/api/etl/...`), as the runner speaks it.

Spoken with the standard library's urllib; 5xx answers, connection errors and timeouts are
retried with exponential backoff (tenacity), 4xx answers are not. The credential is passed in
(the entry point reads `ETL_RUNNER_TOKEN`); it is sent as `Authorization: Bearer <token>` and
never logged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from etl.config import JobConfig
from etl.exceptions import TerminalError, TransientError
from etl.state import SyncState

logger = structlog.get_logger(__name__)


class RunnerApiError(TerminalError):
    """The control plane refused a runner request (4xx): bad token, unknown or finished run."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method, self.path, self.status, self.message = method, path, status, message
        super().__init__(
            f"Control plane answered {status} to {method} {path}: {message or 'no message'}. "
            "Not retried: fix the token, the ids or the run's status first."
        )


class RunnerApiUnavailableError(TransientError):
    """The control plane did not answer (connection error, timeout, 5xx) after every retry."""

    def __init__(self, method: str, path: str, attempts: int, reason: str) -> None:
        self.method, self.path, self.attempts, self.reason = method, path, attempts, reason
        super().__init__(
            f"Control plane unreachable for {method} {path} after {attempts} attempts: {reason}."
        )


class _Retryable(Exception):
    """One failed attempt that may succeed when repeated."""


@dataclass(frozen=True)
class RunnerJob:
    """What the control plane hands a runner for one run."""

    run_id: str
    """`EtlRun.uid` (UUID text); its hex is stamped on loaded rows."""
    job: JobConfig
    """Secrets resolved; never log it."""
    state: SyncState
    heartbeat_interval_s: float
    """Seconds between heartbeats; 0 sends none."""
    full_refresh: bool = False
    """The source was reset: run with `full_refresh=True` (reload, replace the table)."""
    parallel: bool = False
    """The run splits into chunks, one per Cloud Run task (`etl.runner_parallel`)."""
    staging: str = ""
    """Where a parallel run's chunks stage their Parquet parts (a folder or an fsspec URL)."""


class RunnerClient:
    """Client of the control plane's runner API at `api_url` (e.g. `https://etl.example.com`).

    Args:
        api_url: origin (optionally with a path prefix) of the control plane.
        token: runner credential (the shared runner token or the runner's Google ID token).
        timeout_s: per-request timeout, seconds.
        attempts: tries per request (first one included) on 5xx / connection errors.
        wait_max_s: longest backoff between tries, seconds.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout_s: float = 60.0,
        attempts: int = 6,
        wait_max_s: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout_s, self.attempts, self.wait_max_s = timeout_s, attempts, wait_max_s

    def __repr__(self) -> str:
        return f"RunnerClient(api_url={self.api_url!r})"

    def fetch_job(self, *, data_source_id: int, run_id: str | None, worker: str) -> RunnerJob:
        """Start the run and return its job: `POST /api/etl/sources/<id>/config/` with
        `{"run_id", "worker"}` (a GET there only reads, so the start is this explicit POST).

        Args:
            data_source_id: `DataSource.id`.
            run_id: the run the executor created (UUID text); None starts a new run.
            worker: this runner's name, recorded on the run.

        Raises:
            RunnerApiError: refused (401/403 bad token, 404, 409 run finished, 400 bad config).
            RunnerApiUnavailableError: no answer after every retry.
            ConfigError: the served job is not a valid JobConfig.
        """
        body = {"worker": worker, "run_id": str(uuid.UUID(run_id)) if run_id else None}
        data = self._request("POST", f"/api/etl/sources/{int(data_source_id)}/config/", body)
        return _runner_job(data)

    def read_job(self, *, data_source_id: int, run_id: str) -> RunnerJob:
        """Read the job of run `run_id` without starting anything: `GET
        /api/etl/sources/<id>/config/?run_id=` (the tasks of a parallel run but the first).

        Raises:
            RunnerApiError / RunnerApiUnavailableError / ConfigError: as `fetch_job`.
        """
        data = self._request(
            "GET", f"/api/etl/sources/{int(data_source_id)}/config/?run_id={uuid.UUID(run_id)}"
        )
        return _runner_job(data)

    def reader_claim(self, *, run_id: str) -> dict[str, Any]:
        """`POST /api/etl/runs/<run_id>/reader/`: `{"state": "claimed"}` or `{"state":
        "waiting", "retry_after_s"}` (the connection's `max_readers` are all busy)."""
        return self._request("POST", _run_path(run_id, "reader"), {})

    def chunks_create(self, *, run_id: str, plan: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/etl/runs/<run_id>/chunks/` with the coordinator's ChunkPlan JSON."""
        return self._request("POST", _run_path(run_id, "chunks"), {"plan": plan})

    def chunks_get(self, *, run_id: str) -> dict[str, Any]:
        """`GET /api/etl/runs/<run_id>/chunks/`: `{"run_status", "plan", "chunks": [...]}`."""
        return self._request("GET", _run_path(run_id, "chunks"))

    def chunk_claim(
        self, *, run_id: str, index: int, worker: str, attempt: int | None
    ) -> dict[str, Any]:
        """`POST .../chunks/<index>/claim/`: `{"state": "claimed"|"waiting"|"busy"|"done"|
        "failed", "attempt", "retry_after_s"}`."""
        return self._request(
            "POST", _chunk_path(run_id, index, "claim"), {"worker": worker, "attempt": attempt}
        )

    def chunk_heartbeat(self, *, run_id: str, index: int, attempt: int) -> None:
        """`POST .../chunks/<index>/heartbeat/` while attempt `attempt` extracts the chunk."""
        self._request("POST", _chunk_path(run_id, index, "heartbeat"), {"attempt": attempt})

    def chunk_report(
        self, *, run_id: str, index: int, attempt: int, report: dict[str, Any]
    ) -> dict[str, Any]:
        """`POST .../chunks/<index>/report/` with the ChunkReport JSON or a failure document."""
        return self._request(
            "POST", _chunk_path(run_id, index, "report"), {"attempt": attempt, "report": report}
        )

    def heartbeat(self, *, run_id: str, progress_rows: int, progress_bytes: int) -> None:
        """`POST /api/etl/runs/<run_id>/heartbeat/` with progress (rows loaded, bytes read)."""
        self._request(
            "POST",
            _run_path(run_id, "heartbeat"),
            {"progress_rows": progress_rows, "progress_bytes": progress_bytes},
        )

    def report(self, *, run_id: str, report: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/etl/runs/<run_id>/result/` with a RunResult or failure document; a retry
        after a lost answer is safe (the control plane records one outcome).

        Returns:
            `{"recorded": bool, "run": {...}}`.
        """
        return self._request("POST", _run_path(run_id, "result"), report)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=self.wait_max_s),
            reraise=True,
        )
        try:
            return retrying(self._request_once, method, path, body)
        except _Retryable as exc:
            raise RunnerApiUnavailableError(method, path, self.attempts, str(exc)) from None

    def _request_once(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.api_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc.read())
            if exc.code >= 500:
                logger.warning("runner_api.retry", method=method, path=path, status=exc.code)
                raise _Retryable(f"HTTP {exc.code} {message}".strip()) from None
            raise RunnerApiError(method, path, exc.code, message) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            logger.warning("runner_api.retry", method=method, path=path, error=str(reason))
            raise _Retryable(str(reason)) from None
        return json.loads(payload) if payload else None


def _runner_job(data: dict[str, Any]) -> RunnerJob:
    return RunnerJob(
        run_id=data["run_id"],
        job=JobConfig.parse(data["job"]),
        state=SyncState.model_validate(data["state"]),
        heartbeat_interval_s=float(data.get("heartbeat_interval_s") or 0),
        full_refresh=bool(data.get("full_refresh")),
        parallel=bool(data.get("parallel")),
        staging=str(data.get("staging") or ""),
    )


def _run_path(run_id: str, action: str) -> str:
    return f"/api/etl/runs/{uuid.UUID(run_id)}/{action}/"


def _chunk_path(run_id: str, index: int, action: str) -> str:
    return f"/api/etl/runs/{uuid.UUID(run_id)}/chunks/{int(index)}/{action}/"


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("detail") or "")[:300]
    return str(data)[:300]
