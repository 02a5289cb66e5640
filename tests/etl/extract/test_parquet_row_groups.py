"""Parquet files read a run of row groups at a time (etl/formats/parquet.py `read_parquet`):
pyarrow's reader pre-buffers the row groups it is given until it is closed, so one reader over
the whole file held all of it in memory. The rows, their order and their values are those of
the file whatever its row groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.formats.parquet import PARQUET_BATCH_ROWS, _row_group_runs, read_parquet


@pytest.mark.parametrize(
    "group_rows",
    [1_000, PARQUET_BATCH_ROWS, 50_000],
    ids=["small-groups", "batch-sized-groups", "large-groups"],
)
def test_parquet_rows_read_by_runs_of_row_groups(tmp_path: Path, group_rows: int) -> None:
    """The batches after the empty first one hold the file's rows in order with their values,
    at most PARQUET_BATCH_ROWS each; the runs cover every row group once, in order, each of
    at least PARQUET_BATCH_ROWS rows but the last."""
    rows = 123_457
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "text": pa.array([f"value {i}" for i in range(rows)]),
            "amount": pa.array(range(rows), pa.int32()).cast(pa.decimal128(12, 2)),
        }
    )
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=group_rows)

    batches = list(read_parquet(lambda: path.open("rb"), "rows.parquet"))

    assert batches[0].num_rows == 0
    assert batches[0].schema == table.schema
    assert all(b.num_rows <= PARQUET_BATCH_ROWS for b in batches)
    assert pa.Table.from_batches(batches[1:]).equals(table)
    parquet = pq.ParquetFile(path)
    runs = list(_row_group_runs(parquet))
    assert [group for run in runs for group in run] == list(range(parquet.num_row_groups))
    sizes = [sum(parquet.metadata.row_group(g).num_rows for g in run) for run in runs]
    assert all(size >= PARQUET_BATCH_ROWS for size in sizes[:-1])
