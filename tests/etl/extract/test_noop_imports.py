"""A no-op incremental run (nothing new since the last one) of a PostgreSQL or MySQL source into
DuckDB does not import pandas (issue 18, "no-op run ≤ 1 s"): pyarrow imports it (~0.3 s of CPU
and ~50 MB) whenever a scalar or an array is built from Python values, or a time-zone-aware
timestamp is turned into a Python datetime, so the window bounds, the cursor comparisons and
the boundary-key matching build their Arrow values from buffers (etl/extract/arrow_values.py).
Each run is a process of its own, the way the scheduler starts one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROW_COUNTS
from tests.etl.support import REPO_ROOT, SqlSource, copy_table, job_config

pytestmark = pytest.mark.integration

PROBE = (
    "import json, sys\n"
    "from etl.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('\\nPROBE ' + json.dumps({'pandas': 'pandas' in sys.modules}) + '\\n')\n"
    "sys.exit(code)\n"
)
"""`python -m etl run ...`, then whether pandas was imported, as the last line of stderr."""


def _run(config_path: Path, state_path: Path) -> tuple[dict[str, object], bool]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "--config", str(config_path)]
        + ["--state", str(state_path), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    probe = completed.stderr.rstrip().rsplit("\n", 1)[-1]
    assert probe.startswith("PROBE "), completed.stderr[-4000:]
    return json.loads(completed.stdout), json.loads(probe[len("PROBE ") :])["pandas"]


@pytest.mark.parametrize("key", [None, "id"], ids=["row-hash", "primary-key"])
def test_noop_incremental_run_does_not_import_pandas(
    sql_source: SqlSource, tmp_path: Path, key: str | None
) -> None:
    """The second run of a transactional job finds nothing new: it re-reads the rows at the
    watermark, matches their stored keys, loads nothing, and never imports pandas."""
    table = copy_table(sql_source, "flights")
    fields: dict[str, object] = {"primary_key": [key]} if key else {}
    config = job_config(
        sql_source.source_type,
        tmp_path / "w.duckdb",
        source_table_name=table,
        load_type="transactional",
        timestamp_column="time_hour",
        dest_table_name="flights",
        **fields,
    )
    config_path = tmp_path / "job.json"
    config_path.write_text(json.dumps(config))
    state_path = tmp_path / "state.json"

    first, _ = _run(config_path, state_path)
    second, pandas_imported = _run(config_path, state_path)

    assert first["rows_loaded"] == ROW_COUNTS["flights"]
    assert second["rows_loaded"] == 0
    assert second["rows_skipped"] > 0  # the rows at the watermark were re-read and matched
    assert not pandas_imported
