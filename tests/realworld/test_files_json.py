"""Real-world cases: JSON fields whose values change kind between records (issue 17, item 6).
Nothing is rejected: a scalar field of mixed kinds widens to text keeping each value's JSON text,
a field that is an object or array on some records becomes JSON; the run's warnings name each
widened field with the count of values stored as their JSON text."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl.exceptions import SchemaMappingError
from tests.etl.support import bigquery_destination, bq_rows, duck_table_exists
from tests.realworld.conftest import load_file


def _jsonl(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def test_number_field_holding_non_numeric_text(tmp_path: Path) -> None:
    """HubSpot declared `hs_hd_ticket_ids` a number but sent "1234;5678;9098", failing
    Airbyte syncs. The field widens to text: the numbers keep their JSON text (`42`, `7.50`),
    the string its value; 2 values are counted.

    Report: https://github.com/airbytehq/airbyte/pull/62866"""
    content = b'{"id":1,"hs_hd_ticket_ids":42}\n{"id":2,"hs_hd_ticket_ids":"1234;5678;9098"}\n{"id":3,"hs_hd_ticket_ids":7.50}\n'

    loaded = load_file(tmp_path, "notes.jsonl", content, "jsonl")

    assert loaded.rows("id, hs_hd_ticket_ids") == [(1, "42"), (2, "1234;5678;9098"), (3, "7.50")]
    assert loaded.types() == {"id": "BIGINT", "hs_hd_ticket_ids": "VARCHAR"}
    assert loaded.result.warnings == [
        "file notes.jsonl, field hs_hd_ticket_ids: values of different kinds; loaded as STRING, "
        "2 non-string values stored as their JSON text"
    ]


def test_integer_field_receiving_timestamps(tmp_path: Path) -> None:
    """Airbyte's HubSpot schema typed a field bigint and the API sent
    "2021-10-14T19:39:27.105Z". The field loads as text, the integer as `1634240367105`, the
    timestamp text unchanged (not reinterpreted).

    Report: https://github.com/airbytehq/airbyte/issues/12318"""
    content = _jsonl(
        {"id": "p1", "updatedAt": 1634240367105},
        {"id": "p2", "updatedAt": "2021-10-14T19:39:27.105Z"},
    )

    loaded = load_file(tmp_path, "ticket_pipelines.jsonl", content, "jsonl")

    assert loaded.rows("id, updatedat") == [
        ("p1", "1634240367105"),
        ("p2", "2021-10-14T19:39:27.105Z"),
    ]
    assert loaded.types() == {"id": "VARCHAR", "updatedat": "VARCHAR"}
    assert loaded.result.warnings == [
        "file ticket_pipelines.jsonl, field updatedAt: values of different kinds; loaded as "
        "STRING, 1 non-string values stored as their JSON text"
    ]


def test_float_field_holding_an_array(tmp_path: Path) -> None:
    """An Airtable formula field typed float returned a one-element array, failing the
    destination ("invalid input syntax for type double precision"). The field becomes JSON:
    `[12.5]`, `3.25` and `null` kept as JSON values; 2 values counted.

    Report: https://github.com/airbytehq/airbyte/issues/31861"""
    content = _jsonl(
        {"id": 1, "outstanding": 3.25},
        {"id": 2, "outstanding": [12.5]},
        {"id": 3, "outstanding": None},
    )

    loaded = load_file(tmp_path, "airtable.jsonl", content, "jsonl")

    assert loaded.types() == {"id": "BIGINT", "outstanding": "JSON"}
    assert loaded.rows("id, outstanding::VARCHAR, json_type(outstanding)") == [
        (1, "3.25", "DOUBLE"),
        (2, "[12.5]", "ARRAY"),
        (3, None, None),
    ]
    assert loaded.result.warnings == [
        "file airtable.jsonl, field outstanding: objects or arrays mixed with values of another "
        "shape; loaded as JSON, 2 values stored as their JSON text"
    ]


def test_integer_then_fraction_is_one_double_column(tmp_path: Path) -> None:
    """BigQuery normalization failed with "Bad int64 value: 1.0" when an integer column later
    held 1.0. Integers then `1.0` and `2.5` make one DOUBLE column, every value exact; no
    warning (a widening, no value changed).

    Report: https://github.com/airbytehq/airbyte/issues/21413"""
    content = _jsonl({"seg": 1, "n": 3}, {"seg": 2, "n": 1.0}, {"seg": 3, "n": 2.5})

    loaded = load_file(tmp_path, "segments.jsonl", content, "jsonl")

    assert loaded.types() == {"seg": "BIGINT", "n": "DOUBLE"}
    assert loaded.rows("seg, n") == [(1, 3.0), (2, 1.0), (3, 2.5)]
    assert loaded.result.warnings == []


def test_integers_sometimes_quoted(tmp_path: Path) -> None:
    """After an Airbyte protocol upgrade integer fields were written to JSONL as quoted
    strings. A file where `count` is `5` on old lines and `"6"` on new ones loads `count` as
    text, `5` and `6` both exact; the 1 number is counted.

    Report: https://github.com/airbytehq/airbyte/issues/22951"""
    content = _jsonl({"id": 1, "count": 5}, {"id": 2, "count": "6"}, {"id": 3, "late": True})

    loaded = load_file(tmp_path, "export.jsonl", content, "jsonl")

    assert loaded.rows("id, count, late") == [(1, "5", None), (2, "6", None), (3, None, True)]
    assert loaded.types() == {"id": "BIGINT", "count": "VARCHAR", "late": "BOOLEAN"}
    assert loaded.result.warnings == [
        "file export.jsonl, field count: values of different kinds; loaded as STRING, 1 "
        "non-string values stored as their JSON text"
    ]


@pytest.mark.integration
def test_boolean_field_turning_to_text_in_bigquery(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """Airbyte's incremental BigQuery loads crashed when a field switched from TIMESTAMP to STRING. A
    boolean field that later holds "unknown" loads into the BigQuery emulator as STRING
    (`true`, `false`, `unknown`), the late field `note` added.

    Report: https://github.com/airbytehq/airbyte/issues/5959"""
    content = _jsonl(
        {"id": 1, "ok": True}, {"id": 2, "ok": False}, {"id": 3, "ok": "unknown", "note": "x"}
    )

    loaded = load_file(
        tmp_path, "flags.jsonl", content, "jsonl", destination=bigquery_destination(bq_dataset)
    )

    assert bq_rows(bigquery_client, f"SELECT id, ok, note FROM `{bq_dataset}.t` ORDER BY id") == [
        (1, "true", None),
        (2, "false", None),
        (3, "unknown", "x"),
    ]
    types = {c["name"]: c["type"] for c in loaded.result.schema_}
    assert (types["ok"], types["note"]) == ("STRING", "STRING")
    assert loaded.result.warnings == [
        "file flags.jsonl, field ok: values of different kinds; loaded as STRING, 2 non-string "
        "values stored as their JSON text"
    ]


@pytest.mark.integration
def test_float_field_holding_an_array_in_bigquery(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """The Airtable case above, into the BigQuery emulator: the field that holds a number on
    one record and a one-element array on the next is a BigQuery JSON column holding `3.25`
    and `[12.5]`.

    Report: https://github.com/airbytehq/airbyte/issues/31861"""
    content = _jsonl({"id": 1, "outstanding": 3.25}, {"id": 2, "outstanding": [12.5]})

    loaded = load_file(
        tmp_path, "airtable.jsonl", content, "jsonl", destination=bigquery_destination(bq_dataset)
    )

    assert {c["name"]: c["type"] for c in loaded.result.schema_}["outstanding"] == "JSON"
    assert bq_rows(
        bigquery_client,
        f"SELECT id, TO_JSON_STRING(outstanding) FROM `{bq_dataset}.t` ORDER BY id",
    ) == [(1, "3.25"), (2, "[12.5]")]


def _long(fmt: str) -> bytes:
    # json.dumps would write the doubles: the numbers are written as the text above
    text = (
        '{"id": 1, "amount": 12345678901234567890.123, "o": {"k": [0.1]}}',
        '{"id": 2, "amount": 1.5, "o": {"k": [0.12345678901234567890123]}}',
        '{"id": 3, "amount": 7, "o": {"k": []}}',
    )
    if fmt == "json":
        return ("[" + ",\n".join(text) + "]").encode()
    return "".join(line + "\n" for line in text).encode()


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_numbers_a_double_would_round_load_as_exact_decimals(tmp_path: Path, fmt: str) -> None:
    """Trino returned JSON numbers with more than 16 significant digits rounded, and Arrow's
    JSON inference (arrow-rs) reads them as Float64. `amount` (20 integer digits, 3 decimals)
    loads as DECIMAL(23,3) with every digit, and the field's other numbers (1.5, 7) in it;
    `o.k`, in arrays inside an object, as DECIMAL(23,23); no warning, as no value changed.
    Before, both were DOUBLE: `12345678901234567890.123` became 1.2345678901234567e19.

    Reports: https://github.com/trinodb/trino/issues/28867,
    https://github.com/apache/arrow-rs/issues/4856"""
    loaded = load_file(tmp_path, f"a.{fmt}", _long(fmt), fmt)

    types = loaded.types()
    assert (types["amount"], types["o"]) == ("DECIMAL(23,3)", "STRUCT(k DECIMAL(23,23)[])")
    assert loaded.rows("id, amount, o.k", order="id") == [
        (1, Decimal("12345678901234567890.123"), [Decimal("0.1")]),
        (2, Decimal("1.5"), [Decimal("0.12345678901234567890123")]),
        (3, Decimal(7), []),
    ]
    assert loaded.result.warnings == []


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_long_number_after_many_short_ones_sizes_the_whole_field(tmp_path: Path, fmt: str) -> None:
    """200,000 records of `v` with two decimals (several 4 MB blocks typed DOUBLE), then
    `0.1000000000000000000001`: `v` is DECIMAL(28,22) holding all of them (the field is sized
    from every value of the file, not the last block's), sum exact."""
    lines = [b'{"v":%d.25}' % n for n in range(1, 200_001)]
    lines.append(b'{"v":0.1000000000000000000001}')
    content = b"[" + b",\n".join(lines) + b"]" if fmt == "json" else b"\n".join(lines) + b"\n"

    loaded = load_file(tmp_path, f"a.{fmt}", content, fmt)

    assert loaded.types() == {"v": "DECIMAL(28,22)"}
    assert loaded.rows("count(*), sum(v), max(v), min(v)") == [
        (
            200_001,
            Decimal("20000150000.1000000000000000000001"),
            Decimal("200000.25"),
            Decimal("0.1000000000000000000001"),
        )
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_number_no_decimal_holds_fails_naming_the_field(tmp_path: Path, fmt: str) -> None:
    """A number a double does not give back and DECIMAL(38) cannot hold (1.5 and 41 decimals: 42 digits) fails the
    run with SchemaMappingError naming the field path, quarantine or not; nothing is written.
    Numbers a double gives back (`0.30000000000000004`, 17 digits, as Python writes doubles)
    stay DOUBLE."""
    bad = b'{"o":{"v":1.5}}\n{"o":{"v":0.12345678901234567890123456789012345678901}}\n'
    content = b"[" + bad.replace(b"\n", b",", 1).rstrip(b"\n") + b"]" if fmt == "json" else bad

    with pytest.raises(SchemaMappingError, match=r"Column `o\.v` of type `number of 42 digits`"):
        load_file(tmp_path, f"a.{fmt}", content, fmt, on_bad_rows="quarantine")
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")

    ok = tmp_path / "ok"
    ok.mkdir()
    doubles = b'{"v":0.30000000000000004}\n{"v":0.1}\n'
    content = (
        b"[" + doubles.replace(b"\n", b",", 1).rstrip(b"\n") + b"]" if fmt == "json" else doubles
    )
    loaded = load_file(ok, f"a.{fmt}", content, fmt)
    assert loaded.types() == {"v": "DOUBLE"}
    assert loaded.rows("v", order="v") == [(0.1,), (0.30000000000000004,)]


@pytest.mark.integration
def test_long_decimal_into_bigquery_as_numeric(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """`amount` (DECIMAL(23,3): 20 integer digits, 3 decimals) loads into the BigQuery emulator
    as NUMERIC with every digit."""
    content = b'{"id":1,"amount":12345678901234567890.123}\n{"id":2,"amount":1.5}\n'

    loaded = load_file(
        tmp_path, "a.jsonl", content, "jsonl", destination=bigquery_destination(bq_dataset)
    )

    assert {c["name"]: c["type"] for c in loaded.result.schema_}["amount"] == "NUMERIC"
    assert bq_rows(bigquery_client, f"SELECT id, amount FROM `{bq_dataset}.t` ORDER BY id") == [
        (1, Decimal("12345678901234567890.123")),
        (2, Decimal("1.5")),
    ]
