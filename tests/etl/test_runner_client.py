"""`etl.runner_client` against a local HTTP server: 5xx and refused connections are retried,
4xx are not, the token goes in the Authorization header."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from etl.runner_client import RunnerApiError, RunnerApiUnavailableError, RunnerClient

RUN_ID = "0f4c2a9e-8a51-4d6e-9c0b-3c1a3f2b7d10"


@dataclass
class Api:
    url: str
    statuses: list[int] = field(default_factory=list)
    """Statuses to answer, in order; 200 once exhausted."""
    seen: list[tuple[str, str, str, Any]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"recorded": True})
    """Body of a 200 answer."""


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.seen.append(("POST", self.path, self.headers["Authorization"], body))
            status = state.statuses.pop(0) if state.statuses else 200
            payload = json.dumps(
                state.answer if status == 200 else {"message": f"status {status}"}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_5xx_retried_until_answered(api: Api) -> None:
    """Two 503s then 200: three POSTs of the same report with the bearer token; the answer is
    returned."""
    api.statuses = [503, 503]
    client = RunnerClient(api.url, "tok-1", attempts=4, wait_max_s=0.1)

    answer = client.report(run_id=RUN_ID, report={"status": "failed", "error_class": "X"})

    assert answer == {"recorded": True}
    assert [(m, p, a) for m, p, a, _ in api.seen] == [
        ("POST", f"/api/etl/runs/{RUN_ID}/result/", "Bearer tok-1")
    ] * 3


def test_4xx_not_retried(api: Api) -> None:
    """A 409 is raised at once as RunnerApiError with the server's message."""
    api.statuses = [409]
    client = RunnerClient(api.url, "tok-1", attempts=4, wait_max_s=0.1)

    with pytest.raises(RunnerApiError, match=r"answered 409 to POST .*: status 409\."):
        client.report(run_id=RUN_ID, report={"status": "failed"})
    assert len(api.seen) == 1


def test_connection_refused_retried_then_transient() -> None:
    """Nobody listening: every attempt fails; RunnerApiUnavailableError (transient) names the
    attempts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RunnerClient(f"http://127.0.0.1:{port}", "tok-1", attempts=3, wait_max_s=0.1)

    with pytest.raises(RunnerApiUnavailableError, match="after 3 attempts"):
        client.heartbeat(run_id=RUN_ID, progress_rows=1, progress_bytes=2)


def test_fetch_job_starts_run_with_explicit_post(api: Api, tmp_path: Any) -> None:
    """Fetching the job is one POST to the source's config URL with the run id and worker name
    in a JSON body (a GET there only reads); the answer becomes a parsed JobConfig and state."""
    api.answer = {
        "run_id": RUN_ID,
        "job": {
            "source_type": "local",
            "connection_params": {"base_path": str(tmp_path)},
            "dest_table_name": "orders",
            "file_format": "csv",
            "destination": {"type": "duckdb", "path": str(tmp_path / "w.duckdb")},
        },
        "state": {},
        "heartbeat_interval_s": 2.5,
    }
    client = RunnerClient(api.url, "tok-1", attempts=1)

    job = client.fetch_job(data_source_id=7, run_id=RUN_ID, worker="exec-1/0")

    assert api.seen == [
        ("POST", "/api/etl/sources/7/config/", "Bearer tok-1",
         {"worker": "exec-1/0", "run_id": RUN_ID}),
    ]  # fmt: skip
    assert (job.run_id, job.job.source_type, job.job.dest_table_name, job.heartbeat_interval_s) == (
        RUN_ID, "local", "orders", 2.5,
    )  # fmt: skip
