"""Type fidelity matrix, Parquet part (issue 5, item 3; shared/DESIGN.md §5 "Types are exact"):
Parquet files written by pyarrow (each physical encoding asserted in the file's metadata) loaded
from a `local` source into DuckDB and into the BigQuery emulator, each value checked exactly
(extremes on rows 1 and 2, NULL everywhere on row 3).

Decisions:
- decimals: DECIMAL(p, s) in DuckDB; BigQuery NUMERIC when scale <= 9 and integer digits <= 29,
  else BIGNUMERIC, whatever the physical storage (INT32, INT64, FIXED_LEN_BYTE_ARRAY). A
  decimal256 column (precision > 38) loads into DuckDB as each value's exact decimal text
  (DuckDB's DECIMAL stops at 38 digits; never a double, never rounded).
- timestamps: naive -> DuckDB TIMESTAMP / BigQuery DATETIME, UTC-adjusted -> TIMESTAMP WITH TIME
  ZONE / TIMESTAMP, all in microseconds. A nanosecond timestamp or time64 with sub-microsecond
  digits follows `on_unrepresentable`: `nearest` (default) truncates it toward the past and
  counts it per column in the run's warnings; `fail` fails the run naming file, row and column,
  with the value's nine fraction digits. Whole-microsecond nanosecond values load exactly, the
  timestamp[ns] extremes (1677-09-21 / 2262-04-11) included. Dates and timestamps outside
  years 1..9999 (timestamp[ms]/[s] and date32 hold them) load unchanged into DuckDB; for
  BigQuery, whose DATE / DATETIME / TIMESTAMP stop there, the run fails naming file, row and
  column.
- dictionary, large_string and string_view columns load as text, float16 as FLOAT / FLOAT64
  (exact), uint64 as DuckDB UBIGINT / BigQuery NUMERIC (2^64-1 exact), NaN and infinities stay.
- map<string, int64>: DuckDB MAP; BigQuery ARRAY<STRUCT<key, value>> (what BigQuery's own
  Parquet load makes of a map with `map_target_type: ARRAY_OF_STRUCT`).
- lists: DuckDB keeps NULL lists and NULL elements. BigQuery has neither: a NULL list reads
  back as `[]`, counted per column in the run's warnings (`fail` fails the run naming the
  column); a list with a NULL element fails the load with a BadInputError naming file, row
  and column (real BigQuery rejects such a load; the emulator would load the NULL), nothing is
  written.
- files of one run whose schemas differ only in nullability load into one table; int32 in one
  file and int64 in the other widen to BIGINT in DuckDB (INT64 in BigQuery either way).

BigQuery emulator gaps (bqemulator 1.4.0), tested as far as the code path goes:
- BIGNUMERIC: the emulator maps it to DuckDB DECIMAL(76, 38), which DuckDB rejects, so creating
  any table with a BIGNUMERIC column answers HTTP 500. The BIGNUMERIC columns are checked up to
  the load: the BigQuery schema the loader creates and the exact values and Parquet types of
  the part file it sends to the load job.
- NULL array elements and dates beyond 9999-12-31: the emulator accepts them (for the former
  the client then fails to read the row); the loader's own checks are what reject them, as
  real BigQuery would.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl import BadInputError, JobConfig, run
from etl.exceptions import UnrepresentableValueError
from tests.etl.support import DATASET, bigquery_destination, bq_rows, duck_query, job_config

pytestmark = pytest.mark.integration

NINES_38_9 = "9" * 29 + "." + "9" * 9  # NUMERIC's extremes (text: `-Decimal` rounds to 28 digits)
NS_MIN = dt.datetime(1677, 9, 21, 0, 12, 43, 145225)  # timestamp[ns] range, whole microseconds
NS_MAX = dt.datetime(2262, 4, 11, 23, 47, 16, 854775)
TS_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
UTC = dt.UTC
NAN = object()
"""Marks an expected NaN (NaN equals nothing, itself included)."""


def _ns(value: dt.datetime) -> int:
    delta = value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _f16(*values: float | None) -> pa.Array:
    data = np.array([0.0 if v is None else v for v in values], dtype=np.float16)
    return pa.array(data, mask=np.array([v is None for v in values]))


STRUCT = pa.struct([("a", pa.int64()), ("s", pa.string())])
COLUMNS: dict[str, pa.Array] = {
    # column: rows 1, 2, 3 (3 is NULL everywhere)
    "d9": pa.array([Decimal("-9999999.99"), Decimal("9999999.99"), None], pa.decimal128(9, 2)),
    "d18": pa.array(
        [Decimal("-99999999999999.9999"), Decimal("99999999999999.9999"), None],
        pa.decimal128(18, 4),
    ),
    "d38": pa.array([Decimal("-" + NINES_38_9), Decimal(NINES_38_9), None], pa.decimal128(38, 9)),
    "ts_ns": pa.array([_ns(NS_MIN), _ns(NS_MAX), None], pa.timestamp("ns")),
    "tz_ns": pa.array([_ns(NS_MIN), _ns(NS_MAX), None], pa.timestamp("ns", tz="UTC")),
    "ts_us": pa.array([dt.datetime(1, 1, 1), TS_MAX, None], pa.timestamp("us")),
    "tz_us": pa.array(
        [dt.datetime(1, 1, 1, tzinfo=UTC), TS_MAX.replace(tzinfo=UTC), None],
        pa.timestamp("us", tz="UTC"),
    ),
    "ts_ms": pa.array(
        [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999000), None],
        pa.timestamp("ms"),
    ),
    "dt": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), None], pa.date32()),
    "tm": pa.array([dt.time(23, 59, 59, 999999), dt.time(0), None], pa.time64("us")),
    "tm_ns": pa.array([45_296_789_012_000, 0, None], pa.time64("ns")),
    "dct": pa.array(["a'b", "", None]).dictionary_encode(),
    "ls": pa.array(["x" * 3, "", None], pa.large_string()),
    "sv": pa.array(["é", "", None], pa.string_view()),
    "bn": pa.array([b"\x00\xff", b"", None], pa.binary()),
    "b": pa.array([True, False, None]),
    "i8": pa.array([-128, 127, None], pa.int8()),
    "i16": pa.array([-32768, 32767, None], pa.int16()),
    "i32": pa.array([-(2**31), 2**31 - 1, None], pa.int32()),
    "i64": pa.array([-(2**63), 2**63 - 1, None], pa.int64()),
    "u8": pa.array([0, 255, None], pa.uint8()),
    "u16": pa.array([0, 65535, None], pa.uint16()),
    "u32": pa.array([0, 2**32 - 1, None], pa.uint32()),
    "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "f16": _f16(-65504.0, 0.0009765625, None),
    "f32": pa.array([float("nan"), float("inf"), None], pa.float32()),
    "f32x": pa.array([3.4028234663852886e38, 1.401298464324817e-45, None], pa.float32()),
    "f64": pa.array([float("-inf"), 1.0000000000000002, None], pa.float64()),
    "f64x": pa.array([1.7976931348623157e308, 5e-324, None], pa.float64()),
    "st": pa.array([{"a": -1, "s": "x"}, {"a": None, "s": None}, None], STRUCT),
    "li": pa.array([[1, 2, 3], [], None], pa.list_(pa.int64())),
    "lst": pa.array([[{"a": 1, "s": "y"}, {"a": None, "s": None}], [], None], pa.list_(STRUCT)),
    "mp": pa.array([[("k", 1), ("n", None)], [], None], pa.map_(pa.string(), pa.int64())),
}
PHYSICAL = {
    "d9": "INT32",
    "d18": "INT64",
    "d38": "FIXED_LEN_BYTE_ARRAY",
    "ts_ns": "INT64",
    "tm_ns": "INT64",
    "f16": "FIXED_LEN_BYTE_ARRAY",
    "dt": "INT32",
}
ARROW_AS_READ = {
    # what the Parquet reader hands the engine (the file's stored Arrow schema)
    "dct": pa.dictionary(pa.int32(), pa.string()),
    "ls": pa.large_string(),
    "sv": pa.string_view(),
    "f16": pa.float16(),
    "ts_ns": pa.timestamp("ns"),
    "tz_ns": pa.timestamp("ns", tz="UTC"),
    "tm_ns": pa.time64("ns"),
}
EXPECTED: dict[str, tuple[Any, Any]] = {
    name: tuple(array.to_pylist()[:2]) for name, array in COLUMNS.items()
}
EXPECTED.update(
    {
        "ts_ns": (NS_MIN, NS_MAX),
        "tz_ns": (NS_MIN.replace(tzinfo=UTC), NS_MAX.replace(tzinfo=UTC)),
        "tm_ns": (dt.time(12, 34, 56, 789012), dt.time(0)),
        "f32": (NAN, float("inf")),
        "mp": ({"k": 1, "n": None}, {}),
    }
)
DUCKDB_TYPES = {
    "d9": "DECIMAL(9,2)",
    "d18": "DECIMAL(18,4)",
    "d38": "DECIMAL(38,9)",
    "ts_ns": "TIMESTAMP",
    "tz_ns": "TIMESTAMP WITH TIME ZONE",
    "ts_us": "TIMESTAMP",
    "tz_us": "TIMESTAMP WITH TIME ZONE",
    "ts_ms": "TIMESTAMP",
    "dt": "DATE",
    "tm": "TIME",
    "tm_ns": "TIME",
    "dct": "VARCHAR",
    "ls": "VARCHAR",
    "sv": "VARCHAR",
    "bn": "BLOB",
    "b": "BOOLEAN",
    "i8": "TINYINT",
    "i16": "SMALLINT",
    "i32": "INTEGER",
    "i64": "BIGINT",
    "u8": "UTINYINT",
    "u16": "USMALLINT",
    "u32": "UINTEGER",
    "u64": "UBIGINT",
    "f16": "FLOAT",
    "f32": "FLOAT",
    "f32x": "FLOAT",
    "f64": "DOUBLE",
    "f64x": "DOUBLE",
    "st": "STRUCT(a BIGINT, s VARCHAR)",
    "li": "BIGINT[]",
    "lst": "STRUCT(a BIGINT, s VARCHAR)[]",
    "mp": "MAP(VARCHAR, BIGINT)",
}
BIGQUERY_TYPES = {
    "d9": "NUMERIC",
    "d18": "NUMERIC",
    "d38": "NUMERIC",
    "ts_ns": "DATETIME",
    "tz_ns": "TIMESTAMP",
    "ts_us": "DATETIME",
    "tz_us": "TIMESTAMP",
    "ts_ms": "DATETIME",
    "dt": "DATE",
    "tm": "TIME",
    "tm_ns": "TIME",
    "dct": "STRING",
    "ls": "STRING",
    "sv": "STRING",
    "bn": "BYTES",
    "b": "BOOL",
    "i8": "INT64",
    "i16": "INT64",
    "i32": "INT64",
    "i64": "INT64",
    "u8": "INT64",
    "u16": "INT64",
    "u32": "INT64",
    "u64": "NUMERIC",
    "f16": "FLOAT64",
    "f32": "FLOAT64",
    "f32x": "FLOAT64",
    "f64": "FLOAT64",
    "f64x": "FLOAT64",
    "st": "RECORD",
    "li": "ARRAY<INT64>",
    "lst": "ARRAY<RECORD>",
    "mp": "ARRAY<RECORD>",
}
LISTS = ("li", "lst", "mp")


def _write(path: Path, columns: dict[str, pa.Array], **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = pa.array(range(1, len(next(iter(columns.values()))) + 1), pa.int32())
    pq.write_table(pa.table({"id": ids, **columns}), path, **options)
    return path


def _physical_types(path: Path) -> dict[str, str]:
    schema = pq.ParquetFile(path).schema
    return {schema.column(i).path: schema.column(i).physical_type for i in range(len(schema))}


@pytest.fixture
def matrix_file(tmp_path: Path) -> Path:
    """`<tmp>/files/types.parquet`: COLUMNS with ids 1..3, decimals stored as integers where
    their precision allows (`store_decimal_as_integer`)."""
    path = _write(tmp_path / "files" / "types.parquet", COLUMNS, store_decimal_as_integer=True)
    physical = _physical_types(path)
    assert {name: physical[name] for name in PHYSICAL} == PHYSICAL
    read_as = pq.ParquetFile(path).schema_arrow
    assert {name: read_as.field(name).type for name in ARROW_AS_READ} == ARROW_AS_READ
    return path


def _job(root: Path, tmp_path: Path, pattern: str = "*.parquet", **fields: Any) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "local",
            tmp_path / "w.duckdb",
            connection_params={"base_path": str(root)},
            file_format="parquet",
            file_pattern=pattern,
            load_type="catalog",
            dest_table_name="types",
            **fields,
        )
    )


def _same(actual: Any, expected: Any) -> bool:
    if expected is NAN:
        return isinstance(actual, float) and math.isnan(actual)
    return actual == expected and isinstance(actual, bool) == isinstance(expected, bool)


def _assert_values(
    rows: list[tuple[Any, ...]], names: list[str], expected: dict[str, tuple]
) -> None:
    by_id = {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}
    assert sorted(by_id) == [1, 2, 3]
    for name in names:
        first, second = expected[name]
        assert _same(by_id[1][name], first), (name, by_id[1][name], first)
        assert _same(by_id[2][name], second), (name, by_id[2][name], second)


def _user_schema(result: Any) -> dict[str, str]:
    return {c["name"]: c["type"] for c in result.schema_ if not c["name"].startswith("_etl_")}


def test_parquet_types_into_duckdb(matrix_file: Path, tmp_path: Path) -> None:
    """Every value arrives exactly with the DuckDB type of DUCKDB_TYPES; row 3 is NULL in every
    column (lists and maps included); NULL elements and NULL map values stay."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(matrix_file.parent, tmp_path))

    assert result.rows_loaded == 3
    assert _user_schema(result) == {"id": "INTEGER", **DUCKDB_TYPES}
    names = list(COLUMNS)
    rows = duck_query(duckdb_path, f"SELECT id, {', '.join(names)} FROM {DATASET}.types")
    _assert_values(rows, names, EXPECTED)
    assert [row[1:] for row in rows if row[0] == 3] == [(None,) * len(names)]


def test_parquet_types_into_bigquery(
    matrix_file: Path, tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """Every value arrives exactly with the BigQuery type of BIGQUERY_TYPES (NUMERIC values
    compare equal as decimals, uint64 2^64-1 included); a map is a list of key/value records;
    a NULL list reads back as `[]`, every other column of row 3 is NULL."""
    result = run(_job(matrix_file.parent, tmp_path, destination=bigquery_destination(bq_dataset)))

    assert result.rows_loaded == 3
    assert _user_schema(result) == {"id": "INT64", **BIGQUERY_TYPES}
    names = list(COLUMNS)
    rows = bq_rows(bigquery_client, f"SELECT id, {', '.join(names)} FROM `{bq_dataset}.types`")
    expected = {**EXPECTED, "mp": ([{"key": "k", "value": 1}, {"key": "n", "value": None}], [])}
    _assert_values(rows, names, expected)
    third = dict(zip(names, next(row[1:] for row in rows if row[0] == 3), strict=True))
    assert third == {name: [] if name in LISTS else None for name in names}
    assert [w for w in result.warnings if "NULL array" in w] == [
        f"column `{name}`: 1 NULL array loaded as [] (a BigQuery ARRAY cannot be NULL; "
        "on_unrepresentable: nearest)"
        for name in LISTS
    ]


BIG = {
    "d38s10": pa.array(
        [Decimal("-" + "9" * 28 + "." + "9" * 10), Decimal("0.0000000001"), None],
        pa.decimal128(38, 10),
    ),
    "d76": pa.array(
        [Decimal("-" + "9" * 38 + "." + "9" * 38), Decimal("1E-38"), None],
        pa.decimal256(76, 38),
    ),
}


@pytest.fixture
def big_decimals(tmp_path: Path) -> Path:
    """`<tmp>/big/big.parquet`: decimal(38, 10) and decimal256(76, 38) at their extremes; both
    are FIXED_LEN_BYTE_ARRAY."""
    path = _write(tmp_path / "big" / "big.parquet", BIG)
    assert _physical_types(path) == {
        "id": "INT32",
        "d38s10": "FIXED_LEN_BYTE_ARRAY",
        "d76": "FIXED_LEN_BYTE_ARRAY",
    }
    assert pq.ParquetFile(path).schema_arrow.field("d76").type == pa.decimal256(76, 38)
    return path


def test_decimal256_loads_as_exact_text_in_duckdb(big_decimals: Path, tmp_path: Path) -> None:
    """decimal256(76, 38) cannot be a DuckDB DECIMAL (38 digits at most): it loads as each
    value's exact decimal text (never a double or a rounded value); decimal(38, 10) loads
    exactly as DECIMAL(38,10)."""
    result = run(_job(big_decimals.parent, tmp_path))

    assert _user_schema(result) == {"id": "INTEGER", "d38s10": "DECIMAL(38,10)", "d76": "VARCHAR"}
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT id, d38s10, d76 FROM {DATASET}.types ORDER BY id"
    ) == [
        (1, Decimal("-" + "9" * 28 + "." + "9" * 10), "-" + "9" * 38 + "." + "9" * 38),
        (2, Decimal("0.0000000001"), "0." + "0" * 37 + "1"),
        (3, None, None),
    ]


def test_bignumeric_columns_reach_the_bigquery_load_exactly(big_decimals: Path) -> None:
    """decimal(38, 10) and decimal256(76, 38) become BIGNUMERIC columns, and the Parquet part the
    loader sends to the load job holds the exact values as DECIMAL(38, 10) / DECIMAL(76, 38).
    (The emulator cannot create a BIGNUMERIC table, see the module docstring, so the check stops
    at the load job's input.)"""
    from etl.formats.microseconds import check_microseconds
    from etl.load.bigquery.staging import PartWriter, align, check_bigquery_values, with_metadata
    from etl.load.bigquery.types import schema_fields
    from etl.transform.types import normalize_batch

    batch = normalize_batch(pq.read_table(big_decimals).to_batches()[0])
    check_microseconds(batch, "big.parquet", 0)
    check_bigquery_values(batch, 0, {})
    batch = with_metadata(batch, "run", dt.datetime(2026, 1, 1, tzinfo=UTC))
    fields = schema_fields(batch.schema)
    assert [(f.name, f.field_type, f.mode) for f in fields[:3]] == [
        ("id", "INT64", "NULLABLE"),
        ("d38s10", "BIGNUMERIC", "NULLABLE"),
        ("d76", "BIGNUMERIC", "NULLABLE"),
    ]
    sent: list[pa.Table] = []
    writer = PartWriter(big_decimals.parent, lambda path, n: sent.append(pq.read_table(path)))
    writer.write(align(batch, {f.name: f for f in fields}, {}))
    writer.close()

    (part,) = sent
    assert part.schema.field("d38s10").type == pa.decimal128(38, 10)
    assert part.schema.field("d76").type == pa.decimal256(76, 38)
    assert part.select(["id", "d38s10", "d76"]).to_pylist() == [
        {"id": i, **{name: BIG[name][i - 1].as_py() for name in BIG}} for i in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        (
            "ts",
            pa.array([0, 1_700_000_000_123_456_789], pa.timestamp("ns")),
            "2023-11-14 22:13:20.123456789",
        ),
        (
            "tz",
            pa.array([0, -1], pa.timestamp("ns", tz="UTC")),
            "1969-12-31 23:59:59.999999999+00:00",
        ),
        ("tm", pa.array([0, 86_399_999_999_999], pa.time64("ns")), "23:59:59.999999999"),
    ],
    ids=["timestamp-ns", "timestamp-ns-utc", "time64-ns"],
)
def test_sub_microsecond_values_fail_naming_file_row_and_column(
    tmp_path: Path, column: str, value: pa.Array, shown: str
) -> None:
    """With `on_unrepresentable: fail`, a nanosecond value that is not a whole microsecond
    (row 5 of the file, in its second row group) fails the run naming file, row and column with
    all nine digits; nothing is loaded, not even the first file's rows."""
    root = tmp_path / "files"
    _write(root / "a.parquet", {column: value.slice(0, 1)})
    whole = pa.concat_arrays([value.slice(0, 1)] * 4 + [value.slice(1, 1)])
    _write(root / "b.parquet", {column: whole}, row_group_size=3)
    assert pq.ParquetFile(root / "b.parquet").metadata.num_row_groups == 2

    with pytest.raises(BadInputError) as raised:
        run(_job(root, tmp_path, on_unrepresentable="fail"))

    assert (raised.value.file, raised.value.column) == ("b.parquet", column)
    assert raised.value.reason == (
        f"row 5 holds {shown}, whose nanoseconds a TIMESTAMP / DATETIME / TIME (microseconds in "
        "BigQuery and DuckDB) cannot hold; it is not truncated (on_unrepresentable: fail)"
    )
    assert not (tmp_path / "w.duckdb").exists() or duck_query(
        tmp_path / "w.duckdb",
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'types'",
    ) == [(0,)]


@pytest.mark.parametrize(
    ("column", "value", "loaded"),
    [
        (
            "ts",
            pa.array([1_700_000_000_123_456_789, 1_700_000_000_000_001_000], pa.timestamp("ns")),
            [
                dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
                dt.datetime(2023, 11, 14, 22, 13, 20, 1),
            ],
        ),
        (
            "tz",
            pa.array([-1, 999], pa.timestamp("ns", tz="UTC")),
            [
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(1970, 1, 1, tzinfo=UTC),
            ],
        ),
        (
            "tm",
            pa.array([86_399_999_999_999, 1_000], pa.time64("ns")),
            [dt.time(23, 59, 59, 999999), dt.time(0, 0, 0, 1)],
        ),
    ],
    ids=["timestamp-ns", "timestamp-ns-utc-before-1970", "time64-ns"],
)
def test_sub_microsecond_values_truncate_by_default_and_are_counted(
    tmp_path: Path, column: str, value: pa.Array, loaded: list[Any]
) -> None:
    """By default (`on_unrepresentable: nearest`) a nanosecond value that is not a whole
    microsecond loads truncated toward the past (`...59.999999999` -> `...59.999999`, before
    1970 too: never rounded up across a second), a whole-microsecond one unchanged, and the
    run's warnings count the truncated values of the column."""
    root = tmp_path / "files"
    _write(root / "a.parquet", {column: value})

    result = run(_job(root, tmp_path))

    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT {column} FROM raw_data.types ORDER BY id"
    ) == [(item,) for item in loaded]
    truncated = 1 if column != "tz" else 2
    assert result.warnings == [
        f"file a.parquet, column {column}: {truncated} values with sub-microsecond digits "
        "truncated to microseconds (on_unrepresentable: nearest)"
    ]


NULL_ELEMENTS = {
    "li": pa.array([[1], [2, None], None], pa.list_(pa.int64())),
    "lst": pa.array([[{"a": 1, "s": "x"}], [None], []], pa.list_(STRUCT)),
}


def test_null_elements_and_null_lists_stay_in_duckdb(tmp_path: Path) -> None:
    """DuckDB lists keep a NULL element, a NULL struct element and a NULL list as they are."""
    _write(tmp_path / "files" / "n.parquet", NULL_ELEMENTS)

    run(_job(tmp_path / "files", tmp_path))

    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT id, li, lst FROM {DATASET}.types ORDER BY id"
    ) == [(1, [1], [{"a": 1, "s": "x"}]), (2, [2, None], [None]), (3, None, [])]


@pytest.mark.parametrize("column", list(NULL_ELEMENTS))
def test_null_element_fails_naming_file_row_and_column_in_bigquery(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, column: str
) -> None:
    """A BigQuery ARRAY holds no NULL element: the run fails naming the file, the row (2, after a
    first file and a first batch of the same file) and the column; no table is written."""
    root = tmp_path / "files"
    _write(root / "a.parquet", {column: NULL_ELEMENTS[column].slice(0, 1)})
    _write(root / "b.parquet", {column: NULL_ELEMENTS[column]})
    job = _job(root, tmp_path, destination=bigquery_destination(bq_dataset), chunk_size=1)

    with pytest.raises(BadInputError) as raised:
        run(job)

    assert (raised.value.file, raised.value.column) == ("b.parquet", column)
    assert raised.value.reason == (
        "row 2 holds an array with a NULL element, which a BigQuery ARRAY cannot hold "
        "(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#array_nulls)"
    )
    assert [
        t.table_id
        for t in bigquery_client.list_tables(bq_dataset)
        if t.table_id.startswith("types")
    ] == []


NULL_LISTS = {
    "tags": pa.array([["a"], None, [], None], pa.list_(pa.string())),
    "o": pa.array(
        [{"k": [1], "n": 1}, {"k": None, "n": 2}, None, {"k": [], "n": 4}],
        pa.struct([("k", pa.list_(pa.int64())), ("n", pa.int64())]),
    ),
    "mp": pa.array([[("x", 1)], [], None, [("y", 2)]], pa.map_(pa.string(), pa.int64())),
}
"""Rows 1..4 of each file: NULL lists in `tags` (rows 2, 4), in `o.k` (row 2; row 3's `o`
is NULL as a whole, which BigQuery keeps) and a NULL map in `mp` (row 3)."""


def test_null_lists_load_as_empty_arrays_counted_per_column_in_bigquery(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """A BigQuery ARRAY (REPEATED field) cannot be NULL: BigQuery reads a NULL list as `[]`.
    Under `on_unrepresentable: nearest` (the default) the NULL lists of two files load as `[]`
    and the run's warnings count them per column over the run (`tags` 4, `o.k` 2, `mp` 2; a
    NULL `o` stays NULL and is not counted); under `fail` the run fails naming the table and
    the first column, nothing written. DuckDB keeps NULL lists (no warning). Before, the NULL
    lists became `[]` with no word in the warnings. The same change in peers, silent there too:
    https://github.com/dbcrossbar/dbcrossbar/issues/24,
    https://github.com/apache/beam/pull/32604."""
    root = tmp_path / "files"
    _write(root / "a.parquet", NULL_LISTS)
    _write(root / "b.parquet", NULL_LISTS)
    job = _job(root, tmp_path, destination=bigquery_destination(bq_dataset))

    with pytest.raises(UnrepresentableValueError, match=r"Column `tags` of types holds 'NULL'"):
        run(job.model_copy(update={"on_unrepresentable": "fail"}))
    assert not [t for t in bigquery_client.list_tables(bq_dataset) if t.table_id == "types"]

    result = run(job)

    assert result.rows_loaded == 8
    assert result.warnings == [
        "column `tags`: 4 NULL arrays loaded as [] (a BigQuery ARRAY cannot be NULL; "
        "on_unrepresentable: nearest)",
        "column `o.k`: 2 NULL arrays loaded as [] (a BigQuery ARRAY cannot be NULL; "
        "on_unrepresentable: nearest)",
        "column `mp`: 2 NULL arrays loaded as [] (a BigQuery ARRAY cannot be NULL; "
        "on_unrepresentable: nearest)",
    ]
    rows = bq_rows(
        bigquery_client,
        f"SELECT id, tags, o, mp FROM `{bq_dataset}.types` "
        "WHERE _etl_source_file = 'a.parquet' ORDER BY id",
    )
    assert rows == [
        (1, ["a"], {"k": [1], "n": 1}, [{"key": "x", "value": 1}]),
        (2, [], {"k": [], "n": 2}, []),
        (3, [], None, []),
        (4, [], {"k": [], "n": 4}, [{"key": "y", "value": 2}]),
    ]

    duck = run(_job(root, tmp_path))
    assert duck.warnings == []


def _two_files(
    root: Path,
    first: dict[str, pa.Array],
    second: dict[str, pa.Array],
    schemas: tuple[pa.Schema, pa.Schema],
) -> None:
    root.mkdir(parents=True)
    for name, columns, schema in (("a", first, schemas[0]), ("b", second, schemas[1])):
        pq.write_table(pa.table(columns, schema=schema), root / f"{name}.parquet")


NOT_NULL = pa.schema(
    [pa.field("id", pa.int32(), nullable=False), pa.field("v", pa.string(), nullable=False)]
)
NULLABLE = pa.schema([pa.field("id", pa.int32()), pa.field("v", pa.string())])


@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
def test_files_differing_only_in_nullability_load_into_one_table(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, destination: str
) -> None:
    """`v` is `required` in a.parquet and optional (with a NULL) in b.parquet: one run loads the
    rows of both into one table with nullable columns."""
    root = tmp_path / "files"
    _two_files(
        root, {"id": [1, 2], "v": ["x", ""]}, {"id": [3, 4], "v": [None, "y"]}, (NOT_NULL, NULLABLE)
    )
    assert pq.ParquetFile(root / "a.parquet").schema.column(1).max_definition_level == 0
    assert pq.ParquetFile(root / "b.parquet").schema.column(1).max_definition_level == 1
    extra = {"destination": bigquery_destination(bq_dataset)} if destination == "bigquery" else {}

    result = run(_job(root, tmp_path, **extra))

    assert (result.rows_loaded, result.files_loaded) == (4, ["a.parquet", "b.parquet"])
    assert _user_schema(result) == (
        {"id": "INTEGER", "v": "VARCHAR"}
        if destination == "duckdb"
        else {"id": "INT64", "v": "STRING"}
    )
    sql = "SELECT id, v, _etl_source_file FROM {} ORDER BY id"
    rows = (
        duck_query(tmp_path / "w.duckdb", sql.format(f"{DATASET}.types"))
        if destination == "duckdb"
        else bq_rows(bigquery_client, sql.format(f"`{bq_dataset}.types`"))
    )
    assert rows == [
        (1, "x", "a.parquet"),
        (2, "", "a.parquet"),
        (3, None, "b.parquet"),
        (4, "y", "b.parquet"),
    ]


@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
@pytest.mark.parametrize("order", ["int32-first", "int64-first"])
def test_int32_and_int64_files_widen_to_int64(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, destination: str, order: str
) -> None:
    """`n` is int32 in one file and int64 (beyond int32) in the other: one run loads both, the
    column is BIGINT / INT64 and every value is exact, whichever file comes first."""
    small = {"id": [1, 2], "n": [-(2**31), 2**31 - 1]}
    large = {"id": [3, 4], "n": [-(2**63), 2**63 - 1]}
    int32 = pa.schema([("id", pa.int32()), ("n", pa.int32())])
    int64 = pa.schema([("id", pa.int32()), ("n", pa.int64())])
    root = tmp_path / "files"
    if order == "int32-first":
        _two_files(root, small, large, (int32, int64))
    else:
        _two_files(root, large, small, (int64, int32))
    extra = {"destination": bigquery_destination(bq_dataset)} if destination == "bigquery" else {}

    result = run(_job(root, tmp_path, **extra))

    assert result.rows_loaded == 4
    assert _user_schema(result)["n"] == ("BIGINT" if destination == "duckdb" else "INT64")
    sql = "SELECT id, n FROM {} ORDER BY id"
    rows = (
        duck_query(tmp_path / "w.duckdb", sql.format(f"{DATASET}.types"))
        if destination == "duckdb"
        else bq_rows(bigquery_client, sql.format(f"`{bq_dataset}.types`"))
    )
    assert rows == [(1, -(2**31)), (2, 2**31 - 1), (3, -(2**63)), (4, 2**63 - 1)]


BEYOND = {
    # column: (values; row 2 lies outside years 1..9999), DuckDB text, BigQuery type, shown
    "ts": (
        pa.array([0, 253_402_300_800_000], pa.timestamp("ms")),
        "10000-01-01 00:00:00",
        "DATETIME",
        "10000-01-01 00:00:00.000000",
    ),
    "tz": (
        pa.array([0, -62_135_596_801], pa.timestamp("s", tz="UTC")),
        "0001-12-31 (BC) 23:59:59+00",
        "TIMESTAMP",
        "0000-12-31 23:59:59.000000Z",
    ),
    "d": (pa.array([0, 2_932_897], pa.date32()), "10000-01-01", "DATE", "10000-01-01"),
}


@pytest.mark.parametrize("column", list(BEYOND))
def test_dates_beyond_year_9999_stay_in_duckdb(tmp_path: Path, column: str) -> None:
    """DuckDB holds dates and timestamps outside years 1..9999: they load unchanged."""
    _write(tmp_path / "files" / "far.parquet", {column: BEYOND[column][0]})

    run(_job(tmp_path / "files", tmp_path))

    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT {column}::VARCHAR FROM {DATASET}.types WHERE id = 2"
    ) == [(BEYOND[column][1],)]


@pytest.mark.parametrize("column", list(BEYOND))
def test_dates_beyond_year_9999_fail_naming_file_row_and_column_in_bigquery(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, column: str
) -> None:
    """BigQuery DATE / DATETIME / TIMESTAMP stop at years 1..9999: the run fails naming file, row
    and column instead of sending a value real BigQuery rejects (the emulator stores it); no
    table is written."""
    values, _, kind, shown = BEYOND[column]
    _write(tmp_path / "files" / "far.parquet", {column: values})

    with pytest.raises(BadInputError) as raised:
        run(_job(tmp_path / "files", tmp_path, destination=bigquery_destination(bq_dataset)))

    assert (raised.value.file, raised.value.column) == ("far.parquet", column)
    assert raised.value.reason == (
        f"row 2 holds {shown}, outside BigQuery's {kind} range 0001-01-01 to 9999-12-31 "
        "(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types)"
    )
    tables = [t.table_id for t in bigquery_client.list_tables(bq_dataset)]
    assert [name for name in tables if name.startswith("types")] == []


INT96_VALUES = [
    dt.datetime(1, 1, 1),
    dt.datetime(1000, 1, 1, 12, 0, 0, 123456),
    dt.datetime(1677, 9, 21, 0, 12, 43, 145224),
    dt.datetime(2262, 4, 12),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
]
"""Spark / Hive / Impala INT96 timestamps over years 1-9999; read as nanoseconds, those before
1677-09-21 or after 2262-04-11 would wrap around (ARROW-12096)."""


@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
def test_int96_timestamps_over_years_1_to_9999_load_exactly(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, destination: str
) -> None:
    """A file written as Spark writes timestamps (INT96) loads years 1-9999 exactly, as DuckDB
    TIMESTAMP / BigQuery DATETIME (INT96 carries no zone)."""
    root = tmp_path / "files"
    root.mkdir()
    table = pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int32()),
            "ts": pa.array(INT96_VALUES, pa.timestamp("us")),
        }
    )
    pq.write_table(table, root / "spark.parquet", use_deprecated_int96_timestamps=True)
    assert _physical_types(root / "spark.parquet")["ts"] == "INT96"
    fields = {} if destination == "duckdb" else {"destination": bigquery_destination(bq_dataset)}

    result = run(_job(root, tmp_path, **fields))

    assert (result.rows_loaded, result.warnings) == (5, [])
    if destination == "duckdb":
        rows = duck_query(tmp_path / "w.duckdb", f"SELECT ts FROM {DATASET}.types ORDER BY id")
        assert _user_schema(result)["ts"] == "TIMESTAMP"
    else:
        rows = bq_rows(bigquery_client, f"SELECT ts FROM `{bq_dataset}.types` ORDER BY id")
        assert _user_schema(result)["ts"] == "DATETIME"
    assert rows == [(value,) for value in INT96_VALUES]


NESTED = pa.list_(pa.struct([("k", pa.string()), ("vals", pa.list_(pa.int64()))]))


@pytest.mark.parametrize("destination", ["duckdb", "bigquery"])
def test_nested_list_of_struct_of_list_loads_exactly(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any, destination: str
) -> None:
    """`list<struct<k string, vals list<int64>>>` keeps its shape and order: DuckDB
    STRUCT(k VARCHAR, vals BIGINT[])[], BigQuery ARRAY<STRUCT<k STRING, vals ARRAY<INT64>>>
    (no NULL element, which BigQuery arrays cannot hold)."""
    root = tmp_path / "files"
    values = [[{"k": "a", "vals": [1, 2]}, {"k": "b", "vals": []}], [], [{"k": "c", "vals": [3]}]]
    _write(root / "nested.parquet", {"n": pa.array(values, NESTED)})
    fields = {} if destination == "duckdb" else {"destination": bigquery_destination(bq_dataset)}

    run(_job(root, tmp_path, **fields))

    if destination == "duckdb":
        rows = duck_query(tmp_path / "w.duckdb", f"SELECT n FROM {DATASET}.types ORDER BY id")
        assert duck_query(
            tmp_path / "w.duckdb",
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'types' "
            "AND column_name = 'n'",
        ) == [("STRUCT(k VARCHAR, vals BIGINT[])[]",)]
    else:
        rows = bq_rows(bigquery_client, f"SELECT n FROM `{bq_dataset}.types` ORDER BY id")
        field = bigquery_client.get_table(f"{bq_dataset}.types").schema[1]
        assert (field.name, field.field_type, field.mode) == ("n", "RECORD", "REPEATED")
        assert [(f.name, f.field_type, f.mode) for f in field.fields] == [
            ("k", "STRING", "NULLABLE"),
            ("vals", "INT64", "REPEATED"),
        ]
    assert rows == [(value,) for value in values]


def test_files_differing_in_dictionary_encoding_load_into_one_table(tmp_path: Path) -> None:
    """`v` is dictionary-encoded in a.parquet (as pandas categoricals and Spark write it) and
    plain in b.parquet: one run loads both into one VARCHAR column."""
    root = tmp_path / "files"
    root.mkdir()
    pq.write_table(
        pa.table(
            {"id": pa.array([1, 2], pa.int32()), "v": pa.array(["x", "y"]).dictionary_encode()}
        ),
        root / "a.parquet",
    )
    pq.write_table(
        pa.table({"id": pa.array([3, 4], pa.int32()), "v": pa.array(["y", None])}),
        root / "b.parquet",
        use_dictionary=False,
    )
    assert pq.ParquetFile(root / "a.parquet").schema_arrow.field("v").type == pa.dictionary(
        pa.int32(), pa.string()
    )

    result = run(_job(root, tmp_path))

    assert _user_schema(result)["v"] == "VARCHAR"
    assert duck_query(tmp_path / "w.duckdb", f"SELECT id, v FROM {DATASET}.types ORDER BY id") == [
        (1, "x"),
        (2, "y"),
        (3, "y"),
        (4, None),
    ]
