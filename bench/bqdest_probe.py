"""`python -m etl run ...` with two counters around the BigQuery loader (issue 18's BigQuery
destination targets), run by bench/bqdest.py in place of `python -m etl`:

- seconds spent writing the staging Parquet parts (`PartWriter.write` and `flush`, minus the
  load jobs they start) and the rows written;
- load jobs submitted (`Client.load_table_from_file` calls), per destination table.

The wrappers call the real methods (the run talks to the real emulator); the figures go to the
JSON lines file named by `BENCH_BQDEST_PROBE` (one line per run) when the run ends. Runs with the project's .venv and
ETL Runner's source as the working directory, like `python -m etl`.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

from google.cloud import bigquery

from etl.cli import main
from etl.load.bigquery import loader, staging

FIGURES = {"write_s": 0.0, "rows": 0, "load_s": 0.0, "jobs": {}}


_DEPTH = {"write_s": 0, "load_s": 0}


def _timed(function, key):
    """Add the outermost call's seconds to FIGURES[key] (`write` calls `flush`)."""

    def wrapper(*args, **kwargs):
        _DEPTH[key] += 1
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _DEPTH[key] -= 1
            if not _DEPTH[key]:
                FIGURES[key] += time.perf_counter() - start

    return wrapper


def _write(original):
    def wrapper(self, table):
        FIGURES["rows"] += table.num_rows
        return original(self, table)

    return _timed(wrapper, "write_s")


def _load_job(original):
    def wrapper(self, file_obj, destination, *args, **kwargs):
        table = str(destination).rsplit(".", 1)[-1].split("__etl_staging_", 1)[0]
        FIGURES["jobs"][table] = FIGURES["jobs"].get(table, 0) + 1
        return original(self, file_obj, destination, *args, **kwargs)

    return wrapper


staging.PartWriter.write = _write(staging.PartWriter.write)
staging.PartWriter.flush = _timed(staging.PartWriter.flush, "write_s")
# the load jobs run inside `flush`: their time is taken out of write_s at exit
loader.BigQueryLoader._load_part = _timed(loader.BigQueryLoader._load_part, "load_s")
bigquery.Client.load_table_from_file = _load_job(bigquery.Client.load_table_from_file)


@atexit.register
def _report() -> None:
    path = os.environ.get("BENCH_BQDEST_PROBE")
    if path:
        figures = dict(FIGURES, write_s=FIGURES["write_s"] - FIGURES["load_s"])
        with open(path, "a") as handle:  # one line per run
            handle.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    sys.exit(main())
