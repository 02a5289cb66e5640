"""Parallel runs on Celery workers (issue 14): one TPC-H lineitem run of `parallelism` C on W
`celery worker --pool solo` processes, for each W given, PostgreSQL and/or MariaDB into DuckDB.

Run by bench/parallel.py (`--workers`) with the project's `.venv` (Django and the engine), from
a `git archive` of etl/, ml_platform/ and config/ (`--code`), so edits in the working tree are
not measured. Prints one JSON line per round: wall seconds from the enqueue to the run's end,
peak RSS of the worker processes (sum, sampled every 50 ms), their CPU seconds during the run,
the source server's CPU seconds, rows, the chunks' workers and the load average before/after.

The control plane is as in production: Django's database on PostgreSQL (a database
`etl_parbench_<hex>`, dropped at the end), the Redis broker (a database claimed as
bench/runs_per_hour.py does), chunks staged in a local folder all workers reach. The source
tables are bench/run.py's `bench.lineitem` (read-only). No psutil in the project's virtualenv:
CPU and memory come from /proc.

    .venv/bin/python bench/parallel_workers.py --code DIR --routes pg,my --workers 1,2,4 --chunks 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_per_hour import PG, _cpu_s, _pg, _redis_db_claim  # noqa: E402

SOURCES = {
    "pg": ("postgresql", 5432, "test", "postgres", "bench.lineitem"),
    "my": ("mysql", 3306, "bench", "root", "lineitem"),
}


def _rss(pid: int) -> int:
    """Resident bytes of `pid` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    try:
        return _cpu_s(pid)
    except OSError:
        return 0.0


def _mariadbd() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
            except OSError:
                pass
    return None


def _worker(code: Path, env: dict[str, str], queue: str, name: str, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
             "-Q", queue, "-n", f"{name}@%h"],
            cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _ready(logs: list[Path], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready after {timeout_s} s: {logs}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="folder with etl/, ml_platform/")
    parser.add_argument("--routes", default="pg,my")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--chunks", type=int, default=4, help="the data source's parallelism")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:10]
    redis_url = _redis_db_claim()
    django_db, queue, app = f"etl_parbench_{tag}", f"etl-parbench-{tag}", f"etl-parbench-{tag}"
    work = Path(tempfile.mkdtemp(prefix="etl-parbench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{django_db}",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ETL_STAGING_DIR": str(work / "staging"),
        "ETL_LOG_LEVEL": "WARNING",
    }
    env.pop("VIRTUAL_ENV", None)
    _pg(f'CREATE DATABASE "{django_db}"', "postgres")
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=args.code, env=env, check=True
        )
        os.environ.update(env)
        sys.path.insert(0, str(args.code))
        import django

        django.setup()
        from ml_platform.services import connection_create, data_source_create

        for key in args.routes.split(","):
            kind, port, database, user, table = SOURCES[key]
            connection = connection_create(
                name=f"{key} {tag}", type=kind, host="127.0.0.1", port=port, database=database,
                user=user, max_readers=max(4, args.chunks), extra_params={"application_name": app},
            )  # fmt: skip
            for count in [int(n) for n in args.workers.split(",")]:
                source = data_source_create(
                    name=f"{key} w{count} {tag}",
                    connection=connection,
                    dest_table_name="lineitem",
                    source_table_name=table,
                    load_type="catalog",
                    parallelism=args.chunks,
                    destination={
                        "type": "duckdb",
                        "path": str(work / f"{key}_w{count}.duckdb"),
                        "dataset": "bench",
                    },
                )
                logs = [work / f"{key}-w{count}-{i}.log" for i in range(count)]
                workers = [
                    _worker(args.code, env, queue, f"pb{i}-{tag}", log)
                    for i, log in enumerate(logs)
                ]
                try:
                    _ready(logs)
                    pids = [worker.pid for worker in workers]
                    figures = _round(key, count, args.chunks, source, pids, app)
                    print(json.dumps(figures), flush=True)
                finally:
                    for worker in workers:
                        worker.kill()
                        worker.wait()
                for suffix in ("", ".wal"):
                    Path(f"{work / f'{key}_w{count}.duckdb'}{suffix}").unlink(missing_ok=True)
    finally:
        from django.db import connections

        connections.close_all()
        _pg(f'DROP DATABASE IF EXISTS "{django_db}" WITH (FORCE)', "postgres")
        import redis

        redis.Redis.from_url(redis_url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _round(key: str, count: int, chunks: int, source: object, pids: list[int], app: str) -> dict:
    """Enqueue one run of `source`, sample the workers `pids` and the source server until it
    ends; return the round's figures."""
    from ml_platform.models import EtlRun, EtlRunChunk
    from ml_platform.services import etl_run_enqueue

    idle_rss = sum(_rss(pid) for pid in pids)
    cpu_before = sum(_cpu(pid) for pid in pids)
    mariadbd = _mariadbd() if key == "my" else None
    server_before = _cpu(mariadbd) if mariadbd else 0.0
    backends: dict[int, float] = {}
    load_before = os.getloadavg()[0]
    peak, last_poll = 0, 0.0
    started = time.perf_counter()
    run = etl_run_enqueue(data_source=source, trigger="api")
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as conn:
        while True:
            peak = max(peak, sum(_rss(pid) for pid in pids))
            if time.perf_counter() - last_poll > 0.25:
                last_poll = time.perf_counter()
                if key == "pg":  # the run's backends: readers and the snapshot session
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                        [f"{app}%"],
                    ).fetchall():
                        backends[pid] = max(backends.get(pid, 0.0), _cpu(pid))
                status = EtlRun.objects.values_list("status", flat=True).get(pk=run.pk)
                if status not in EtlRun.ACTIVE_STATUSES:
                    break
            time.sleep(0.05)
    wall = time.perf_counter() - started
    run = EtlRun.objects.get(pk=run.pk)
    names = EtlRunChunk.objects.filter(run=run).values_list("worker", flat=True)
    return {
        "route": key, "workers": count, "chunks": chunks, "status": run.status,
        "error": run.error_message[:500], "wall": wall, "peak": peak, "idle_rss": idle_rss,
        "cpu": sum(_cpu(pid) for pid in pids) - cpu_before,
        "server_cpu": (_cpu(mariadbd) - server_before) if mariadbd else sum(backends.values()),
        "rows": run.rows_loaded, "chunk_workers": len({n.split("@")[0] for n in names}),
        "load": [load_before, os.getloadavg()[0]],
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
