"""Parallel runs on real Celery workers (issue 14): TPC-H lineitem (SF 0.01, tpchgen-cli) from
PostgreSQL and MariaDB, split into 4 chunks extracted by 2 `celery worker` processes on the real
Redis (the database this test session claimed, see test_worker.py, and a queue of each group's
own)
and committed once into DuckDB. The destination equals the source in count, per-column sums and
min/max. A chunk whose worker is SIGKILLed mid-extract is retried alone (attempt 2, the others
1); a connection's reader limit holds across the workers (PostgreSQL's `pg_stat_activity`
sampled). Redis, PostgreSQL or MariaDB unreachable fails these tests; nothing skips.

The `slow` SF 1 twins (6,001,215 rows, generated as tests/etl/parallel's SF 1 twins generate it)
load PostgreSQL and MariaDB through 2 workers in 4 chunks into DuckDB and the BigQuery emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection as django_connection

from config import celery_app
from ml_platform.models import DataSource, EtlRun, EtlRunChunk
from ml_platform.services import connection_create, data_source_create, etl_run_enqueue
from ml_platform.services.reader_slots import reader_slot_try
from tests.etl.parallel import tpch as tpch_sf1  # the SF 1 twins' generator and aggregates
from tests.ml_platform import tpch_lineitem as tpch
from tests.ml_platform.test_worker import REDIS_URL  # this session's own Redis database
from tests.ml_platform.tpch_lineitem import (  # noqa: F401  fixtures
    lineitem_csv,
    mysql_lineitem,
    pg_lineitem,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
WORKER_ENV = {
    "ETL_RUN_HEARTBEAT_INTERVAL_S": "0.3",
    "ETL_CHUNK_STALE_AFTER_S": "2",
    "ETL_CHUNK_POLL_INTERVAL_S": "0.2",
    "ETL_READER_WAIT_POLL_S": "0.1",
    "ETL_READER_LEASE_S": "5",
    "ETL_LOG_JSON": "true",
}


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    name: str

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


@dataclass
class Group:
    """Worker processes consuming one queue of their own."""

    queue: str
    staging: str
    workers: list[Worker]


def _pools_reset() -> None:
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _worker_popen(folder: Path, queue: str, staging: str, **env: str) -> Worker:
    """Start one `celery worker --pool solo` process on the test database and `queue`."""
    name = f"etl-par-{uuid.uuid4().hex[:8]}"
    log = folder / f"{name}.log"
    environ = {
        **os.environ,
        **WORKER_ENV,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
        "DATABASE_URL": f"sqlite:///{django_connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ETL_STAGING_DIR": staging,
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "INFO", "-Q", queue, "-n", f"{name}@%h"],
            cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Worker(process, log, name)


def _ready(workers: list[Worker]) -> None:
    for worker in workers:
        _wait(lambda w=worker: any(" ready." in x for x in w.lines()), 60, workers, "ready")


def _group_start(folder: Path, count: int, **env: str) -> Group:
    """Start `count` workers (`env` over WORKER_ENV) on a new queue of this session's Redis
    database."""
    queue = f"etl-par-{uuid.uuid4().hex[:10]}"
    staging = str(folder / "staging")
    group = Group(
        queue, staging, [_worker_popen(folder, queue, staging, **env) for _ in range(count)]
    )
    _ready(group.workers)
    return group


def _group_stop(group: Group) -> None:
    """Kill the workers (idle: the test is over) and delete the queue."""
    for worker in group.workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(
        group.queue,
        f"_kombu.binding.{group.queue}",
        f"_kombu.binding_permanent.{group.queue}",
    )
    client.close()


@pytest.fixture(scope="module")
def workers(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """2 workers shared by this module's tests (the kill test starts its own)."""
    group = _group_start(tmp_path_factory.mktemp("workers"), 2)
    yield group
    _group_stop(group)


@pytest.fixture
def publish_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Group], None]]:
    """Make this process publish its tasks (not eagerly) to a group's queue, as the web side
    of a deployment."""

    def publish(group: Group) -> None:
        monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
        monkeypatch.setitem(celery_app.conf, "broker_url", REDIS_URL)
        monkeypatch.setitem(celery_app.conf, "task_default_queue", group.queue)
        _pools_reset()

    yield publish
    _pools_reset()


def _wait(condition: Callable[[], Any], timeout_s: float, workers: list[Worker], what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    tails = "\n".join(f"--- {w.name}\n" + "\n".join(w.lines()[-30:]) for w in workers)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}:\n{tails}")


def _source(
    kind: str,
    where: str,
    tmp_path: Path,
    *,
    max_readers: int = 4,
    app: str = "",
    destination: dict[str, Any] | None = None,
    chunk_size: int = 2_000,
) -> DataSource:
    """A transactional source of lineitem (cursor `l_updated_at`, key l_orderkey +
    l_linenumber, batches of `chunk_size` rows) with parallelism 4 into a DuckDB file of the
    test (or `destination`)."""
    connection = connection_create(
        name=f"{kind} lineitem",
        type=kind,
        host="127.0.0.1",
        port=5432 if kind == "postgresql" else 3306,
        database="test" if kind == "postgresql" else where,
        user="postgres" if kind == "postgresql" else "root",
        max_readers=max_readers,
        extra_params={"application_name": app} if app else {},
    )
    return data_source_create(
        name=f"{kind} lineitem",
        connection=connection,
        dest_table_name="lineitem",
        source_table_name=f"{where}.lineitem" if kind == "postgresql" else "lineitem",
        timestamp_column="l_updated_at",
        primary_key=["l_orderkey", "l_linenumber"],
        chunk_size=chunk_size,
        parallelism=4,
        destination=destination
        or {"type": "duckdb", "path": str(tmp_path / "w.duckdb"), "dataset": "raw"},
        destination_credentials="anonymous" if destination else None,
    )


def _finished(run: EtlRun, workers: list[Worker], timeout_s: float = 180) -> EtlRun:
    _wait(
        lambda: EtlRun.objects.get(pk=run.pk).status not in EtlRun.ACTIVE_STATUSES,
        timeout_s,
        workers,
        f"run {run.pk}",
    )
    return EtlRun.objects.get(pk=run.pk)


def _chunks(run: EtlRun) -> list[tuple[int, str, int]]:
    return list(
        EtlRunChunk.objects.filter(run=run)
        .order_by("index")
        .values_list("index", "status", "attempt")
    )


def _assert_four_chunks_on_both_workers(run: EtlRun, workers: Group, rows: int) -> None:
    """The run succeeded with `rows` rows, its 4 chunks each done in one attempt, read by both
    workers."""
    assert (run.status, run.error_message) == ("succeeded", "")
    assert (run.rows_extracted, run.rows_loaded) == (rows, rows)
    chunks = EtlRunChunk.objects.filter(run=run).order_by("index")
    assert [(c.status, c.attempt) for c in chunks] == [("done", 1)] * 4
    assert sum(c.rows for c in chunks) == rows
    assert {c.worker.split("@")[0] for c in chunks} == {w.name for w in workers.workers}


@pytest.mark.parametrize("kind", ["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def test_two_workers_load_four_chunks_exactly(
    kind: str,
    request: pytest.FixtureRequest,
    workers: Group,
    publish_to: Callable[[Group], None],
    tmp_path: Path,
) -> None:
    """4 chunks over 2 workers (the coordinator's worker extracts too): the run succeeds once,
    every chunk is done in one attempt, both workers extracted chunks, and the DuckDB table
    equals the source in count, per-column sums and min/max of every column."""
    where = request.getfixturevalue("pg_lineitem" if kind == "postgresql" else "mysql_lineitem")
    publish_to(workers)
    source = _source(kind, where, tmp_path)

    run = _finished(etl_run_enqueue(data_source=source, trigger="api"), workers.workers)

    _assert_four_chunks_on_both_workers(run, workers, tpch.ROWS)
    expected = tpch.pg_stats(where) if kind == "postgresql" else tpch.mysql_stats(where)
    assert expected[0] == tpch.ROWS
    assert tpch.duckdb_stats(source.destination["path"], "raw.lineitem") == expected


def test_killed_chunk_worker_retries_that_chunk_alone(
    pg_lineitem: str,  # noqa: F811  fixture
    workers: Group,
    publish_to: Callable[[Group], None],
    tmp_path: Path,
) -> None:
    """A third worker joins a running 4-chunk run whose connection allows 1 reader (held by the
    test until that worker has claimed a chunk, so the coordinator cannot finish first); it
    SIGKILLs itself after staging its chunk's first batch (`ETL_FAULT_INJECT=chunk.batch`)
    while holding the reader slot. Its slot frees itself when the lease (5 s) runs out, its
    chunk is handed to a new attempt once its heartbeat is 2 s old, and the run commits every
    row once: that chunk's attempt is 2, the others' 1, and the killed worker never reported."""
    publish_to(workers)
    source = _source("postgresql", pg_lineitem, tmp_path, max_readers=1)
    blocker = reader_slot_try(connection=source.connection, holder="test-blocker")
    assert blocker is not None
    run = etl_run_enqueue(data_source=source, trigger="api")
    _wait(lambda: EtlRunChunk.objects.filter(run=run).count() == 4, 60, workers.workers, "plan")
    faulty = _worker_popen(tmp_path, workers.queue, workers.staging, ETL_FAULT_INJECT="chunk.batch")
    try:
        _ready([faulty])
        claimed = _wait(
            lambda: EtlRunChunk.objects.filter(run=run, worker__startswith=faulty.name).first(),
            60,
            [*workers.workers, faulty],
            "the third worker to claim a chunk",
        )
        blocker.release()
        run = _finished(run, [*workers.workers, faulty])
        exit_code = faulty.process.wait(timeout=30)
    finally:
        if faulty.process.poll() is None:
            faulty.process.kill()
            faulty.process.wait()

    assert (run.status, run.error_message) == ("succeeded", "")
    assert exit_code == -signal.SIGKILL
    chunks = {index: (status, attempt) for index, status, attempt in _chunks(run)}
    assert chunks == {i: ("done", 2 if i == claimed.index else 1) for i in range(4)}
    retried = EtlRunChunk.objects.get(pk=claimed.pk)
    assert not retried.worker.startswith(faulty.name)
    assert '"etl_run.chunk_done"' not in faulty.log.read_text()
    assert (run.rows_extracted, run.rows_loaded) == (tpch.ROWS, tpch.ROWS)
    assert tpch.duckdb_stats(source.destination["path"], "raw.lineitem") == tpch.pg_stats(
        pg_lineitem
    )


def test_reader_limit_holds_across_workers(
    pg_lineitem: str,  # noqa: F811  fixture
    workers: Group,
    publish_to: Callable[[Group], None],
    tmp_path: Path,
) -> None:
    """A connection with `max_readers=1`, 4 chunks on 2 workers: `pg_stat_activity`, sampled
    every 10 ms for the sessions named after this test (the coordinator's snapshot session is
    named `<name> snapshot` and reads no rows), never shows more than 1 reader; the chunks that
    found the slot busy waited (recorded on the chunk) instead of failing."""
    app = f"etl-par-{uuid.uuid4().hex[:8]}"
    publish_to(workers)
    source = _source("postgresql", pg_lineitem, tmp_path, max_readers=1, app=app)
    seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(tpch.PG_DSN, autocommit=True) as conn:
            while not stop.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]
                ).fetchone()
                seen.append(count)
                time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = _finished(etl_run_enqueue(data_source=source, trigger="api"), workers.workers)
    finally:
        stop.set()
        sampler.join(timeout=10)

    assert (run.status, run.error_message) == ("succeeded", "")
    assert max(seen) == 1
    chunks = EtlRunChunk.objects.filter(run=run)
    assert sum(c.waited_s for c in chunks) > 0
    assert tpch.duckdb_stats(source.destination["path"], "raw.lineitem") == tpch.pg_stats(
        pg_lineitem
    )


@pytest.mark.slow
def test_two_workers_load_four_chunks_into_bigquery(
    pg_lineitem: str,  # noqa: F811  fixture
    workers: Group,
    publish_to: Callable[[Group], None],
    tmp_path: Path,
    bigquery_client: Any,
    bq_dataset: str,
) -> None:
    """The Celery path into the BigQuery emulator: 4 chunks over 2 workers, staged locally (one
    machine) and committed by the coordinator's load jobs into one table equal to the source in
    count, per-column sums and min/max. Slow: the engine's own tests cover the chunked
    BigQuery commit at this scale in `make test` (tests/etl/parallel), this test adds only the
    Celery orchestration around it, which the DuckDB tests above cover."""
    from tests.etl.support import bigquery_destination

    publish_to(workers)
    block = {k: v for k, v in bigquery_destination(bq_dataset).items() if k != "credentials"}
    source = _source("postgresql", pg_lineitem, tmp_path, destination=block)

    run = _finished(etl_run_enqueue(data_source=source, trigger="api"), workers.workers)

    assert (run.status, run.error_message) == ("succeeded", "")
    assert [(s, a) for _, s, a in _chunks(run)] == [("done", 1)] * 4
    sql = tpch._stats_sql(f"`{bq_dataset}.lineitem`", string="{c}")
    row = next(iter(bigquery_client.query(sql).result(timeout=120)))
    assert tpch._normalized(tuple(row.values())) == tpch.pg_stats(pg_lineitem)


SF1_ROWS = 6_001_215
SF1_WORKER_ENV = {
    "ETL_RUN_HEARTBEAT_INTERVAL_S": "5",
    "ETL_CHUNK_STALE_AFTER_S": "120",
    "ETL_READER_LEASE_S": "120",
}
"""The settings' defaults for heartbeats, staleness and leases: the 2 s staleness of the small
tests (made for the kill test) is not what a minutes-long SF 1 run on shared cores is tested at."""


@pytest.fixture(scope="module")
def workers_sf1(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """2 workers at the default heartbeat/staleness timings, for the SF 1 twins."""
    group = _group_start(tmp_path_factory.mktemp("workers-sf1"), 2, **SF1_WORKER_ENV)
    yield group
    _group_stop(group)


@pytest.fixture(scope="module", params=["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def lineitem_sf1(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(kind, `schema.lineitem` / `database.lineitem`) at TPC-H SF 1, generated once for both
    destinations by tests/etl/parallel's generator (tpchgen-cli), dropped after."""
    generate = tpch_sf1.pg_lineitem if request.param == "postgresql" else tpch_sf1.mysql_lineitem
    with generate(1) as table:
        yield request.param, table


@pytest.mark.slow
@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
def test_two_workers_load_four_chunks_sf1(
    lineitem_sf1: tuple[str, str],
    destination: str,
    request: pytest.FixtureRequest,
    workers_sf1: Group,
    publish_to: Callable[[Group], None],
    tmp_path: Path,
) -> None:
    """The SF 1 twin of the tests above (6,001,215 rows): 2 worker processes, 4 chunks, from
    PostgreSQL and MariaDB into DuckDB and the BigQuery emulator (staged locally: one machine),
    each equal to the source in count, per-column sums, min/max of every column and the text
    columns' total length (tests/etl/parallel/tpch.py); every chunk done in one attempt, both
    workers extracted."""
    kind, table = lineitem_sf1
    where = table.split(".")[0]
    block = None
    if destination == "bigquery":
        from tests.etl.support import bigquery_destination

        dataset = request.getfixturevalue("bq_dataset")
        block = {k: v for k, v in bigquery_destination(dataset).items() if k != "credentials"}
        block["timeout_s"] = 600
    publish_to(workers_sf1)
    source = _source(kind, where, tmp_path, destination=block, chunk_size=100_000)

    started = time.monotonic()
    run = _finished(
        etl_run_enqueue(data_source=source, trigger="api"), workers_sf1.workers, timeout_s=3600
    )
    print(f"SF 1 {kind} -> {destination}, 2 workers x 4 chunks: {time.monotonic() - started:.1f} s")

    _assert_four_chunks_on_both_workers(run, workers_sf1, SF1_ROWS)
    expected = (
        tpch_sf1.pg_aggregates(table) if kind == "postgresql" else tpch_sf1.mysql_aggregates(table)
    )
    assert expected[0] == SF1_ROWS
    if destination == "duckdb":
        loaded = tpch_sf1.duckdb_aggregates(source.destination["path"], "raw.lineitem")
    else:
        client = request.getfixturevalue("bigquery_client")
        loaded = tpch_sf1.bigquery_aggregates(client, f"{dataset}.lineitem")
    assert loaded == expected
