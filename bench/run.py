"""ETL Runner benchmark (issues 6 and 18): TPC-H lineitem into DuckDB (and the BigQuery
emulator), side by side with dlt, Sling and the raw limits of this machine.

Run by `make bench` / `make bench-quick` with bench/.venv's Python (the peers live there; ETL
Runner runs from the project's .venv as `python -m etl run --config`). Nothing is downloaded at
run time: the data comes from `tpchgen-cli`, the tools from the two virtualenvs.

    bench/.venv/bin/python bench/run.py --scale 1 --repeat 3 --out bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BVENV = BENCH / ".venv"
BPY = BVENV / "bin" / "python"
PROJECT_PY = Path(os.environ.get("ETL_PYTHON", ROOT / ".venv" / "bin" / "python"))
DUCKDB_CLI = BVENV / "bin" / "duckdb"
DUCKDB_HOME = BVENV / "duckdb-home"  # HOME for the DuckDB CLI: its json/httpfs extensions
SLING_HOME = BVENV / "sling-home"
DLT_SCRIPT = BENCH / "dlt_load.py"

PG = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres", "password": ""}
MY = {"host": "127.0.0.1", "port": 3306, "database": "bench", "user": "root", "password": ""}
PG_URL_SA = "postgresql://postgres@127.0.0.1:5432/test"
MY_URL_SA = "mysql+pymysql://root@127.0.0.1:3306/bench"
PK = ["l_orderkey", "l_linenumber"]
BASE_TS = "2024-01-01 00:00:00"

COLUMNS_PG = """
    l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
    l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL, l_returnflag varchar(1) NOT NULL,
    l_linestatus varchar(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
    l_receiptdate date NOT NULL, l_shipinstruct varchar(25) NOT NULL,
    l_shipmode varchar(10) NOT NULL, l_comment varchar(44) NOT NULL,
    l_updated_at timestamp NOT NULL"""
COLUMNS_MY = COLUMNS_PG.replace("timestamp NOT NULL", "datetime(6) NOT NULL")


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall: float
    peak_rss: int
    rc: int
    stdout: str
    stderr: str
    server_cpu: float | None = None  # CPU seconds of the database server during the run


SERVERS = ("postgres", "mariadbd", "mysqld")
"""Process names of the database servers whose CPU time is sampled during each run."""


class ServerCpu:
    """CPU seconds the database server processes spent between `start` and the last `poll`
    (backends started during the run count from zero; a backend living less than one poll
    interval is missed). All sessions of the server count: on a shared machine other
    clients' queries are included."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.poll(initial=True)

    def poll(self, initial: bool = False) -> None:
        for p in psutil.process_iter(["name"]):
            if p.info["name"] not in SERVERS:
                continue
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            self.first.setdefault(p.pid, used if initial else 0.0)
            self.last[p.pid] = used

    @property
    def seconds(self) -> float:
        return sum(used - self.first.get(pid, 0.0) for pid, used in self.last.items())


def measure(
    cmd: list[str] | str,
    env: dict | None = None,
    cwd: Path | None = None,
    stdout_devnull: bool = False,
    timeout: float = 3600,
) -> Sample:
    """Run `cmd`, sampling the RSS of its whole process tree every ~20 ms."""
    out_target = subprocess.DEVNULL if stdout_devnull else subprocess.PIPE
    server = ServerCpu()
    polled = 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=out_target, stderr=subprocess.PIPE, shell=isinstance(cmd, str)
    )
    root = psutil.Process(proc.pid)
    peak = 0
    # Drain pipes in threads so a chatty child never blocks on a full pipe.
    import threading

    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(stream, key):
        for block in iter(lambda: stream.read(65536), b""):
            chunks[key].append(block)

    threads = []
    if proc.stdout is not None:
        threads.append(threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True))
    threads.append(threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True))
    for t in threads:
        t.start()
    while proc.poll() is None:
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total)
        if time.perf_counter() - polled > 0.5:
            server.poll()
            polled = time.perf_counter()
        if time.perf_counter() - start > timeout:
            proc.kill()
        time.sleep(0.02)
    wall = time.perf_counter() - start
    server.poll()
    for t in threads:
        t.join()
    return Sample(
        wall,
        peak,
        proc.returncode,
        b"".join(chunks["out"]).decode(errors="replace"),
        b"".join(chunks["err"]).decode(errors="replace"),
        server_cpu=server.seconds,
    )


def sh(cmd: str, **kw) -> str:
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, **kw)
    if res.returncode:
        raise RuntimeError(f"{cmd[:200]}\n{res.stderr[-3000:]}")
    return res.stdout


def psql(sql: str) -> str:
    return sh(
        f"psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d test -Atc {shlex.quote(sql)}"
    )


def mysql(sql: str, db: str = "bench") -> str:
    return sh(f"mariadb --local-infile=1 -h127.0.0.1 -uroot -N -B {db} -e {shlex.quote(sql)}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- data


def prepare_data(scale: float, data_dir: Path) -> dict:
    """tpchgen-cli Parquet -> plain-string Parquet, CSV, JSONL (+ the DB CSV with l_updated_at)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    files = data_dir / "files"
    files.mkdir(exist_ok=True)
    done = data_dir / ".done"
    if not done.exists():
        t0 = time.perf_counter()
        raw = data_dir / "raw"
        shutil.rmtree(raw, ignore_errors=True)
        sh(f"{BVENV}/bin/tpchgen-cli parquet -s {scale} --tables lineitem --output-dir {raw}")
        log(f"tpchgen-cli SF {scale}: {time.perf_counter() - t0:.1f}s")
        # tpchgen writes Utf8View strings, which dlt's read_parquet rejects (DESIGN §6), so the
        # benchmark's Parquet is rewritten with plain strings, as most writers produce.
        src = pq.ParquetFile(raw / "lineitem.parquet")
        schema = pa.schema(
            [
                pa.field(
                    f.name,
                    pa.string() if pa.types.is_string_view(f.type) else f.type,
                    nullable=f.nullable,
                )
                for f in src.schema_arrow
            ]
        )
        with pq.ParquetWriter(files / "lineitem.parquet", schema, compression="snappy") as w:
            for batch in src.iter_batches(batch_size=200_000):
                w.write_table(pa.Table.from_batches([batch]).cast(schema), row_group_size=200_000)
        con = duckdb.connect()
        con.execute("SET threads=2")
        pf = str(files / "lineitem.parquet")
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{pf}')) TO '{files / 'lineitem.csv'}' "
            "(FORMAT csv, HEADER true)"
        )
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{pf}')) TO '{files / 'lineitem.jsonl'}' "
            "(FORMAT json)"
        )
        con.execute(
            f"COPY (SELECT *, TIMESTAMP '{BASE_TS}' + to_seconds(l_orderkey) AS l_updated_at "
            f"FROM read_parquet('{pf}')) TO '{data_dir / 'db_lineitem.csv'}' "
            "(FORMAT csv, HEADER true, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')"
        )
        con.close()
        shutil.rmtree(raw, ignore_errors=True)
        done.write_text(str(scale))
        log(f"data files ready: {time.perf_counter() - t0:.1f}s")
    rows = pq.ParquetFile(files / "lineitem.parquet").metadata.num_rows
    return {
        "rows": rows,
        "csv": files / "lineitem.csv",
        "parquet": files / "lineitem.parquet",
        "jsonl": files / "lineitem.jsonl",
        "db_csv": data_dir / "db_lineitem.csv",
    }


def load_databases(scale: float, data: dict) -> None:
    """PostgreSQL (COPY) and MariaDB (LOAD DATA LOCAL INFILE), PK + index on l_updated_at."""
    marker = f"{scale}:{data['rows']}"
    try:
        pg_ok = psql("SELECT v FROM bench.bench_meta").strip() == marker
    except RuntimeError:
        pg_ok = False
    if not pg_ok:
        t0 = time.perf_counter()
        psql(
            "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;"
            f"CREATE TABLE bench.lineitem ({COLUMNS_PG})"
        )
        sh(
            "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d test -c "
            + shlex.quote(f"\\copy bench.lineitem FROM '{data['db_csv']}' CSV HEADER")
        )
        psql(
            "ALTER TABLE bench.lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);"
            "CREATE INDEX lineitem_updated ON bench.lineitem (l_updated_at)"
        )
        psql("VACUUM ANALYZE bench.lineitem")
        psql(
            f"CREATE TABLE bench.bench_meta (v text); INSERT INTO bench.bench_meta VALUES ('{marker}')"
        )
        log(f"PostgreSQL bench.lineitem loaded: {time.perf_counter() - t0:.1f}s")
    try:
        my_ok = mysql("SELECT v FROM bench_meta").strip() == marker
    except RuntimeError:
        my_ok = False
    if not my_ok:
        t0 = time.perf_counter()
        mysql("DROP DATABASE IF EXISTS bench; CREATE DATABASE bench", db="test")
        mysql(
            f"CREATE TABLE lineitem ({COLUMNS_MY}, PRIMARY KEY (l_orderkey, l_linenumber)) "
            "ENGINE=InnoDB"
        )
        mysql(
            f"SET unique_checks=0; LOAD DATA LOCAL INFILE '{data['db_csv']}' INTO TABLE lineitem "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' "
            "IGNORE 1 LINES"
        )
        mysql(
            "CREATE INDEX lineitem_updated ON lineitem (l_updated_at); ANALYZE TABLE lineitem;"
            f"CREATE TABLE bench_meta (v text); INSERT INTO bench_meta VALUES ('{marker}')"
        )
        log(f"MariaDB bench.lineitem loaded: {time.perf_counter() - t0:.1f}s")


# --------------------------------------------------------------------------- tools


@dataclass
class Run:
    cmd: list[str] | str
    env: dict | None = None
    cwd: Path | None = None
    devnull: bool = False
    dest: Path | None = None  # DuckDB file removed before the run, counted after
    count_with: str = "py"  # "py" (duckdb 2.x) or "cli" (duckdb-cli 1.5, Sling's files)
    table: str = "bench.lineitem"
    expect_rows: int | None = None
    rows_from: str = "dest"  # "dest", "etl", "dlt", "sling", "expect"
    clean_dirs: list = field(default_factory=list)  # removed before each run (dlt's local state)


@dataclass
class Result:
    route: str
    tool: str
    kind: str  # "peer", "ours", "limit"
    rows: int
    bytes: int
    samples: list[Sample] = field(default_factory=list)
    rows_seen: list[int] = field(default_factory=list)
    note: str = ""
    error: str = ""
    once: bool = False  # a slow reference run once whatever --repeat (bqsrc's REST pages)

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.rc == 0]

    @property
    def median(self) -> float | None:
        ok = self.ok
        return statistics.median(s.wall for s in ok) if ok else None

    @property
    def rps(self) -> float | None:
        m = self.median
        return self.rows / m if m else None

    @property
    def peak(self) -> int | None:
        ok = self.ok
        return max(s.peak_rss for s in ok) if ok else None

    @property
    def server_cpu(self) -> float | None:
        cpu = [s.server_cpu for s in self.ok if s.server_cpu is not None]
        return statistics.median(cpu) if cpu else None


def base_env() -> dict:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def sling_env(duck: Path) -> dict:
    env = base_env()
    env.update(
        {
            "HOME": str(DUCKDB_HOME),
            "SLING_HOME_DIR": str(SLING_HOME),
            "DUCKDB_PATH": str(DUCKDB_CLI),
            "SLING_DISABLE_TELEMETRY": "true",
            "SLING_THREADS": "1",
            "BENCH_PG": "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable",
            "BENCH_MY": "mysql://root@127.0.0.1:3306/bench",
            "BENCH_DUCK": f"duckdb://{duck}",
        }
    )
    return env


def sling_bin() -> str:
    import sling_linux_amd64

    return sling_linux_amd64.SLING_BIN


ETL_SRC = {"dir": ROOT, "rev": "working tree"}


def snapshot_etl(rev: str, work: Path) -> None:
    """Run ETL Runner from `git archive <rev> etl` so concurrent edits in the working tree do not
    leak into the numbers ("worktree" runs the working tree as it is)."""
    if rev == "worktree":
        ETL_SRC.update(
            dir=ROOT, rev="working tree at " + sh(f"git -C {ROOT} rev-parse --short HEAD").strip()
        )
        return
    sha = sh(f"git -C {ROOT} rev-parse --short {shlex.quote(rev)}").strip()
    target = work / f"etl-{sha}"
    if not (target / "etl" / "__main__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        sh(f"git -C {ROOT} archive {sha} etl | tar -x -C {target}")
        # runs set PYTHONDONTWRITEBYTECODE: compile once, as an installed package is
        sh(f"{PROJECT_PY} -m compileall -q {target / 'etl'}")
    ETL_SRC.update(dir=target, rev=sha)


def etl_run(work: Path, name: str, config: dict, state: Path | None = None) -> Run:
    cfg = work / f"{name}.json"
    cfg.write_text(json.dumps(config, indent=2))
    cmd = [str(PROJECT_PY), "-m", "etl", "run", "--json", "--config", str(cfg)]
    if state:
        cmd += ["--state", str(state)]
    env = base_env()
    env["ETL_LOG_LEVEL"] = "WARNING"
    return Run(cmd, env=env, cwd=ETL_SRC["dir"], rows_from="etl")


def etl_db_config(source: str, dest: Path, load_type: str = "catalog", **extra) -> dict:
    return {
        "source_type": source,
        "connection_params": dict(PG if source == "postgresql" else MY),
        "source_table_name": "bench.lineitem" if source == "postgresql" else "lineitem",
        "load_type": load_type,
        "dest_table_name": "lineitem",
        "destination": {"type": "duckdb", "path": str(dest), "dataset": "bench"},
        **extra,
    }


def etl_file_config(fmt: str, path: Path, dest: Path) -> dict:
    return {
        "source_type": "local",
        "connection_params": {"base_path": str(path.parent)},
        "file_pattern": path.name,
        "file_format": "jsonl" if fmt == "jsonl" else fmt,
        "load_type": "catalog",
        "dest_table_name": "lineitem",
        "destination": {"type": "duckdb", "path": str(dest), "dataset": "bench"},
    }


def dlt_run(work: Path, name: str, dest: Path, *args: str) -> Run:
    return Run(
        dlt_cmd(work, name, dest, *args),
        env=base_env(),
        dest=dest,
        rows_from="dlt",
        clean_dirs=[work / "dlt_pipelines" / name],
    )


def dlt_cmd(work: Path, name: str, dest: Path, *args: str) -> list[str]:
    return [
        str(BPY),
        str(DLT_SCRIPT),
        "--duckdb",
        str(dest),
        "--pipelines-dir",
        str(work / "dlt_pipelines"),
        "--name",
        name,
        *args,
    ]


def duck_limit(fmt: str, path: Path, dest: Path) -> Run:
    reader = {"csv": "read_csv", "parquet": "read_parquet", "jsonl": "read_json"}[fmt]
    code = (
        "import duckdb,sys; c=duckdb.connect(sys.argv[1]); c.execute('CREATE SCHEMA bench'); "
        f"c.execute(\"CREATE TABLE bench.lineitem AS SELECT * FROM {reader}('{path}')\"); c.close()"
    )
    return Run([str(BPY), "-c", code, str(dest)], env=base_env(), dest=dest)


def count_rows(run: Run) -> int:
    if run.count_with == "cli":
        out = sh(
            f"{DUCKDB_CLI} -readonly -noheader -csv {run.dest} "
            f"-c 'SELECT count(*) FROM {run.table}'",
            env={**base_env(), "HOME": str(DUCKDB_HOME)},
        )
        return int(out.strip().splitlines()[-1])
    import duckdb

    con = duckdb.connect(str(run.dest), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {run.table}").fetchone()[0])
    finally:
        con.close()


def rows_of(run: Run, sample: Sample) -> int:
    if run.rows_from == "etl":
        return int(json.loads(sample.stdout)["rows_loaded"])
    if run.rows_from == "dlt":
        return int(json.loads(sample.stdout.strip().splitlines()[-1])["rows"])
    if run.rows_from == "sling":
        found = re.findall(r"inserted ([\d,]+) rows", sample.stderr + sample.stdout)
        return int(found[-1].replace(",", "")) if found else -1
    if run.rows_from == "expect":
        return run.expect_rows or 0
    return count_rows(run)


def cleanup(path: Path | None) -> None:
    if path:
        for p in (path, Path(str(path) + ".wal")):
            if p.exists():
                p.unlink()


def execute(run: Run) -> tuple[Sample, int]:
    cleanup(run.dest)
    for d in run.clean_dirs:
        shutil.rmtree(d, ignore_errors=True)
    sample = measure(run.cmd, env=run.env, cwd=run.cwd, stdout_devnull=run.devnull)
    rows = -1
    if sample.rc == 0:
        try:
            rows = rows_of(run, sample)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            sample.stderr += f"\n[bench] counting rows failed: {exc}"
    return sample, rows


# --------------------------------------------------------------------------- routes


def build_routes(args, data: dict, work: Path) -> dict[str, list[tuple[Result, Run]]]:
    rows = data["rows"]
    db_bytes = data["db_csv"].stat().st_size
    slice_rows = max(1000, min(args.slice_rows, rows // 10))
    routes: dict[str, list[tuple[Result, Run]]] = {}
    sling = sling_bin()

    def d(name):
        return work / f"{name}.duckdb"

    for route, source, sa_url, sconn, stream in (
        ("PostgreSQL → DuckDB", "postgresql", PG_URL_SA, "BENCH_PG", "bench.lineitem"),
        ("MySQL → DuckDB", "mysql", MY_URL_SA, "BENCH_MY", "bench.lineitem"),
    ):
        key = "pg" if source == "postgresql" else "my"
        if key not in args.routes:
            continue
        items = []
        r = etl_run(work, f"etl_{key}", etl_db_config(source, d(f"etl_{key}")))
        r.dest = d(f"etl_{key}")
        items.append((Result(route, "ETL Runner", "ours", rows, db_bytes), r))
        r = dlt_run(
            work,
            f"dlt_cx_{key}",
            d(f"dlt_cx_{key}"),
            "--kind",
            "sql",
            "--credentials",
            sa_url,
            "--backend",
            "connectorx",
        )
        items.append((Result(route, "dlt (connectorx)", "peer", rows, db_bytes), r))
        if not args.no_dlt_default:
            r = dlt_run(
                work,
                f"dlt_sa_{key}",
                d(f"dlt_sa_{key}"),
                "--kind",
                "sql",
                "--credentials",
                sa_url,
                "--backend",
                "sqlalchemy",
                "--limit",
                str(slice_rows),
            )
            items.append(
                (
                    Result(
                        route,
                        f"dlt (default backend, {slice_rows:,}-row slice)",
                        "peer",
                        slice_rows,
                        int(db_bytes * slice_rows / rows),
                    ),
                    r,
                )
            )
        r = Run(
            [
                sling,
                "run",
                "--src-conn",
                sconn,
                "--src-stream",
                stream,
                "--tgt-conn",
                "BENCH_DUCK",
                "--tgt-object",
                "bench.lineitem",
                "--mode",
                "full-refresh",
            ],
            env=sling_env(d(f"sling_{key}")),
            dest=d(f"sling_{key}"),
            count_with="cli",
        )
        if not args.no_sling:
            items.append((Result(route, "Sling", "peer", rows, db_bytes), r))
        if key == "pg":
            lim = Run(
                "psql -X -h 127.0.0.1 -U postgres -d test -c 'COPY bench.lineitem TO STDOUT'",
                devnull=True,
                rows_from="expect",
                expect_rows=rows,
            )
            items.append(
                (
                    Result(
                        route, "limit: psql COPY TO STDOUT > /dev/null", "limit", rows, db_bytes
                    ),
                    lim,
                )
            )
        else:
            lim = Run(
                "mariadb --quick -h127.0.0.1 -uroot bench -e 'SELECT * FROM lineitem'",
                devnull=True,
                rows_from="expect",
                expect_rows=rows,
            )
            items.append(
                (Result(route, "limit: mariadb --quick > /dev/null", "limit", rows, db_bytes), lim)
            )
        routes[route] = items

    for fmt in ("csv", "parquet", "jsonl"):
        if fmt not in args.routes:
            continue
        path = data[fmt]
        size = path.stat().st_size
        route = f"{fmt.upper() if fmt != 'parquet' else 'Parquet'} → DuckDB"
        items = []
        r = etl_run(work, f"etl_{fmt}", etl_file_config(fmt, path, d(f"etl_{fmt}")))
        r.dest = d(f"etl_{fmt}")
        items.append((Result(route, "ETL Runner", "ours", rows, size), r))
        if fmt == "jsonl":
            # dlt's JSONL reader yields Python dicts (~1-2k rows/s here): a slice keeps the run short.
            sliced = work / f"lineitem_slice_{slice_rows}.jsonl"
            if not sliced.exists():
                sh(f"head -n {slice_rows} {path} > {sliced}")
            r = dlt_run(
                work,
                f"dlt_fs_{fmt}",
                d(f"dlt_fs_{fmt}"),
                "--kind",
                "file",
                "--bucket-url",
                f"file://{sliced.parent}",
                "--glob",
                sliced.name,
                "--format",
                fmt,
            )
            items.append(
                (
                    Result(
                        route,
                        f"dlt filesystem ({slice_rows:,}-row slice)",
                        "peer",
                        slice_rows,
                        sliced.stat().st_size,
                    ),
                    r,
                )
            )
        else:
            r = dlt_run(
                work,
                f"dlt_fs_{fmt}",
                d(f"dlt_fs_{fmt}"),
                "--kind",
                "file",
                "--bucket-url",
                f"file://{path.parent}",
                "--glob",
                path.name,
                "--format",
                fmt,
            )
            name = {
                "csv": "dlt filesystem (read_csv_duckdb, Arrow)",
                "parquet": "dlt filesystem (read_parquet, Arrow)",
            }[fmt]
            items.append((Result(route, name, "peer", rows, size), r))
        r = Run(
            [
                sling,
                "run",
                "--src-stream",
                f"file://{path}",
                "--tgt-conn",
                "BENCH_DUCK",
                "--tgt-object",
                "bench.lineitem",
                "--mode",
                "full-refresh",
            ]
            + (["--src-options", '{"format": "jsonlines"}'] if fmt == "jsonl" else []),
            env=sling_env(d(f"sling_{fmt}")),
            dest=d(f"sling_{fmt}"),
            count_with="cli",
        )
        items.append((Result(route, "Sling", "peer", rows, size), r))
        reader = {"csv": "read_csv", "parquet": "read_parquet", "jsonl": "read_json"}[fmt]
        items.append(
            (
                Result(route, f"limit: DuckDB {reader} into a table", "limit", rows, size),
                duck_limit(fmt, path, d(f"limit_{fmt}")),
            )
        )
        routes[route] = items
    if "bqsrc" in args.routes:  # BigQuery as a source: bench/bqsrc.py (needs the emulators)
        import bqsrc

        routes.update(bqsrc.build(work))
    if "bqdest" in args.routes:  # BigQuery as a destination: bench/bqdest.py (the emulators)
        import bqdest

        routes.update(bqdest.build(work, data))
    return routes


def evict_project_libraries() -> None:
    """Drop the project virtualenv's files from the page cache (`posix_fadvise(DONTNEED)` after a
    `sync`; nothing else's pages), so ETL Runner maps its shared libraries as read back from
    disk. Right after `pip install` wrote them, the page cache holds them in larger folios and a
    fault maps a whole folio: `import etl, duckdb, pyarrow, connectorx` measured 189 MB in a
    fresh .venv against 131.7 MB in the same .venv after this (and in an older one), which put
    ~50 MB of clean, shared file pages into every peak-RSS row of a fresh clone's run
    (bench/PROFILE.md, "Profile: memory")."""
    venv = PROJECT_PY.parent.parent
    if not (venv / "pyvenv.cfg").exists():
        return
    os.sync()
    evicted = 0
    for folder, _dirs, files in os.walk(venv):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                evicted += 1
            finally:
                os.close(descriptor)
    log(f"page cache: {evicted:,} files of {venv} evicted (read back from disk on first use)")


def _cpu_busy(seconds: float) -> float:
    """The machine's share of CPU time not idle (nor waiting on I/O: that counts as busy) over
    `seconds`, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3]  # total, idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def settle(limit_s: float = 60.0, busy: float = 0.15) -> None:
    """Wait until the machine has been under `busy` CPU for a second (at most `limit_s`): the
    emulators keep working after the BigQuery routes' tables are loaded, and a database after
    the incremental scenario's restore; a route measured meanwhile ran ~1.7x slower (PostgreSQL
    25.8 s against 15.0 s in a quiet minute)."""
    start = time.monotonic()
    while (share := _cpu_busy(1.0)) > busy and time.monotonic() - start < limit_s:
        pass
    log(f"machine settled: {share:.0%} busy after {time.monotonic() - start:.0f} s")


def run_routes(routes, repeat: int, on_route=None) -> None:
    for route, items in routes.items():
        settle()
        log(f"route {route}: {len(items)} tools x {repeat}")
        for i in range(repeat):
            order = items if i % 2 == 0 else list(reversed(items))
            for res, run in order:
                if res.error and not res.ok and len(res.samples) >= 1:
                    continue  # failed once with nothing working: do not burn time
                if res.once and res.samples:
                    continue
                sample, got = execute(run)
                res.samples.append(sample)
                res.rows_seen.append(got)
                if sample.rc != 0:
                    res.error = (sample.stderr.strip() or sample.stdout.strip())[-600:]
                    log(f"  {res.tool}: FAILED rc={sample.rc}: {res.error[-300:]}")
                else:
                    log(
                        f"  {res.tool}: {sample.wall:.2f}s, {sample.peak_rss / 2**20:.0f} MB, "
                        f"{got:,} rows"
                    )
                if run.dest and run.dest.exists() and res.kind != "limit":
                    pass
        for _res, run in items:
            cleanup(run.dest)
        if on_route:
            on_route()  # the report so far, so a long run interrupted later still leaves numbers


# --------------------------------------------------------------------------- incremental


def incremental(args, data: dict, work: Path) -> list[dict]:
    """Full load, then 1% of rows changed (0.5% updated, 0.5% inserted), then an incremental run
    of each tool, then a run with nothing changed."""
    rows = data["rows"]
    out = []
    sling = sling_bin()
    srcs = [s for s in ("pg", "my") if s in args.routes]
    plans = {}
    for key in srcs:
        source = "postgresql" if key == "pg" else "mysql"
        sa_url = PG_URL_SA if key == "pg" else MY_URL_SA
        sconn = "BENCH_PG" if key == "pg" else "BENCH_MY"
        e_dest, d_dest, s_dest = (work / f"inc_{t}_{key}.duckdb" for t in ("etl", "dlt", "sling"))
        state = work / f"inc_etl_{key}.state.json"
        for p in (e_dest, d_dest, s_dest, state):
            cleanup(p)
        shutil.rmtree(work / "dlt_pipelines" / f"inc_dlt_{key}", ignore_errors=True)
        etl = etl_run(
            work,
            f"inc_etl_{key}",
            etl_db_config(
                source, e_dest, "transactional", timestamp_column="l_updated_at", primary_key=PK
            ),
            state=state,
        )
        dlt_r = Run(
            dlt_cmd(
                work,
                f"inc_dlt_{key}",
                d_dest,
                "--kind",
                "sql",
                "--credentials",
                sa_url,
                "--backend",
                "connectorx",
                "--incremental",
            ),
            env=base_env(),
            rows_from="dlt",
        )
        sling_r = Run(
            [
                sling,
                "run",
                "--src-conn",
                sconn,
                "--src-stream",
                "bench.lineitem",
                "--tgt-conn",
                "BENCH_DUCK",
                "--tgt-object",
                "bench.lineitem",
                "--mode",
                "incremental",
                "--primary-key",
                ",".join(PK),
                "--update-key",
                "l_updated_at",
            ],
            env=sling_env(s_dest),
            rows_from="sling",
        )
        plans[key] = [
            ("ETL Runner (transactional, append)", etl, e_dest, "py"),
            ("dlt (connectorx, incremental, merge)", dlt_r, d_dest, "py"),
            ("Sling (incremental, upsert)", sling_r, s_dest, "cli"),
        ]
        if args.no_sling:
            plans[key].pop()

    def go(phase):
        for key, plan in plans.items():
            for tool, run, dest, cw in plan:
                sample = measure(run.cmd, env=run.env, cwd=run.cwd)
                moved = -1
                if sample.rc == 0:
                    try:
                        moved = rows_of(run, sample)
                    except Exception as exc:  # noqa: BLE001
                        sample.stderr += f"\n[bench] rows: {exc}"
                    if moved < 0 and run.rows_from == "sling":
                        moved = -1
                total = -1
                try:
                    total = count_rows(Run(None, dest=dest, count_with=cw))
                except Exception:  # noqa: BLE001
                    pass
                err = (
                    ""
                    if sample.rc == 0
                    else (sample.stderr.strip() or sample.stdout.strip())[-400:]
                )
                out.append(
                    {
                        "source": key,
                        "tool": tool,
                        "phase": phase,
                        "wall": sample.wall,
                        "peak": sample.peak_rss,
                        "moved": moved,
                        "dest_rows": total,
                        "error": err,
                    }
                )
                log(
                    f"  incremental {key} {tool} [{phase}]: {sample.wall:.2f}s moved={moved:,} "
                    f"dest={total:,}{' ERROR ' + err[-200:] if err else ''}"
                )

    log("incremental: full loads")
    go("full load")
    # Mutate: 0.5% updated (l_orderkey % 200 = 7), 0.5% inserted (copies of l_orderkey % 200 = 3
    # with new keys). Then put everything back afterwards so the cached tables stay pristine.
    changed = {}
    for key in srcs:
        if key == "pg":
            psql("DELETE FROM bench.bench_meta")
            psql(
                "UPDATE bench.lineitem SET l_updated_at = now()::timestamp(0), "
                "l_comment = 'bench update' WHERE l_orderkey % 200 = 7"
            )
            psql(
                "INSERT INTO bench.lineitem SELECT l_orderkey + 100000000, l_partkey, l_suppkey, "
                "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
                "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
                "l_shipmode, 'bench insert', now()::timestamp(0) FROM bench.lineitem "
                "WHERE l_orderkey % 200 = 3"
            )
            changed[key] = int(
                psql(
                    "SELECT count(*) FROM bench.lineitem WHERE l_orderkey % 200 = 7 "
                    "OR l_orderkey > 100000000"
                )
            )
        else:
            mysql("DELETE FROM bench_meta")
            mysql(
                "UPDATE lineitem SET l_updated_at = now(), l_comment = 'bench update' "
                "WHERE l_orderkey % 200 = 7"
            )
            mysql(
                "INSERT INTO lineitem SELECT l_orderkey + 100000000, l_partkey, l_suppkey, "
                "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
                "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
                "l_shipmode, 'bench insert', now() FROM lineitem WHERE l_orderkey % 200 = 3"
            )
            changed[key] = int(
                mysql(
                    "SELECT count(*) FROM lineitem WHERE l_orderkey % 200 = 7 "
                    "OR l_orderkey > 100000000"
                )
            )
        log(f"incremental: {changed[key]:,} rows changed in {key} ({changed[key] / rows:.2%})")
    time.sleep(1.1)  # the next second: nothing new can share the watermark's timestamp
    go("1% changed")
    go("nothing changed")
    marker = f"{args.scale}:{rows}"
    for key in srcs:
        if key == "pg":
            psql(
                "DELETE FROM bench.lineitem WHERE l_orderkey > 100000000;"
                f"UPDATE bench.lineitem SET l_updated_at = TIMESTAMP '{BASE_TS}' + "
                "l_orderkey * interval '1 second' WHERE l_orderkey % 200 = 7;"
                f"INSERT INTO bench.bench_meta VALUES ('{marker}')"
            )
        else:
            mysql(
                "DELETE FROM lineitem WHERE l_orderkey > 100000000;"
                f"UPDATE lineitem SET l_updated_at = TIMESTAMP '{BASE_TS}' + "
                "INTERVAL l_orderkey SECOND WHERE l_orderkey % 200 = 7;"
                f"INSERT INTO bench_meta VALUES ('{marker}')"
            )
    # The comments of updated rows stay 'bench update': harmless for timing, but rebuild marker
    # only counts rows; note it in the report.
    for r in out:
        r["changed"] = changed.get(r["source"], 0)
    return out


def quarter_data(data: dict, routes: set[str]) -> dict:
    """A quarter of the table (the size of SF / 4): the first 25% of each file's rows, and for the
    databases the rows with `l_orderkey <= max / 4` (custom SQL over the same table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    qdir = data["csv"].parent.parent / "quarter"
    qdir.mkdir(exist_ok=True)
    target = data["rows"] // 4
    out = {"dir": qdir}
    if not (qdir / ".done").exists():
        sh(f"head -n {target + 1} {data['csv']} > {qdir / 'lineitem.csv'}")
        sh(f"head -n {target} {data['jsonl']} > {qdir / 'lineitem.jsonl'}")
        src = pq.ParquetFile(data["parquet"])
        left = target
        with pq.ParquetWriter(
            qdir / "lineitem.parquet", src.schema_arrow, compression="snappy"
        ) as w:
            for batch in src.iter_batches(batch_size=200_000):
                if left <= 0:
                    break
                batch = batch.slice(0, left)
                left -= batch.num_rows
                w.write_table(pa.Table.from_batches([batch]), row_group_size=200_000)
        (qdir / ".done").write_text(str(target))
    for fmt in ("csv", "parquet", "jsonl"):
        out[fmt] = qdir / f"lineitem.{fmt}"
    out["file_rows"] = target
    if {"pg", "my"} & routes:
        max_key = int(psql("SELECT max(l_orderkey) FROM bench.lineitem"))
        out["key_limit"] = max_key // 4
        out["db_rows"] = int(
            psql(f"SELECT count(*) FROM bench.lineitem WHERE l_orderkey <= {out['key_limit']}")
        )
    return out


def memory_scaling(args, data: dict, work: Path) -> list[dict]:
    """ETL Runner alone on a quarter of the table, per route: peak RSS and wall time (median of
    `--repeat`), to compare with the full table's (the target: no growth with table size)."""
    quarter = quarter_data(data, args.routes)
    results = []
    for key in ("pg", "my", "csv", "parquet", "jsonl"):
        if key not in args.routes:
            continue
        dest = work / f"quarter_{key}.duckdb"
        if key in ("pg", "my"):
            source = "postgresql" if key == "pg" else "mysql"
            table = "bench.lineitem" if key == "pg" else "lineitem"
            config = etl_db_config(source, dest)
            del config["source_table_name"]
            config["custom_sql"] = (
                f"SELECT * FROM {table} WHERE l_orderkey <= {quarter['key_limit']}"
            )
            rows = quarter["db_rows"]
        else:
            config = etl_file_config(key, quarter[key], dest)
            rows = quarter["file_rows"]
        run = etl_run(work, f"quarter_{key}", config)
        run.dest = dest
        samples, seen = [], []
        for _ in range(args.repeat):
            sample, got = execute(run)
            samples.append(sample)
            seen.append(got)
            log(
                f"  quarter {key}: {sample.wall:.2f}s, {sample.peak_rss / 2**20:.0f} MB, {got:,} rows"
                + (f" FAILED {sample.stderr[-300:]}" if sample.rc else "")
            )
        cleanup(dest)
        ok = [s for s in samples if s.rc == 0]
        results.append(
            {
                "route": key,
                "rows": rows,
                "seen": seen,
                "wall": statistics.median(s.wall for s in ok) if ok else None,
                "peak": max(s.peak_rss for s in ok) if ok else None,
            }
        )
    return results


BQSRC_ROUTE = "BigQuery (emulator) → DuckDB"  # bench/bqsrc.py ROUTE
BQDEST_ROUTE = "Parquet → BigQuery (emulator)"  # bench/bqdest.py ROUTE

ROUTE_NAMES = {
    "pg": "PostgreSQL → DuckDB",
    "my": "MySQL → DuckDB",
    "csv": "CSV → DuckDB",
    "parquet": "Parquet → DuckDB",
    "jsonl": "JSONL → DuckDB",
}


PROFILE_SECTIONS = {
    "pg": "Profile: PostgreSQL",
    "my": "Profile: MySQL",
    "csv": "Profile: CSV",
    "parquet": "Profile: Parquet",
    "jsonl": "Profile: JSONL",
    "memory": "Profile: memory",
    "incremental": "Profile: incremental and no-op runs",
    "bqdest": "Profile: BigQuery destination",
    "bqsrc": "Profile: BigQuery source",
}
"""Row group -> the heading of its section in bench/PROFILE.md (where a missed row's time or
memory goes and what was tried); a missed row links to it."""


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def profile_link(key: str) -> str:
    heading = PROFILE_SECTIONS[key]
    prof = BENCH / "PROFILE.md"
    if prof.exists() and f"## {heading}" not in prof.read_text():
        return "[PROFILE.md](PROFILE.md)"
    return f"[profile](PROFILE.md#{anchor(heading)})"


ROUTE_KEYS = {
    "PostgreSQL → DuckDB": "pg",
    "MySQL → DuckDB": "my",
    "CSV → DuckDB": "csv",
    "Parquet → DuckDB": "parquet",
    "JSONL → DuckDB": "jsonl",
}


def etl_duration(result: Result) -> float | None:
    """Median `duration_s` of ETL Runner's runs (its RunResult: the run without the process
    start and imports), None when not reported."""
    seconds = []
    for sample in result.ok:
        try:
            seconds.append(float(json.loads(sample.stdout)["duration_s"]))
        except (ValueError, KeyError, TypeError):
            pass
    return statistics.median(seconds) if seconds else None


def _our_phase(inc: list[dict], source: str, phase: str) -> dict | None:
    """ETL Runner's row of one incremental phase of `source` ("pg", "my"), or None."""
    return next(
        (
            r
            for r in inc
            if r["source"] == source and r["phase"] == phase and r["tool"].startswith("ETL Runner")
        ),
        None,
    )


def targets(routes, inc, mem, bq: dict | None = None) -> list[str]:
    """Issue 18's targets, every row always (a route not run says so), each with the figure
    measured in this run and met / missed; a missed row links to its profile."""
    bq = bq or {}
    rows = [
        "| target | route | measured in this run | met | where the time goes |",
        "|---|---|---|:-:|---|",
    ]

    def line(target, route, measured, met, key):
        mark = "—" if met is None else "yes" if met else "**no**"
        link = profile_link(key) if met is False else ""
        rows.append(f"| {target} | {route} | {measured} | {mark} | {link} |")

    def parts(route):
        items = routes.get(route, [])
        ours = next((r for r, _ in items if r.kind == "ours" and r.rps), None)
        peers = [r for r, _ in items if r.kind == "peer" and r.rps and "slice" not in r.tool]
        limit = next((r for r, _ in items if r.kind == "limit" and r.rps), None)
        failed = any(r.kind == "ours" and r.samples and not r.ok for r, _ in items)
        return ours, peers, limit, failed

    def absent(route, failed):
        return "ETL Runner failed" if failed else "not run (`--routes`)"

    for route in ("PostgreSQL → DuckDB", "MySQL → DuckDB"):
        key = ROUTE_KEYS[route]
        ours, peers, limit, failed = parts(route)
        if ours and peers:
            best = max(peers, key=lambda r: r.rps)
            ratio = ours.rps / best.rps
            line("≥ 1.5× the fastest peer", route, f"{ratio:.2f}× {best.tool}", ratio >= 1.5, key)
        else:
            line(
                "≥ 1.5× the fastest peer",
                route,
                absent(route, failed),
                None if not failed else False,
                key,
            )
        if ours and limit:
            ratio = ours.rps / limit.rps
            line(
                "≥ 60% of the raw dump's speed",
                route,
                f"{ratio:.0%} of {limit.tool[7:]}",
                ratio >= 0.6,
                key,
            )
        else:
            line(
                "≥ 60% of the raw dump's speed",
                route,
                absent(route, failed),
                None if not failed else False,
                key,
            )
    route = "CSV → DuckDB"
    ours, peers, limit, failed = parts(route)
    dlt = next((r for r in peers if r.tool.startswith("dlt")), None)
    if ours and dlt:
        ratio = ours.rps / dlt.rps
        line(
            "≥ dlt's `read_csv_duckdb` speed, exact whole-file typing kept",
            route,
            f"{ratio:.2f}× its speed",
            ratio >= 1.0,
            "csv",
        )
    else:
        line(
            "≥ dlt's `read_csv_duckdb` speed, exact whole-file typing kept",
            route,
            absent(route, failed),
            None if not failed else False,
            "csv",
        )
    for route, bound, reader in (
        ("CSV → DuckDB", 1.5, "read_csv"),
        ("Parquet → DuckDB", 1.3, "read_parquet"),
        ("JSONL → DuckDB", 2.0, "read_json"),
    ):
        ours, peers, limit, failed = parts(route)
        target = f"≤ {bound}× DuckDB's `{reader}` time"
        if ours and limit:
            ratio = limit.rps / ours.rps
            line(
                target,
                route,
                f"{ratio:.2f}× ({ours.median:.1f} s vs {limit.median:.1f} s)",
                ratio <= bound,
                ROUTE_KEYS[route],
            )
        else:
            line(
                target,
                route,
                absent(route, failed),
                None if not failed else False,
                ROUTE_KEYS[route],
            )
    peak_routes = [*ROUTE_KEYS, BQSRC_ROUTE, BQDEST_ROUTE]
    for route in peak_routes:
        ours, _, _, failed = parts(route)
        if route in (BQSRC_ROUTE, BQDEST_ROUTE) and route not in routes:
            line(
                "peak RSS ≤ 300 MB (process tree)",
                route,
                bq.get("skipped") or "not run (`--routes`)",
                None,
                "memory",
            )
            continue
        if ours:
            line(
                "peak RSS ≤ 300 MB (process tree)",
                route,
                f"{fmt_mb(ours.peak)} MB",
                ours.peak <= 300 * 2**20,
                "memory",
            )
        else:
            line(
                "peak RSS ≤ 300 MB (process tree)",
                route,
                absent(route, failed),
                None if not failed else False,
                "memory",
            )
    for route, key in ROUTE_KEYS.items():
        m = next((m for m in mem if m["route"] == key), None)
        ours, _, _, _ = parts(route)
        target = "peak RSS flat from ¼ of the table to all of it (≤ 1.15×)"
        if m and m["peak"] and ours and ours.peak:
            growth = ours.peak / m["peak"]
            line(
                target,
                route,
                f"{fmt_mb(m['peak'])} → {fmt_mb(ours.peak)} MB ({growth:.2f}×)",
                growth <= 1.15,
                "memory",
            )
        else:
            line(target, route, "not run (`--routes`, `--no-memory-scaling`)", None, "memory")
    fulls = {(r["source"], r["tool"]): r for r in inc if r["phase"] == "full load"}
    for key, src in (("pg", "PostgreSQL"), ("my", "MySQL")):
        one = _our_phase(inc, key, "1% changed")
        noop = _our_phase(inc, key, "nothing changed")
        full = fulls.get((key, one["tool"])) if one else None
        if one and full and full["wall"] and not one["error"]:
            rel = one["wall"] / full["wall"]
            line(
                "incremental 1%: ≤ 10% of the full load's time",
                src,
                f"{rel:.1%} ({one['wall']:.2f} s of {full['wall']:.2f} s)",
                rel <= 0.10,
                "incremental",
            )
            line(
                "incremental 1%: exactly the changed rows",
                src,
                f"{one['moved']:,} moved, {one['changed']:,} changed",
                one["moved"] == one["changed"],
                "incremental",
            )
        else:
            for target in (
                "incremental 1%: ≤ 10% of the full load's time",
                "incremental 1%: exactly the changed rows",
            ):
                line(
                    target,
                    src,
                    "failed" if one else "not run (`--routes`)",
                    False if one else None,
                    "incremental",
                )
        if noop and not noop["error"]:
            line(
                "no-op run (nothing changed) ≤ 1 s, no row moved",
                src,
                f"{noop['wall']:.2f} s, {noop['moved']:,} moved",
                noop["wall"] <= 1.0 and noop["moved"] == 0,
                "incremental",
            )
        else:
            line(
                "no-op run (nothing changed) ≤ 1 s, no row moved",
                src,
                "failed" if noop else "not run (`--routes`)",
                False if noop else None,
                "incremental",
            )
    dest = bq.get("bqdest")
    parquet, _, _, _ = parts("Parquet → DuckDB")
    target = "staging Parquet written at ≥ the DuckDB route's load speed"
    duck = etl_duration(parquet) if parquet else None
    if dest and duck:
        duck_rps = parquet.rows / duck
        ratio = dest["write_rps"] / duck_rps
        line(
            target,
            BQDEST_ROUTE,
            f"{dest['write_rps']:,.0f} rows/s ({dest['write_s']:.1f} s) vs Parquet → DuckDB "
            f"{duck_rps:,.0f} rows/s (its run's `duration_s`, {duck:.1f} s): {ratio:.2f}×",
            ratio >= 1.0,
            "bqdest",
        )
    elif dest:
        line(
            target,
            BQDEST_ROUTE,
            "Parquet → DuckDB not run (`--routes`): nothing to set it against",
            None,
            "bqdest",
        )
    elif BQDEST_ROUTE in routes:
        line(target, BQDEST_ROUTE, "ETL Runner failed", False, "bqdest")
    else:
        line(target, BQDEST_ROUTE, bq.get("skipped") or "not run (`--routes`)", None, "bqdest")
    target = "one load job per table per run"
    if dest:
        line(
            target,
            BQDEST_ROUTE,
            f"{dest['jobs']} load jobs for one table in one run ({dest['runs']} runs)",
            dest["jobs"] == 1,
            "bqdest",
        )
    elif BQDEST_ROUTE in routes:
        line(target, BQDEST_ROUTE, "ETL Runner failed", False, "bqdest")
    else:
        line(target, BQDEST_ROUTE, bq.get("skipped") or "not run (`--routes`)", None, "bqdest")
    target = (
        "read through the Storage Read API: faster than REST pages; against DuckDB `read_parquet`"
    )
    items = routes.get(BQSRC_ROUTE, [])
    storage = next((r for r, _ in items if r.kind == "ours" and r.rps), None)
    rest = next((r for r, _ in items if r.kind == "peer" and r.rps), None)
    limit = next((r for r, _ in items if r.kind == "limit" and r.rps), None)
    if storage and rest and limit:
        line(
            target,
            BQSRC_ROUTE,
            f"Storage {storage.median:.1f} s, REST {rest.median:.1f} s "
            f"({rest.median / storage.median:.1f}× Storage's time), DuckDB "
            f"{limit.median:.1f} s ({storage.median / limit.median:.1f}× its time)",
            storage.rps > rest.rps,
            "bqsrc",
        )
    else:
        line(
            target,
            BQSRC_ROUTE,
            bq.get("skipped") or ("failed" if items else "not run (`--routes`)"),
            False if items else None,
            "bqsrc",
        )
    return rows


# --------------------------------------------------------------------------- report


def fmt_mb(b: int | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.0f}"


def machine_facts() -> list[str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = psutil.virtual_memory().total
    load = os.getloadavg()
    return [
        f"- CPU: {cpu}; `nproc` = {os.cpu_count()}",
        f"- Memory: {mem / 2**30:.1f} GiB; load average at the end of the run: "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
    ]


def versions() -> list[str]:
    lines = []
    freeze = sh(f"{BPY} -m pip freeze").splitlines()
    keep = re.compile(
        r"^(dlt|connectorx|duckdb|pyarrow|sqlalchemy|pymysql|sling|tpchgen|psutil)", re.I
    )
    lines.append("bench/.venv (peers): " + ", ".join(x for x in freeze if keep.match(x)))
    pfreeze = sh(f"{PROJECT_PY} -m pip freeze").splitlines()
    keep2 = re.compile(r"^(duckdb|pyarrow|adbc|pymysql|psycopg|sqlalchemy)", re.I)
    lines.append(".venv (ETL Runner): " + ", ".join(x for x in pfreeze if keep2.match(x)))
    lines.append("sling " + sh(f"{sling_bin()} --version").strip().replace("Version: ", ""))
    lines.append("duckdb CLI (Sling's) " + sh(f"{DUCKDB_CLI} --version").strip())
    lines.append(
        "PostgreSQL "
        + psql("SHOW server_version").strip()
        + "; MariaDB "
        + mysql("SELECT version()", db="test").strip()
    )
    lines.append(
        f"ETL Runner: `git archive {ETL_SRC['rev']} etl` (run from a snapshot, so "
        "concurrent edits in the working tree are not measured)"
        if ETL_SRC["dir"] != ROOT
        else f"ETL Runner: {ETL_SRC['rev']}"
    )
    return [f"- {x}" for x in lines]


def report(
    args,
    data,
    routes,
    inc,
    started,
    elapsed,
    out: Path,
    partial: bool = False,
    mem: list[dict] | None = None,
    bq: dict | None = None,
) -> None:
    L = []
    L.append(
        f"# ETL Runner benchmark — TPC-H `lineitem`, scale factor {args.scale} "
        f"({data['rows']:,} rows)"
    )
    L.append("")
    L.append(
        f"Generated by `{' '.join(sys.argv_for_report)}` on {started} "
        f"(took {elapsed / 60:.1f} min). Median of {args.repeat} runs per tool, tools in "
        "alternating order across repeats (forward, reversed, forward, ...), each run into a "
        "fresh DuckDB file. Wall time includes process start (Python imports for ETL Runner "
        "and dlt). Peak RSS is the sum over the tool's whole process tree (Sling includes "
        "its DuckDB CLI child), sampled every 20 ms; database servers are not counted. "
        "rows/s = rows / median wall time. MB/s: input bytes / median wall time (file "
        "size for file routes; for database routes the size of the table as CSV, "
        f"{fmt_mb(data['db_csv'].stat().st_size)} MB). Ratios are throughput (rows/s) "
        "ratios: ETL Runner's × fastest peer, and each tool's fraction of the limit."
    )
    L.append("")
    if partial:
        L.append("**Partial: the run was still going (or was stopped) when this was written.**")
        L.append("")
    L.append(
        "**Noise:** a 2-core machine; the load average at the end of the run is under "
        "Machine, and the spread of each tool's runs (min–max) is shown."
    )
    L.append("")
    mem = mem or []
    L.append("## Targets (issue 18)")
    L.append("")
    L.append(
        "Computed from this run (ratios within it; never timed assertions in tests). Speed "
        "ratios are of median wall times, process start included; peak RSS is the highest "
        "of the runs. A missed row links to its section of `bench/PROFILE.md` (appended "
        "below): where the time or memory goes and what was tried."
    )
    L.append("")
    L += targets(routes, inc, mem, bq)
    L.append("")
    L.append("## Machine")
    L += machine_facts()
    L.append("")
    L.append("## Versions")
    L += versions()
    L.append("")
    for route, items in routes.items():
        L.append(f"## {route}")
        L.append("")
        peers = [r for r, _ in items if r.kind == "peer" and r.rps]
        best_peer = max(peers, key=lambda r: r.rps) if peers else None
        limit = next((r for r, _ in items if r.kind == "limit" and r.rps), None)
        db = route.startswith(("PostgreSQL", "MySQL"))
        L.append(
            "| tool | rows | median s (min–max) | rows/s | MB/s | peak RSS MB | "
            "× fastest peer | of limit |" + (" server CPU s (share of wall) |" if db else "")
        )
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if db else ""))
        for res, _ in items:
            if not res.ok:
                L.append(
                    f"| {res.tool} | — | failed | — | — | — | — | — |" + (" — |" if db else "")
                )
                continue
            server = ""
            if db:
                cpu = res.server_cpu
                server = f" {cpu:.1f} ({cpu / res.median:.0%}) |" if cpu is not None else " — |"
            walls = [s.wall for s in res.ok]
            vs_peer = (
                f"{res.rps / best_peer.rps:.2f}×" if best_peer and res.kind != "limit" else "—"
            )
            of_lim = f"{res.rps / limit.rps:.0%}" if limit and res.kind != "limit" else "—"
            seen = {x for x in res.rows_seen if x >= 0}
            rows_txt = (
                f"{res.rows:,}"
                if seen in ({res.rows}, set())
                else f"{res.rows:,} (loaded {', '.join(f'{x:,}' for x in sorted(seen))})"
            )
            L.append(
                f"| {res.tool} | {rows_txt} | {res.median:.2f} ({min(walls):.2f}–"
                f"{max(walls):.2f}) | {res.rps:,.0f} | "
                f"{res.bytes / 2**20 / res.median:,.1f} | {fmt_mb(res.peak)} | {vs_peer} | "
                f"{of_lim} |{server}"
            )
        fails = [r for r, _ in items if r.error]
        for r in fails:
            L.append("")
            L.append(
                f"- {r.tool} failed ({len(r.samples) - len(r.ok)} of {len(r.samples)} "
                f"runs): `{r.error.strip().splitlines()[-1][:300] if r.error.strip() else '?'}`"
            )
        L.append("")
    if inc:
        L.append("## Incremental: 1% of rows changed after a full load")
        L.append("")
        L.append(
            "0.5% of rows updated (`l_updated_at = now()`), 0.5% inserted; then one "
            "incremental run per tool, then one run with nothing changed. ETL Runner's "
            "transactional load appends changed rows (its contract: the destination keeps "
            "every version, `_etl_run_id` tells them apart); dlt (merge) and Sling "
            "(incremental with primary key) upsert. One run per phase (a change can only be "
            "applied once), so read these with the noise note in mind."
        )
        L.append("")
        L.append(
            "| source | tool | phase | s | rows moved | changed in source | dest rows after | "
            "peak RSS MB | vs own full load |"
        )
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        fulls = {(r["source"], r["tool"]): r["wall"] for r in inc if r["phase"] == "full load"}
        for r in inc:
            full = fulls.get((r["source"], r["tool"]))
            rel = f"{r['wall'] / full:.0%}" if full and r["phase"] != "full load" else "—"
            src = "PostgreSQL" if r["source"] == "pg" else "MySQL"
            chg = (
                f"{r['changed']:,}"
                if r["phase"] == "1% changed"
                else ("0" if r["phase"] == "nothing changed" else "—")
            )
            moved = f"{r['moved']:,}" if r["moved"] >= 0 else "?"
            if r["error"]:
                moved = "failed: " + r["error"].splitlines()[-1][:120].replace("|", "/")
            L.append(
                f"| {src} | {r['tool']} | {r['phase']} | {r['wall']:.2f} | {moved} | {chg} | "
                f"{r['dest_rows']:,} | {fmt_mb(r['peak'])} | {rel} |"
            )
        L.append("")
    if mem:
        L.append("## Memory against table size: ETL Runner on a quarter of the table")
        L.append("")
        L.append(
            "The first 25% of each file's rows, and for the databases custom SQL "
            "`WHERE l_orderkey <= max / 4`; median wall time and the highest peak RSS of "
            f"{args.repeat} runs, next to the full table's."
        )
        L.append("")
        L.append(
            "| route | rows (¼) | s (¼) | peak RSS MB (¼) | rows (full) | peak RSS MB (full) | "
            "growth |"
        )
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for m in mem:
            full = next(
                (r for r, _ in routes.get(ROUTE_NAMES[m["route"]], []) if r.kind == "ours"), None
            )
            growth = f"{full.peak / m['peak']:.2f}×" if full and full.peak and m["peak"] else "—"
            wall = f"{m['wall']:.2f}" if m["wall"] else "failed"
            L.append(
                f"| {ROUTE_NAMES[m['route']]} | {m['rows']:,} | {wall} | "
                f"{fmt_mb(m['peak'])} | {full.rows if full else 0:,} | "
                f"{fmt_mb(full.peak if full else None)} | {growth} |"
            )
        L.append("")
    prof = BENCH / "PROFILE.md"
    if prof.exists():
        L.append(prof.read_text().strip())
        L.append("")
    out.write_text("\n".join(L) + "\n")
    if not partial:
        log(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per tool (3 for a median; 1 on a shared machine, ratios within one run)",
    )
    parser.add_argument(
        "--routes",
        default="pg,my,csv,parquet,jsonl,incremental,bqsrc,bqdest",
        help="comma-separated: pg, my, csv, parquet, jsonl, incremental, bqsrc "
        "(BigQuery emulator source, bench/bqsrc.py), bqdest (BigQuery emulator "
        "destination, bench/bqdest.py); parallel alone: "
        "etl run --parallel 1, 2, 4 (bench/parallel.py, bench/RESULTS-parallel.md)",
    )
    parser.add_argument(
        "--slice-rows",
        type=int,
        default=30_000,
        help="rows for dlt's default (SQLAlchemy) backend (capped at 10%% of rows)",
    )
    parser.add_argument("--no-dlt-default", action="store_true")
    parser.add_argument(
        "--no-sling",
        action="store_true",
        help="skip Sling on the database routes and the incremental scenario "
        "(slower than dlt + connectorx there: a shorter run on a busy machine)",
    )
    parser.add_argument(
        "--no-memory-scaling",
        action="store_true",
        help="skip ETL Runner's runs on a quarter of the table",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--etl-rev", default="HEAD", help="git revision of etl/ to run (snapshot), or 'worktree'"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    args.routes = set(args.routes.split(","))
    if "parallel" in args.routes:  # issue 14: `etl run --parallel 1, 2, 4` (bench/parallel.py)
        import parallel

        return parallel.run(
            argparse.Namespace(
                processes="1,2,4",
                routes="pg,my",
                repeat=args.repeat,
                out=BENCH / "RESULTS-parallel.md",
                etl_rev=args.etl_rev,
            )
        )
    if args.repeat < 1:
        parser.error("--repeat must be at least 1 (3 for a median; 1 on a shared machine)")
    bq_skipped = ""
    if args.routes & {"bqsrc", "bqdest"} and not os.environ.get("ETL_BIGQUERY_API_ENDPOINT"):
        # the BigQuery routes need the emulators: run again under scripts/emulators.py, which
        # starts the missing ones and stops what it started
        if (ROOT / ".venv-bqemu" / "bin" / "bqemulator").exists() and not os.environ.get(
            "BENCH_NO_EMULATORS"
        ):
            log("BigQuery routes: starting the emulators (scripts/emulators.py run)")
            env = dict(os.environ, BENCH_NO_EMULATORS="1")
            return subprocess.call(
                [
                    str(PROJECT_PY),
                    str(ROOT / "scripts" / "emulators.py"),
                    "run",
                    "--",
                    sys.executable,
                    *sys.argv,
                ],
                env=env,
            )
        bq_skipped = (
            "not measured: the BigQuery emulator is not installed (`make "
            "emulators-install`) or could not start"
        )
        args.routes -= {"bqsrc", "bqdest"}
    sys.argv_for_report = ["bench/.venv/bin/python", "bench/run.py", *sys.argv[1:]]
    evict_project_libraries()
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.perf_counter()
    scale_txt = f"{args.scale:g}"
    # absolute: the tools run in other working directories (ETL Runner in its snapshot)
    data_dir = (args.data_dir or BENCH / "data" / f"sf{scale_txt}").resolve()
    work = BENCH / "work"
    work.mkdir(exist_ok=True)
    SLING_HOME.mkdir(exist_ok=True)
    snapshot_etl(args.etl_rev, work)
    data = prepare_data(args.scale, data_dir)
    log(f"lineitem: {data['rows']:,} rows")
    if args.routes & {"pg", "my", "incremental"}:
        load_databases(args.scale, data)
    routes = build_routes(args, data, work)
    inc_holder: list = []
    bq = {"skipped": bq_skipped}

    def bq_figures() -> dict:
        if BQDEST_ROUTE in routes:
            import bqdest

            bq["bqdest"] = bqdest.figures(work)
        return bq

    def partial() -> None:
        finished = {k: v for k, v in routes.items() if all(r.samples for r, _ in v)}
        report(
            args,
            data,
            finished,
            inc_holder,
            started,
            time.perf_counter() - t0,
            args.out,
            partial=True,
            bq=bq_figures(),
        )

    db_routes = {k: v for k, v in routes.items() if k.split(" ")[0] in ("PostgreSQL", "MySQL")}
    file_routes = {k: v for k, v in routes.items() if k not in db_routes}
    # databases first, then the incremental scenario (it reuses the loaded tables), then files
    run_routes(db_routes, args.repeat, partial)
    inc = incremental(args, data, work) if "incremental" in args.routes else []
    inc_holder.extend(inc)
    run_routes(file_routes, args.repeat, partial)
    mem = [] if args.no_memory_scaling else memory_scaling(args, data, work)
    report(
        args,
        data,
        routes,
        inc,
        started,
        time.perf_counter() - t0,
        args.out,
        mem=mem,
        bq=bq_figures(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
