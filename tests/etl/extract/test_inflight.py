"""The in-flight cap (etl/extract/inflight.py): with the default settings (no look-back), rows
that a transaction still open at a run's snapshot commits later with `now()` below the newest
committed cursor value are read by a later run, never lost; on the real PostgreSQL
(`timestamptz DEFAULT now()`) and MariaDB (`DATETIME(6)` written by `NOW(6)`) into DuckDB.

The reports these reproduce: Airbyte's incremental append misses a row inserted by a
transaction that commits after the sync read past its `now()`
(https://github.com/airbytehq/airbyte/issues/9668), MariaDB rows committed below the
`MAX(updated_at)` bound are dropped (https://github.com/airbytehq/airbyte/issues/85918), and
kafka-connect-jdbc skips rows of longer transactions
(https://github.com/confluentinc/kafka-connect-jdbc/pull/914).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, RunResult, SyncState, run
from etl.extract.inflight import INFLIGHT_MARGIN_S
from tests.conftest import MYSQL_PARAMS, PG_PARAMS, mysql_connect, pg_connect
from tests.etl.support import DATASET, SqlSource, duck_query, job_config

pytestmark = pytest.mark.integration

SOAK_SECONDS = 20.0
"""How long the soak of `make test` runs; its `slow` twin (`make test-slow`) runs 60 s."""
"""How long the writers and the once-a-second runs go on (the issue's scenario)."""


class OwnDatabaseSource(SqlSource):
    """A PostgreSQL source in a database of its own (`public` schema): the cap counts the
    open transactions of the source's database, and the shared `test` database holds other
    tests' sessions, which would hold the cap back for as long as they stay open."""

    def __init__(self, database: str) -> None:
        super().__init__("postgresql", "public")
        self.database = database

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with pg_connect(database=self.database) as connection:
            cursor = connection.execute(sql, list(params) or None)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def source(sql_source: SqlSource) -> Iterator[SqlSource]:
    """The test's source: a fresh PostgreSQL database (dropped afterwards), or the per-test
    MariaDB database of `sql_source` (InnoDB's views are server-wide: nothing to isolate)."""
    if sql_source.source_type == "mysql":
        yield sql_source
        return
    database = f"etl_inflight_{uuid.uuid4().hex[:10]}"
    with pg_connect() as connection:
        connection.execute(f"CREATE DATABASE {database}")
    try:
        yield OwnDatabaseSource(database)
    finally:
        with pg_connect() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _create(source: SqlSource) -> str:
    """Table `events`: `id` from a sequence, the writing transaction's `tag`, a value `v`, and
    `updated_at` set by the server's clock at insert."""
    table = source.table("events")
    if source.source_type == "postgresql":
        source.rows(
            f"CREATE TABLE {table} (id bigserial PRIMARY KEY, tag bigint, v integer, "
            "updated_at timestamptz NOT NULL DEFAULT now())"
        )
    else:
        source.rows(
            f"CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, tag BIGINT, v INT, "
            "updated_at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB"
        )
    return table


def _job(source: SqlSource, duckdb_path: Path, **fields: Any) -> JobConfig:
    """The default transactional job: cursor `updated_at`, no primary key, no look-back."""
    if isinstance(source, OwnDatabaseSource):
        fields.setdefault("connection_params", {**PG_PARAMS, "database": source.database})
    return JobConfig.parse(
        job_config(
            source.source_type,
            duckdb_path,
            source_table_name=f"{source.namespace}.events",
            load_type="transactional",
            timestamp_column="updated_at",
            dest_table_name="events",
            **fields,
        )
    )


class Writer:
    """One session of its own that writes rows in explicit transactions (autocommit off)."""

    def __init__(self, source: SqlSource) -> None:
        self.source = source
        if source.source_type == "postgresql":
            database = getattr(source, "database", PG_PARAMS["database"])
            self.connection: Any = pg_connect(database=database)
            self.connection.autocommit = False
        else:
            self.connection = mysql_connect(None)
            self.connection.autocommit(False)

    def execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.source.source_type == "postgresql":
            cursor = self.connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def begin(self) -> None:
        """Open a transaction without writing (PostgreSQL: READ COMMITTED, no xid yet)."""
        self.execute("SELECT 1")

    def insert(self, table: str, tag: int, rows: int) -> None:
        """Insert `rows` rows tagged `tag`, `updated_at` from the server's clock (`now()` in
        PostgreSQL: the transaction's start; `NOW(6)` in MariaDB: the statement's start)."""
        values = ", ".join(["(%s, %s)"] * rows)
        params = [value for v in range(rows) for value in (tag, v)]
        self.execute(f"INSERT INTO {table} (tag, v) VALUES {values}", params)

    def cursor_range(self, table: str, tag: int) -> tuple[Any, Any]:
        """(min, max) `updated_at` of the rows tagged `tag`, as this session sees them."""
        low, high = self.execute(
            f"SELECT min(updated_at), max(updated_at) FROM {table} WHERE tag = %s", [tag]
        )[0]
        return low, high

    def commit(self) -> None:
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def _totals(source: SqlSource, table: str) -> tuple[int, int, int, int]:
    row = source.rows(f"SELECT count(*), count(DISTINCT id), sum(id), sum(v) FROM {table}")[0]
    return (int(row[0]), int(row[1]), int(row[2] or 0), int(row[3] or 0))


def _dest_totals(duckdb_path: Path) -> tuple[int, int, int, int]:
    row = duck_query(
        duckdb_path,
        f"SELECT count(*), count(DISTINCT id), sum(id), sum(v) FROM {DATASET}.events",
    )[0]
    return (int(row[0]), int(row[1]), int(row[2] or 0), int(row[3] or 0))


def _quiet_runs(
    job: JobConfig, state: SyncState, source: SqlSource, table: str, duckdb_path: Path
) -> list[RunResult]:
    """Run, with nothing written by this test, until the destination equals the source: one
    run unless a session of another test on the shared server holds the cap back (at most
    10 runs, 1 s apart)."""
    results: list[RunResult] = []
    for _ in range(10):
        time.sleep(INFLIGHT_MARGIN_S + 0.2)
        results.append(run(job, state))
        state = results[-1].state
        if _dest_totals(duckdb_path) == _totals(source, table):
            break
    return results


@pytest.mark.parametrize("opened_by", ["insert", "begin"], ids=["wrote-first", "idle-in-tx"])
def test_a_transaction_open_during_a_run_is_loaded_later(
    source: SqlSource, duckdb_path: Path, opened_by: str
) -> None:
    """A session opens a transaction (having written rows, or only begun: idle in transaction)
    and stays open; another commits newer rows; a run happens: its watermark stays below the
    open transaction's rows and the newer rows wait. The open transaction then writes and
    commits rows whose `updated_at` is below the newest committed value (PostgreSQL's `now()`
    is the transaction's start; MariaDB's `NOW(6)` the statement's, so there only the
    transaction that wrote first is in that case), and the next run loads everything: the
    destination equals the source."""
    table = _create(source)
    old = Writer(source)
    other = Writer(source)
    try:
        other.insert(table, 1, 3)
        other.commit()
        time.sleep(INFLIGHT_MARGIN_S + 0.2)
        if opened_by == "insert":
            old.insert(table, 2, 2)
        else:
            old.begin()
        time.sleep(0.3)
        other.insert(table, 3, 4)
        _, newest = other.cursor_range(table, 3)
        other.commit()
        time.sleep(INFLIGHT_MARGIN_S + 0.2)
        job = _job(source, duckdb_path)
        first = run(job)
        if opened_by == "begin":
            old.insert(table, 2, 2)
        low, _ = old.cursor_range(table, 2)
        old.commit()
    finally:
        old.close()
        other.close()
    hazard = not (source.source_type == "mysql" and opened_by == "begin")
    assert (low < newest) is hazard
    watermark = first.state.watermark
    assert watermark is None or watermark.as_python() < low
    loaded_tags = {tag for (tag,) in duck_query(duckdb_path, f"SELECT tag FROM {DATASET}.events")}
    if hazard:
        assert loaded_tags <= {1}
    quiet = _quiet_runs(job, first.state, source, table, duckdb_path)
    assert _dest_totals(duckdb_path) == _totals(source, table)
    assert first.rows_loaded + sum(result.rows_loaded for result in quiet) == 9


@dataclass
class _Tx:
    tag: int
    began: float
    low: Any
    high: Any
    commit_started: float
    committed: float


@dataclass
class _Run:
    started: float
    ended: float
    result: RunResult


def _writer_loop(
    source: SqlSource, table: str, number: int, stop: threading.Event, done: list[_Tx]
) -> None:
    """Write transactions until `stop`: some rows, a sleep, more rows, commit. Writer 1's
    transactions last 0.5 to 1 s, writer 2's up to 0.25 s: short ones commit newer rows while
    long ones are still open, the case a watermark at the snapshot's maximum gets wrong."""
    rng = random.Random(number)
    low, high = (0.5, 1.0) if number == 1 else (0.0, 0.25)
    writer = Writer(source)
    try:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            tag = number * 1_000_000 + sequence
            began = time.monotonic()
            writer.insert(table, tag, rng.randint(1, 20))
            time.sleep(rng.uniform(low, high))
            writer.insert(table, tag, rng.randint(0, 5) or 1)
            first, last = writer.cursor_range(table, tag)
            commit_started = time.monotonic()
            writer.commit()
            done.append(_Tx(tag, began, first, last, commit_started, time.monotonic()))
    finally:
        writer.close()


def _at_risk(transactions: list[_Tx], runs: list[_Run]) -> int:
    """Transactions whose rows a watermark set to the snapshot's `MAX(cursor)` would surely
    have passed: open across a whole run, with cursor values below the largest value committed
    before that run started (a lower bound: the snapshot is taken early in a run)."""
    risky = set()
    for snapshot in runs:
        visible = [tx.high for tx in transactions if tx.committed < snapshot.started]
        if not visible:
            continue
        newest = max(visible)
        for tx in transactions:
            if tx.commit_started > snapshot.ended and tx.began < snapshot.started:
                if tx.low < newest:
                    risky.add(tx.tag)
    return len(risky)


@pytest.mark.parametrize(
    "seconds",
    [SOAK_SECONDS, pytest.param(60.0, marks=pytest.mark.slow)],
    ids=["20s", "60s"],
)
def test_concurrent_writers_and_runs_every_second_lose_nothing(
    source: SqlSource, duckdb_path: Path, seconds: float
) -> None:
    """Two writers commit transactions lasting up to 1 s (`updated_at` from the server's clock)
    while a run with the default settings happens every second for `seconds`; then, after the
    writers stop, a quiet run (more only while another test's session on the shared server
    holds the cap back): the destination equals the source (rows, distinct ids, sums).
    Each run's watermark stayed below the rows of every transaction open across it (the
    transactions a watermark at the snapshot's maximum would have passed are counted and
    printed: how many depends on how long runs take on the machine; the test above builds
    that case on purpose)."""
    table = _create(source)
    job = _job(source, duckdb_path)
    stop = threading.Event()
    transactions: list[_Tx] = []
    threads = [
        threading.Thread(target=_writer_loop, args=(source, table, n, stop, transactions))
        for n in (1, 2)
    ]
    for thread in threads:
        thread.start()
    runs: list[_Run] = []
    state = SyncState()
    try:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            began = time.monotonic()
            result = run(job, state)
            runs.append(_Run(began, time.monotonic(), result))
            state = result.state
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    quiet = _quiet_runs(job, state, source, table, duckdb_path)

    source_totals = _totals(source, table)
    assert _dest_totals(duckdb_path) == source_totals, [(r.rows_loaded, r.warnings) for r in quiet]
    loaded = sum(r.result.rows_loaded for r in runs) + sum(r.rows_loaded for r in quiet)
    assert source_totals[0] == loaded
    at_risk = _at_risk(transactions, runs)
    print(
        f"\n[inflight] {source.source_type}: {len(runs)} runs, {len(transactions)} transactions, "
        f"{source_totals[0]} rows, {at_risk} transactions a MAX(cursor) watermark would have "
        f"passed, {len(quiet)} quiet run(s)"
    )
    # at least one run every 2 s and one transaction a second, whatever the machine's speed
    assert len(runs) >= seconds / 2 and len(transactions) >= seconds
    for snapshot in runs:
        watermark = snapshot.result.state.watermark
        for tx in transactions:
            across = tx.began < snapshot.started and tx.commit_started > snapshot.ended
            if watermark is not None and across:
                assert watermark.as_python() < tx.low, (watermark, tx)


def test_sessions_the_user_cannot_see_are_reported(source: SqlSource, duckdb_path: Path) -> None:
    """A user without the right to see other sessions' transactions (PostgreSQL: not in
    `pg_read_all_stats`; MariaDB: no PROCESS privilege) still runs, capped at the server's
    clock, and the run's warnings say that open transactions cannot be seen, while another
    session holds one open; the rows committed before load.

    Airbyte's users asked which transactions an incremental sync can miss:
    https://github.com/airbytehq/airbyte/issues/9668
    """
    table = _create(source)
    committed = Writer(source)
    committed.insert(table, 1, 3)
    committed.commit()
    committed.close()
    user = f"etl_w_{uuid.uuid4().hex[:8]}"
    holder = Writer(source)
    try:
        holder.begin()
        holder.insert(table, 2, 1)
        if isinstance(source, OwnDatabaseSource):
            source.rows(f"CREATE ROLE {user} LOGIN")
            source.rows(f"GRANT USAGE ON SCHEMA public TO {user}")
            source.rows(f"GRANT SELECT ON {table} TO {user}")
            params = {**PG_PARAMS, "database": source.database, "user": user}
        else:
            source.rows(f"CREATE USER '{user}'@'%'")
            source.rows(f"GRANT SELECT ON `{source.namespace}`.* TO '{user}'@'%'")
            params = {**MYSQL_PARAMS, "user": user, "database": source.namespace}
        time.sleep(INFLIGHT_MARGIN_S + 0.2)
        result = run(_job(source, duckdb_path, connection_params=params))
    finally:
        holder.connection.rollback()
        holder.close()
        if isinstance(source, OwnDatabaseSource):
            source.rows(f"DROP OWNED BY {user}")
            source.rows(f"DROP ROLE IF EXISTS {user}")
        else:
            source.rows(f"DROP USER IF EXISTS '{user}'@'%'")
    reason = "grant it pg_read_all_stats" if source.source_type == "postgresql" else "PROCESS"
    assert [w for w in result.warnings if "cannot be seen" in w and reason in w], result.warnings
    assert result.rows_loaded == 3
