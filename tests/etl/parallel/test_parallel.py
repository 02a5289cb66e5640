"""Parallel runs (issue 14): one table split into key ranges, read in chunks, committed once.

Source: TPC-H `lineitem` from tpchgen-cli (SF 0.01, 60,175 rows; the `slow` twins SF 1, ~6M rows)
in PostgreSQL and MariaDB, with a `l_updated_at` cursor. Every load is checked against the
source: the count, the sums of the numeric columns, min/max of every column and the total
length of the text columns.

Field reports this guards against: chunk readers that do not share one snapshot duplicate or
lose rows updated while the extract runs (duckdb-postgres
https://github.com/duckdb/duckdb-postgres/issues/163 and
https://github.com/duckdb/duckdb-postgres/issues/381; Debezium's pooled snapshot connections
https://github.com/debezium/debezium/pull/7740; a parallel export that restored the snapshot
the wrong way https://github.com/commandprompt/pgcolumnar/pull/329); MySQL has no shareable
snapshot across threads (https://github.com/mydumper/mydumper/issues/1608), which
docs/parallel.md states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

import etl
from etl.exceptions import SnapshotExpiredError
from etl.parallel import ChunkPlan, ChunkReport, chunk_commit, chunk_extract, chunk_plan
from etl.parallel.chunk import filesystem
from tests.conftest import mysql_connect, pg_connect
from tests.etl.parallel.tpch import (
    CURSOR,
    aggregate_sql,
    bigquery_aggregates,
    duckdb_aggregates,
    mysql_aggregates,
    mysql_lineitem,
    normalize,
    pg_aggregates,
    pg_lineitem,
)
from tests.etl.support import REPO_ROOT, bigquery_destination, job_config, local_file_job

pytestmark = pytest.mark.integration

KEY = ["l_orderkey", "l_linenumber"]
SUBSET = "SELECT * FROM {source} WHERE l_orderkey <= 20000"
"""The rows the tests that write to the source copy into a table of their own."""
LATER = "timestamptz '2025-06-01 00:00:00+00'"
"""The cursor of rows written during a test: after every generated row (2024-01-01), long
before now, so the in-flight cap (a transaction another test left open on this shared server)
never holds them back."""


def lineitem_job(
    source: str, table: str, destination: dict[str, Any], **fields: Any
) -> etl.JobConfig:
    config = job_config(
        source,
        Path("unused.duckdb"),
        source_table_name=table,
        dest_table_name="lineitem",
        timestamp_column=CURSOR,
        primary_key=KEY,
        destination=destination,
    )
    config.update(fields)
    return etl.JobConfig.parse(config)


def duck(path: Path) -> dict[str, Any]:
    return {"type": "duckdb", "path": str(path), "dataset": "raw_data"}


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(fs.exists(path))


def run_in_chunks(
    job: etl.JobConfig,
    state: etl.SyncState | None,
    staging: Path | str,
    *,
    retry_first: bool = False,
) -> tuple[ChunkPlan, etl.RunResult]:
    """Plan, read every chunk and commit in this process, through JSON as separate processes
    would (plan and reports round-trip, the commit is `chunk_commit` on the copies). With
    `retry_first`, chunk 0 is read twice and only the second attempt is committed."""
    run_id = os.urandom(8).hex()
    with chunk_plan(job, state, run_id=run_id, staging=str(staging)) as coordinator:
        plan = ChunkPlan.from_dict(json.loads(json.dumps(coordinator.plan.to_dict())))
        assert plan == coordinator.plan
        reports = []
        for index in range(len(plan.chunks)):
            report = chunk_extract(job, plan, index)
            if retry_first and index == 0:
                abandoned = report
                report = chunk_extract(job, plan, index)
                assert report.attempt != abandoned.attempt
                assert all(exists(part.path) for part in abandoned.parts)
            copy = ChunkReport.from_dict(json.loads(json.dumps(report.to_dict())))
            assert copy == report
            reports.append(copy)
        result = chunk_commit(job, state, plan, reports, run_id=run_id)
    assert not exists(f"{staging}/{run_id}"), "the run's staging folder is removed at exit"
    assert sum(report.rows for report in reports) == result.rows_loaded
    return plan, result


@pytest.mark.parametrize("parallelism", [1, 2, 4], ids=["p1", "p2", "p4"])
def test_pg_lineitem_into_duckdb(pg_lineitem_small: str, tmp_path: Path, parallelism: int) -> None:
    """PostgreSQL lineitem read in 1, 2 and 4 chunks sharing one exported snapshot loads into
    DuckDB equal to the source (count, sums, min/max), split into heap page ranges (an
    incremental window: on the cursor's histogram bounds); a chunk read twice is loaded once."""
    job = lineitem_job(
        "postgresql", pg_lineitem_small, duck(tmp_path / "w.duckdb"), parallelism=parallelism
    )
    plan, result = run_in_chunks(job, None, tmp_path / "stage", retry_first=parallelism > 1)
    assert len(plan.chunks) == parallelism
    assert plan.snapshot is not None
    if parallelism > 1:
        assert plan.split == "ctid"  # a whole-table read: disjoint heap pages per chunk
    assert result.rows_loaded == 60_175
    assert duckdb_aggregates(tmp_path / "w.duckdb", "raw_data.lineitem") == pg_aggregates(
        pg_lineitem_small
    )
    assert result.state.watermark is not None
    assert (
        result.state.watermark.value == "2024-01-01T16:40:00.000000+00:00"
    )  # max orderkey 60000 s
    if parallelism == 4:  # an incremental window is split on the cursor's histogram bounds
        middle = etl.SyncState(
            watermark=etl.Watermark(value="2024-01-01T08:20:00.000000+00:00", type="timestamptz")
        )
        fresh = job.model_copy(
            update={"destination": etl.DestinationConfig(**duck(tmp_path / "n.duckdb"))}
        )
        with chunk_plan(fresh, middle, run_id="window", staging=str(tmp_path / "s")) as planned:
            assert planned.plan.split == f"histogram:{CURSOR}"
            assert len(planned.plan.chunks) == 4


@pytest.mark.parametrize("parallelism", [1, 2, 4], ids=["p1", "p2", "p4"])
def test_mysql_lineitem_into_duckdb(
    mysql_lineitem_small: str, tmp_path: Path, parallelism: int
) -> None:
    """MariaDB lineitem read in 1, 2 and 4 chunks (min/max of the primary key, even steps; no
    shared snapshot, every chunk bounded by the plan's upper bound) loads into DuckDB equal to
    the source."""
    job = lineitem_job(
        "mysql", mysql_lineitem_small, duck(tmp_path / "w.duckdb"), parallelism=parallelism
    )
    plan, result = run_in_chunks(job, None, tmp_path / "stage")
    assert len(plan.chunks) == parallelism
    assert plan.snapshot is None
    if parallelism > 1:
        assert plan.split == "minmax:l_orderkey"
    assert result.rows_loaded == 60_175
    assert duckdb_aggregates(tmp_path / "w.duckdb", "raw_data.lineitem") == mysql_aggregates(
        mysql_lineitem_small
    )


BIGQUERY_CASES = [
    pytest.param("postgresql", 4, id="pg-p4"),
    pytest.param("mysql", 4, id="mysql-p4"),
    # one-chunk plans and the MariaDB 2-chunk plan are the same code paths as above; they run
    # in `make test-slow` to keep `make test` within its budget
    pytest.param("postgresql", 1, id="pg-p1", marks=pytest.mark.slow),
    pytest.param("mysql", 1, id="mysql-p1", marks=pytest.mark.slow),
    pytest.param("mysql", 2, id="mysql-p2", marks=pytest.mark.slow),
    pytest.param("postgresql", 2, id="pg-p2", marks=pytest.mark.slow),  # GCS staging below
]


@pytest.mark.parametrize(("source", "parallelism"), BIGQUERY_CASES)
def test_lineitem_into_bigquery(
    request: pytest.FixtureRequest,
    bigquery_client: Any,
    bq_dataset: str,
    tmp_path: Path,
    source: str,
    parallelism: int,
) -> None:
    """lineitem read in 1, 2 and 4 chunks loads into the BigQuery emulator (one staging table,
    one commit) equal to the source."""
    table = request.getfixturevalue(
        "pg_lineitem_small" if source == "postgresql" else "mysql_lineitem_small"
    )
    job = lineitem_job(source, table, bigquery_destination(bq_dataset), parallelism=parallelism)
    _, result = run_in_chunks(job, None, tmp_path / "stage")
    assert result.rows_loaded == 60_175
    expected = pg_aggregates(table) if source == "postgresql" else mysql_aggregates(table)
    assert bigquery_aggregates(bigquery_client, f"{bq_dataset}.lineitem") == expected


def test_gcs_staging_into_bigquery(
    pg_lineitem_small: str, bigquery_client: Any, bq_dataset: str, tmp_path: Path
) -> None:
    """Chunks staged in a GCS bucket (the emulator, through gcsfs), as chunk readers on several
    machines do, load into the BigQuery emulator equal to the source; the parts are `gs://`
    objects under the run's folder, removed at the end."""
    bucket = f"etl-parallel-{uuid.uuid4().hex[:10]}"
    fs, _ = filesystem(f"gs://{bucket}")
    fs.mkdir(bucket)
    try:
        job = lineitem_job(
            "postgresql", pg_lineitem_small, bigquery_destination(bq_dataset), parallelism=2
        )
        plan, result = run_in_chunks(job, None, f"gs://{bucket}/staging", retry_first=True)
        assert plan.run_folder.startswith(f"gs://{bucket}/staging/")
        assert result.rows_loaded == pg_aggregates(pg_lineitem_small)[0]
        assert bigquery_aggregates(bigquery_client, f"{bq_dataset}.lineitem") == pg_aggregates(
            pg_lineitem_small
        )
    finally:
        fs.rm(bucket, recursive=True)


def test_file_source_is_one_chunk_with_its_ledger(tmp_path: Path) -> None:
    """A file source gets a one-chunk `single` plan: its own extraction runs in the chunk, the
    rows load, the file ledger is committed; a second run skips the unchanged file."""
    rows = "".join(f"{i},name {i}\n" for i in range(1, 501))
    config = local_file_job(tmp_path, "a.csv", f"id,name\n{rows}".encode(), parallelism=4)
    job = etl.JobConfig.parse(config)
    plan, first = run_in_chunks(job, None, tmp_path / "stage")
    assert (plan.mode, len(plan.chunks), plan.snapshot) == ("single", 1, None)
    assert first.rows_loaded == 500 and first.files_loaded == ["a.csv"]
    assert list(first.state.files) == ["a.csv"]
    _, second = run_in_chunks(job, first.state, tmp_path / "stage")
    assert (second.rows_loaded, second.files_skipped) == (0, 1)


def _pg_aggregates_at(snapshot: str, table: str, upper: str) -> list[Any]:
    """The aggregates of `table`'s rows with a cursor at or below `upper`, read in `snapshot`."""
    with pg_connect() as connection:
        connection.autocommit = False
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            connection.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            connection.execute("SET TIME ZONE 'UTC'")
            sql = aggregate_sql(table, "postgresql") + f" WHERE {CURSOR} <= %s::timestamptz"
            row = connection.execute(sql, [upper]).fetchone()
    return normalize(row)


def test_pg_concurrent_writes_during_parallel_run(pg_lineitem_small: str, tmp_path: Path) -> None:
    """Rows inserted, updated (cursor moved or kept) and deleted while a 4-chunk run is between
    its plan and its last chunk leave the run equal to the source at the plan's snapshot; the
    next run brings the inserted and updated rows and 3 rows tied with the watermark; no
    (key, cursor) version is lost or loaded twice."""
    schema = pg_lineitem_small.split(".")[0]
    table = f"{schema}.lineitem_writes"
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {table} (LIKE {pg_lineitem_small} INCLUDING ALL EXCLUDING GENERATED)"
        )
        connection.execute(f"INSERT INTO {table} {SUBSET.format(source=pg_lineitem_small)}")
        connection.execute(f"ANALYZE {table}")
        (base,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    path = tmp_path / "w.duckdb"
    job = lineitem_job("postgresql", table, duck(path), parallelism=4)
    with chunk_plan(job, None, run_id="run1", staging=str(tmp_path / "stage")) as coordinator:
        plan = coordinator.plan
        assert len(plan.chunks) == 4 and plan.upper is not None and plan.snapshot
        reports = [chunk_extract(job, plan, 0)]
        with pg_connect() as connection:  # autocommit: each statement commits at once
            connection.execute(  # 100 rows of the last chunk get a new version, newer cursor
                f"UPDATE {table} SET l_quantity = l_quantity + 1000, "
                f"{CURSOR} = {LATER} WHERE l_orderkey >= 19000 "
                "AND (l_orderkey, l_linenumber) IN (SELECT l_orderkey, l_linenumber "
                f"FROM {table} WHERE l_orderkey >= 19000 ORDER BY 1, 2 LIMIT 100)"
            )
            connection.execute(  # changed in place, cursor kept: the run must see the old text
                f"UPDATE {table} SET l_comment = 'changed during the run' "
                "WHERE l_orderkey BETWEEN 10000 AND 10100"
            )
            connection.execute(f"DELETE FROM {table} WHERE l_orderkey BETWEEN 15000 AND 15050")
            connection.execute(
                f"INSERT INTO {table} SELECT l_orderkey + 10000000, l_partkey, l_suppkey, "
                "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
                "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
                f"l_shipmode, l_comment, {LATER} FROM {table} "
                "WHERE l_orderkey <= 2000 ORDER BY 1, 4 LIMIT 500"
            )
        reports += [chunk_extract(job, plan, index) for index in (1, 2, 3)]
        first = coordinator.commit(reports)
        at_snapshot = _pg_aggregates_at(plan.snapshot, table, plan.upper.value)
    assert duckdb_aggregates(path, "raw_data.lineitem") == at_snapshot
    assert first.rows_loaded == at_snapshot[0] == base
    with pg_connect() as connection:  # ties: new keys at exactly the stored watermark
        connection.execute(
            f"INSERT INTO {table} SELECT l_orderkey + 20000000, l_partkey, l_suppkey, "
            "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
            "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
            f"l_comment, %s::timestamptz FROM {table} WHERE l_orderkey <= 10 ORDER BY 1, 4 LIMIT 3",
            [first.state.watermark.value],
        )
    _, second = run_in_chunks(job, first.state, tmp_path / "stage")
    assert second.rows_loaded == 100 + 500 + 3
    import duckdb

    with duckdb.connect(str(path), read_only=True) as warehouse:
        loaded = warehouse.execute(
            f"SELECT l_orderkey, l_linenumber, {CURSOR}, count(*) FROM raw_data.lineitem "
            "GROUP BY ALL"
        ).fetchall()
    with pg_connect() as connection:
        current = connection.execute(
            f"SELECT l_orderkey, l_linenumber, {CURSOR} FROM {table}"
        ).fetchall()
    versions = {(k, n, c.timestamp()): count for k, n, c, count in loaded}
    duplicated = sum(count - 1 for count in versions.values())
    lost = [row for row in current if (row[0], row[1], row[2].timestamp()) not in versions]
    print(f"versions loaded {len(versions)}, duplicated {duplicated}, lost {len(lost)}")
    assert duplicated == 0 and lost == []
    assert len(versions) == base + 100 + 500 + 3


def test_mysql_writes_during_parallel_run_follow_the_documented_rules(
    mysql_lineitem_small: str, tmp_path: Path
) -> None:
    """MariaDB chunks share no snapshot (docs/parallel.md, "MySQL / MariaDB"): rows updated
    (cursor moved above the plan's upper bound) or deleted after the plan, before their chunk
    reads them, are not in the run; the next run loads the updated and inserted rows; no
    (key, cursor) version is loaded twice and none of the source's current rows is missing."""
    database = mysql_lineitem_small.split(".")[0]
    table = f"{database}.lineitem_writes"
    connection = mysql_connect(None)
    try:
        with connection.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} LIKE {mysql_lineitem_small}")
            cur.execute(f"INSERT INTO {table} {SUBSET.format(source=mysql_lineitem_small)}")
            cur.execute(f"ANALYZE TABLE {table}")
            cur.execute(f"SELECT count(*) FROM {table}")
            (base,) = cur.fetchone()
        path = tmp_path / "w.duckdb"
        job = lineitem_job("mysql", table, duck(path), parallelism=2)
        with chunk_plan(job, None, run_id="run1", staging=str(tmp_path / "stage")) as coordinator:
            plan = coordinator.plan
            assert plan.split == "minmax:l_orderkey" and plan.snapshot is None
            reports = [chunk_extract(job, plan, 0)]
            later = "TIMESTAMP'2025-06-01 00:00:00'"
            with connection.cursor() as cur:  # all in chunk 1's range (l_orderkey >= ~30000)
                cur.execute(
                    f"UPDATE {table} SET l_quantity = l_quantity + 1000, {CURSOR} = {later} "
                    "WHERE l_orderkey BETWEEN 15000 AND 15100"
                )
                updated = cur.rowcount
                cur.execute(f"DELETE FROM {table} WHERE l_orderkey BETWEEN 16000 AND 16100")
                deleted = cur.rowcount
                cur.execute(
                    f"INSERT INTO {table} SELECT l_orderkey + 10000000, l_partkey, l_suppkey, "
                    "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
                    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, "
                    f"l_shipinstruct, l_shipmode, l_comment, {later} FROM {table} "
                    "WHERE l_orderkey <= 100"
                )
                inserted = cur.rowcount
            reports.append(chunk_extract(job, plan, 1))
            first = coordinator.commit(reports)
        assert updated and deleted and inserted
        assert first.rows_loaded == base - updated - deleted
        _, second = run_in_chunks(job, first.state, tmp_path / "stage")
        assert second.rows_loaded == updated + inserted
        import duckdb

        with duckdb.connect(str(path), read_only=True) as warehouse:
            loaded = warehouse.execute(
                f"SELECT l_orderkey, l_linenumber, {CURSOR}, count(*) FROM raw_data.lineitem "
                "GROUP BY ALL"
            ).fetchall()
        with connection.cursor() as cur:
            cur.execute(f"SELECT l_orderkey, l_linenumber, {CURSOR} FROM {table}")
            current = cur.fetchall()
    finally:
        connection.close()
    versions = {(k, n, c.replace(tzinfo=None)): count for k, n, c, count in loaded}
    assert sum(count - 1 for count in versions.values()) == 0
    assert [row for row in current if tuple(row) not in versions] == []


def test_pg_merge_in_chunks_equals_source(pg_lineitem_small: str, tmp_path: Path) -> None:
    """A merge load in 3 chunks, then updates (cursor moved) and inserts, then a second merge
    in 3 chunks leave DuckDB with one row per key equal to the source."""
    schema = pg_lineitem_small.split(".")[0]
    table = f"{schema}.lineitem_merge"
    with pg_connect() as connection:
        connection.execute(
            f"CREATE TABLE {table} (LIKE {pg_lineitem_small} INCLUDING ALL EXCLUDING GENERATED)"
        )
        connection.execute(f"INSERT INTO {table} {SUBSET.format(source=pg_lineitem_small)}")
        connection.execute(f"ANALYZE {table}")
    path = tmp_path / "w.duckdb"
    job = lineitem_job("postgresql", table, duck(path), parallelism=3, load_type="merge")
    _, first = run_in_chunks(job, None, tmp_path / "stage")
    with pg_connect() as connection:
        connection.execute(
            f"UPDATE {table} SET l_quantity = l_quantity + 7, {CURSOR} = {LATER} "
            "WHERE l_orderkey % 300 = 0"
        )
        connection.execute(
            f"INSERT INTO {table} SELECT l_orderkey + 10000000, l_partkey, l_suppkey, "
            "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
            "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
            f"l_shipmode, l_comment, {LATER} FROM {table} "
            "WHERE l_orderkey <= 500"
        )
    plan, second = run_in_chunks(job, first.state, tmp_path / "stage")
    assert plan.split == f"window:{CURSOR}"
    assert duckdb_aggregates(path, "raw_data.lineitem") == pg_aggregates(table)


def test_chunk_after_the_coordinator_exits_fails_with_snapshot_expired(
    pg_lineitem_small: str, tmp_path: Path
) -> None:
    """A PostgreSQL chunk read after the coordinator ended its transaction cannot import the
    snapshot: SnapshotExpiredError (transient for the run, names the snapshot), no rows read."""
    job = lineitem_job("postgresql", pg_lineitem_small, duck(tmp_path / "w.duckdb"), parallelism=2)
    with chunk_plan(job, None, run_id="gone", staging=str(tmp_path / "stage")) as coordinator:
        plan = coordinator.plan
    assert plan.snapshot is not None
    with pytest.raises(SnapshotExpiredError, match=f"snapshot {plan.snapshot} is no longer"):
        chunk_extract(job, plan, 1)


def test_superseded_commit_writes_nothing(pg_lineitem_small: str, tmp_path: Path) -> None:
    """A parallel run whose table got another run's commit after its plan is refused at its
    commit (SupersededError) and leaves only the other run's rows."""
    path = tmp_path / "w.duckdb"
    job = lineitem_job("postgresql", pg_lineitem_small, duck(path), parallelism=2)
    with chunk_plan(job, None, run_id="late", staging=str(tmp_path / "stage")) as coordinator:
        reports = [chunk_extract(job, coordinator.plan, i) for i in range(2)]
        other = etl.run(job, None, run_id="other")
        with pytest.raises(etl.SupersededError, match="other"):
            coordinator.commit(reports)
    import duckdb

    with duckdb.connect(str(path), read_only=True) as warehouse:
        runs = warehouse.execute(
            "SELECT _etl_run_id, count(*) FROM raw_data.lineitem GROUP BY 1"
        ).fetchall()
    assert runs == [("other", other.rows_loaded)]


def test_pg_table_without_key_splits_on_ctid(pg_lineitem_small: str, tmp_path: Path) -> None:
    """A catalog load of a PostgreSQL table with no primary key is split into heap page ranges
    (`ctid`) and loads equal to the source."""
    schema = pg_lineitem_small.split(".")[0]
    table = f"{schema}.lineitem_heap"
    with pg_connect() as connection:
        connection.execute(f"CREATE TABLE {table} AS SELECT * FROM {pg_lineitem_small}")
    path = tmp_path / "w.duckdb"
    job = lineitem_job(
        "postgresql",
        table,
        duck(path),
        parallelism=3,
        load_type="catalog",
        timestamp_column=None,
        primary_key=[],
    )
    plan, result = run_in_chunks(job, None, tmp_path / "stage")
    assert plan.split == "ctid" and len(plan.chunks) == 3
    assert duckdb_aggregates(path, "raw_data.lineitem") == pg_aggregates(table)


def test_cli_parallel_sigkill_retries_that_chunk_alone(
    pg_lineitem_small: str, tmp_path: Path
) -> None:
    """`python -m etl run --parallel 2` with chunk 1's process SIGKILLed after its first staged
    batch retries chunk 1 alone (one `parallel.chunk_retry`, exit code -9) and loads exactly
    the source."""
    path = tmp_path / "w.duckdb"
    config = tmp_path / "job.json"
    job = lineitem_job("postgresql", pg_lineitem_small, duck(path))
    config.write_text(job.model_dump_json())
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "run",
            "--config",
            str(config),
            "--parallel",
            "2",
            "--json",
            "--state",
            str(tmp_path / "state.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "ETL_FAULT_INJECT": "chunk1.batch"},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    events = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
    retries = [e for e in events if e.get("event", e.get("message")) == "parallel.chunk_retry"]
    assert [(e["chunk"], e["exitcode"]) for e in retries] == [(1, -9)]
    result = json.loads(completed.stdout)
    assert result["rows_loaded"] == 60_175
    assert duckdb_aggregates(path, "raw_data.lineitem") == pg_aggregates(pg_lineitem_small)
    state = etl.SyncState.model_validate_json((tmp_path / "state.json").read_text())
    assert state.watermark == etl.SyncState.model_validate(result["state"]).watermark


SF1 = 1


@pytest.mark.slow
@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
@pytest.mark.parametrize("source", ["postgresql", "mysql"])
@pytest.mark.parametrize("parallelism", [1, 2, 4], ids=["p1", "p2", "p4"])
def test_lineitem_sf1_parallel(
    request: pytest.FixtureRequest, tmp_path: Path, source: str, destination: str, parallelism: int
) -> None:
    """The SF 1 twin (6,001,215 rows): `run_parallel` with 1, 2 and 4 local processes, each
    source into each destination, equal to the source."""
    generate = pg_lineitem if source == "postgresql" else mysql_lineitem
    with generate(SF1) as table:
        if destination == "duckdb":
            target = duck(tmp_path / "w.duckdb")
        else:
            dataset = request.getfixturevalue("bq_dataset")
            target = bigquery_destination(dataset)
            target["timeout_s"] = 600
        job = lineitem_job(source, table, target, parallelism=parallelism)
        result = etl.run_parallel(job, None, processes=parallelism, staging=str(tmp_path / "stage"))
        expected = pg_aggregates(table) if source == "postgresql" else mysql_aggregates(table)
        if destination == "duckdb":
            loaded = duckdb_aggregates(tmp_path / "w.duckdb", "raw_data.lineitem")
        else:
            loaded = bigquery_aggregates(
                request.getfixturevalue("bigquery_client"), f"{dataset}.lineitem"
            )
    assert result.rows_loaded == expected[0] == 6_001_215
    assert loaded == expected
