"""The CSV typing pass made faster (issue 18) gives the same types and values as before: the
float exactness test that counts digits only where length and magnitude cannot decide
(etl/formats/csv/candidates.py), blocks typed by threads ahead of the reader's consumer
(etl/formats/csv/infer.py `typed_batches`), and the Parquet spool in DuckDB-sized row groups
(etl/formats/spool.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from etl import JobConfig, run
from etl.formats import spool as spool_module
from etl.formats.csv import candidates
from etl.formats.csv import reader as csv_reader
from etl.formats.csv.infer import Typing, typed_batches
from etl.formats.spool import Spool
from tests.etl.support import duck_query, local_file_job

FLOAT_TEXTS = [
    "0", "0.00", "-0", "-0.0000", "+0.0", "0e5", "0.0e-400", "00000000000000000000.0",
    "1e-400", "-1e-400", "1e400", "-1e400", "1.8e308", "1.7976931348623157e308",
    "2.2250738585072014e-308", "2.225073858507201e-308", "4.9e-324", "1e-310",
    "0.000000000000000000001", "inf", "-inf", "nan", "NaN", "Infinity", "-Infinity",
    "0.1", "0.30000000000000004", "0.3000000000000000444", "123456789012345",
    "1234567890123456", "12345678901234567", "9007199254740993", "9007199254740992",
    "00000000000000001.5", "1.50000000000000000000", "+1.5", ".5", "5.", "1E5", "1e+5",
    "21168.23", "0.04", "104949.50", "-0.000001e-300", "-0.000001e-310", "3.141592653589793238",
]  # fmt: skip
"""Texts Arrow casts to a double: zeros (written many ways), overflow and underflow, the
smallest normal and subnormals, written non-finite values, 15 to 19 significant digits,
leading and trailing zeros beyond 15 characters, TPC-H prices."""


def _floats(texts: list[str]) -> tuple[pa.Array, pa.Array]:
    text = pa.array(texts, pa.string())
    return text, pc.cast(text, pa.float64(), safe=True)


@pytest.mark.parametrize("value", FLOAT_TEXTS)
def test_float_exactness_is_the_digit_count_on_every_value(value: str) -> None:
    """`_float_exact` (digits counted only where length and magnitude cannot decide) answers
    as `_digits_exact` (every value's digits counted, the test before issue 18), alone and
    beside ordinary values."""
    for texts in ([value], ["0.04", value, "21168.23"], [value, "0.00"] * 3):
        text, floats = _floats(texts)
        assert candidates._float_exact(text, floats) == candidates._digits_exact(text, floats)


def test_float_exactness_keeps_its_answers() -> None:
    """The answers themselves: overflow, underflow to zero or a subnormal, and more digits than
    the double keeps are not exact; zeros, written non-finite values, the smallest normal and
    a double's own 17-digit text are."""
    inexact = {"1e-400", "-1e-400", "1e400", "-1e400", "1.8e308", "2.225073858507201e-308"}
    inexact |= {"4.9e-324", "1e-310", "-0.000001e-310", "0.3000000000000000444"}
    inexact |= {"12345678901234567", "9007199254740993", "3.141592653589793238"}
    for value in FLOAT_TEXTS:
        assert candidates._float_exact(*_floats([value])) == (value not in inexact), value


def _blocks() -> list[pa.RecordBatch]:
    """Text blocks whose columns change candidates at different blocks, some while blocks are
    typed ahead: a leading zero late, int64 overflow late (DECIMAL(38,0)), a naive time among
    zone-aware ones, blocks of nulls only, text late in an integer column, floats that start
    as integers, booleans."""
    blocks = []
    for b in range(12):
        rows = range(b * 50, b * 50 + 50)
        column = {
            "zip": [f"{10000 + i}" if (b, i % 50) != (7, 3) else "01234" for i in rows],
            "big": [str(i) if b < 9 else str(2**63 + i) for i in rows],
            "at": [
                f"2020-01-01T00:00:{i % 60:02d}Z" if (b, i % 50) != (5, 9) else "2020-01-01 00:00"
                for i in rows
            ],
            "late": [None if b < 4 else str(i) for i in rows],
            "qty": [str(i) if b != 10 else "N/A" for i in rows],
            "amount": [str(i) if b < 3 else f"{i}.25" for i in rows],
            "flag": [None if i % 7 == 0 else ("true" if i % 2 else "FALSE") for i in rows],
            "day": [f"2024-02-{1 + i % 28:02d}" for i in rows],
        }
        blocks.append(
            pa.RecordBatch.from_pydict(column, pa.schema([(n, pa.string()) for n in column]))
        )
    return blocks


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_blocks_typed_ahead_equal_typing_one_at_a_time(workers: int) -> None:
    """`typed_batches` yields the very batches, types and conversions of `Typing.add` in a loop,
    with columns narrowing while blocks are typed ahead (those are tested again)."""
    names = _blocks()[0].schema.names
    alone, ahead = Typing(names, {}, "."), Typing(names, {}, ".")
    expected = [alone.add(block) for block in _blocks()]
    got = list(typed_batches(_blocks(), ahead, workers))
    assert len(got) == len(expected)
    for one, other in zip(got, expected, strict=True):
        assert one.equals(other)
    assert (
        ahead.types()
        == alone.types()
        == {
            "zip": pa.string(),
            "big": pa.decimal128(38, 0),
            "at": pa.string(),
            "late": pa.int64(),
            "qty": pa.string(),
            "amount": pa.float64(),
            "flag": pa.bool_(),
            "day": pa.date32(),
        }
    )
    assert ahead.converted == alone.converted
    assert not ahead.kept_conversions()


def test_a_failing_block_typed_ahead_fails_the_read() -> None:
    """An error raised while a block is typed in a thread reaches the consumer."""
    typing = Typing(["a"], {}, ".")
    broken = pa.RecordBatch.from_pydict({"b": ["1"]})
    blocks = [pa.RecordBatch.from_pydict({"a": ["1"]})] * 3 + [broken]
    with pytest.raises(KeyError):
        list(typed_batches(blocks, typing, 2))


def test_late_changes_in_small_blocks_load_exact_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read in 4 KB blocks (many typed ahead) whose columns change type late: leading
    zeros, int64 overflow, a naive time among zone-aware ones, a `NA` null marker, a quoted
    line break, and a record larger than a block. Each column gets the type its values need
    and every value loads exactly."""
    monkeypatch.setattr(csv_reader, "BLOCK_SIZE", 1 << 12)
    lines = ["id,zip,big,at,n,note"]
    for i in range(1, 3001):
        zip_code = "01234" if i == 2900 else str(20000 + i)
        big = str(2**63 + 7) if i == 2950 else str(i)
        at = "2021-03-04 05:06:07" if i == 2990 else f"2021-03-04T05:06:{i % 60:02d}+01:00"
        n = "NA" if i % 10 == 0 else str(i)
        note = '"two\nlines"' if i == 1500 else ("x" * 6000 if i == 2000 else f"n{i}")
        lines.append(f"{i},{zip_code},{big},{at},{n},{note}")
    job = local_file_job(tmp_path, "data.csv", ("\n".join(lines) + "\n").encode())
    job["file_format_options"] = {"null_values": ["", "NA"]}
    run(JobConfig.parse(job))
    path = tmp_path / "w.duckdb"
    assert dict(
        duck_query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 't' AND column_name NOT LIKE '\\_etl\\_%' ESCAPE '\\'",
        )
    ) == {
        "id": "BIGINT",
        "zip": "VARCHAR",
        "big": "DECIMAL(38,0)",
        "at": "VARCHAR",
        "n": "BIGINT",
        "note": "VARCHAR",
    }
    assert duck_query(
        path,
        'SELECT id, zip, big, "at", n, note FROM raw_data.t WHERE id IN (1, 10, 1500, 2900, 2950, '
        "2990) ORDER BY id",
    ) == [
        (1, "20001", Decimal(1), "2021-03-04T05:06:01+01:00", 1, "n1"),
        (10, "20010", Decimal(10), "2021-03-04T05:06:10+01:00", None, "n10"),
        (1500, "21500", Decimal(1500), "2021-03-04T05:06:00+01:00", None, "two\nlines"),
        (2900, "01234", Decimal(2900), "2021-03-04T05:06:20+01:00", None, "n2900"),
        (2950, "22950", Decimal(2**63 + 7), "2021-03-04T05:06:10+01:00", None, "n2950"),
        (2990, "22990", Decimal(2990), "2021-03-04 05:06:07", None, "n2990"),
    ]
    assert duck_query(path, "SELECT count(*), count(n), max(length(note)) FROM raw_data.t") == [
        (3000, 2700, 6000)
    ]


def test_parquet_spool_row_groups_and_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Parquet spool writes row groups of ROW_GROUP_ROWS rows (the last one the rest) and
    replays every row in order; a batch of another schema starts a new file."""
    monkeypatch.setattr(spool_module, "ROW_GROUP_ROWS", 100)
    with Spool(parquet=True) as spool:
        for start in range(0, 730, 73):
            spool.write(pa.RecordBatch.from_pydict({"i": list(range(start, start + 73))}))
        spool.write(pa.RecordBatch.from_pydict({"s": ["a", "b"]}))
        first, second = spool.segments
        groups = pq.ParquetFile(first).metadata
        sizes = [groups.row_group(g).num_rows for g in range(groups.num_row_groups)]
        assert sizes == [100] * 7 + [30]
        rows = [row for batch in spool.replay() for row in batch.to_pylist()]
        assert rows == [{"i": i} for i in range(730)] + [{"s": "a"}, {"s": "b"}]
        assert spool.rows == 732
        assert pq.ParquetFile(second).metadata.num_rows == 2


@pytest.mark.parametrize(
    "texts",
    [
        ["01"], ["0"], ["-0"], ["-01"], ["+00"], ["0.5"], ["00.5"], ["0a"], ["-0.1"], ["+012"],
        ["0."], ["-0."], ["0,5"], ["00,5"], ["0.04", "0.00", "007"], ["0.04", "-0.5", "+0.1"],
        ["1", "10", "100"], ["0.04"] * 5 + ["0"], ["-0.01", "-00.01"],
    ],
)  # fmt: skip
def test_leading_zero_is_the_regular_expression_on_every_value(texts: list[str]) -> None:
    """`_leading_zero` (values starting `0.` left out first) answers as `_LEADING_ZERO` matched
    against every value."""
    values = pa.array(texts, pa.string())
    every = pc.any(pc.match_substring_regex(values, candidates._LEADING_ZERO)).as_py()
    assert candidates._leading_zero(values) == every
