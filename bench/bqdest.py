"""BigQuery as a destination (issue 18): the benchmark's `lineitem` Parquet file loaded by ETL
Runner into the BigQuery emulator (`catalog`), with two figures the issue's targets ask for,
counted inside the run by bench/bqdest_probe.py around the real loader:

- the staging Parquet's write speed (rows / seconds in `PartWriter.write`, `flush` and
  `close`, the load job excluded), to set against the DuckDB route's load speed (ETL Runner's
  Parquet → DuckDB run of the same file, rows / its RunResult's `duration_s`: neither counts
  process start);
- the load jobs submitted per destination table in one run (target: one).

The emulator is DuckDB-backed: the load jobs' own time measures the emulator, not BigQuery, so
the run's wall time is shown but set against nothing. Needs the emulators' endpoints in the
environment (bench/run.py starts them through scripts/emulators.py when it can).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bqsrc  # noqa: E402  the emulator settings
import run as bench  # noqa: E402  bench/run.py: measuring, Result, Run

ROUTE = "Parquet → BigQuery (emulator)"
DATASET = "bench_bqdest"
PROBE = BENCH / "bqdest_probe.py"


_DROP = r"""
import sys
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

endpoint, project, dataset = sys.argv[1:4]
client = bigquery.Client(project=project, credentials=AnonymousCredentials(),
                         client_options=ClientOptions(api_endpoint=endpoint))
client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
"""


def drop_dataset() -> None:
    """Remove the route's dataset from the emulator: a table loaded from another file (another
    scale) belongs to another pipeline, which ETL Runner refuses to load over."""
    bqsrc.emulator_script(_DROP, DATASET, what=f"dropping {DATASET} in the emulator")


def config(parquet: Path) -> dict:
    env = bqsrc.endpoints()
    return {
        "source_type": "local",
        "connection_params": {"base_path": str(parquet.parent)},
        "file_pattern": parquet.name,
        "file_format": "parquet",
        "load_type": "catalog",
        "dest_table_name": "lineitem",
        "destination": {
            "type": "bigquery",
            "project": env["ETL_BIGQUERY_PROJECT"],
            "dataset": DATASET,
            "credentials": "anonymous",
            "api_endpoint": env["ETL_BIGQUERY_API_ENDPOINT"],
        },
    }


def probe_file(work: Path) -> Path:
    return work / "bqdest_probe.jsonl"


def build(work: Path, data: dict) -> dict[str, list]:
    """The route's one tool as a bench/run.py `(Result, Run)` pair; its probe's figures go to
    `probe_file(work)` (emptied here), one line per run."""
    parquet = data["parquet"]
    drop_dataset()
    probe = probe_file(work)
    probe.unlink(missing_ok=True)
    run = bench.etl_run(work, "bqdest", config(parquet))
    run.cmd[1:3] = [str(PROBE)]  # `python bench/bqdest_probe.py run ...` for `python -m etl run`
    run.env["BENCH_BQDEST_PROBE"] = str(probe)
    run.env["PYTHONPATH"] = str(bench.ETL_SRC["dir"])
    result = bench.Result(
        ROUTE, "ETL Runner → BigQuery emulator", "ours", data["rows"], parquet.stat().st_size
    )
    return {ROUTE: [(result, run)]}


def figures(work: Path) -> dict | None:
    """Median staging write speed (rows/s) and the most load jobs of one table in one run, over
    the runs the probe recorded; None when none was."""
    probe = probe_file(work)
    if not probe.exists():
        return None
    runs = [json.loads(line) for line in probe.read_text().splitlines() if line.strip()]
    runs = [r for r in runs if r["rows"]]
    if not runs:
        return None
    return {
        "runs": len(runs),
        "write_rps": statistics.median(r["rows"] / r["write_s"] for r in runs if r["write_s"]),
        "write_s": statistics.median(r["write_s"] for r in runs),
        "load_s": statistics.median(r["load_s"] for r in runs),
        "jobs": max(max(r["jobs"].values(), default=0) for r in runs),
        "tables": sorted({t for r in runs for t in r["jobs"]}),
    }
