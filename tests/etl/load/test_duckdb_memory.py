"""DuckDB's automatic memory limit (etl/load/duckdb/memory.py, issue 18): the size of a batch's
largest row measured in Arrow, a Parquet file's bounded from its footer, and the limit raised
for a large value before DuckDB reads a file itself, with the default settings; an explicit
limit is never raised. (64 MiB values through the Arrow path and the CSV reader's spool:
tests/etl/extract/test_large_values.py and tests/etl/test_large_values.py.)"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl import JobConfig, run
from etl.exceptions import DestinationError
from etl.formats.parquet import parquet_scan
from etl.load.duckdb.memory import AUTO_LIMIT_MIB, MemoryBudget, row_bytes
from tests.etl.support import DATASET, duck_query, job_config

MIB = 1 << 20


def test_row_bytes_bounds_the_largest_row() -> None:
    """Text and binary count their largest value (dictionaries their largest entry), fixed-width
    columns their width, a nested column all its buffers: never less than the largest row."""
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "text": pa.array(["abc", None]),
            "blob": pa.array([b"", b"12345"], pa.large_binary()),
            "kind": pa.array(["x", "yyyy"]).dictionary_encode(),
            "items": pa.array([[1], [2, 3]], pa.list_(pa.int32())),
        }
    )
    nested = batch.column("items").nbytes

    assert row_bytes(batch) == 8 + 3 + 5 + 4 + nested
    assert row_bytes(batch.slice(1)) == 8 + 0 + 5 + 4 + batch.column("items").slice(1).nbytes


def test_parquet_footer_bounds_each_row_group(tmp_path: Path) -> None:
    """A Parquet file's row groups are bounded from the footer alone: the row group holding a
    1 MiB value is bounded above 1 MiB, the others stay small."""
    path = tmp_path / "f.parquet"
    table = pa.table({"id": pa.array(range(6)), "v": ["a", "b", "c", "x" * MIB, "e", "f"]})
    pq.write_table(table, path, row_group_size=2)

    scan = parquet_scan(str(path), "f.parquet")

    assert scan is not None
    small, large, last = scan.group_bytes
    assert large >= MIB + 8 > 4096 > max(small, last) >= 8 + 1


def _limits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the loader's memory limit (MiB) after each file it hands to DuckDB."""
    limits: list[int] = []
    fit_scan = MemoryBudget.fit_scan

    def spy(self: MemoryBudget, scan) -> None:  # noqa: ANN001
        fit_scan(self, scan)
        limits.append(self.limit_mib)

    monkeypatch.setattr(MemoryBudget, "fit_scan", spy)
    return limits


def _big_value_files(base: Path) -> str:
    """Write `big.parquet` (ids 1, 2; a 48 MiB text value in row 2) into `base`; return the
    value."""
    base.mkdir()
    value = "0123456789abcdef" * (3 * MIB)
    pq.write_table(pa.table({"id": [1, 2], "v": ["small", value]}), base / "big.parquet")
    return value


def _parquet_job(base: Path, dest: Path, name: str) -> dict:
    """The job config loading `<name>.parquet` from the local folder `base` into `dest`."""
    return job_config(
        "local",
        dest,
        connection_params={"base_path": str(base)},
        file_pattern=f"{name}.parquet",
        file_format="parquet",
    )


def test_large_parquet_value_raises_the_automatic_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 48 MiB value in a local Parquet file (read by DuckDB itself) loads with the default
    settings: the limit is raised from 64 MiB before the read; a file of small values keeps it."""
    base = tmp_path / "in"
    value = _big_value_files(base)
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), base / "small.parquet")
    limits = _limits(monkeypatch)
    for name in ("small", "big"):
        config = _parquet_job(base, tmp_path / f"{name}.duckdb", name)
        assert run(JobConfig.parse(config)).rows_loaded == 2

    assert limits[0] == AUTO_LIMIT_MIB < 5 * 48 < limits[1]
    assert duck_query(
        tmp_path / "big.duckdb", f"SELECT id, strlen(v) FROM {DATASET}.t ORDER BY id"
    ) == [(1, 5), (2, len(value))]


def test_explicit_limit_is_never_raised(tmp_path: Path) -> None:
    """With `memory_limit: 64MB` the same file fails naming the limit and the setting."""
    base = tmp_path / "in"
    _big_value_files(base)
    config = _parquet_job(base, tmp_path / "w.duckdb", "big")
    config["destination"]["memory_limit"] = "64MB"

    with pytest.raises(DestinationError, match=r"memory_limit \(64MB\).*raise `destination"):
        run(JobConfig.parse(config))
