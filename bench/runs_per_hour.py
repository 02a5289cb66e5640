"""Runs per hour of the control plane (issue 14): 100 small data sources, each run once, on 1
and then 2 Celery worker processes (`--pool solo`, the real Redis, PostgreSQL as Django's
database as in production).

Each source reads the same 1,000-row PostgreSQL table (`load_type: catalog`, so every round
does the same work) into a DuckDB file of its own (one file per source: a shared file would
serialize the runs on its writer lock and measure that instead). The figure is
`100 / wall seconds * 3600`, wall time from the first enqueue to the last run finished.

    .venv/bin/python bench/runs_per_hour.py [--sources 100] [--workers 1,2] [--rows 1000]

Writes `bench/RESULTS-runs-per-hour.md`. Everything it creates (a Django database
`etl_rph_<hex>`, a schema `rph_<hex>` in database `test`, a Redis queue) is dropped at the end.
The machine is shared with other work: the load average before and after each round is
printed with the figure; compare rounds of one invocation, not across machines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
PG = "host=127.0.0.1 port=5432 user=postgres"
REDIS_SERVER = "redis://127.0.0.1:6379"


def _redis_db_claim() -> str:
    """Claim a Redis database (1-15) as the test sessions do (tests/ml_platform/test_worker.py:
    `SET NX` on a key in database 0, released at exit), so no test session flushes it."""
    import atexit

    import redis

    client = redis.Redis.from_url(f"{REDIS_SERVER}/0")
    for number in range(1, 16):
        key = f"etl-runner-tests:db:{number}"
        if client.set(key, os.getpid(), nx=True, ex=7200):
            atexit.register(client.delete, key)
            return f"{REDIS_SERVER}/{number}"
    raise RuntimeError(f"all Redis databases 1-15 of {REDIS_SERVER} are claimed")


def _pg(sql: str, dbname: str = "test") -> None:
    with psycopg.connect(f"{PG} dbname={dbname}", autocommit=True) as conn:
        conn.execute(sql)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux `/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100, help="data sources (runs per round)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the source table")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:10]
    redis_url = _redis_db_claim()
    django_db, schema, queue = f"etl_rph_{tag}", f"rph_{tag}", f"etl-rph-{tag}"
    work = Path(tempfile.mkdtemp(prefix="etl-rph-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{django_db}",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ETL_DATA_DIR": str(work),
        "ETL_LOG_LEVEL": "WARNING",
    }
    _pg(f'CREATE DATABASE "{django_db}"', "postgres")
    _pg(f'CREATE SCHEMA "{schema}"')
    lines: list[str] = []
    try:
        _pg(
            f'CREATE TABLE "{schema}".small AS SELECT g AS id, md5(g::text) AS v, '
            f"TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second' AS updated_at "
            f"FROM generate_series(1, {int(args.rows)}) g"
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True
        )
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from ml_platform.models import EtlRun
        from ml_platform.services import connection_create, data_source_create, etl_run_enqueue

        connection = connection_create(
            name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
            user="postgres", max_readers=64,
        )  # fmt: skip
        sources = [
            data_source_create(
                name=f"s{i}",
                connection=connection,
                dest_table_name="small",
                source_table_name=f"{schema}.small",
                load_type="catalog",
                destination={
                    "type": "duckdb",
                    "path": str(work / f"s{i}.duckdb"),
                    "dataset": "raw",
                },
            )  # fmt: skip
            for i in range(args.sources)
        ]
        for count in [int(n) for n in args.workers.split(",")]:
            workers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "--pool",
                        "solo",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "--loglevel",
                        "WARNING",
                        "-Q",
                        queue,
                        "-n",
                        f"rph{i}-{tag}@%h",
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                for i in range(count)
            ]
            time.sleep(8)  # the workers import Django and the engine before they consume
            idle_cpu = [_cpu_s(worker.pid) for worker in workers]
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            runs = [etl_run_enqueue(data_source=s, trigger="api") for s in sources]
            ids = [run.id for run in runs]
            while EtlRun.objects.filter(id__in=ids, status__in=EtlRun.ACTIVE_STATUSES).exists():
                time.sleep(0.2)
            wall = time.perf_counter() - started
            load_after = os.getloadavg()[0]
            cpu = sum(_cpu_s(worker.pid) for worker in workers) - sum(idle_cpu)
            for worker in workers:
                worker.kill()
                worker.wait()
            statuses = sorted(
                set(EtlRun.objects.filter(id__in=ids).values_list("status", flat=True))
            )
            line = (
                f"| {count} | {len(ids)} | {wall:.1f} | {len(ids) / wall * 3600:,.0f} | "
                f"{cpu / len(ids):.2f} | {3600 * len(ids) / cpu:,.0f} | "
                f"{', '.join(statuses)} | {load_before:.1f} / {load_after:.1f} |"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _pg(f'DROP DATABASE IF EXISTS "{django_db}" WITH (FORCE)', "postgres")
        import redis

        redis.Redis.from_url(redis_url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
    report = REPO / "bench" / "RESULTS-runs-per-hour.md"
    report.write_text(
        "# Runs per hour: 100 small sources on 1 and 2 Celery workers\n\n"
        f"`bench/runs_per_hour.py --sources {args.sources} --rows {args.rows}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        "shared with other engineers' test runs (load average shown: before / after each "
        "round). Each run: PostgreSQL -> its own DuckDB file, catalog load of 1,000 rows; "
        "Django's database on PostgreSQL; Redis broker; workers `--pool solo`.\n\n"
        "| workers | runs | wall s | runs/hour | worker CPU s per run | runs/hour per busy core "
        "| statuses | load avg |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
        "Worker CPU is the workers' own user + system time (`/proc/<pid>/stat`) during the "
        "round: on a shared machine it says what a run costs, which the wall time (waiting for "
        "the cores other work holds) does not. Per-run work outside the workers (PostgreSQL, "
        "Redis, the enqueueing process) is not in it.\n"
    )
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
