"""A failed run closes its extraction: no source file stays open behind a kept traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl import JobConfig, SyncState, run
from etl.exceptions import SchemaChangeError
from tests.etl.support import job_config


def _open_paths() -> set[str]:
    """The files this process holds open, from /proc/self/fd (Linux)."""
    fd_dir = Path("/proc/self/fd")
    paths = set()
    for fd in os.listdir(fd_dir):
        try:
            paths.add(os.readlink(fd_dir / fd))
        except OSError:  # closed between listing and reading
            continue
    return paths


def _two_files(tmp_path: Path) -> dict[str, object]:
    """a.csv: 50 integer rows; b.csv: a date where a.csv had integers, so the load fails on
    b.csv's first batch, while the extraction is suspended inside b.csv."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_text("id,amount\n" + "".join(f"{i},{i}\n" for i in range(50)))
    (base / "b.csv").write_text("id,amount\n" + "".join(f"{i},2020-01-01\n" for i in range(50)))
    return job_config(
        "local",
        tmp_path / "w.duckdb",
        connection_params={"base_path": str(base)},
        file_pattern="*.csv",
        file_format="csv",
        load_type="catalog",
        chunk_size=10,
    )


def test_failed_run_closes_the_file_it_was_reading(tmp_path: Path) -> None:
    """The loader refuses b.csv's first batch (DATE into BIGINT); the run's traceback, kept by
    `pytest.raises`, must not keep b.csv open (it did: the extraction generator was only
    finalized when the traceback was collected, at interpreter exit)."""
    job = JobConfig.model_validate(_two_files(tmp_path))
    b_path = str((tmp_path / "in" / "b.csv").resolve())
    with pytest.raises(SchemaChangeError) as caught:
        run(job, SyncState())
    assert caught.value.__traceback__ is not None  # the frames are still referenced
    assert b_path not in _open_paths()
