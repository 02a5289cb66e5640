"""Bad input not covered by test_files.py / test_csv_typing.py (issue 5, item 4): cp1252 bytes,
JSONL whose field changes type between lines, nested JSONL objects, column names that collide
after sanitisation, reserved words, unicode names and values, duplicate and empty header names,
header-only and zero-byte files. Each case states its exact outcome."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from etl import BadInputError, JobConfig, run
from etl.state import RunResult
from tests.etl.support import DATASET, duck_query, duck_table_exists, local_file_job


def _run(tmp_path: Path, name: str, content: bytes, fmt: str = "csv", **options: Any) -> RunResult:
    return run(
        JobConfig.parse(local_file_job(tmp_path, name, content, fmt, file_format_options=options))
    )


def _columns(result: RunResult) -> list[tuple[str, str, str]]:
    return [
        (c["name"], c["source_name"], c["type"])
        for c in result.schema_
        if not c["name"].startswith("_etl_")
    ]


def _rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    return duck_query(
        tmp_path / "w.duckdb",
        f"SELECT * EXCLUDE (_etl_run_id, _etl_loaded_at, _etl_source_file) FROM {DATASET}.t",
    )


CP1252 = "id,name\n1,caf\u00e9 \u20ac5 \u2019q\u2019 \u2013 \u0153\n".encode("cp1252")


def test_cp1252_loads_with_its_encoding(tmp_path: Path) -> None:
    """Bytes 0x80 (euro), 0x92 (right quote), 0x96 (en dash), 0x9c (oe), only defined in cp1252
    (Latin-1 has control codes there), load as those characters with `encoding: cp1252`."""
    result = _run(tmp_path, "data.csv", CP1252, encoding="cp1252")

    assert result.rows_loaded == 1
    assert _rows(tmp_path) == [(1, "caf\u00e9 \u20ac5 \u2019q\u2019 \u2013 \u0153")]


def test_cp1252_read_as_utf8_fails_naming_line_and_column(tmp_path: Path) -> None:
    """The same bytes under the default UTF-8 fail at line 2, column `name`; nothing written."""
    with pytest.raises(
        BadInputError,
        match=r"file data\.csv, line 2, column `name`\): text is not valid utf-8 .*encoding",
    ):
        _run(tmp_path, "data.csv", CP1252)
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_jsonl_field_changing_type_widens_to_text(tmp_path: Path) -> None:
    """`v` is a number on line 1 and a string on line 3: `v` loads as text, the number as its
    JSON text `1`, with a warning counting the one value stored that way (issue 17, item 6)."""
    content = b'{"id":1,"v":1}\n{"id":2,"v":null}\n{"id":3,"v":"x"}\n'
    result = _run(tmp_path, "data.jsonl", content, fmt="jsonl")

    assert _columns(result) == [("id", "id", "BIGINT"), ("v", "v", "VARCHAR")]
    assert _rows(tmp_path) == [(1, "1"), (2, None), (3, "x")]
    assert result.warnings == [
        "file data.jsonl, field v: values of different kinds; loaded as STRING, 1 non-string "
        "values stored as their JSON text"
    ]


def test_jsonl_integer_then_float_widens_to_double(tmp_path: Path) -> None:
    """An integer then a fraction in one field is one number column (DOUBLE), values exact."""
    result = _run(tmp_path, "data.jsonl", b'{"id":1,"v":1}\n{"id":2,"v":2.5}\n', fmt="jsonl")

    assert _columns(result) == [("id", "id", "BIGINT"), ("v", "v", "DOUBLE")]
    assert _rows(tmp_path) == [(1, 1.0), (2, 2.5)]


def test_jsonl_nested_objects_and_arrays_load_as_struct_and_list(tmp_path: Path) -> None:
    """A nested object becomes a STRUCT (a missing member NULL), an array a LIST."""
    content = b'{"id":1,"o":{"x":1,"y":"a"},"l":[1,2]}\n{"id":2,"o":{"x":2,"y":null},"l":[]}\n'
    result = _run(tmp_path, "data.jsonl", content, fmt="jsonl")

    assert _columns(result) == [
        ("id", "id", "BIGINT"),
        ("o", "o", "STRUCT(x BIGINT, y VARCHAR)"),
        ("l", "l", "BIGINT[]"),
    ]
    assert _rows(tmp_path) == [(1, {"x": 1, "y": "a"}, [1, 2]), (2, {"x": 2, "y": None}, [])]


def test_names_colliding_after_sanitisation_get_suffixes(tmp_path: Path) -> None:
    """`Order ID` / `order_id`, `na!e` / `na%e`, `+1` / `-1` map to distinct destination names
    (first keeps the base name, the next gets `_2`), and each value lands in its own column."""
    result = _run(tmp_path, "data.csv", b"Order ID,order_id,na!e,na%e,+1,-1\n1,2,3,4,5,6\n")

    assert [(name, source) for name, source, _ in _columns(result)] == [
        ("order_id", "Order ID"),
        ("order_id_2", "order_id"),
        ("na_e", "na!e"),
        ("na_e_2", "na%e"),
        ("_1", "+1"),
        ("_1_2", "-1"),
    ]
    assert result.state.column_map["-1"] == "_1_2"
    assert _rows(tmp_path) == [(1, 2, 3, 4, 5, 6)]


def test_reserved_words_and_prefixes(tmp_path: Path) -> None:
    """SQL keywords stay as names (quoted by the loader); BigQuery's reserved prefix `_TABLE_`
    and the engine's `_etl_` get `col_`."""
    result = _run(
        tmp_path, "data.csv", b"select,from,order,group,_TABLE_x,_etl_run_id\n1,2,3,4,5,6\n"
    )

    assert [(name, source) for name, source, _ in _columns(result)] == [
        ("select", "select"),
        ("from", "from"),
        ("order", "order"),
        ("group", "group"),
        ("col_table_x", "_TABLE_x"),
        ("col_etl_run_id", "_etl_run_id"),
    ]
    assert _rows(tmp_path) == [(1, 2, 3, 4, 5, 6)]


def test_unicode_names_and_values(tmp_path: Path) -> None:
    """Accented names fold to ASCII (`Größe` -> `grosse`, `café` -> `cafe`); a name with no
    ASCII letter becomes `column`; values keep every character, emoji included."""
    content = "Gr\u00f6\u00dfe,\u540d\u524d,caf\u00e9\n1,\u6771\u4eac,\u00e9t\u00e9 \U0001f600\n"
    result = _run(tmp_path, "data.csv", content.encode())

    assert _columns(result) == [
        ("grosse", "Gr\u00f6\u00dfe", "BIGINT"),
        ("column", "\u540d\u524d", "VARCHAR"),
        ("cafe", "caf\u00e9", "VARCHAR"),
    ]
    assert _rows(tmp_path) == [(1, "\u6771\u4eac", "\u00e9t\u00e9 \U0001f600")]


def test_duplicate_and_empty_header_names(tmp_path: Path) -> None:
    """A repeated header gets `_2`, an empty one `column_<position>`."""
    result = _run(tmp_path, "data.csv", b"a,a,,b\n1,2,3,4\n")

    assert [name for name, _, _ in _columns(result)] == ["a", "a_2", "column_3", "b"]
    assert _rows(tmp_path) == [(1, 2, 3, 4)]


@pytest.mark.parametrize(
    ("content", "size"), [(b"a,b\n", 4), (b"", 0)], ids=["header-only", "zero-byte"]
)
def test_header_only_and_zero_byte_files_load_nothing_with_a_warning(
    tmp_path: Path, content: bytes, size: int
) -> None:
    """The run succeeds with 0 rows, records the file in the ledger and warns naming it and
    its size; no table is created (a header carries no types)."""
    result = _run(tmp_path, "data.csv", content)

    assert (result.rows_loaded, result.warnings) == (
        0,
        [f"file data.csv has no rows ({size} bytes)"],
    )
    assert list(result.state.files) == ["data.csv"]
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_extreme_dates_in_csv(tmp_path: Path) -> None:
    """0001-01-01 and 9999-12-31 (dates and timestamps) survive a CSV load exactly."""
    content = b"d,ts\n0001-01-01,0001-01-01T00:00:00\n9999-12-31,9999-12-31T23:59:59.999999\n"
    result = _run(tmp_path, "data.csv", content)

    assert _columns(result) == [("d", "d", "DATE"), ("ts", "ts", "TIMESTAMP")]
    assert _rows(tmp_path) == [
        (dt.date(1, 1, 1), dt.datetime(1, 1, 1)),
        (dt.date(9999, 12, 31), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    ]
