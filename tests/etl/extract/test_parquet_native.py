"""Local Parquet into DuckDB read by DuckDB itself (etl/formats/parquet.py `parquet_scan`,
etl/load/duckdb/insert.py `insert_native`; issue 18): the table is the one the Arrow path
loads (types, values, row order, renames, column selection, lineage columns), and every file
that DuckDB's reader would load differently goes through the Arrow path.

Peer reports of what DuckDB's own reader does differently, hence the fallbacks:
- INT96 timestamps are read as microseconds, their nanoseconds dropped silently:
  https://github.com/duckdb/duckdb/issues/25857 ;
- TIME(NANOS) is read as TIME, sub-microsecond digits dropped:
  https://github.com/duckdb/duckdb/issues/23956 ;
- decimals beyond 38 digits are read as DOUBLE (https://github.com/duckdb/duckdb/pull/9770),
  some of them wrongly (https://github.com/duckdb/duckdb/pull/25058).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl import JobConfig, run
from etl.formats.parquet import parquet_scan
from etl.load.duckdb.loader import DuckDbLoader
from tests.etl.support import (
    duck_table_rows,
    local_dir_job,
    record_native_inserts,
)

PLAIN = {
    "id": pa.array([1, 2, 3], pa.int32()),
    "Order Date": pa.array([dt.date(1992, 1, 2), None, dt.date(9999, 12, 31)]),
    "tiny": pa.array([-128, 127, None], pa.int8()),
    "big_u": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "real": pa.array([1.5, float("inf"), None], pa.float32()),
    "dbl": pa.array([0.1, -1e308, None], pa.float64()),
    "flag": pa.array([True, False, None]),
    "text": pa.array(["é", "", None]),
    "big_text": pa.array(["a", "b" * 1000, None], pa.large_string()),
    "raw": pa.array([b"\x00\xff", b"", None]),
    "amount": pa.array(
        [Decimal("-99999999999999999999999999.999999999999"), Decimal(0), None],
        pa.decimal128(38, 12),
    ),
    "at_ms": pa.array([0, 253_402_300_799_999, None], pa.timestamp("ms")),
    "at_utc": pa.array([-1, 1_700_000_000_123_456, None], pa.timestamp("us", tz="Europe/Paris")),
    "clock": pa.array([0, 86_399_999_999, None], pa.time64("us")),
    "kind": pa.array(["x", "y", "x"]).dictionary_encode(),
}


def _job(root: Path, duckdb_path: Path, **fields: Any) -> JobConfig:
    return local_dir_job(
        root, duckdb_path, "parquet", file_pattern="*.parquet", load_type="catalog", **fields
    )


@pytest.mark.parametrize("selected", [[], ["Order Date", "id", "kind"]])
def test_duckdb_reads_the_files_into_the_table_the_arrow_path_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selected: list[str]
) -> None:
    """Two files (the second's rows after the first's), extremes and NULLs of every plain
    type, a name that is renamed (`Order Date` -> `order_date`), optionally a selection: the
    DuckDB read and the Arrow read give the same columns, types, values and order."""
    root = tmp_path / "files"
    root.mkdir()
    pq.write_table(pa.table(PLAIN), root / "a.parquet")
    pq.write_table(pa.table(PLAIN).slice(1), root / "b.parquet")
    native = record_native_inserts(monkeypatch)

    fast = run(_job(root, tmp_path / "native.duckdb", selected_columns=selected))
    assert native == ["a.parquet", "b.parquet"]
    monkeypatch.setattr(DuckDbLoader, "native_scans", frozenset())
    slow = run(_job(root, tmp_path / "arrow.duckdb", selected_columns=selected))
    assert native == ["a.parquet", "b.parquet"]  # the Arrow run read no file natively

    assert (
        (fast.rows_extracted, fast.rows_loaded)
        == (slow.rows_extracted, slow.rows_loaded)
        == (
            5,
            5,
        )
    )
    assert fast.schema_ == slow.schema_
    assert fast.state.files.keys() == slow.state.files.keys()
    assert [fast.state.files[k].rows for k in ("a.parquet", "b.parquet")] == [3, 2]
    native_table, arrow_table = (
        duck_table_rows(tmp_path / "native.duckdb"),
        duck_table_rows(tmp_path / "arrow.duckdb"),
    )
    assert native_table == arrow_table
    types, rows = native_table
    assert ("order_date", "DATE") in types
    assert sorted(row[-1] for row in rows) == ["a.parquet"] * 3 + ["b.parquet"] * 2


def _write(path: Path, table: pa.Table, **options: Any) -> str:
    path.parent.mkdir(exist_ok=True)
    pq.write_table(table, path, **options)
    return str(path)


def test_files_duckdb_would_read_otherwise_take_the_arrow_path(tmp_path: Path) -> None:
    """No scan (the Arrow path with its checks and messages) for nanoseconds, INT96, decimals
    beyond 38 digits, nested and half-float columns, names equal ignoring case, a `_etl_`
    column, no rows, and a file that is not Parquet; a scan for a plain file."""
    ns = pa.table({"t": pa.array([1], pa.timestamp("ns"))})
    cases = {
        "ns": _write(tmp_path / "f" / "ns.parquet", ns),
        "int96": _write(tmp_path / "f" / "int96.parquet", ns, use_deprecated_int96_timestamps=True),
        "decimal256": _write(
            tmp_path / "f" / "d.parquet",
            pa.table({"d": pa.array([Decimal("1")], pa.decimal256(40, 0))}),
        ),
        "list": _write(tmp_path / "f" / "l.parquet", pa.table({"l": pa.array([[1]])})),
        "float16": _write(
            tmp_path / "f" / "h.parquet",
            pa.table({"h": pa.array([1.0], pa.float32()).cast(pa.float16())}),
        ),
        "names": _write(tmp_path / "f" / "n.parquet", pa.table({"a": [1], "A": [2]})),
        "lineage": _write(tmp_path / "f" / "e.parquet", pa.table({"_etl_run_id": ["x"]})),
        "empty": _write(tmp_path / "f" / "z.parquet", pa.table({"a": pa.array([], pa.int64())})),
    }
    (tmp_path / "f" / "bad.parquet").write_bytes(b"PAR1 not really")
    cases["not parquet"] = str(tmp_path / "f" / "bad.parquet")

    assert {name: parquet_scan(path, name) for name, path in cases.items()} == dict.fromkeys(cases)
    plain = parquet_scan(_write(tmp_path / "f" / "p.parquet", pa.table(PLAIN)), "p.parquet")
    assert plain is not None
    assert (plain.num_rows, plain.sources["Order Date"]) == (3, "Order Date")
