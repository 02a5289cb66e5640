"""Parallel runs (issue 14): `etl run --parallel N` for N = 1, 2, 4 on TPC-H lineitem, PostgreSQL
and MariaDB into DuckDB: wall time, peak RSS of the whole process tree (coordinator, chunk
processes, forkserver), the CPU seconds our processes and the source server used. Then the
same table as one control-plane run of `--chunks` chunks on 1, 2 and 4 `celery worker --pool
solo` processes (`--workers`; bench/parallel_workers.py, run with the project's `.venv`).

Reads the bench tables `bench.lineitem` that `bench/run.py` loads (PostgreSQL schema `bench`,
MariaDB database `bench`; read-only here), loading them first (bench/run.py's data preparation,
cached in `--data-dir`) when they are missing or of another scale. The source
server's CPU: PostgreSQL, the backends of the run (application_name `etl-runner`, sampled while
they live); MariaDB, the whole `mariadbd` process (one process for every session: on a shared
machine it includes other users' queries, so the report says so).

    bench/.venv/bin/python bench/parallel.py --processes 1,2,4 --workers 1,2,4 --chunks 4 \\
        --routes pg,my --repeat 1 --out bench/RESULTS-parallel.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    BENCH,
    MY,
    PG,
    PROJECT_PY,
    ROOT,
    base_env,
    load_databases,
    machine_facts,
    mysql,
    prepare_data,
    psql,
)

SOURCES = {
    "pg": ("PostgreSQL", "postgresql", PG, "bench.lineitem"),
    "my": ("MariaDB", "mysql", MY, "lineitem"),
}


def _pg_backends(tree: list[psutil.Process]) -> list[int]:
    """PIDs of the PostgreSQL backends serving `tree`'s connections (matched by client port:
    other users' ETL Runner sessions on this shared server are left out)."""
    ports = set()
    for process in tree:
        try:
            for conn in process.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == PG["port"]:
                    ports.add(conn.laddr.port)
        except psutil.Error:
            pass
    if not ports:
        return []
    out = subprocess.run(
        [
            "psql",
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-Atc",
            "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = 'etl-runner'",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pairs = [line.split("|") for line in out.split()]
    return [int(pid) for pid, port in pairs if port and int(port) in ports]


def _mariadbd() -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("mariadbd", "mysqld"):
            return process
    return None


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure_run(cmd: list[str], source: str, cwd: Path, timeout: float = 7200) -> dict:
    """Run `cmd`; return wall seconds, peak RSS of its process tree, its CPU seconds and the
    source server's CPU seconds during the run."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**base_env(), "ETL_LOG_LEVEL": "WARNING"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    root = psutil.Process(proc.pid)
    outputs: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:  # noqa: ANN001
        outputs[name] = stream.read()

    threads = [
        threading.Thread(target=drain, args=(n, s), daemon=True)
        for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for thread in threads:
        thread.start()
    peak, ours, server = 0, {}, {}
    mariadbd = _mariadbd() if source == "mysql" else None
    server_start = _cpu(mariadbd) if mariadbd else 0.0
    last_backend_poll = 0.0
    while proc.poll() is None:
        total = 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for process in tree:
            try:
                total += process.memory_info().rss
                ours[process.pid] = _cpu(process)
            except psutil.Error:
                pass
        peak = max(peak, total)
        if source == "postgresql" and time.perf_counter() - last_backend_poll > 0.25:
            last_backend_poll = time.perf_counter()
            for pid in _pg_backends(tree):
                try:
                    server[pid] = _cpu(psutil.Process(pid))
                except psutil.Error:
                    pass
        if time.perf_counter() - start > timeout:
            proc.kill()
        time.sleep(0.05)
    wall = time.perf_counter() - start
    for thread in threads:
        thread.join()
    server_cpu = (_cpu(mariadbd) - server_start) if mariadbd else sum(server.values())
    result = {
        "wall": wall,
        "peak": peak,
        "cpu": sum(ours.values()),
        "server_cpu": server_cpu,
        "rc": proc.returncode,
        "load": [load_before, os.getloadavg()[0]],
    }
    if proc.returncode == 0:
        result["rows"] = json.loads(outputs["out"])["rows_loaded"]
    else:
        result["error"] = outputs["err"].decode(errors="replace")[-2000:]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated N of --parallel N")
    parser.add_argument(
        "--workers", default="1,2,4", help="comma-separated Celery worker counts ('' for none)"
    )
    parser.add_argument("--chunks", type=int, default=4, help="chunks of the workers' runs")
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale of the tables")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="bench/run.py's data cache (default bench/data/sf<scale>)",
    )
    parser.add_argument("--routes", default="pg,my", help="pg, my")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-parallel.md")
    parser.add_argument(
        "--etl-rev",
        default="HEAD",
        help="git revision of etl/ to run (a snapshot, so edits in the working "
        "tree during the run are not measured)",
    )
    return run(parser.parse_args())


def _tables_at(scale: float) -> bool:
    """Whether both `bench.lineitem` tables hold TPC-H `scale` (bench/run.py's `bench_meta`
    marker `<scale>:<rows>`), so no data needs generating."""
    try:
        markers = [psql("SELECT v FROM bench.bench_meta"), mysql("SELECT v FROM bench_meta")]
    except RuntimeError:
        return False
    return all(marker.strip().startswith(f"{scale}:") for marker in markers)


def run(args: argparse.Namespace) -> int:
    """Measure and write the report (`args`: processes, routes, repeat, out, etl_rev; optional:
    workers, chunks, scale, data_dir)."""
    workers = getattr(args, "workers", "1,2,4")
    chunks = getattr(args, "chunks", 4)
    scale = getattr(args, "scale", 1.0)
    data_dir = getattr(args, "data_dir", None) or BENCH / "data" / f"sf{scale:g}"
    if not _tables_at(scale):  # bench/run.py's tables, shared with its database routes
        load_databases(scale, prepare_data(scale, data_dir))
    work = BENCH / "work" / "parallel"
    work.mkdir(parents=True, exist_ok=True)
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.etl_rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source_dir = work / f"etl-{sha}"
    if not (source_dir / "ml_platform" / "tasks.py").exists():  # the workers need the control plane
        source_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            f"git -C {ROOT} archive {sha} etl ml_platform config manage.py "
            f"| tar -x -C {source_dir}",
            shell=True,
            check=True,
        )
    rows_out = []
    for key in args.routes.split(","):
        label, source_type, params, table = SOURCES[key]
        for n in [int(x) for x in args.processes.split(",")]:
            dest = work / f"{key}_{n}.duckdb"
            config = work / f"{key}_{n}.json"
            config.write_text(
                json.dumps(
                    {
                        "source_type": source_type,
                        "connection_params": params,
                        "source_table_name": table,
                        "load_type": "catalog",
                        "dest_table_name": "lineitem",
                        "destination": {"type": "duckdb", "path": str(dest), "dataset": "bench"},
                    }
                )
            )
            samples = []
            for _ in range(args.repeat):
                for suffix in ("", ".wal"):
                    Path(f"{dest}{suffix}").unlink(missing_ok=True)
                cmd = [
                    str(PROJECT_PY),
                    "-m",
                    "etl",
                    "run",
                    "--config",
                    str(config),
                    "--json",
                    "--parallel",
                    str(n),
                ]
                sample = measure_run(cmd, source_type, source_dir)
                print(
                    f"{label} --parallel {n}: {json.dumps({k: v for k, v in sample.items() if k != 'error'})}"
                    + (f" FAILED {sample['error']}" if sample["rc"] else ""),
                    flush=True,
                )
                samples.append(sample)
            ok = [s for s in samples if s["rc"] == 0]
            rows_out.append((label, n, ok, samples))
            for suffix in ("", ".wal"):
                Path(f"{dest}{suffix}").unlink(missing_ok=True)
    rounds = []
    if workers:  # one invocation for every route and worker count: one control-plane database
        completed = subprocess.run(
            [
                str(PROJECT_PY),
                str(BENCH / "parallel_workers.py"),
                "--code",
                str(source_dir),
                "--routes",
                args.routes,
                "--workers",
                workers,
                "--chunks",
                str(chunks),
            ],
            env=base_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        rounds = [
            json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")
        ]
        for item in rounds:
            print(
                f"{SOURCES[item['route']][0]} {item['workers']} workers x {chunks} chunks: "
                f"{json.dumps(item)}",
                flush=True,
            )
        if completed.returncode:
            print(f"parallel_workers.py FAILED: {completed.stderr[-3000:]}", flush=True)
    lines = [
        "# Parallel runs — `etl run --parallel N`, TPC-H lineitem SF 1 → DuckDB",
        "",
        f"`{' '.join(['bench/.venv/bin/python', 'bench/parallel.py', *sys.argv[1:]])}` "
        f"on {time.strftime('%Y-%m-%d %H:%M')} UTC, ETL Runner `git archive {sha} etl`.",
        "",
        "**The machine is shared**: 2 cores for several engineers' tests and benchmarks at the same "
        "time (load average below), so absolute times are noisy; compare the rows of one run. "
        "Catalog load (full read), DuckDB destination, N chunks read by N processes, one commit.",
        "",
        "| Source | N | wall (s) | rows/s | peak RSS, process tree (MB) | our CPU (s) | source server CPU (s) | rows | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, n, ok, _samples in rows_out:
        if not ok:
            lines.append(f"| {label} | {n} | failed | | | | | | |")
            continue
        wall = statistics.median(s["wall"] for s in ok)
        lines.append(
            f"| {label} | {n} | {wall:.1f} | {ok[0]['rows'] / wall:,.0f} | "
            f"{max(s['peak'] for s in ok) / 2**20:,.0f} | {statistics.median(s['cpu'] for s in ok):.1f} | "
            f"{statistics.median(s['server_cpu'] for s in ok):.1f} | {ok[0]['rows']:,} | "
            f"{ok[0]['load'][0]:.1f} / {ok[-1]['load'][1]:.1f} |"
        )
    if workers:
        lines += [
            "",
            f"## Celery workers: one run of {chunks} chunks on W `celery worker --pool solo` processes",
            "",
            "The control-plane path (ml_platform/services/runs_parallel.py): the run's task plans, "
            "publishes one task per chunk, extracts chunks itself while it waits and commits; "
            "Django's database on PostgreSQL, Redis broker, chunks staged in a local folder. Wall: "
            "from the enqueue to the run's end (queue latency and the coordinator's 1 s polling "
            "included). Peak RSS: the sum of the worker processes' RSS (idle RSS: before the "
            "run). CPU: the workers' own, during the run.",
            "",
            "| Source | workers | wall (s) | rows/s | peak RSS, workers (MB) | idle RSS (MB) | workers' CPU (s) | source server CPU (s) | rows | workers that read chunks | load avg before / after |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for item in rounds:
            label = SOURCES[item["route"]][0]
            if item["status"] != "succeeded":
                lines.append(
                    f"| {label} | {item['workers']} | {item['status']}: "
                    f"{item['error'][:80]} | | | | | | | | |"
                )
                continue
            lines.append(
                f"| {label} | {item['workers']} | {item['wall']:.1f} | "
                f"{item['rows'] / item['wall']:,.0f} | {item['peak'] / 2**20:,.0f} | "
                f"{item['idle_rss'] / 2**20:,.0f} | {item['cpu']:.1f} | {item['server_cpu']:.1f} | "
                f"{item['rows']:,} | {item['chunk_workers']} | "
                f"{item['load'][0]:.1f} / {item['load'][1]:.1f} |"
            )
    lines += [
        "",
        "Source server CPU: PostgreSQL, the backends serving the run's own connections (matched by "
        "client port, sampled every 0.25 s while they live, so a lower bound); "
        "MariaDB, the whole `mariadbd` process during the run (it includes other sessions' "
        "queries on this shared server). Workers' runs: PostgreSQL, the backends of the run's "
        "connections (named after the run, sampled every 0.25 s: a lower bound).",
        "",
        "## Machine",
        *machine_facts(),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
