"""Real-world cases: Parquet from other writers (issue 17, item 5): Spark INT96, pandas
nanoseconds, unsigned integers, dictionary encoding."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import BadInputError
from tests.etl.support import bigquery_destination, bq_rows, duck_table_exists
from tests.realworld.conftest import load_file, parquet_bytes, physical_type


def test_int96_timestamps_outside_the_nanosecond_range(tmp_path: Path) -> None:
    """arrow2 read INT96 timestamps of years 1000 and 3000 through timestamp[ns] and overflowed.
    The same file (written with `use_deprecated_int96_timestamps`) loads 1000-01-01,
    2000-01-01 and 3000-01-01 exactly as DuckDB TIMESTAMP.

    Report: https://github.com/jorgecarleitao/arrow2/issues/1527"""
    values = [dt.datetime(1000, 1, 1), dt.datetime(2000, 1, 1), dt.datetime(3000, 1, 1)]
    content = parquet_bytes(
        pa.table({"timestamps": pa.array(values, pa.timestamp("ms"))}),
        use_deprecated_int96_timestamps=True,
        store_schema=False,
    )
    assert physical_type(content, "timestamps") == "INT96"

    loaded = load_file(tmp_path, "timestamps.parquet", content, "parquet")

    assert loaded.rows("timestamps") == [(value,) for value in values]
    assert loaded.types() == {"timestamps": "TIMESTAMP"}
    assert loaded.result.warnings == []


def test_spark_flavor_file_keeps_year_1000(tmp_path: Path) -> None:
    """awswrangler's Spark-flavoured Parquet (INT96) read back 1000-01-01 as 2169-02-09: the
    nanosecond coercion wrapped around. A `flavor="spark"` file keeps 1000-01-01 and
    2262-04-12 (just past the nanosecond range).

    Report: https://github.com/aws/aws-sdk-pandas/pull/3358"""
    values = [dt.datetime(1000, 1, 1), dt.datetime(2262, 4, 12, 1, 2, 3)]
    content = parquet_bytes(
        pa.table({"id": [1, 2], "ts": pa.array(values, pa.timestamp("us"))}), flavor="spark"
    )
    assert physical_type(content, "ts") == "INT96"

    loaded = load_file(tmp_path, "wrangler.parquet", content, "parquet")

    assert loaded.rows("id, ts") == [(1, values[0]), (2, values[1])]


@pytest.mark.integration
def test_year_one_timestamp_into_bigquery(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """pyarrow raised "out of bounds for nanoseconds" on 0001-01-01 01:00, a database's stand-in
    for "no date". As an INT96 Parquet value it loads into the BigQuery emulator as DATETIME
    0001-01-01T01:00:00, with 9999-12-31T23:59:59.999999 beside it.

    Report: https://github.com/apache/arrow/issues/44420"""
    values = [dt.datetime(1, 1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]
    content = parquet_bytes(
        pa.table({"id": [1, 2], "CreateAt": pa.array(values, pa.timestamp("us"))}),
        use_deprecated_int96_timestamps=True,
    )

    loaded = load_file(
        tmp_path, "db.parquet", content, "parquet", destination=bigquery_destination(bq_dataset)
    )

    assert bq_rows(bigquery_client, f"SELECT id, createat FROM `{bq_dataset}.t` ORDER BY id") == [
        (1, values[0]),
        (2, values[1]),
    ]
    assert {c["name"]: c["type"] for c in loaded.result.schema_}["createat"] == "DATETIME"


def test_nanosecond_time_truncated_and_counted(tmp_path: Path) -> None:
    """DuckDB read a Parquet TIME(NANOS) 12:34:56.123456789 as 12:34:56.123456 without a word.
    The value loads as the nearest microsecond below (the default `on_unrepresentable:
    nearest`), and the run's warnings count it in its column.

    Report: https://github.com/duckdb/duckdb/issues/23956"""
    content = parquet_bytes(
        pa.table({"t": pa.array([45296123456789, 45296000001000], pa.time64("ns"))})
    )

    loaded = load_file(tmp_path, "external_time_ns.parquet", content, "parquet")

    assert loaded.rows("t") == [(dt.time(12, 34, 56, 1),), (dt.time(12, 34, 56, 123456),)]
    assert loaded.result.warnings == [
        "file external_time_ns.parquet, column t: 1 values with sub-microsecond digits "
        "truncated to microseconds (on_unrepresentable: nearest)"
    ]


def test_nanosecond_timestamps_fail_when_asked_to(tmp_path: Path) -> None:
    """DuckDB's COPY degraded nanosecond timestamps to microseconds. With
    `on_unrepresentable: fail`, a pandas-written TIMESTAMP(NANOS, UTC) file with a
    sub-microsecond value fails naming the file, row 2, the column and all nine digits.

    Report: https://github.com/duckdb/duckdb/issues/13325"""
    ns = pa.array(
        [1_722_900_000_000_000_000, 1_722_900_000_123_456_789], pa.timestamp("ns", tz="UTC")
    )
    content = parquet_bytes(pa.table({"timestamp_utc": ns}))

    with pytest.raises(BadInputError) as raised:
        load_file(tmp_path, "data.parquet", content, "parquet", on_unrepresentable="fail")

    assert (raised.value.file, raised.value.column) == ("data.parquet", "timestamp_utc")
    assert raised.value.reason.startswith("row 2 holds 2024-08-05 23:20:00.123456789+00:00,")
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_uint64_loads_exactly(tmp_path: Path) -> None:
    """Spark could not read Parquet UINT_64 until it mapped it to DECIMAL(20, 0). 0 and
    2^64 - 1 load exactly as DuckDB UBIGINT.

    Report: https://github.com/apache/spark/pull/31960"""
    content = parquet_bytes(pa.table({"u": pa.array([0, 2**64 - 1, None], pa.uint64())}))

    loaded = load_file(tmp_path, "u64.parquet", content, "parquet")

    assert loaded.rows("u", "u NULLS LAST") == [(0,), (2**64 - 1,), (None,)]
    assert loaded.types() == {"u": "UBIGINT"}


def test_unsigned_8_16_32_bit_maximums(tmp_path: Path) -> None:
    """parquet-io-java read UINT32 and UINT64 values as -1. 255, 65535 and 4294967295 load as
    themselves (DuckDB UTINYINT / USMALLINT / UINTEGER).

    Report: https://github.com/exasol/parquet-io-java/issues/59"""
    content = parquet_bytes(
        pa.table(
            {
                "u8": pa.array([255], pa.uint8()),
                "u16": pa.array([65535], pa.uint16()),
                "u32": pa.array([2**32 - 1], pa.uint32()),
            }
        )
    )

    loaded = load_file(tmp_path, "int_types.parquet", content, "parquet")

    assert loaded.rows("u8, u16, u32") == [(255, 65535, 4294967295)]
    assert loaded.types() == {"u8": "UTINYINT", "u16": "USMALLINT", "u32": "UINTEGER"}


def test_files_with_different_dictionaries_load_into_one_table(tmp_path: Path) -> None:
    """turbodbc's writer refused batches whose dictionary-encoded column had different
    dictionaries ("Table schema does not match schema used to create file"). Two files with
    different dictionaries for `value` load into one VARCHAR column.

    Report: https://github.com/blue-yonder/turbodbc/issues/185"""
    base = tmp_path / "in"
    base.mkdir()
    first = pa.table({"value": pa.array(["3121.0", "3136.0"]).dictionary_encode()})
    (base / "a.parquet").write_bytes(parquet_bytes(first))
    second = pa.table({"value": pa.array(["3183.0", "3125.0", "3183.0"]).dictionary_encode()})

    loaded = load_file(
        tmp_path, "b.parquet", parquet_bytes(second), "parquet", file_pattern="*.parquet"
    )

    assert loaded.types() == {"value": "VARCHAR"}
    assert loaded.rows("_etl_source_file, value", "1, 2") == [
        ("a.parquet", "3121.0"),
        ("a.parquet", "3136.0"),
        ("b.parquet", "3125.0"),
        ("b.parquet", "3183.0"),
        ("b.parquet", "3183.0"),
    ]
