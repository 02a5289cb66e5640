"""The real-world corpus (issue 17): each case rebuilds the input of a public bug report filed
against a peer tool (cited in its docstring) and asserts exact values, destination types, counts
and the run's warnings. File cases: tests/realworld/test_files_*.py; database cases:
tests/realworld/test_databases_*.py.

Helpers here load one generated file through the production path (`etl.run`) into DuckDB in
`tmp_path`, or into the BigQuery emulator; cloud cases use the storage emulators' buckets
(`make_bucket`, from tests/etl/extract/conftest.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl import JobConfig, RunResult, run
from tests.etl.extract.conftest import make_bucket  # noqa: F401  a fixture for the cloud cases
from tests.etl.support import DATASET, duck_query, local_file_job


@dataclass
class Loaded:
    """A run's result and what the DuckDB table holds."""

    result: RunResult
    path: Path

    def rows(self, columns: str, order: str = "1") -> list[tuple[Any, ...]]:
        """Rows of `t` (the SELECT list `columns`), ordered by `order`."""
        return duck_query(self.path, f"SELECT {columns} FROM {DATASET}.t ORDER BY {order}")

    def types(self) -> dict[str, str]:
        """DuckDB column types of `t` without the `_etl_` columns."""
        return dict(
            duck_query(
                self.path,
                "SELECT column_name, data_type FROM information_schema.columns WHERE "
                "table_schema = ? AND table_name = 't' AND column_name NOT LIKE '\\_etl\\_%' "
                "ESCAPE '\\' ORDER BY ordinal_position",
                [DATASET],
            )
        )


def load_file(tmp_path: Path, name: str, content: bytes, fmt: str, **fields: Any) -> Loaded:
    """Write `content` as `<tmp_path>/in/<name>` and run a `local` job of format `fmt` reading it
    into table `t` of `<tmp_path>/w.duckdb` (`fields` override JobConfig keys)."""
    pattern = fields.pop("file_pattern", None)
    config = local_file_job(tmp_path, name, content, fmt, **fields)
    if pattern is not None:
        config["file_pattern"] = pattern
    result = run(JobConfig.parse(config))
    return Loaded(result, tmp_path / "w.duckdb")


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    """`table` as a Parquet file (`options`: pyarrow.parquet.write_table's)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def physical_type(content: bytes, column: str) -> str:
    """The Parquet physical type of `column` in the file `content`."""
    schema = pq.ParquetFile(io.BytesIO(content)).schema
    return next(
        schema.column(i).physical_type
        for i in range(len(schema))
        if schema.column(i).path == column
    )
