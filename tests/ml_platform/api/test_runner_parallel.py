"""Cloud Run Job mode of a parallel run (issue 14): one execution of 2 tasks (2 keep the test's
cost down on 2 cores; nothing in the code depends on the number), stood in for by 2
`python -m etl run --data-source-id N --run-id R` processes with `CLOUD_RUN_TASK_INDEX` 0..1 and
`CLOUD_RUN_TASK_COUNT=2` against the control plane served by `live_server`. Task i extracts
chunk i of TPC-H lineitem (SF 0.01) from the real PostgreSQL; task 0 plans, holds the snapshot,
waits for the other tasks' reports and commits once into DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ml_platform.models import EtlRun, EtlRunChunk
from ml_platform.services import connection_create, data_source_create, etl_run_create
from ml_platform.services.cloud_run import runner_args
from tests.ml_platform import tpch_lineitem as tpch
from tests.ml_platform.api.test_runner import RUNNER_TOKEN, runner_token  # noqa: F401  fixture
from tests.ml_platform.tpch_lineitem import lineitem_csv, pg_lineitem  # noqa: F401  fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]
PG_PASSWORD = "pg-parallel-runner-secret-never-logged"
TASKS = 2


def test_cloud_run_tasks_extract_their_chunks_and_task_0_commits(
    live_server: Any,
    runner_token: str,  # noqa: F811  fixture
    pg_lineitem: str,  # noqa: F811  fixture
    settings: Any,
    tmp_path: Path,
) -> None:
    """The runner tasks of one execution: every task exits 0, chunk i was extracted by task i in
    one attempt, the run succeeded once with every row, the DuckDB table equals the source in
    count, per-column sums and min/max, and the password appears in no task's output."""
    settings.ETL_STAGING_DIR = str(tmp_path / "staging")
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres", credentials={"password": PG_PASSWORD},
    )  # fmt: skip
    source = data_source_create(
        name="lineitem", connection=connection, dest_table_name="lineitem",
        source_table_name=f"{pg_lineitem}.lineitem", timestamp_column="l_updated_at",
        primary_key=["l_orderkey", "l_linenumber"], chunk_size=5_000, parallelism=TASKS,
        destination={"type": "duckdb", "path": str(tmp_path / "w.duckdb"), "dataset": "raw"},
    )  # fmt: skip
    run, _ = etl_run_create(data_source=source, trigger=EtlRun.Trigger.API)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "CLOUD_RUN_"))}
    tasks = [
        subprocess.Popen(
            [sys.executable, *runner_args(run=run), "--api-url", live_server.url],
            cwd=REPO,
            env={
                **base,
                "ETL_RUNNER_TOKEN": RUNNER_TOKEN,
                "CLOUD_RUN_EXECUTION": "etl-runner-par01",
                "CLOUD_RUN_TASK_INDEX": str(index),
                "CLOUD_RUN_TASK_COUNT": str(TASKS),
            },
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(TASKS)
    ]
    outputs = [task.communicate(timeout=180) for task in tasks]

    for task, (stdout, stderr) in zip(tasks, outputs, strict=True):
        assert task.returncode == 0, stdout + stderr[-3000:]
        assert PG_PASSWORD not in stdout + stderr
    assert json.loads(outputs[0][0])["status"] == "succeeded"
    assert [json.loads(out)["chunks"] for out, _ in outputs[1:]] == [[i] for i in range(1, TASKS)]
    run.refresh_from_db()
    assert (run.status, run.rows_extracted, run.rows_loaded, run.attempts) == (
        "succeeded", tpch.ROWS, tpch.ROWS, 1,
    )  # fmt: skip
    assert run.worker == "etl-runner-par01/0"
    chunks = list(EtlRunChunk.objects.filter(run=run).order_by("index"))
    assert [(c.status, c.attempt, c.worker) for c in chunks] == [
        ("done", 1, f"etl-runner-par01/{index}") for index in range(TASKS)
    ]
    assert sum(c.rows for c in chunks) == tpch.ROWS
    assert tpch.duckdb_stats(str(tmp_path / "w.duckdb"), "raw.lineitem") == tpch.pg_stats(
        pg_lineitem
    )
