"""Parallel runs (issue 14): `etl run --parallel N` for N = 1, 2, 4 on TPC-H lineitem, PostgreSQL
and MariaDB into DuckDB: wall time, peak RSS of the whole process tree (coordinator, chunk
processes, forkserver), the CPU seconds our processes and the source server used.

Reads the bench tables `bench.lineitem` that `bench/run.py` loads (PostgreSQL schema `bench`,
MariaDB database `bench`; read-only here; run `make bench` once to create them). The source
server's CPU: PostgreSQL, the backends of the run (application_name `etl-runner`, sampled while
they live); MariaDB, the whole `mariadbd` process (one process for every session: on a shared
machine it includes other users' queries, so the report says so).

    bench/.venv/bin/python bench/parallel.py --processes 1,2,4 --routes pg,my --repeat 1 \\
        --out bench/RESULTS-parallel.md
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
from run import BENCH, MY, PG, PROJECT_PY, ROOT, base_env, machine_facts  # noqa: E402

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
        ["psql", "-X", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc",
         "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = 'etl-runner'"],
        capture_output=True, text=True, check=False,
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
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**base_env(), "ETL_LOG_LEVEL": "WARNING"}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    outputs: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:  # noqa: ANN001
        outputs[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
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
    result = {"wall": wall, "peak": peak, "cpu": sum(ours.values()), "server_cpu": server_cpu,
              "rc": proc.returncode}
    if proc.returncode == 0:
        result["rows"] = json.loads(outputs["out"])["rows_loaded"]
    else:
        result["error"] = outputs["err"].decode(errors="replace")[-2000:]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated N of --parallel N")
    parser.add_argument("--routes", default="pg,my", help="pg, my")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-parallel.md")
    parser.add_argument("--etl-rev", default="HEAD",
                        help="git revision of etl/ to run (a snapshot, so edits in the working "
                        "tree during the run are not measured)")
    return run(parser.parse_args())


def run(args: argparse.Namespace) -> int:
    """Measure and write the report (`args`: processes, routes, repeat, out, etl_rev)."""
    work = BENCH / "work" / "parallel"
    work.mkdir(parents=True, exist_ok=True)
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.etl_rev],
                         capture_output=True, text=True, check=True).stdout.strip()
    source_dir = work / f"etl-{sha}"
    if not (source_dir / "etl" / "__main__.py").exists():
        source_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(f"git -C {ROOT} archive {sha} etl | tar -x -C {source_dir}", shell=True,
                       check=True)
    rows_out = []
    for key in args.routes.split(","):
        label, source_type, params, table = SOURCES[key]
        for n in [int(x) for x in args.processes.split(",")]:
            dest = work / f"{key}_{n}.duckdb"
            config = work / f"{key}_{n}.json"
            config.write_text(json.dumps({
                "source_type": source_type, "connection_params": params,
                "source_table_name": table, "load_type": "catalog", "dest_table_name": "lineitem",
                "destination": {"type": "duckdb", "path": str(dest), "dataset": "bench"},
            }))
            samples = []
            for _ in range(args.repeat):
                for suffix in ("", ".wal"):
                    Path(f"{dest}{suffix}").unlink(missing_ok=True)
                cmd = [str(PROJECT_PY), "-m", "etl", "run", "--config", str(config), "--json",
                       "--parallel", str(n)]
                sample = measure_run(cmd, source_type, source_dir)
                print(f"{label} --parallel {n}: {json.dumps({k: v for k, v in sample.items() if k != 'error'})}"
                      + (f" FAILED {sample['error']}" if sample["rc"] else ""), flush=True)
                samples.append(sample)
            ok = [s for s in samples if s["rc"] == 0]
            rows_out.append((label, n, ok, samples))
            for suffix in ("", ".wal"):
                Path(f"{dest}{suffix}").unlink(missing_ok=True)
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
        "| Source | N | wall (s) | rows/s | peak RSS, process tree (MB) | our CPU (s) | source server CPU (s) | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, n, ok, samples in rows_out:
        if not ok:
            lines.append(f"| {label} | {n} | failed | | | | | |")
            continue
        wall = statistics.median(s["wall"] for s in ok)
        lines.append(
            f"| {label} | {n} | {wall:.1f} | {ok[0]['rows'] / wall:,.0f} | "
            f"{max(s['peak'] for s in ok) / 2**20:,.0f} | {statistics.median(s['cpu'] for s in ok):.1f} | "
            f"{statistics.median(s['server_cpu'] for s in ok):.1f} | {ok[0]['rows']:,} |"
        )
    lines += [
        "",
        "Source server CPU: PostgreSQL, the backends serving the run's own connections (matched by "
        "client port, sampled every 0.25 s while they live, so a lower bound); "
        "MariaDB, the whole `mariadbd` process during the run (it includes other sessions' "
        "queries on this shared server).",
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
