"""Files without rows (issue 17, item 4): zero bytes, a header-only CSV, zero-row Parquet, JSON
(`[]`) and JSONL files. A catalog (snapshot) run creates the table with the columns the file
declares, or empties an existing table; a transactional run records the file with 0 rows and a
warning naming it, and creates no table (a CSV header carries no types). DuckDB and the BigQuery
emulator."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl import JobConfig, run
from tests.etl.support import (
    DATASET,
    bigquery_destination,
    bq_rows,
    duck_query,
    duck_table_exists,
    local_file_job,
)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


EMPTY_PARQUET = pa.table(
    {
        "id": pa.array([], pa.int64()),
        "price": pa.array([], pa.decimal128(12, 2)),
        "at": pa.array([], pa.timestamp("us", tz="UTC")),
    }
)
EMPTY_FILES: dict[str, tuple[str, bytes, list[tuple[str, str]]]] = {
    # name: (format, content, DuckDB columns the snapshot table gets)
    "header-only.csv": ("csv", b"id,name\r\n", [("id", "VARCHAR"), ("name", "VARCHAR")]),
    "zero.csv": ("csv", b"", []),
    "zero-rows.parquet": (
        "parquet",
        _parquet(EMPTY_PARQUET),
        [("id", "BIGINT"), ("price", "DECIMAL(12,2)"), ("at", "TIMESTAMP WITH TIME ZONE")],
    ),
    "empty.json": ("json", b"[]\n", []),
    "blank.jsonl": ("jsonl", b"\n\n", []),
}


def _columns(path: Path, table: str = "t") -> list[tuple[str, str]]:
    return duck_query(
        path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ? AND column_name NOT IN ('_etl_run_id', '_etl_loaded_at') "
        "ORDER BY ordinal_position",
        [DATASET, table],
    )


@pytest.mark.parametrize("name", list(EMPTY_FILES))
def test_catalog_run_of_an_empty_file_creates_the_table_with_its_columns(
    tmp_path: Path, name: str
) -> None:
    """A snapshot of a file without rows succeeds with 0 rows, a warning naming the file and
    its size, the file in the ledger with 0 rows, and a table holding the declared columns
    (and `_etl_source_file`) and no row."""
    fmt, content, columns = EMPTY_FILES[name]
    config = local_file_job(tmp_path, name, content, fmt, load_type="catalog")

    result = run(JobConfig.parse(config))

    assert (result.rows_loaded, result.warnings) == (
        0,
        [f"file {name} has no rows ({len(content)} bytes)"],
    )
    assert result.state.files[name].rows == 0
    assert _columns(tmp_path / "w.duckdb") == [*columns, ("_etl_source_file", "VARCHAR")]
    assert duck_query(tmp_path / "w.duckdb", f"SELECT count(*) FROM {DATASET}.t") == [(0,)]


def test_catalog_run_of_an_empty_file_empties_an_existing_table(tmp_path: Path) -> None:
    """A snapshot holding 2 rows, then the file rewritten as header-only: the table is emptied
    and keeps its columns (the new snapshot's declared columns replace them)."""
    config = local_file_job(tmp_path, "s.csv", b"id,name\n1,a\n2,b\n", "csv", load_type="catalog")
    first = run(JobConfig.parse(config))
    (tmp_path / "in" / "s.csv").write_bytes(b"id,name\n")

    second = run(JobConfig.parse(config), first.state)

    assert (first.rows_loaded, second.rows_loaded) == (2, 0)
    assert second.warnings == ["file s.csv has no rows (8 bytes)"]
    assert duck_query(tmp_path / "w.duckdb", f"SELECT count(*) FROM {DATASET}.t") == [(0,)]
    assert [name for name, _ in _columns(tmp_path / "w.duckdb")] == [
        "id",
        "name",
        "_etl_source_file",
    ]


@pytest.mark.parametrize("name", list(EMPTY_FILES))
def test_transactional_run_records_an_empty_file_with_a_warning(tmp_path: Path, name: str) -> None:
    """An append run of a file without rows succeeds with 0 rows, records the file with 0 rows
    and warns naming it; no table is created; the next run skips the file."""
    fmt, content, _ = EMPTY_FILES[name]
    config = local_file_job(tmp_path, name, content, fmt)

    result = run(JobConfig.parse(config))
    again = run(JobConfig.parse(config), result.state)

    assert (result.rows_loaded, result.warnings) == (
        0,
        [f"file {name} has no rows ({len(content)} bytes)"],
    )
    assert result.state.files[name].rows == 0
    assert (again.files_skipped, again.warnings) == (1, [])
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_empty_file_among_others_adds_its_warning_only(tmp_path: Path) -> None:
    """A Spark output folder (a part with rows, a zero-row part): the rows load, the empty part
    is recorded with 0 rows and named in a warning."""
    base = tmp_path / "in"
    base.mkdir()
    pq.write_table(pa.table({"id": [1, 2]}), base / "part-0.parquet")
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), base / "part-1.parquet")
    config = local_file_job(
        tmp_path, "part-0.parquet", (base / "part-0.parquet").read_bytes(), "parquet"
    )
    config["file_pattern"] = "part-*.parquet"

    result = run(JobConfig.parse(config))

    assert result.rows_loaded == 2
    assert result.warnings == [
        f"file part-1.parquet has no rows ({(base / 'part-1.parquet').stat().st_size} bytes)"
    ]
    assert {key: record.rows for key, record in result.state.files.items()} == {
        "part-0.parquet": 2,
        "part-1.parquet": 0,
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("header-only.csv", [("id", "STRING"), ("name", "STRING")]),
        ("zero-rows.parquet", [("id", "INT64"), ("price", "NUMERIC"), ("at", "TIMESTAMP")]),
    ],
)
def test_catalog_run_of_an_empty_file_creates_the_bigquery_table(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str, name: str, fields: list[tuple[str, str]]
) -> None:
    """In the BigQuery emulator too, a snapshot of a file without rows creates the table with
    the declared columns and no row, and warns naming the file."""
    fmt, content, _ = EMPTY_FILES[name]
    config = local_file_job(
        tmp_path,
        name,
        content,
        fmt,
        load_type="catalog",
        destination=bigquery_destination(bq_dataset),
    )

    result = run(JobConfig.parse(config))

    assert result.warnings == [f"file {name} has no rows ({len(content)} bytes)"]
    table = bigquery_client.get_table(f"{bq_dataset}.t")
    assert [(f.name, f.field_type) for f in table.schema][: len(fields)] == fields
    assert bq_rows(bigquery_client, f"SELECT count(*) FROM `{bq_dataset}.t`") == [(0,)]
