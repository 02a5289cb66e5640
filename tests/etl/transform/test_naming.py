"""Destination column names (etl/transform/naming.py): BigQuery-valid, unique ignoring case,
stable across runs."""

from __future__ import annotations

import re

import pytest

from etl.transform import assign_names, sanitize

BIGQUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Order ID", "order_id"),
        ("Größe", "grosse"),
        ("2nd", "_2nd"),
        ("_TABLE_x", "col_table_x"),
        ("_PARTITIONTIME", "col_partitiontime"),
        ("_etl_run_id", "col_etl_run_id"),
        ('dep "delay"', "dep_delay"),
        ("dep `delay`", "dep_delay"),
        ("CarrierName", "carriername"),
        ("time_hour", "time_hour"),
        ("  spaced  out  ", "spaced_out"),
        ("%", "column"),
        ("_private", "_private"),
        ("Zoë café", "zoe_cafe"),
    ],
    ids=lambda value: repr(value),
)
def test_sanitize(source: str, expected: str) -> None:
    """A source name becomes a lower-case BigQuery-valid name."""
    assert sanitize(source) == expected
    assert BIGQUERY_NAME.match(expected)


def test_sanitize_caps_length_at_300() -> None:
    """Names longer than BigQuery's 300-character limit are cut to 300."""
    assert sanitize("a" * 400) == "a" * 300


def test_assign_names_makes_collisions_unique_ignoring_case() -> None:
    """Names that sanitize to the same text (or differ only by case) get `_2`, `_3`, ..."""
    mapping = assign_names(["Order ID", "order_id", "ORDER-ID", "order_id_2"], {})

    assert mapping == {
        "Order ID": "order_id",
        "order_id": "order_id_2",
        "ORDER-ID": "order_id_3",
        "order_id_2": "order_id_2_2",
    }
    assert len({name.lower() for name in mapping.values()}) == 4


def test_assign_names_is_stable_across_runs() -> None:
    """Known names keep their destination name even when new colliding columns appear first."""
    first = assign_names(["b", "A"], {})
    second = assign_names(["a", "A", "b", "new"], first)

    assert first == {"b": "b", "A": "a"}
    assert second == {"b": "b", "A": "a", "a": "a_2", "new": "new"}


def test_assign_names_avoids_reserved_metadata_names() -> None:
    """A source column cannot take the name of an engine metadata column."""
    mapping = assign_names(["x"], {}, reserved=["x"])

    assert mapping == {"x": "x_2"}


def test_long_colliding_names_stay_within_300_characters() -> None:
    """A suffix added for uniqueness never makes a name longer than 300 characters."""
    mapping = assign_names(["a" * 310, "A" * 320], {})

    assert [len(name) for name in mapping.values()] == [300, 300]
    assert len({name.lower() for name in mapping.values()}) == 2
