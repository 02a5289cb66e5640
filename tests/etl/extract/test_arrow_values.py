"""etl/extract/arrow_values.py builds the same Arrow values as `pa.scalar` / `pa.array` /
`as_py()` (which import pandas), exactly, and leaves what it does not build exactly to them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl.extract.arrow_values import (
    FALSE,
    all_false,
    array,
    booleans,
    python_value,
    python_values,
    scalar,
)

NAIVE = dt.datetime(2013, 12, 31, 23, 59, 59, 999_999)
AWARE = dt.datetime(2014, 1, 1, 1, 2, 3, 456_789, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
CASES: list[tuple[Any, pa.DataType]] = [
    (0, pa.int8()),
    (-128, pa.int8()),
    (2**63 - 1, pa.int64()),
    (-(2**63), pa.int64()),
    (2**64 - 1, pa.uint64()),
    (7, pa.uint16()),
    (NAIVE, pa.timestamp("us")),
    (NAIVE, pa.timestamp("ns")),
    (NAIVE.replace(microsecond=0), pa.timestamp("s")),
    (NAIVE.replace(microsecond=123_000), pa.timestamp("ms")),
    (dt.datetime(1901, 12, 13, 20, 45, 52, 1), pa.timestamp("us")),
    (AWARE, pa.timestamp("us", tz="UTC")),
    (AWARE, pa.timestamp("us", tz="America/New_York")),
    (AWARE, pa.timestamp("ns", tz="+02:00")),
    (NAIVE, pa.timestamp("us", tz="UTC")),
    (AWARE, pa.timestamp("us")),
    (dt.date(2013, 1, 1), pa.date32()),
    (dt.date(1, 1, 1), pa.date32()),
    (dt.date(9999, 12, 31), pa.date32()),
    (Decimal("12345678901234567890.123456789"), pa.decimal128(38, 9)),
    (Decimal("-0.10"), pa.decimal128(5, 2)),
    (Decimal("-0.1"), pa.decimal128(5, 2)),
    (Decimal("1E+3"), pa.decimal128(6, 2)),
    (Decimal("-1.200"), pa.decimal128(4, 1)),
    (Decimal("0E-5"), pa.decimal128(4, 1)),
    (Decimal("9" * 76), pa.decimal256(76, 0)),
    (42, pa.decimal128(10, 3)),
    ("zürich", pa.string()),
    ("", pa.large_string()),
    (1.5e-300, pa.float64()),
    (True, pa.bool_()),
    (False, pa.bool_()),
]


@pytest.mark.parametrize(
    ("value", "type_"), CASES, ids=[f"{t}-{i}" for i, (_, t) in enumerate(CASES)]
)
def test_scalar_is_pa_scalar(value: Any, type_: pa.DataType) -> None:
    built = scalar(value, type_)
    expected = pa.scalar(value, type=type_)
    assert built.type == expected.type
    assert built.equals(expected)
    assert pc.equal(built, expected).as_py()


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        (Decimal("0.125"), pa.decimal128(5, 2)),  # would lose a digit
        (Decimal("1234"), pa.decimal128(5, 2)),  # too many digits
        (2**63, pa.int64()),
    ],
)
def test_inexact_values_are_refused_as_before(value: Any, type_: pa.DataType) -> None:
    with pytest.raises((pa.ArrowInvalid, OverflowError)):
        pa.scalar(value, type=type_)
    with pytest.raises((pa.ArrowInvalid, OverflowError)):
        scalar(value, type_)


def test_a_timestamp_finer_than_its_unit_is_pa_scalars() -> None:
    """pyarrow truncates it: left to pyarrow, whatever it does."""
    assert scalar(NAIVE, pa.timestamp("s")).equals(pa.scalar(NAIVE, type=pa.timestamp("s")))


def test_none_is_a_null_of_the_type() -> None:
    assert not scalar(None, pa.timestamp("us")).is_valid
    assert scalar(None, pa.int64()).type == pa.int64()


@pytest.mark.parametrize("tz", ["UTC", "Etc/UTC", "+00:00", "America/New_York", "-03:30", "+05:45"])
def test_python_value_of_an_aware_timestamp_is_pyarrows(tz: str) -> None:
    """The same datetime as pyarrow's: same instant, same zone, same text (boundary keys
    hash the text of the row's values)."""
    values = pa.array([AWARE, None, NAIVE.replace(tzinfo=dt.UTC)], pa.timestamp("us", tz=tz))
    for value in values:
        mine = python_value(value)
        assert mine == value.as_py()
        assert str(mine) == str(value.as_py())
        assert repr(getattr(mine, "tzinfo", None)) == repr(getattr(value.as_py(), "tzinfo", None))
    assert [str(v) for v in python_values(values)] == [str(v) for v in values.to_pylist()]
    chunked = pa.chunked_array([values, values])
    assert python_values(chunked) == chunked.to_pylist()


def test_python_value_of_other_types_is_as_py() -> None:
    for value, type_ in CASES:
        if not (pa.types.is_timestamp(type_) and type_.tz):
            assert (
                python_value(pa.scalar(value, type=type_)) == pa.scalar(value, type=type_).as_py()
            )
    assert python_value(pa.scalar(AWARE, type=pa.timestamp("ns", tz="UTC"))) == AWARE.astimezone(
        ZoneInfo("UTC")
    )


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 1000])
def test_booleans(length: int) -> None:
    values = [(i * 7) % 3 == 0 for i in range(length)]
    assert booleans(values).equals(pa.array(values, pa.bool_()))
    assert all_false(length).equals(pa.array([False] * length, pa.bool_()))
    assert booleans(values).null_count == 0


def test_array_is_pa_array() -> None:
    for value, type_ in CASES:
        expected = pa.array([value, value], type_)
        assert array([value, value], type_).equals(expected)
    assert FALSE.equals(pa.scalar(False))
