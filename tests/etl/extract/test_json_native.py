"""JSONL and JSON into DuckDB through the reader's Parquet spool read by DuckDB itself
(etl/formats/json/lines.py `_read_records`, etl/formats/spool.py `Spool.scan`; issue 18): when
every chunk was read with the file's final schema, the spool goes to the loader as a
`NativeScan` and DuckDB's `read_parquet` loads the very table the Arrow path loads (types,
values, NULLs, row order, renames, selection, lineage columns, progress, ledger rows). Every
other file keeps the Arrow path and gives the same table: decimals sized over the file (read
again), drift (warnings), bad lines under quarantine (rejects), ISO 8601 text ending in `Z`
(UTC timestamps), nested and all-NULL fields (types `parquet_scan` leaves to Arrow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, run
from etl.load.duckdb.loader import DuckDbLoader
from etl.state import RunResult
from tests.etl.support import (
    DATASET,
    duck_query,
    duck_table_rows,
    local_dir_job,
    record_native_inserts,
)

PLAIN = [
    {
        "id": 1,
        "Order Date": "1996-03-13",
        "at": "2020-01-01T10:00:00",
        "x": 1.5,
        "text": "é",
        "flag": True,
    },
    {
        "id": 2**63 - 1,
        "Order Date": "9999-12-31",
        "at": "1970-01-01 00:00:00",
        "x": -1e308,
        "text": "",
        "flag": False,
    },
    {"id": None, "Order Date": None, "at": None, "x": None, "text": None, "flag": None},
    {"id": -(2**63), "x": 0.1, "text": 'line\nbreak "q" \\u0000'},  # missing fields: NULLs
]


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def _job(root: Path, duckdb_path: Path, fmt: str = "jsonl", **fields: Any) -> JobConfig:
    return local_dir_job(
        root, duckdb_path, fmt, file_pattern=f"*.{fmt}", load_type="catalog", **fields
    )


def _both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path, fmt: str = "jsonl", **fields: Any
) -> tuple[RunResult, RunResult, list[str], list[tuple[int, int]]]:
    """Run the job into DuckDB twice, with and without native scans; return both results, the
    files read natively and the progress calls of the native run."""
    native = record_native_inserts(monkeypatch)
    progress: list[tuple[int, int]] = []
    fast = run(
        _job(root, tmp_path / "native.duckdb", fmt, **fields),
        progress=lambda rows, size: progress.append((rows, size)),
    )
    read_natively = list(native)
    monkeypatch.setattr(DuckDbLoader, "native_scans", frozenset())
    slow = run(_job(root, tmp_path / "arrow.duckdb", fmt, **fields))
    assert native == read_natively  # the Arrow run read no file natively
    assert (fast.rows_extracted, fast.rows_loaded) == (slow.rows_extracted, slow.rows_loaded)
    assert fast.schema_ == slow.schema_
    assert fast.warnings == slow.warnings
    assert {k: r.rows for k, r in fast.state.files.items()} == {
        k: r.rows for k, r in slow.state.files.items()
    }
    assert duck_table_rows(tmp_path / "native.duckdb") == duck_table_rows(tmp_path / "arrow.duckdb")
    return fast, slow, read_natively, progress


@pytest.mark.parametrize("selected", [[], ["Order Date", "id"]], ids=["all", "selected"])
def test_duckdb_reads_the_spool_into_the_table_the_arrow_path_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selected: list[str]
) -> None:
    """Two JSONL files (the second's rows after the first's) with extremes and NULLs of every
    plain type, timestamps from dates and datetimes, missing fields, a name that is renamed
    (`Order Date` -> `order_date`), optionally a selection: both are read natively and give
    the Arrow path's columns, types, values, order, lineage, ledger rows and progress."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.jsonl").write_bytes(_lines(PLAIN))
    (root / "b.jsonl").write_bytes(_lines(PLAIN[1:]))

    fast, _, native, progress = _both(tmp_path, monkeypatch, root, selected_columns=selected)

    assert native == ["a.jsonl", "b.jsonl"]
    assert fast.rows_loaded == 7
    assert [fast.state.files[k].rows for k in ("a.jsonl", "b.jsonl")] == [4, 3]
    assert progress and progress[-1][0] == 7
    types, rows = duck_table_rows(tmp_path / "native.duckdb")
    assert ("order_date", "TIMESTAMP") in types and ("id", "BIGINT") in types
    assert sorted(row[-1] for row in rows) == ["a.jsonl"] * 4 + ["b.jsonl"] * 3
    stamped = duck_query(
        tmp_path / "native.duckdb",
        f"SELECT count(*) FROM {DATASET}.t WHERE _etl_run_id = ? AND _etl_loaded_at IS NOT NULL",
        [fast.run_id],
    )
    assert stamped == [(7,)]
    if not selected:
        assert ("x", "DOUBLE") in types and ("flag", "BOOLEAN") in types
        assert 'line\nbreak "q" \\u0000' in [row[4] for row in rows]


def test_a_json_array_file_is_read_natively_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file_format: json` (one array) goes through the same spool: read natively, same table."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.json").write_text(json.dumps(PLAIN))
    _, _, native, _ = _both(tmp_path, monkeypatch, root, "json")
    assert native == ["a.json"]


OTHERS = {
    "decimals": b'{"id": 1, "v": 12345678901234567890.125}\n{"id": 2, "v": 0.5}\n',
    "beyond int64": _lines([{"id": 1, "v": 2**64 - 1}, {"id": 2, "v": None}]),
    "utc text": _lines([{"id": 1, "at": "2020-01-01T10:00:00Z"}, {"id": 2, "at": None}]),
    "drift": _lines([{"id": 1, "v": 1}, {"id": 2, "v": "one"}]),
    "nested": _lines([{"id": 1, "o": {"k": 1}, "l": [1, 2], "e": {}}, {"id": 2, "l": []}]),
    "all null": _lines([{"id": 1, "v": None}, {"id": 2, "v": None}]),
    "names equal ignoring case": _lines([{"id": 1, "ID": 2}]),
}


@pytest.mark.parametrize("name", list(OTHERS), ids=list(OTHERS))
def test_other_files_keep_the_arrow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Decimals sized over the file and integers beyond int64 (read again with the final
    schema), drift (widened, with its warning), UTC text, nested and all-NULL fields, names
    equal ignoring case: no native read, the same table and warnings as the Arrow path."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.jsonl").write_bytes(OTHERS[name])
    fast, _, native, _ = _both(tmp_path, monkeypatch, root)
    assert native == []
    types, rows = duck_table_rows(tmp_path / "native.duckdb")
    if name == "decimals":
        assert ("v", "DECIMAL(23,3)") in types
        assert str(rows[0][1]) == "12345678901234567890.125"
    if name == "utc text":
        assert ("at", "TIMESTAMP WITH TIME ZONE") in types
    if name == "drift":
        assert len(fast.warnings) == 1 and "v" in fast.warnings[0]


def test_bad_lines_under_quarantine_keep_the_arrow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line that is not JSON, under `on_bad_rows: quarantine`: the other lines load through
    the Arrow path, and the rejects are those of the Arrow path."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.jsonl").write_bytes(_lines(PLAIN[:2]) + b"{not json\n" + _lines(PLAIN[2:]))
    fast, _, native, _ = _both(tmp_path, monkeypatch, root, on_bad_rows="quarantine")
    assert native == []
    assert fast.rows_loaded == 4
    rejects = [
        duck_query(path, f"SELECT file, line FROM {DATASET}.t__rejected")
        for path in (tmp_path / "native.duckdb", tmp_path / "arrow.duckdb")
    ]
    assert rejects[0] == rejects[1] == [("a.jsonl", 3)]


def test_duckdb_would_read_nested_fields_otherwise(tmp_path: Path) -> None:
    """Why nested fields keep the Arrow path (`plain_type`): from Parquet, DuckDB names a
    struct's members equal ignoring case apart (`K` -> `K_1`) and reads a list of NULLs as
    `"NULL"[]`, where the Arrow path loads `K` and `VARCHAR[]`; plain lists and structs agree."""
    import duckdb
    import pyarrow.parquet as pq

    from etl.formats.json.chunks import read_chunk
    from etl.transform.types import normalize_batch

    table = read_chunk(b'{"o": {"k": 1, "K": 2}, "l": [1], "n": [null]}\n', None)
    pq.write_table(table, tmp_path / "s.parquet", compression="none")
    connection = duckdb.connect()
    connection.register("arrow_rows", normalize_batch(table.to_batches()[0]))
    arrow = connection.execute("DESCRIBE SELECT * FROM arrow_rows").fetchall()
    parquet = connection.execute(
        "DESCRIBE SELECT * FROM read_parquet(?)", [str(tmp_path / "s.parquet")]
    ).fetchall()
    assert [row[:2] for row in arrow] == [
        ("o", "STRUCT(k BIGINT, K BIGINT)"),
        ("l", "BIGINT[]"),
        ("n", "VARCHAR[]"),
    ]
    assert [row[:2] for row in parquet] == [
        ("o", "STRUCT(k BIGINT, K_1 BIGINT)"),
        ("l", "BIGINT[]"),
        ("n", '"NULL"[]'),
    ]
