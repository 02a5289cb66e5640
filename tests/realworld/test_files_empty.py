"""Real-world cases: files without rows (issue 17, item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.etl.support import bigquery_destination, bq_rows
from tests.realworld.conftest import load_file, parquet_bytes

ORDERS_SCHEMA = pa.schema(
    [("order_id", pa.int64()), ("amount", pa.decimal128(10, 2)), ("paid", pa.bool_())]
)


def test_zero_row_parquet_snapshot_creates_the_table(tmp_path: Path) -> None:
    """dlt created no Parquet file and no table when a Stripe endpoint returned nothing; users
    expected "a Parquet file ... with a defined schema". A zero-row Parquet snapshot creates
    the table with its three typed columns and no row, and warns naming the file.

    Report: https://github.com/dlt-hub/dlt/issues/1116"""
    content = parquet_bytes(ORDERS_SCHEMA.empty_table())

    loaded = load_file(tmp_path, "charges.parquet", content, "parquet", load_type="catalog")

    assert loaded.types() == {
        "order_id": "BIGINT",
        "amount": "DECIMAL(10,2)",
        "paid": "BOOLEAN",
    }
    assert loaded.rows("count(*)") == [(0,)]
    assert loaded.result.warnings == [f"file charges.parquet has no rows ({len(content)} bytes)"]


@pytest.mark.integration
def test_empty_arrow_table_snapshot_creates_the_bigquery_table(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """dlt failed with "No data source supplied to write command" loading an empty Arrow table.
    The same empty table, as a Parquet file, makes a BigQuery table with INT64 / STRING
    columns and no row.

    Report: https://github.com/dlt-hub/dlt/issues/1613"""
    schema = pa.schema([("foo", pa.int64()), ("bar", pa.string())])
    content = parquet_bytes(schema.empty_table())

    loaded = load_file(
        tmp_path,
        "empty.parquet",
        content,
        "parquet",
        load_type="catalog",
        destination=bigquery_destination(bq_dataset),
    )

    table = bigquery_client.get_table(f"{bq_dataset}.t")
    assert [(f.name, f.field_type) for f in table.schema][:2] == [
        ("foo", "INT64"),
        ("bar", "STRING"),
    ]
    assert bq_rows(bigquery_client, f"SELECT count(*) FROM `{bq_dataset}.t`") == [(0,)]
    assert loaded.result.warnings == [f"file empty.parquet has no rows ({len(content)} bytes)"]


def test_spark_output_with_empty_part_files(tmp_path: Path) -> None:
    """Doris could not load a Spark output folder in which some part files hold a schema and
    no rows. The rows of the full part load; each empty part is recorded with 0 rows and named
    in a warning.

    Report: https://github.com/apache/doris/issues/1594"""
    base = tmp_path / "in"
    base.mkdir()
    full = parquet_bytes(pa.table({"k": [1, 2, 3], "v": ["a", "b", "c"]}))
    empty = parquet_bytes(pa.table({"k": pa.array([], pa.int64()), "v": pa.array([], pa.string())}))
    for name in ("part-00001.parquet", "part-00002.parquet"):
        (base / name).write_bytes(empty)

    loaded = load_file(
        tmp_path, "part-00000.parquet", full, "parquet", file_pattern="part-*.parquet"
    )

    assert loaded.rows("k, v") == [(1, "a"), (2, "b"), (3, "c")]
    assert loaded.result.warnings == [
        f"file part-00001.parquet has no rows ({len(empty)} bytes)",
        f"file part-00002.parquet has no rows ({len(empty)} bytes)",
    ]
    assert {k: r.rows for k, r in loaded.result.state.files.items()} == {
        "part-00000.parquet": 3,
        "part-00001.parquet": 0,
        "part-00002.parquet": 0,
    }


@pytest.mark.parametrize(
    ("name", "fmt", "content", "types"),
    [
        (
            "empty.csv",
            "csv",
            b"id,name,created_at\n",
            {"id": "VARCHAR", "name": "VARCHAR", "created_at": "VARCHAR"},
        ),
        ("empty.json", "json", b"[]", {}),
        ("empty.jsonl", "jsonl", b"", {}),
    ],
    ids=["header-only-csv", "empty-json-array", "zero-byte-jsonl"],
)
def test_empty_csv_and_json_snapshots(
    tmp_path: Path, name: str, fmt: str, content: bytes, types: dict[str, str]
) -> None:
    """Daft's writers disagreed on what an empty CSV / JSON file is. Read here, a header-only
    CSV snapshot makes a table with its 3 columns (text: a header says nothing of types), an
    empty JSON array or zero-byte JSONL a table without data columns; each warns once.

    Report: https://github.com/Eventual-Inc/Daft/issues/5700"""
    loaded = load_file(tmp_path, name, content, fmt, load_type="catalog")

    assert loaded.types() == types
    assert loaded.rows("count(*)") == [(0,)]
    assert loaded.result.warnings == [f"file {name} has no rows ({len(content)} bytes)"]
