"""`file_format: json` (one array of objects per file) and integers beyond int64 in JSON and
JSONL (issue 5, item 4; shared/DESIGN.md section 5, "Types are exact" and "Bad input").

A JSON array is typed from the whole file like JSONL: an integer field that holds a fraction
after the first 70,000 elements is a DOUBLE, values exact. A field whose values change kind is
widened (issue 17: number and string -> STRING, a nested member of another kind -> JSON), with
a warning. Elements that are not objects fail the run naming file and element before anything
is written, or under `on_bad_rows: quarantine` go to `t__rejected` (line NULL: the reason names
the element). Integers beyond int64 load as
DECIMAL(29, 0) (up to 29 digits; BigQuery NUMERIC) or DECIMAL(38, 0) (up to 38), never as a
DOUBLE; more than 38 digits, or such integers mixed with fractions, fail with
SchemaMappingError naming the field.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl import BadInputError, JobConfig, run
from etl.exceptions import SchemaMappingError
from etl.state import RunResult
from tests.etl.support import (
    DATASET,
    bigquery_destination,
    bq_rows,
    duck_query,
    duck_table_exists,
    local_file_job,
)


def _config(tmp_path: Path, name: str, content: bytes, fmt: str, **fields: Any) -> dict[str, Any]:
    return local_file_job(tmp_path, name, content, fmt, **fields)


def _run(tmp_path: Path, name: str, content: bytes, fmt: str, **fields: Any) -> RunResult:
    return run(JobConfig.parse(_config(tmp_path, name, content, fmt, **fields)))


def _type(tmp_path: Path, column: str) -> str:
    return duck_query(
        tmp_path / "w.duckdb",
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 't' AND column_name = ?",
        [DATASET, column],
    )[0][0]


def test_json_array_is_typed_from_the_whole_file(tmp_path: Path) -> None:
    """70,000 elements with integer `v`, then one with 0.5: `v` is a DOUBLE holding every value
    exactly (count 70,001, sum 2,449,965,000.5), and a field first seen in the last element
    loads too."""
    elements = [{"id": n, "v": n} for n in range(1, 70_001)] + [{"id": 70_001, "v": 0.5, "w": "z"}]
    result = _run(tmp_path, "a.json", json.dumps(elements).encode(), "json")

    assert result.rows_loaded == 70_001
    assert _type(tmp_path, "v") == "DOUBLE"
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT count(*), sum(v), count(w) FROM {DATASET}.t"
    ) == [(70_001, 2_450_035_000.5, 1)]
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT id, v, w FROM {DATASET}.t WHERE id >= 69_999 ORDER BY id"
    ) == [(69_999, 69_999.0, None), (70_000, 70_000.0, None), (70_001, 0.5, "z")]


ARRAY = (
    b"[\n"
    b' {"id": 1, "v": 1.5, "s": "a"},\n'
    b' {"id": 2, "v": 2, "s": null},\n'
    b' {"id": 3, "v": "x", "s": "c"},\n'  # element 3: a string where `v` has numbers
    b" [4],\n"  # element 4: not an object
    b' {"id": 5, "v": 5.25, "s": "e", "o": {"k": 1}},\n'
    b' {"id": 6, "o": {"k": "y"}}\n'  # element 6: a string where `o.k` has numbers
    b"]\n"
)
ARRAY_LOADED = [
    (1, "1.5", "a", None),
    (2, "2", None, None),
    (3, "x", "c", None),
    (5, "5.25", "e", '{"k":1}'),
    (6, None, None, '{"k":"y"}'),
]
"""`v` (numbers and a string) as STRING, `o` (`o.k` a number and a string) as JSON."""
ARRAY_REJECTED = [("a.json", None, None, "element 4: a JSON array, not an object", "[4]")]


def test_json_array_quarantine_sets_bad_elements_aside(tmp_path: Path) -> None:
    """Under quarantine the 5 objects load, `v` widened to text and `o` to JSON (each named in
    a warning with its count of values stored as JSON text); the array goes to `t__rejected`
    with its element number and the element as compact JSON."""
    result = _run(tmp_path, "a.json", ARRAY, "json", on_bad_rows="quarantine")

    assert (result.rows_loaded, result.rows_rejected) == (5, 1)
    duckdb_path = tmp_path / "w.duckdb"
    assert duck_query(duckdb_path, f"SELECT id, v, s, o FROM {DATASET}.t ORDER BY id") == (
        ARRAY_LOADED
    )
    assert (_type(tmp_path, "v"), _type(tmp_path, "o")) == ("VARCHAR", "JSON")
    assert result.warnings == [
        "file a.json, field v: values of different kinds; loaded as STRING, 3 non-string "
        "values stored as their JSON text",
        "file a.json, field o: objects or arrays mixed with values of another shape; loaded as "
        "JSON, 2 values stored as their JSON text",
    ]
    assert (
        duck_query(
            duckdb_path,
            f'SELECT file, line, "column", reason, record FROM {DATASET}.t__rejected ORDER BY reason',
        )
        == ARRAY_REJECTED
    )


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (
            ARRAY,
            BadInputError,
            r"\(file a\.json\): element 4: a JSON array, not an object\. Nothing was loaded",
        ),
        (
            b'{"id": 1}',
            BadInputError,
            r"\(file a\.json\): the file starts with `\{`, not `\[`",
        ),
        (
            b'[{"id": 1}, {"id": 2}, {"id": ',
            BadInputError,
            r"\(file a\.json\): invalid JSON after element 2 \(parse error: premature EOF\)",
        ),
    ],
    ids=["bad-element", "not-an-array", "truncated"],
)
def test_json_array_default_fails_before_writing(
    tmp_path: Path, content: bytes, error: type[Exception], match: str
) -> None:
    """Without quarantine the first bad element fails the run naming file, element and field;
    a file that is not one array fails naming where it breaks; nothing is written."""
    with pytest.raises(error, match=match):
        _run(tmp_path, "a.json", content, "json")

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")
    assert not duck_table_exists(tmp_path / "w.duckdb", "t__rejected")


def test_truncated_json_array_fails_under_quarantine_too(tmp_path: Path) -> None:
    """A broken array has no next element to resume at: quarantine or not, the run fails
    naming the file and nothing is written."""
    with pytest.raises(BadInputError, match=r"invalid JSON after element 1"):
        _run(tmp_path, "a.json", b'[{"id": 1}, {"id" 2}]', "json", on_bad_rows="quarantine")

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


BIG = [
    {"id": 1, "u": 18446744073709551615, "d": 123456789012345678901234567890, "n": 1},
    {"id": 2, "u": -18446744073709551615, "d": -5, "n": 9223372036854775807},
    {"id": 3, "u": 0, "d": None, "n": -9223372036854775808},
    {"id": 4, "u": 9223372036854775808, "d": 99999999999999999999999999999999999999, "n": 2},
]
BIG_LOADED = [
    (1, Decimal("18446744073709551615"), Decimal("123456789012345678901234567890"), 1),
    (2, Decimal("-18446744073709551615"), Decimal("-5"), 9223372036854775807),
    (3, Decimal("0"), None, -9223372036854775808),
    (4, Decimal("9223372036854775808"), Decimal("99999999999999999999999999999999999999"), 2),
]


def _big(fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(BIG).encode()
    return b"".join(json.dumps(row).encode() + b"\n" for row in BIG)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_integers_beyond_int64_load_as_exact_decimals(tmp_path: Path, fmt: str) -> None:
    """`u` (up to 20 digits) is DECIMAL(29,0), `d` (up to 38 digits) DECIMAL(38,0), both with
    every digit; `n`, at the int64 limits, stays BIGINT."""
    result = _run(tmp_path, f"a.{fmt}", _big(fmt), fmt)

    assert result.rows_loaded == 4
    assert [_type(tmp_path, c) for c in ("u", "d", "n")] == [
        "DECIMAL(29,0)",
        "DECIMAL(38,0)",
        "BIGINT",
    ]
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT id, u, d, n FROM {DATASET}.t ORDER BY id"
    ) == (BIG_LOADED)


def test_big_integer_after_the_first_block_widens_the_field(tmp_path: Path) -> None:
    """A JSONL field that holds small integers for 200,000 lines (several 4 MB blocks would
    hold fewer bytes; the typing pass reads them all) and then 2^64 - 1 is DECIMAL(29,0);
    both ends are exact."""
    lines = [b'{"v":%d,"pad":"%s"}\n' % (n, b"x" * 40) for n in range(1, 200_001)]
    lines.append(b'{"v":18446744073709551615}\n')
    _run(tmp_path, "a.jsonl", b"".join(lines), "jsonl")

    assert _type(tmp_path, "v") == "DECIMAL(29,0)"
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT count(*), sum(v), min(v), max(v) FROM {DATASET}.t"
    ) == [
        (
            200_001,
            Decimal(20_000_100_000 + 18446744073709551615),
            Decimal(1),
            Decimal("18446744073709551615"),
        )
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            [{"v": 1}, {"v": 1234567890123456789012345678901234567890}],
            r"Column `v` of type `integer of 40 digits` cannot be loaded: more than 38 digits",
        ),
        (
            [{"o": {"k": 18446744073709551615}}, {"o": {"k": 0.5}}],
            r"Column `o\.k` of type `number` cannot be loaded: it holds integers beyond 64 bits "
            r"and numbers with a fraction",
        ),
    ],
    ids=["39-digits", "big-and-fraction"],
)
def test_integers_without_an_exact_type_fail_naming_the_field(
    tmp_path: Path, fmt: str, rows: list[dict[str, Any]], match: str
) -> None:
    """An integer of more than 38 digits, or integers beyond int64 in a field that also holds
    fractions, fail with SchemaMappingError naming the field (its path); nothing is written,
    quarantine or not (it is the field's type, not one row, that has no exact destination)."""
    content = (
        json.dumps(rows).encode()
        if fmt == "json"
        else b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    )
    with pytest.raises(SchemaMappingError, match=match):
        _run(tmp_path, f"a.{fmt}", content, fmt, on_bad_rows="quarantine")

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


@pytest.mark.integration
def test_integers_beyond_int64_into_the_bigquery_emulator(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """`u` (2^64 - 1, -(2^64 - 1), 0, 2^63) loads as NUMERIC with every digit. (`d`, up to 38
    digits, would be BIGNUMERIC, which the emulator cannot create: see
    tests/etl/test_type_matrix_parquet.py; it is left out here.)"""
    rows = [{"id": row["id"], "u": row["u"]} for row in BIG]
    config = {
        **_config(
            tmp_path, "a.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows), "jsonl"
        ),
        "destination": bigquery_destination(bq_dataset),
    }

    result = run(JobConfig.parse(config))

    assert result.rows_loaded == 4
    assert {c["name"]: c["type"] for c in result.schema_}["u"] == "NUMERIC"
    assert bq_rows(bigquery_client, f"SELECT id, u FROM `{bq_dataset}.t` ORDER BY id") == [
        (row[0], row[1]) for row in BIG_LOADED
    ]
