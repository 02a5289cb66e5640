"""Opening the DuckDB destination: only an error that passes by waiting is transient. Another
process's lock on the file is (TransientError); a file that is not a DuckDB database is not
(DestinationError, terminal), so it is not retried for 15 minutes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl import TerminalError, TransientError
from etl.config import DestinationConfig
from etl.exceptions import DestinationError
from etl.load.duckdb import DuckDbLoader


def _loader(path: Path) -> DuckDbLoader:
    return DuckDbLoader(DestinationConfig(type="duckdb", path=str(path), dataset="raw"))


def test_not_a_duckdb_file_is_terminal(tmp_path: Path) -> None:
    """A Parquet/CSV/garbage file at the destination path: DestinationError naming the path,
    terminal (not retried).

    Field reports: https://github.com/TablePlus/TablePlus/issues/3391 (a Parquet file written
    as `file.duckdb`), https://github.com/t8y2/dbx/issues/2104 (an invalid placeholder file)."""
    path = tmp_path / "w.duckdb"
    path.write_bytes(b"id,amount\n1,2.5\n" * 1000)

    with pytest.raises(DestinationError, match=r"not a valid DuckDB database file") as caught:
        _loader(path).last_committed("orders")

    assert isinstance(caught.value, TerminalError)
    assert not isinstance(caught.value, TransientError)
    assert f"DuckDB file {path} cannot be opened" in str(caught.value)


def test_file_locked_by_another_process_is_transient(tmp_path: Path) -> None:
    """Another process holds the file open for writing: TransientError (a retry may pass)."""
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('SELECT 1');"
         "print('ready', flush=True); time.sleep(30)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 5
        with pytest.raises(TransientError, match=r"Could not set lock on file") as caught:
            while time.monotonic() < deadline:
                _loader(path).last_committed("orders")
        assert not isinstance(caught.value, TerminalError)
    finally:
        holder.kill()
        holder.wait()
