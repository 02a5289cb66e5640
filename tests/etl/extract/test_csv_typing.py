"""CSV typing and quoting (etl/formats/csv/reader.py): every column is typed from the whole file,
never from its first block, and an unclosed quote fails at its line instead of swallowing the
lines after it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from etl import BadInputError, ConfigError, JobConfig, run
from etl.formats.csv import reader as csv_reader
from tests.etl.support import duck_query, duck_table_exists, job_config


def _run_csv(tmp_path: Path, content: bytes, **options: object) -> Path:
    base = tmp_path / "in"
    base.mkdir(exist_ok=True)
    (base / "data.csv").write_bytes(content)
    duckdb_path = tmp_path / "w.duckdb"
    job = job_config(
        "local",
        duckdb_path,
        connection_params={"base_path": str(base)},
        file_pattern="data.csv",
        file_format="csv",
        dest_table_name="t",
        file_format_options=options,
    )
    run(JobConfig.parse(job))
    return duckdb_path


def _types(duckdb_path: Path) -> dict[str, str]:
    return dict(
        duck_query(
            duckdb_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 't' AND column_name NOT LIKE '\\_etl\\_%' ESCAPE '\\'",
        )
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, r"file data\.csv, line 4\): malformed quoting \(',' expected after '\"'\)\. Nothing"),
        (
            {"allow_quoted_newlines": False},
            r"file data\.csv, line 4\): malformed quoting .*allow_quoted_newlines",
        ),
    ],
    ids=["default", "quoted-newlines-off"],
)
def test_unclosed_quote_fails_at_its_line_and_writes_nothing(
    tmp_path: Path, options: dict[str, bool], match: str
) -> None:
    """A field opened with a quote on line 4 that does not close before more text follows the
    next quote fails the run naming line 4 (with `allow_quoted_newlines: false`, the option is
    suggested); no table is created."""
    content = b'id,name,amount\n1,a,10\n2,b,20\n3,"Smith, J,30\n4,d,40\n5,"O"Brien,50\n'
    with pytest.raises(BadInputError, match=match):
        _run_csv(tmp_path, content, **options)
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_quote_never_closed_fails_at_the_line_it_opens(tmp_path: Path) -> None:
    """A quote opened on line 3 and never closed (Arrow's reader would take the rest of the
    file as one value) fails naming line 3; no table is created."""
    with pytest.raises(
        BadInputError,
        match=r"file data\.csv, line 3\): a quote opened on this line is never closed\.",
    ):
        _run_csv(tmp_path, b'id,name\n1,a\n2,"b\n3,c\n4,d\n')
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_quoted_newlines_load_without_an_option(tmp_path: Path) -> None:
    """By default a quoted field keeps its line break and doubled quotes."""
    path = _run_csv(tmp_path, b'id,note\n1,"two\nlines"\n2,"say ""hi"""\n')
    assert duck_query(path, "SELECT id, note FROM raw_data.t ORDER BY id") == [
        (1, "two\nlines"),
        (2, 'say "hi"'),
    ]


def test_types_come_from_the_whole_file_not_the_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column empty for the first blocks and filled later, and an integer column that turns
    into text later, load with the types their later values need (text, text), and every value
    is kept."""
    monkeypatch.setattr(csv_reader, "BLOCK_SIZE", 1 << 12)  # 4 KB blocks: many blocks
    rows = [f"{i},{i},," for i in range(1, 2001)]
    rows += ["2001,N/A,late comment,2024-01-01T00:00:00Z"]
    path = _run_csv(tmp_path, ("id,qty,comment,seen_at\n" + "\n".join(rows) + "\n").encode())
    assert _types(path) == {
        "id": "BIGINT",
        "qty": "VARCHAR",
        "comment": "VARCHAR",
        "seen_at": "TIMESTAMP WITH TIME ZONE",
    }
    assert duck_query(path, "SELECT count(*), count(comment), max(qty) FROM raw_data.t") == [
        (2001, 1, "N/A"),
    ]
    assert duck_query(path, "SELECT qty, comment, seen_at FROM raw_data.t WHERE id = 2001") == [
        ("N/A", "late comment", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
    ]


def test_inference_never_loses_digits(tmp_path: Path) -> None:
    """Leading zeros keep a column text, integers beyond int64 become DECIMAL(38,0), `1.00` stays
    a float, zone-aware ISO times become TIMESTAMPTZ and naive ones TIMESTAMP."""
    content = (
        b"zip,big,amount,flag,at_utc,at_local,day\n"
        b"01234,12345678901234567890,1.00,true,2020-01-01T00:00:00Z,2020-01-01 08:30:00,2020-01-01\n"
        b"10001,1,2.50,false,2020-01-01T00:00:01+02:00,2020-01-01 08:30:00.000001,2020-12-31\n"
    )
    path = _run_csv(tmp_path, content)
    assert _types(path) == {
        "zip": "VARCHAR",
        "big": "DECIMAL(38,0)",
        "amount": "DOUBLE",
        "flag": "BOOLEAN",
        "at_utc": "TIMESTAMP WITH TIME ZONE",
        "at_local": "TIMESTAMP",
        "day": "DATE",
    }
    assert duck_query(path, "SELECT zip, big, at_utc, at_local FROM raw_data.t ORDER BY zip") == [
        (
            "01234",
            Decimal("12345678901234567890"),
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2020, 1, 1, 8, 30),
        ),
        (
            "10001",
            Decimal("1"),
            dt.datetime(2019, 12, 31, 22, 0, 1, tzinfo=dt.UTC),
            dt.datetime(2020, 1, 1, 8, 30, 0, 1),
        ),
    ]


def test_column_types_and_decimal_comma(tmp_path: Path) -> None:
    """`column_types` overrides inference, and `decimal_point: ","` reads `1,5` as 1.5."""
    path = _run_csv(
        tmp_path,
        b"code;price;qty\n7;1,5;3\n8;2,25;4\n",
        delimiter=";",
        decimal_point=",",
        column_types={"code": "string", "qty": "decimal(10,2)"},
    )
    assert _types(path) == {"code": "VARCHAR", "price": "DOUBLE", "qty": "DECIMAL(10,2)"}
    assert duck_query(path, "SELECT code, price, qty FROM raw_data.t ORDER BY code") == [
        ("7", 1.5, Decimal("3.00")),
        ("8", 2.25, Decimal("4.00")),
    ]


def test_column_types_naming_no_column_fails(tmp_path: Path) -> None:
    """A `column_types` entry for a column the file lacks fails naming it and the columns."""
    with pytest.raises(BadInputError, match=r"column_types names \['nope'\].*columns: a, b"):
        _run_csv(tmp_path, b"a,b\n1,2\n", column_types={"nope": "string"})


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("decimal(10,20)", r"scale S of decimal\(P,S\) must not exceed the precision P"),
        ("decimal(76,38)", r"precision P of decimal\(P,S\) must be 1 to 38"),
        ("decimal(0,0)", r"precision P of decimal\(P,S\) must be 1 to 38"),
    ],
    ids=["scale-above-precision", "beyond-38-digits", "zero-precision"],
)
def test_column_types_decimal_out_of_bounds_is_a_config_error(
    tmp_path: Path, kind: str, match: str
) -> None:
    """`decimal(P,S)` needs 1 <= P <= 38 and S <= P, refused when the config is read, before
    anything runs. Before: `decimal(10,20)` loaded "successfully" and left a DuckDB file no
    client could open again (`Failed to deserialize type: invalid DECIMAL(10, 20)`), and
    `decimal(76,38)` crashed the run with a raw ArrowNotImplementedError (Arrow's CSV reader
    has no decimal256 conversion: https://github.com/apache/arrow/issues/18373; a peer tool
    working around it: https://github.com/ray-project/deltacat/pull/439)."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "data.csv").write_bytes(b"id,x\n1,0.5\n")
    job = job_config(
        "local",
        tmp_path / "w.duckdb",
        connection_params={"base_path": str(base)},
        file_pattern="data.csv",
        file_format="csv",
        file_format_options={"column_types": {"x": kind}},
    )
    with pytest.raises(ConfigError, match=match) as caught:
        JobConfig.parse(job)
    assert caught.value.field == "file_format_options.column_types"
    assert not (tmp_path / "w.duckdb").exists()


def test_column_types_decimal_38_38_loads_exactly(tmp_path: Path) -> None:
    """The widest accepted decimal, `decimal(38,38)`, loads every digit."""
    path = _run_csv(
        tmp_path,
        b"x\n0.12345678901234567890123456789012345678\n-0.5\n",
        column_types={"x": "decimal(38,38)"},
    )
    assert _types(path) == {"x": "DECIMAL(38,38)"}
    assert duck_query(path, "SELECT x FROM raw_data.t ORDER BY x") == [
        (Decimal("-0.50000000000000000000000000000000000000"),),
        (Decimal("0.12345678901234567890123456789012345678"),),
    ]
