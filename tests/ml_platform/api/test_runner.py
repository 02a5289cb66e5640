"""Cloud Run Job mode end to end: `python -m etl run --data-source-id N --run-id R` in a
subprocess against the control plane served by pytest-django's `live_server` (transactional
test database), reading a local CSV folder or the real PostgreSQL into DuckDB, and the runner
API's authentication. A Cloud Run execution is stood in for by the local gRPC Jobs server of
tests/ml_platform/services/test_cloud_run.py, which starts the runner with the args it received.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ml_platform.models import DataSource, DataSourceState, EtlRun, ProcessedFile
from ml_platform.services import (
    connection_create,
    data_source_create,
    etl_run_create,
    etl_run_enqueue,
)
from ml_platform.services.runner import RUN_NOT_ACTIVE
from tests.ml_platform.api.test_scheduler_webhook import (  # noqa: F401  fixtures
    SigningKey,
    _claims,
    certs_server,
    google_key,
    oidc,
)
from tests.ml_platform.services.test_cloud_run import (  # noqa: F401  fixtures
    FakeCloudRun,
    cloud_run_executor,
    cloud_run_server,
)

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[3]
RUNNER_TOKEN = "runner-token-for-tests-0123456789"
PG_PASSWORD = "pg-runner-secret-never-logged"
"""PostgreSQL trusts local connections, so any password works; it must never be printed."""
RUNNER_EMAIL = "etl-runner@my-project.iam.gserviceaccount.com"
RUNNER_AUDIENCE = "https://etl.example.com/api/etl/"


@pytest.fixture
def runner_token(settings: Any) -> str:
    settings.ETL_RUNNER_TOKEN = RUNNER_TOKEN
    return RUNNER_TOKEN


def _runner(
    api_url: str, *args: str, token: str | None = RUNNER_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_RUNNER_TOKEN", "ETL_API_URL")}
    if token is not None:
        env["ETL_RUNNER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "etl", "run", *args, "--api-url", api_url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _post(url: str, body: dict[str, Any], token: str | None = RUNNER_TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _orders(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("SELECT id, _etl_run_id FROM raw_data.orders ORDER BY id").fetchall()


def test_runner_loads_csv_and_reports_once(
    live_server: Any, runner_token: str, csv_source: DataSource, warehouse: Path
) -> None:
    """The runner fetches the job, loads the 4 CSV rows, posts the result: the run succeeded
    with exact counts and the file ledger stored. Posting the same result again changes
    nothing; a different result, or fetching the finished run's config, is refused (409)."""
    run, _ = etl_run_create(data_source=csv_source, trigger=EtlRun.Trigger.API)

    completed = _runner(
        live_server.url, "--data-source-id", str(csv_source.id), "--run-id", str(run.uid)
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    printed = json.loads(completed.stdout)
    assert (printed["status"], printed["rows_extracted"], printed["rows_loaded"]) == (
        "succeeded", 4, 4,
    )  # fmt: skip
    run.refresh_from_db()
    assert (run.status, run.rows_extracted, run.rows_loaded, run.files_loaded, run.attempts) == (
        "succeeded", 4, 4, 1, 1,
    )  # fmt: skip
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:\d+", run.worker)
    assert _orders(warehouse) == [(i, run.uid.hex) for i in (1, 2, 3, 4)]
    ledger = list(ProcessedFile.objects.values_list("path", "rows", "run_id", "status"))
    assert ledger == [("orders_1.csv", 4, run.id, "loaded")]
    state = DataSourceState.objects.get(data_source=csv_source)
    assert state.last_run_id == run.uid.hex

    snapshot = EtlRun.objects.filter(pk=run.pk).values().get()
    result_url = f"{live_server.url}/api/etl/runs/{run.uid}/result/"
    status, body = _post(result_url, printed)
    assert (status, body["recorded"], body["run"]["status"]) == (200, False, "succeeded")
    assert EtlRun.objects.filter(pk=run.pk).values().get() == snapshot

    status, body = _post(result_url, {**printed, "rows_loaded": 5})
    assert (status, body["message"]) == (
        409, RUN_NOT_ACTIVE.format(run_id=run.uid, status="succeeded"),
    )  # fmt: skip
    again = _runner(
        live_server.url, "--data-source-id", str(csv_source.id), "--run-id", str(run.uid)
    )
    assert again.returncode == 1
    assert json.loads(again.stdout)["error_class"] == "RunnerApiError"
    assert "409" in json.loads(again.stdout)["error"]
    assert EtlRun.objects.filter(pk=run.pk).values().get() == snapshot
    assert ProcessedFile.objects.count() == 1


@pytest.mark.parametrize(
    "token",
    [None, "wrong-token", "non-staff", "staff"],
    ids=["missing", "wrong", "non-staff-drf-token", "staff-drf-token"],
)
def test_runner_without_valid_credential_changes_nothing(
    token: str | None,
    live_server: Any,
    runner_token: str,
    csv_source: DataSource,
    warehouse: Path,
) -> None:
    """A runner with no or a wrong token, or a person's DRF token (staff or not), gets 401 from
    the config and result endpoints: the run stays queued, nothing is loaded, no state is
    written."""
    run, _ = etl_run_create(data_source=csv_source, trigger=EtlRun.Trigger.API)
    if token in ("non-staff", "staff"):
        user = get_user_model().objects.create_user(
            "person", password="x", is_staff=token == "staff"
        )
        token = Token.objects.create(user=user).key

    completed = _runner(
        live_server.url,
        "--data-source-id", str(csv_source.id), "--run-id", str(run.uid),
        token=token,
    )  # fmt: skip
    status, _ = _post(
        f"{live_server.url}/api/etl/runs/{run.uid}/result/",
        {"status": "failed", "error_class": "X", "error": "forged"},
        token=token,
    )

    if token is None:
        assert completed.returncode == 2 and "ETL_RUNNER_TOKEN" in completed.stderr
        assert status == 401
    else:
        assert completed.returncode == 1
        assert "answered 401 to POST" in json.loads(completed.stdout)["error"]
        assert status == 401
    run.refresh_from_db()
    assert (run.status, run.attempts, run.error_class) == ("queued", 0, "")
    assert not warehouse.exists()
    assert DataSourceState.objects.count() == ProcessedFile.objects.count() == 0


def test_session_staff_user_cannot_read_config(runner_token: str, csv_source: DataSource) -> None:
    """A staff user logged in by session (a browser) never gets a config with secrets: 401 to
    the read and to the start."""
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("ops", password="x", is_staff=True))

    read = client.get(f"/api/etl/sources/{csv_source.id}/config/")
    start = client.post(f"/api/etl/sources/{csv_source.id}/config/", {}, format="json")

    assert (read.status_code, start.status_code) == (401, 401)
    assert "job" not in read.json() and "job" not in start.json()
    assert EtlRun.objects.count() == 0


def test_only_runner_credentials_read_config_and_get_has_no_side_effect(
    settings: Any,
    oidc: Any,  # noqa: F811  the webhook tests' fixture
    google_key: SigningKey,  # noqa: F811
    runner_token: str,
    csv_source: DataSource,
) -> None:
    """A staff user's DRF token is refused (401); a Google ID token of an allowed runner
    service account (runner audience) reads the config by GET without creating or starting
    any run, and starts one by POST; the scheduler's token (other audience) is refused with
    what failed, not the audience expected."""
    settings.ETL_RUNNER_OIDC_AUDIENCE = RUNNER_AUDIENCE
    settings.ETL_RUNNER_ALLOWED_EMAILS = [RUNNER_EMAIL]
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    staff_token = Token.objects.create(user=staff).key
    runner_id_token = google_key.sign(_claims(aud=RUNNER_AUDIENCE, email=RUNNER_EMAIL))
    scheduler_id_token = google_key.sign(_claims())
    url = f"/api/etl/sources/{csv_source.id}/config/"

    staff_read = APIClient().get(url, HTTP_AUTHORIZATION=f"Token {staff_token}")
    staff_start = APIClient().post(
        url, {}, format="json", HTTP_AUTHORIZATION=f"Token {staff_token}"
    )
    read = APIClient().get(url, HTTP_AUTHORIZATION=f"Bearer {runner_id_token}")
    read_again = APIClient().get(url, HTTP_AUTHORIZATION=f"Bearer {runner_token}")
    assert EtlRun.objects.count() == 0
    start = APIClient().post(url, {}, format="json", HTTP_AUTHORIZATION=f"Bearer {runner_id_token}")
    refused = APIClient().get(url, HTTP_AUTHORIZATION=f"Bearer {scheduler_id_token}")

    assert (staff_read.status_code, staff_start.status_code) == (401, 401)
    assert staff_read.json() == {"message": "Invalid runner token.", "extra": {}}
    assert (read.status_code, read_again.status_code, start.status_code) == (200, 200, 200)
    assert read.json() == read_again.json()
    assert read.json()["run_id"] is None
    assert set(start.json()) == {
        "run_id", "job", "state", "heartbeat_interval_s", "full_refresh", "parallel", "staging",
    }  # fmt: skip
    assert (start.json()["parallel"], start.json()["staging"]) == (False, "")
    assert (start.json()["job"]["source_type"], start.json()["state"]["files"]) == ("local", {})
    started = EtlRun.objects.get()
    assert (str(started.uid), started.status, started.trigger, started.worker) == (
        start.json()["run_id"], "running", "cli", f"runner:{RUNNER_EMAIL}",
    )  # fmt: skip
    assert refused.status_code == 401
    assert refused.json()["message"] == "Invalid runner ID token: audience mismatch."
    assert RUNNER_AUDIENCE not in refused.content.decode()


def test_failure_report_fails_run_without_secrets(
    runner_token: str, csv_source: DataSource, live_server: Any
) -> None:
    """The config hands the runner the connection's password in plain text and marks the run
    running; a reported failure marks it failed with the runner's error class and message (the
    secrets replaced by ***); sync state is untouched; the same report again is a no-op."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": PG_PASSWORD},
    )  # fmt: skip
    source = data_source_create(
        name="events", connection=connection, dest_table_name="events",
        source_table_name="public.nowhere", timestamp_column="updated_at",
    )  # fmt: skip
    run, _ = etl_run_create(data_source=source, trigger=EtlRun.Trigger.API)
    report = {
        "status": "failed",
        "error_class": "SourceUnavailableError",
        "error": f"could not connect with password {PG_PASSWORD}",
        "transient": True,
    }
    url = f"{live_server.url}/api/etl/runs/{run.uid}/result/"

    config = APIClient().post(
        f"/api/etl/sources/{source.id}/config/",
        {"run_id": str(run.uid), "worker": "exec-1/0"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {runner_token}",
    )
    assert config.status_code == 200
    assert config.json()["job"]["connection_params"]["password"] == PG_PASSWORD
    run.refresh_from_db()
    assert (run.status, run.worker, run.attempts) == ("running", "exec-1/0", 1)
    first, second = _post(url, report), _post(url, report)

    assert (first[0], first[1]["recorded"], second[0], second[1]["recorded"]) == (
        200, True, 200, False,
    )  # fmt: skip
    run.refresh_from_db()
    assert (run.status, run.error_class, run.error_message) == (
        "failed", "SourceUnavailableError", "could not connect with password ***",
    )  # fmt: skip
    assert DataSourceState.objects.count() == 0


def test_cloud_run_execution_runs_postgres_job(
    live_server: Any,
    runner_token: str,
    cloud_run_executor: FakeCloudRun,  # noqa: F811  test_cloud_run.py's fixture
    pg_events_table: str,
    tmp_path: Path,
) -> None:
    """Run Now with `ETL_EXECUTOR=cloud_run`: RunJob starts the runner with exactly the args
    it was given (as a Cloud Run execution would), which loads the 5 PostgreSQL rows into
    DuckDB and reports; the watermark is stored; the password never appears in the runner's
    output."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": PG_PASSWORD},
    )  # fmt: skip
    source = data_source_create(
        name="events", connection=connection, dest_table_name="events",
        source_table_name=pg_events_table, timestamp_column="updated_at", primary_key=["id"],
        destination={"type": "duckdb", "path": str(tmp_path / "e.duckdb"), "dataset": "raw"},
    )  # fmt: skip
    executions: list[subprocess.Popen[str]] = []

    def start_execution(request: Any) -> None:
        args = list(request.overrides.container_overrides[0].args)
        env = {**os.environ, "ETL_RUNNER_TOKEN": RUNNER_TOKEN, "ETL_API_URL": live_server.url}
        env["CLOUD_RUN_EXECUTION"] = "etl-runner-abc12"
        executions.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
        )

    cloud_run_executor.on_run_job = start_execution
    run = etl_run_enqueue(data_source=source, trigger=EtlRun.Trigger.API)
    assert len(executions) == 1
    stdout, stderr = executions[0].communicate(timeout=120)

    assert executions[0].returncode == 0, stdout + stderr[-3000:]
    assert PG_PASSWORD not in stdout + stderr
    run.refresh_from_db()
    assert (run.status, run.rows_loaded, run.worker) == ("succeeded", 5, "etl-runner-abc12/0")
    state = DataSourceState.objects.get(data_source=source)
    assert (state.watermark_type, state.watermark_value) == (
        "timestamptz", "2024-03-03T11:00:00.000000+00:00",
    )  # fmt: skip
    with duckdb.connect(str(tmp_path / "e.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM raw.events").fetchone() == (
            5, 5,
        )  # fmt: skip


def test_heartbeat_refreshes_running_run_only(runner_token: str, csv_source: DataSource) -> None:
    """A heartbeat of a running run stores its progress (rows, bytes) and refreshes
    `updated_at` (204); once the run finished it is refused (409) and changes nothing."""
    run, _ = etl_run_create(data_source=csv_source, trigger=EtlRun.Trigger.API)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {runner_token}")
    url = f"/api/etl/runs/{run.uid}/heartbeat/"
    started = client.post(
        f"/api/etl/sources/{csv_source.id}/config/", {"run_id": str(run.uid)}, format="json"
    )
    assert started.status_code == 200
    before = EtlRun.objects.get(pk=run.pk).updated_at

    beat = client.post(url, {"progress_rows": 3, "progress_bytes": 120}, format="json")
    run.refresh_from_db()
    assert (beat.status_code, run.progress_rows, run.progress_bytes) == (204, 3, 120)
    assert run.updated_at > before

    EtlRun.objects.filter(pk=run.pk).update(status="failed")
    late = client.post(url, {"progress_rows": 4}, format="json")
    assert (late.status_code, late.json()["message"]) == (
        409, RUN_NOT_ACTIVE.format(run_id=run.uid, status="failed"),
    )  # fmt: skip
    assert EtlRun.objects.get(pk=run.pk).progress_rows == 3


def test_runner_reloads_a_reset_source_without_duplicates(
    live_server: Any, runner_token: str, csv_source: DataSource, warehouse: Path
) -> None:
    """After Reset, the runner's job says `full_refresh`, and the runner replaces the table:
    the 4 CSV rows once, stamped by the second run, and the reset is no longer pending."""
    from ml_platform.services.state import sync_state_full_refresh_pending, sync_state_reset

    first, _ = etl_run_create(data_source=csv_source, trigger=EtlRun.Trigger.API)
    assert _runner(live_server.url, "--data-source-id", str(csv_source.id), "--run-id",
                   str(first.uid)).returncode == 0  # fmt: skip
    sync_state_reset(data_source=csv_source)
    second, _ = etl_run_create(data_source=csv_source, trigger=EtlRun.Trigger.API)
    config_url = f"/api/etl/sources/{csv_source.id}/config/"
    job = APIClient().get(config_url, HTTP_AUTHORIZATION=f"Bearer {runner_token}").json()

    completed = _runner(
        live_server.url, "--data-source-id", str(csv_source.id), "--run-id", str(second.uid)
    )

    assert job["full_refresh"] is True
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    assert _orders(warehouse) == [(i, second.uid.hex) for i in (1, 2, 3, 4)]
    assert sync_state_full_refresh_pending(data_source=csv_source) is False
