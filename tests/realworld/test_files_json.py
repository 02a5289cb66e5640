"""Real-world cases: JSON fields whose values change kind between records (issue 17, item 6).
Nothing is rejected: a scalar field of mixed kinds widens to text keeping each value's JSON text,
a field that is an object or array on some records becomes JSON; the run's warnings name each
widened field with the count of values stored as their JSON text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.etl.support import bigquery_destination, bq_rows
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
