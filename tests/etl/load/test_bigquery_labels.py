"""Labels on every BigQuery job a run issues (issue 13 item 3): load, query and copy jobs of the
loader and the query jobs of the BigQuery extractor carry `etl_run_id`, `etl_load_type` and,
when the control plane passes it, `etl_pipeline` (the data source id), so a run's jobs and
bytes can be found in `INFORMATION_SCHEMA.JOBS` (docs/config.md, "BigQuery job labels").

Gap of the emulator: `bqemulator` accepts the labels and drops them (`get_job(...).labels` and
`list_jobs()` answer `{}`, and it finds no load job by id), so the test puts a recording HTTP
proxy between the client and the emulator and asserts the exact job configuration each
request sent: the production code path, only the endpoint changed. Peers' reports of labels
missing from jobs: https://github.com/dataform-co/dataform/issues/1870 and
https://github.com/googleapis/google-cloud-python/issues/10522.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.load.base import job_labels
from tests.conftest import BIGQUERY_PROJECT, PG_PARAMS, emulator_env, pg_connect
from tests.etl.support import DATASET, bigquery_destination

pytestmark = pytest.mark.integration

_HOP_BY_HOP = {"connection", "transfer-encoding", "content-encoding", "content-length", "host"}


class RecordingProxy:
    """An HTTP reverse proxy on 127.0.0.1 in front of the emulator that keeps every request's
    method, path and body.

    `intercept`, when set, is called as `intercept(method, path, body, forward)` for every
    request, `forward()` returning the emulator's `(status, headers, body)`; it returns the
    `(status, headers, body)` the client gets (a fault injected on the wire: quota errors the
    emulator cannot produce)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str, bytes]] = []
        self.intercept: Any = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append((self.command, self.path, body))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "accept-encoding"
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body if self.command not in ("GET", "DELETE") or body else None,
                    headers=headers,
                    method=self.command,
                )

                def forward() -> tuple[int, Any, bytes]:
                    try:
                        with urllib.request.urlopen(request, timeout=60) as response:
                            return response.status, response.headers, response.read()
                    except urllib.error.HTTPError as exc:
                        return exc.code, exc.headers, exc.read()

                if proxy.intercept is not None:
                    status, reply, answer = proxy.intercept(self.command, self.path, body, forward)
                else:
                    status, reply, answer = forward()
                self.send_response(status)
                for key, value in reply.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value.replace(proxy.upstream, proxy.url))
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jobs(self) -> list[dict[str, Any]]:
        """The job resources the client submitted (query and copy: `POST .../jobs`; load: the
        JSON part of `POST /upload/.../jobs`), in order."""
        found = []
        for method, path, body in self.requests:
            if method != "POST" or not path.split("?")[0].endswith(
                f"/projects/{BIGQUERY_PROJECT}/jobs"
            ):
                continue
            text = body.decode("utf-8", "replace")
            # a multipart upload holds the job resource as one JSON line among the parts
            line = next(part for part in text.splitlines() if part.startswith("{"))
            found.append(json.loads(line))
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
    try:
        yield recorder
    finally:
        recorder.close()


def _kinds(jobs: list[dict[str, Any]]) -> list[str]:
    return [next(k for k in ("load", "query", "copy") if k in job["configuration"]) for job in jobs]


def test_every_job_of_a_run_carries_its_labels(
    proxy: RecordingProxy, pg_schema: str, bq_dataset: str, tmp_path: Path
) -> None:
    """A catalog run (load, copy and query jobs), a merge run (load and query jobs, the MERGE
    among them) and a BigQuery-source run (the extractor's query jobs) each send
    `{"etl_run_id": <run id>, "etl_load_type": <load type>, "etl_pipeline": "datasource_42"}` on
    every job (the control plane's `pipeline_id` `datasource:42`)."""
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.items (id int PRIMARY KEY, ts timestamptz, label text)"
        )
        connection.execute(
            f"INSERT INTO {pg_schema}.items VALUES (1, '2024-01-01T00:00:00Z', 'a'), "
            "(2, '2024-01-02T00:00:00Z', 'b')"
        )
    destination = {**bigquery_destination(bq_dataset), "api_endpoint": proxy.url}
    base = {
        "source_type": "postgresql",
        "connection_params": dict(PG_PARAMS),
        "source_table_name": f"{pg_schema}.items",
        "dest_table_name": "items",
        "destination": destination,
    }
    seen: dict[str, list[str]] = {}
    for load_type, extra in [
        ("catalog", {}),
        ("merge", {"timestamp_column": "ts", "primary_key": ["id"]}),
    ]:
        job = JobConfig.parse(
            {**base, "load_type": load_type, "pipeline_id": "datasource:42", **extra}
        )
        del proxy.requests[:]
        result = run(job, run_id=f"Run-{load_type}")
        jobs = proxy.jobs()
        expected = {
            "etl_run_id": f"run-{load_type}",
            "etl_load_type": load_type,
            "etl_pipeline": "datasource_42",
        }
        assert [j["configuration"].get("labels") for j in jobs] == [expected] * len(jobs)
        assert result.rows_loaded == 2
        seen[load_type] = _kinds(jobs)
    assert {"load", "copy", "query"} <= set(seen["catalog"]), seen
    assert {"load", "query"} <= set(seen["merge"]), seen

    source = JobConfig.parse(
        {
            "source_type": "bigquery",
            "connection_params": {
                "project": BIGQUERY_PROJECT,
                "credentials": "anonymous",
                "api_endpoint": proxy.url,
            },
            "source_table_name": f"{bq_dataset}.items",
            "load_type": "transactional",
            "timestamp_column": "ts",
            "dest_table_name": "items_copy",
            "destination": {
                "type": "duckdb",
                "path": str(tmp_path / "w.duckdb"),
                "dataset": DATASET,
            },
        }
    )
    del proxy.requests[:]
    assert run(source, run_id="r2").rows_loaded == 2
    jobs = proxy.jobs()
    assert _kinds(jobs) == ["query", "query"]  # the window probe, then the read
    assert [j["configuration"]["labels"] for j in jobs] == [
        {"etl_run_id": "r2", "etl_load_type": "transactional"}
    ] * 2


def test_job_labels_follow_bigquery_label_rules() -> None:
    """Label values are lower case letters, digits, `_` and `-`, at most 63 characters
    (https://cloud.google.com/bigquery/docs/labels-intro#requirements); the pipeline label is
    left out when the data source is unknown."""
    assert job_labels("A" * 70 + "/x", "merge") == {
        "etl_run_id": "a" * 63,
        "etl_load_type": "merge",
    }
    assert job_labels("0f3c.Ü", "catalog", "17") == {
        "etl_run_id": "0f3c__",
        "etl_load_type": "catalog",
        "etl_pipeline": "17",
    }
