"""Quota-aware BigQuery loading (etl/bigquery_client.py `quota_kind`, `rate_limit_retry`,
`QuotaExceededError`; etl/load/bigquery.py): a run over 200 small files makes one load job per
table (counted in the emulator's job list); rate limits are retried, daily quotas fail the run
naming the limit.

The classification tests are unit tests of a pure function fed the exact error payloads real
BigQuery returns (the emulator has no quotas), quoted from the public reports cited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions

from etl import JobConfig, run
from etl.bigquery_client import (
    LOAD_JOBS_PER_TABLE_PER_DAY,
    QuotaExceededError,
    quota_kind,
    rate_limit_retry,
    translate,
)
from tests.conftest import BIGQUERY_PROJECT, emulator_env
from tests.etl.load.test_bigquery_labels import RecordingProxy
from tests.etl.support import bigquery_destination, bq_rows, job_config

DAILY = (
    "Quota exceeded: Your table exceeded quota for imports or query appends per table. For "
    "more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas"
)


def _forbidden(reason: str, message: str) -> api_exceptions.Forbidden:
    return api_exceptions.Forbidden(message, errors=[{"reason": reason, "message": message}])


def test_daily_table_quota_fails_naming_the_limit() -> None:
    """`Quota exceeded: Your table exceeded quota for imports or query appends per table`
    (https://github.com/cloudflare/cloudflare-gcp/issues/72,
    https://github.com/pingcap-inc/tidb2dw/issues/91) is terminal and names the 1,500 load
    jobs per table per day."""
    exc = _forbidden("quotaExceeded", DAILY)
    assert quota_kind(exc) == "daily"
    assert not rate_limit_retry(30)._predicate(exc)
    error = translate(exc, "the load of orders (job j)")
    assert isinstance(error, QuotaExceededError)
    assert LOAD_JOBS_PER_TABLE_PER_DAY == 1_500
    assert str(error) == (
        "BigQuery quota exhausted for the load of orders (job j): 1,500 load jobs (imports or "
        "query appends) per table per day (https://cloud.google.com/bigquery/quotas#load_jobs). "
        "The run fails until the quota resets (midnight Pacific time); make fewer runs a day (a "
        "less frequent schedule) or ask Google for more. BigQuery said: " + DAILY
    )


def test_rate_limits_are_retried() -> None:
    """`rateLimitExceeded` (`Exceeded rate limits: too many table update operations for this
    table`, https://github.com/googleapis/python-bigquery-sqlalchemy/issues/34) and a
    short-window `quotaExceeded` are retried by the load's policy (backoff 1 s doubling to
    32 s, full jitter); other errors are not."""
    policy = rate_limit_retry(600)
    rate = _forbidden(
        "rateLimitExceeded",
        "Exceeded rate limits: too many table update operations for this table. For more "
        "information, see https://cloud.google.com/bigquery/troubleshooting-errors",
    )
    short = _forbidden(
        "quotaExceeded",
        "Quota exceeded: Your project exceeded quota for concurrent queries per 10 seconds.",
    )
    invalid = api_exceptions.BadRequest(
        "bad", errors=[{"reason": "invalid", "message": "Could not parse 'x' as INT64"}]
    )
    assert [quota_kind(e) for e in (rate, short, invalid)] == ["rate", "rate", None]
    assert [policy._predicate(e) for e in (rate, short, invalid)] == [True, True, False]
    assert (policy._initial, policy._maximum, policy._multiplier, policy._timeout) == (
        1.0,
        32.0,
        2.0,
        600,
    )


def test_200_small_files_make_one_load_job(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """200 CSV files of 3 rows each, one transactional run: 600 rows and exactly one load job
    into the table's staging table (the emulator's job list, filtered to this dataset)."""
    base = tmp_path / "in"
    base.mkdir()
    for n in range(200):
        rows = "".join(f"{n * 3 + i},name{n}_{i}\n" for i in range(3))
        (base / f"f{n:03d}.csv").write_text("id,name\n" + rows)
    job = JobConfig.parse(
        job_config(
            "local",
            tmp_path / "unused.duckdb",
            connection_params={"base_path": str(base)},
            file_pattern="*.csv",
            file_format="csv",
            dest_table_name="t",
            destination=bigquery_destination(bq_dataset),
        )
    )
    result = run(job)
    assert (result.rows_loaded, len(result.files_loaded)) == (600, 200)
    assert bq_rows(bigquery_client, f"SELECT count(DISTINCT id) FROM `{bq_dataset}.t`") == [(600,)]
    loads = [
        j
        for j in bigquery_client.list_jobs(all_users=True)
        if j.job_type == "load"
        and j.destination is not None
        and j.destination.dataset_id == bq_dataset
    ]
    assert [j.destination.table_id.startswith("t__etl_staging_") for j in loads] == [True]


# --- the commit query under rate limits and daily quotas ----------------------------------------

RATE_LIMITED = {
    "reason": "rateLimitExceeded",
    "message": "Exceeded rate limits: too many table update operations for this table. For "
    "more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
}
DAILY_EXCEEDED = {"reason": "quotaExceeded", "message": DAILY}


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(emulator_env("ETL_BIGQUERY_API_ENDPOINT"))
    try:
        yield recorder
    finally:
        recorder.close()


class CommitFault:
    """`RecordingProxy.intercept`: the first `times` commit jobs (`jobs.insert` of a script
    holding `COMMIT TRANSACTION`) come back DONE with `error` as BigQuery answers a job that hit
    a quota; `run_it` forwards the job to the emulator first (it commits; only the answer says
    otherwise: the "answer lost" case). Reads of a failed job answer the same."""

    def __init__(self, error: dict[str, str], *, times: int = 1, run_it: bool = False) -> None:
        self.error, self.times, self.run_it = error, times, run_it
        self.failed: dict[str, dict[str, Any]] = {}
        self.commit_ids: list[str] = []

    def __call__(self, method: str, path: str, body: bytes, forward: Any) -> Any:
        route = path.split("?")[0]
        if method == "POST" and route.endswith("/jobs") and b"COMMIT TRANSACTION" in body:
            job = json.loads(body)
            job_id = job["jobReference"]["jobId"]
            self.commit_ids.append(job_id)
            if len(self.failed) < self.times:
                if self.run_it:
                    forward()
                job["status"] = {"state": "DONE", "errorResult": self.error, "errors": [self.error]}
                job["id"] = f"{BIGQUERY_PROJECT}:{job_id}"
                self.failed[job_id] = job
                return 200, {"Content-Type": "application/json"}, json.dumps(job).encode()
        for job_id, job in self.failed.items():
            if method == "GET" and route.endswith(f"/jobs/{job_id}"):
                return 200, {"Content-Type": "application/json"}, json.dumps(job).encode()
            if method == "GET" and route.endswith(f"/queries/{job_id}"):
                answer = {"error": {"code": 403, "message": self.error["message"],
                                    "errors": [self.error], "status": "PERMISSION_DENIED"}}  # fmt: skip
                return 403, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        return forward()


def _csv_job(tmp_path: Path, dataset: str, endpoint: str) -> JobConfig:
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    destination = {**bigquery_destination(dataset), "api_endpoint": endpoint}
    return JobConfig.parse(
        job_config(
            "local",
            tmp_path / "unused.duckdb",
            connection_params={"base_path": str(base)},
            file_pattern="*.csv",
            file_format="csv",
            dest_table_name="t",
            destination=destination,
        )
    )


@pytest.mark.parametrize("run_it", [False, True], ids=["refused", "ran-answer-lost"])
def test_commit_retried_on_rate_limit_once_only(
    proxy: RecordingProxy, bq_dataset: str, bigquery_client: Any, tmp_path: Path, run_it: bool
) -> None:
    """A commit job answered `rateLimitExceeded` is retried (backoff + jitter) under a new job
    id derived from the first; when the refused attempt had in fact committed (its answer
    lost), the retry finds its load-log entry and submits nothing: the table holds each row
    once and the log one entry either way. The emulator has no quotas: the proxy answers as
    BigQuery does (job DONE with `errorResult.reason` rateLimitExceeded), the gap named here.
    Peers' reports of commits and DML failing on rate limits:
    https://github.com/googleapis/python-bigquery-sqlalchemy/issues/34,
    https://github.com/dbt-labs/dbt-bigquery/issues/1076."""
    fault = CommitFault(RATE_LIMITED, run_it=run_it)
    proxy.intercept = fault
    result = run(_csv_job(tmp_path, bq_dataset, proxy.url))
    assert result.rows_loaded == 3
    first = fault.commit_ids[0]
    assert first.startswith("etl_") and "_commit_" in first
    assert fault.commit_ids == ([first] if run_it else [first, f"{first}_r1"])
    assert bq_rows(bigquery_client, f"SELECT id FROM `{bq_dataset}.t` ORDER BY id") == [
        (1,), (2,), (3,),
    ]  # fmt: skip
    assert bq_rows(
        bigquery_client, f"SELECT COUNT(*) FROM `{bq_dataset}._etl_loads` WHERE table_name = 't'"
    ) == [(1,)]


def test_commit_on_a_daily_quota_fails_naming_the_limit(
    proxy: RecordingProxy, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """A commit job answered with the daily `quotaExceeded` (imports or query appends per
    table) is not retried: the run fails with `QuotaExceededError` naming 1,500 load jobs per
    table per day, and nothing is committed."""
    fault = CommitFault(DAILY_EXCEEDED, times=5)
    proxy.intercept = fault
    with pytest.raises(QuotaExceededError) as error:
        run(_csv_job(tmp_path, bq_dataset, proxy.url))
    assert len(fault.commit_ids) == 1
    assert "1,500 load jobs (imports or query appends) per table per day" in str(error.value)
    assert bq_rows(
        bigquery_client, f"SELECT COUNT(*) FROM `{bq_dataset}._etl_loads` WHERE table_name = 't'"
    ) == [(0,)]


def _staging_loads(client: Any, dataset: str) -> list[Any]:
    """The load jobs of the emulator's job list into `dataset`."""
    return [
        j
        for j in client.list_jobs(all_users=True)
        if j.job_type == "load"
        and j.destination is not None
        and j.destination.dataset_id == dataset
    ]


def _parquet_job(base: Path, dataset: str) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "local",
            base.parent / "unused.duckdb",
            connection_params={"base_path": str(base)},
            file_pattern="*.parquet",
            file_format="parquet",
            dest_table_name="t",
            destination=bigquery_destination(dataset),
        )
    )


def test_a_run_of_many_parts_makes_one_load_job(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6,000 rows in 4 Parquet files with 1,000-row parts (`staging.PART_ROWS`): the run writes
    all its parts to one staged Parquet file, then makes exactly one load job into the table's
    staging table (issue 18: 6 jobs for the 6M rows of lineitem before), and the table equals
    the source row for row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.load.bigquery import staging

    monkeypatch.setattr(staging, "PART_ROWS", 1_000)
    base = tmp_path / "in"
    base.mkdir()
    expected = []
    for n in range(4):
        ids = list(range(n * 1_500, (n + 1) * 1_500))
        names = [f"name{i}" for i in ids]
        pq.write_table(pa.table({"id": ids, "name": names}), base / f"f{n}.parquet")
        expected += list(zip(ids, names, strict=True))
    result = run(_parquet_job(base, bq_dataset))
    assert (result.rows_loaded, len(result.files_loaded)) == (6_000, 4)
    rows = bq_rows(bigquery_client, f"SELECT id, name FROM `{bq_dataset}.t` ORDER BY id")
    assert rows == expected
    loads = _staging_loads(bigquery_client, bq_dataset)
    assert [j.destination.table_id.startswith("t__etl_staging_") for j in loads] == [True]
    assert loads[0].output_rows in (6_000, None)  # None: the emulator does not report it


def test_a_type_change_mid_run_still_makes_one_load_job(
    bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """`v` is int32 in the first file and int64 in the second: the change starts another staged
    part; the parts are rewritten into one file (`v` as int64) and loaded by one job; the table
    equals the source. (A column appearing mid-run goes the same way, see
    `test_part_writer_merges_parts_into_one_load`; the emulator cannot load into a staging
    table whose columns were added by `update_table`: its DuckDB table keeps the old columns.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path / "in"
    base.mkdir()
    big = 2**40
    pq.write_table(pa.table({"id": [1, 2], "v": pa.array([1, -2], pa.int32())}), base / "a.parquet")
    pq.write_table(
        pa.table({"id": [3, 4], "v": pa.array([big, None], pa.int64())}), base / "b.parquet"
    )
    result = run(_parquet_job(base, bq_dataset))
    assert result.rows_loaded == 4
    rows = bq_rows(bigquery_client, f"SELECT id, v FROM `{bq_dataset}.t` ORDER BY id")
    assert rows == [(1, 1), (2, -2), (3, big), (4, None)]
    loads = _staging_loads(bigquery_client, bq_dataset)
    assert [j.destination.table_id.startswith("t__etl_staging_") for j in loads] == [True]


def test_part_writer_merges_parts_into_one_load(tmp_path: Path) -> None:
    """The part writer without BigQuery: `v` int32 then int64, then a new column `w` (the
    loader's `flush` before adding it) make three parts; `close` hands one file to one load:
    `v` int64, `w` NULL in the earlier rows, every row once and in order; the parts are gone.
    A struct whose field `a` is an integer in one part and text in the next has no common
    type: each part is then loaded by its own job (the documented exception)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.load.bigquery.staging import PartWriter

    sent: list[tuple[int, pa.Table]] = []
    writer = PartWriter(tmp_path, lambda path, n: sent.append((n, pq.read_table(path))))
    writer.write(pa.table({"id": [1, 2], "v": pa.array([1, -2], pa.int32())}))
    writer.write(pa.table({"id": [3], "v": pa.array([2**40], pa.int64())}))
    writer.flush()
    writer.write(pa.table({"id": [4], "v": pa.array([None], pa.int64()), "w": ["x"]}))
    writer.close()
    assert [n for n, _ in sent] == [1]
    ((_, table),) = sent
    assert table.schema.field("v").type == pa.int64()
    assert table.to_pylist() == [
        {"id": 1, "v": 1, "w": None},
        {"id": 2, "v": -2, "w": None},
        {"id": 3, "v": 2**40, "w": None},
        {"id": 4, "v": None, "w": "x"},
    ]
    assert (writer.rows_loaded, list(tmp_path.iterdir())) == (4, [])

    sent.clear()
    writer = PartWriter(tmp_path, lambda path, n: sent.append((n, pq.read_table(path))))
    writer.write(pa.table({"s": pa.array([{"a": 1}])}))
    writer.write(pa.table({"s": pa.array([{"a": "x"}])}))
    writer.close()
    assert [(n, t.num_rows) for n, t in sent] == [(1, 1), (2, 1)]
    assert (writer.rows_loaded, list(tmp_path.iterdir())) == (2, [])
